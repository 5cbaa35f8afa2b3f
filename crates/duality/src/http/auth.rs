//! Bearer tokens (docs/PROTOCOL.md, "Security model"): writes need a write token when any is set;
//! reads of views need a read or a write token when a read token is set.
//!
//! Probes and the static page stay open (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`, `/`, `/assets/…`): they carry no
//! view data, orchestrators probe without credentials, and the page must
//! load before it can ask for a token. `OPTIONS` passes too: the CORS
//! layer outside this one answers preflights, which never carry
//! credentials.
//!
//! A stream also takes its token as `?access_token=`, because a browser's
//! `EventSource` cannot send headers; [`redacted`] keeps it out of logs.
//! Tokens are compared in constant time (for a given length).

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::settings::Token;

/// The tokens a server accepts. Empty lists mean "open".
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Tokens that allow writes (and reads); any one of them is accepted.
    pub write: Vec<Token>,
    /// Tokens that allow reads of views; a write token is accepted for reads as
    /// well.
    pub read: Vec<Token>,
}

/// Which requests need a token: what `/healthz` tells the page, so that
/// it can ask for one before it is refused.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Needs {
    /// A read token is required to read views.
    pub read: bool,
    /// A write token is required to write.
    pub write: bool,
}

impl Tokens {
    /// Which kinds of request need a token: a kind needs one as soon as any
    /// token of it is configured.
    pub fn needs(&self) -> Needs {
        Needs {
            read: !self.read.is_empty(),
            write: !self.write.is_empty(),
        }
    }
}

/// What the token check needs.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The tokens requests are checked against.
    pub tokens: Tokens,
    /// Paths whose `GET` is a change stream (where `?access_token=` counts).
    pub streams: Vec<&'static str>,
}

/// Paths readable without a token even when a read token is set.
pub(crate) fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/docs" | "/healthz" | "/readyz" | "/metrics" | "/openapi.json"
    ) || path.starts_with("/assets/")
}

pub(crate) fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    )
}

/// True if `presented` equals one of `tokens`. Every token is compared,
/// each byte by byte without an early exit, so the time taken does not
/// depend on where a guess first differs.
pub fn matches_any(presented: &[u8], tokens: &[Token]) -> bool {
    let mut found = false;
    for token in tokens {
        found |= same_bytes(presented, token.as_bytes());
    }
    found
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer …` header, if there is one.
fn bearer(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: Option<String>,
}

/// The `?access_token=` of a request URI.
fn query_token(uri: &Uri) -> Option<String> {
    axum::extract::Query::<AccessToken>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.access_token)
}

impl Guard {
    /// Lets a request through (`Ok`), or answers it `401`. Synchronous and
    /// run by a [`ValidateRequestHeaderLayer`](tower_http::validate_request::ValidateRequestHeaderLayer),
    /// so a request that passes costs no extra future or service clone.
    // The refusal is the answer itself, as request validation layers take it.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, request: &Request) -> Result<(), Response> {
        let tokens = &self.tokens;
        let method = request.method();
        let write = is_write(method);
        let needed = if write {
            !tokens.write.is_empty()
        } else {
            matches!(*method, Method::GET | Method::HEAD)
                && !tokens.read.is_empty()
                && !is_public(request.uri().path())
        };
        if !needed {
            return Ok(());
        }
        let from_query = (!write && self.streams.contains(&request.uri().path()))
            .then(|| query_token(request.uri()))
            .flatten();
        let presented = bearer(request).or(from_query.as_deref().map(str::as_bytes));
        let Some(presented) = presented else {
            let what = if write {
                "this write needs a token: send Authorization: Bearer <write token>"
            } else {
                "reading this needs a token: send Authorization: Bearer <token> \
                 (a stream also takes ?access_token=<token>)"
            };
            return Err(unauthorized(what, false));
        };
        let valid = matches_any(presented, &tokens.write)
            | (!write && matches_any(presented, &tokens.read));
        if !valid {
            let what = if write {
                "the token is not a valid write token"
            } else {
                "the token is not valid"
            };
            return Err(unauthorized(what, true));
        }
        Ok(())
    }
}

/// `401` with the challenge RFC 6750 asks for.
fn unauthorized(message: &str, invalid: bool) -> Response {
    let challenge = if invalid {
        HeaderValue::from_static(r#"Bearer error="invalid_token""#)
    } else {
        HeaderValue::from_static("Bearer")
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// The request URI for logs: the value of every `access_token` query
/// parameter replaced by `***`.
pub fn redacted(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            if decoded(key).eq_ignore_ascii_case("access_token") {
                format!("{key}=***")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A query key as a form decoder reads it (`%xx` escapes, `+` for space).
fn decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_token;

    #[test]
    fn any_listed_token_matches_and_nothing_else() {
        let tokens = vec![
            parse_token("old-one").unwrap(),
            parse_token("new-two").unwrap(),
        ];
        assert!(matches_any(b"old-one", &tokens));
        assert!(matches_any(b"new-two", &tokens));
        for wrong in [&b"old-on"[..], b"old-onE", b"", b"new-two "] {
            assert!(!matches_any(wrong, &tokens), "{wrong:?}");
        }
        assert!(!matches_any(b"x", &[]));
    }

    #[test]
    fn access_tokens_never_reach_the_log() {
        let uri: Uri = "/person-events?revision=3&access_token=s3cret&snapshot=true"
            .parse()
            .unwrap();
        assert_eq!(
            redacted(&uri),
            "/person-events?revision=3&access_token=***&snapshot=true"
        );
        for sneaky in [
            "/e?access%5Ftoken=s3cret",
            "/e?ACCESS_TOKEN=s3cret",
            "/e?access_token=s3cret&access_token=s3cret",
        ] {
            let text = redacted(&sneaky.parse().unwrap());
            assert!(!text.contains("s3cret"), "{text}");
        }
        assert_eq!(redacted(&"/persons".parse().unwrap()), "/persons");
        assert_eq!(decoded("%4"), "%4");
    }
}
