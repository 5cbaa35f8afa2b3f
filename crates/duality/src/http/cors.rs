//! Other origins (docs/PROTOCOL.md, "Security model"): `--cors-origin` lets their pages read
//! snapshots and streams (GET, HEAD, and the preflight for
//! `Last-Event-ID` or `Authorization`); writes from another origin need
//! `--cors-allow-writes` as well.
//!
//! The CORS grant is only what browsers enforce on pages that ask first.
//! A "simple" cross-origin request (a form post) is sent without asking,
//! so [`Cors::refuse_foreign_writes`] also refuses, on the server, any write a
//! browser marks as coming from another origin (`Sec-Fetch-Site`, or an
//! `Origin` that is not the `Host` for browsers without it). Clients that
//! are not browsers send neither header and are governed by the tokens.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::is_write;
use super::views;

/// The cross-origin policy.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Origins whose pages may read (`*` for any).
    pub origins: Vec<String>,
    /// Whether those origins may also write.
    pub allow_writes: bool,
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// The CORS layer: grants the listed origins reads (and writes with
/// `allow_writes`), and lets them see the headers that carry revisions.
pub fn layer(cors: &Cors) -> CorsLayer {
    let mut methods = vec![Method::GET, Method::HEAD];
    let mut headers = vec![
        header::AUTHORIZATION,
        header::IF_NONE_MATCH,
        HeaderName::from_static("last-event-id"),
        HeaderName::from_static(views::X_REVISION),
        HeaderName::from_static(views::X_EPOCH),
    ];
    if cors.allow_writes {
        methods.extend([Method::POST, Method::PATCH, Method::PUT, Method::DELETE]);
        headers.extend([
            header::CONTENT_TYPE,
            // Conditional writes of one document (`412` when it changed).
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ]);
    }
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            // A snapshot's stream: a page follows it rather than guess it.
            header::LINK,
            HeaderName::from_static(views::X_REVISION),
            HeaderName::from_static(views::X_EPOCH),
            HeaderName::from_static("x-stale"),
        ]);
    if cors.origins.iter().any(|o| o == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let list: Vec<HeaderValue> = cors.origins.iter().filter_map(|o| o.parse().ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

/// True if a browser says the request comes from a page of another origin.
fn from_another_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text("origin") else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match (authority, text("host")) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
        _ => true,
    }
}

impl Cors {
    /// A write from another origin is answered `403` (`Err`) unless that
    /// origin may write; every other request passes. Run, like the token
    /// check, by a request validation layer.
    // The refusal is the answer itself, as request validation layers take it.
    #[allow(clippy::result_large_err)]
    pub fn refuse_foreign_writes(&self, request: &Request) -> Result<(), Response> {
        if !is_write(request.method()) || !from_another_origin(request.headers()) {
            return Ok(());
        }
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("null");
        if self.allow_writes && self.allows(origin) {
            return Ok(());
        }
        Err((
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "writes from a page of another origin are refused \
                          (the server allows them with --cors-allow-writes for an origin of --cors-origin)"
            })),
        )
            .into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn browsers_mark_foreign_requests_and_other_clients_pass() {
        assert!(!from_another_origin(&headers(&[])));
        assert!(!from_another_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(from_another_origin(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(from_another_origin(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        let same = [
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ];
        assert!(!from_another_origin(&headers(&same)));
        let other = [
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000"),
        ];
        assert!(from_another_origin(&headers(&other)));
        let opaque = [("origin", "null"), ("host", "127.0.0.1:3000")];
        assert!(from_another_origin(&headers(&opaque)));
    }
}
