//! The live web page at `/` and the API page at `/docs`: static files
//! compiled into the binary (no CDN, no build step). The live page follows
//! the views with `EventSource`; the API page reads `/openapi.json` and sends
//! the requests a user fills in with `fetch`.
//!
//! Caching: a page itself is `no-cache` (revalidated with its `ETag`) and
//! names its assets with `?v=<hash of all assets>`, so an asset fetched with
//! the current version is immutable for a year; any other URL of it is
//! `no-cache`. A new binary with changed assets thus never serves stale ones.

use duality_core::Error;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("../web/index.html");
const DOCS: &str = include_str!("../web/docs.html");

const ASSETS: [Asset; 5] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/style.css"),
    },
    Asset {
        name: "docs.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/docs.js"),
    },
    Asset {
        name: "docs.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/docs.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../web/favicon.svg"),
    },
];

/// The page may load only its own files and talk only to this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// FNV-1a, 64 bits: a stable content hash for versions and ETags.
const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One version for the whole set of assets, named in the page's URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let hash = ASSETS
        .iter()
        .fold(FNV_OFFSET, |h, a| fnv1a(a.body.as_bytes(), h));
    format!("{hash:016x}")
});

/// A page with its asset URLs versioned, and its ETag.
fn versioned(html: &str) -> (String, String) {
    let page = html.replace("{{version}}", &VERSION);
    let etag = format!("\"{:016x}\"", fnv1a(page.as_bytes(), FNV_OFFSET));
    (page, etag)
}

static PAGE: LazyLock<(String, String)> = LazyLock::new(|| versioned(INDEX));
static DOCS_PAGE: LazyLock<(String, String)> = LazyLock::new(|| versioned(DOCS));

/// `/`, `/docs` and `/assets/{file}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| page(&PAGE, headers)))
        .route("/docs", get(|headers: HeaderMap| page(&DOCS_PAGE, headers)))
        .route("/assets/{file}", get(asset))
}

fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    body: &'static str,
    etag: &str,
    cache: &'static str,
) -> Response {
    let mut response = if matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn page(which: &'static LazyLock<(String, String)>, headers: HeaderMap) -> Response {
    let (page, etag) = &**which;
    let mut response = respond(
        &headers,
        "text/html; charset=utf-8",
        page.as_str(),
        etag,
        "no-cache",
    );
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset(Path(file): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return Error::NotFound(format!("no asset named `{file}`")).into_response();
    };
    let current = uri
        .query()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.strip_prefix("v=") == Some(VERSION.as_str()));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let etag = format!("\"{:016x}\"", fnv1a(asset.body.as_bytes(), FNV_OFFSET));
    respond(&headers, asset.content_type, asset.body, &etag, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_name_every_asset_with_the_current_version() {
        let pages = [&PAGE.0, &DOCS_PAGE.0];
        for page in pages {
            assert!(!page.contains("{{version}}"));
            assert!(!page.contains("/assets/") || page.contains(&format!("?v={}", *VERSION)));
        }
        for asset in &ASSETS {
            let url = format!("/assets/{}?v={}", asset.name, *VERSION);
            assert!(
                pages.iter().any(|p| p.contains(&url)),
                "no page loads {url}"
            );
        }
    }

    #[test]
    fn the_scripts_set_no_text_through_inner_html() {
        for script in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            assert!(!script.body.contains("innerHTML"), "{}", script.name);
            assert!(
                !script.body.contains("insertAdjacentHTML"),
                "{}",
                script.name
            );
            assert!(!script.body.contains("document.write"), "{}", script.name);
        }
    }
}
