//! The live web page at `/` and the API page at `/docs`: static files
//! compiled into the binary (no CDN, no build step). The live page knows no
//! view by name: it learns the served views from `/healthz` and follows
//! each with `EventSource` in a panel, a generic table of its documents
//! unless the view's service gives a richer one ([`Service::panel`]); the
//! API page reads `/openapi.json` and sends the requests a user fills in
//! with `fetch`.
//!
//! The services' panel scripts and style sheets are served under
//! `/assets/panels/` and named in the page (which the router renders once,
//! for the services it serves), so the Content Security Policy still runs
//! only files of this server, never inline code.
//!
//! Caching: a page itself is `no-cache` (revalidated with its `ETag`) and
//! names its assets with `?v=<hash of all assets>`, so an asset fetched with
//! the current version is immutable for a year; any other URL of it is
//! `no-cache`. A new binary with changed assets thus never serves stale ones.
//!
//! [`Service::panel`]: crate::Service::panel

use duality_core::Error;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Panel, Parts};
use duality_core::View;

const INDEX: &str = include_str!("../web/index.html");
const DOCS: &str = include_str!("../web/docs.html");

const SCRIPT: &str = "text/javascript; charset=utf-8";
const STYLE: &str = "text/css; charset=utf-8";

/// The engine's own files, under `/assets/`.
const FILES: [(&str, &str, &str); 5] = [
    ("app.js", SCRIPT, include_str!("../web/app.js")),
    ("style.css", STYLE, include_str!("../web/style.css")),
    ("docs.js", SCRIPT, include_str!("../web/docs.js")),
    ("docs.css", STYLE, include_str!("../web/docs.css")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../web/favicon.svg"),
    ),
];

/// The page may load only its own files and talk only to this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// What a script may not use to put text in the page: each parses its
/// argument as HTML, so a name a user typed could run as code.
const HTML_SINKS: [&str; 5] = [
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    "createContextualFragment",
];

/// The first way of writing HTML that `script` uses, if any: the page's
/// scripts (the engine's and the services' panels) put every text in the
/// page as a text node or `textContent`. A lint for tests, not a sandbox.
pub fn writes_html(script: &str) -> Option<&'static str> {
    HTML_SINKS.into_iter().find(|sink| script.contains(sink))
}

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

fn etag_of(body: &str) -> String {
    format!("\"{:016x}\"", fnv1a(body.as_bytes(), FNV_OFFSET))
}

/// One file under `/assets/`.
struct Asset {
    /// Its path under `/assets/`: `app.js`, `panels/persons.js`.
    path: String,
    content_type: &'static str,
    body: &'static str,
    etag: String,
}

impl Asset {
    fn new(path: String, content_type: &'static str, body: &'static str) -> Asset {
        Asset {
            path,
            content_type,
            body,
            etag: etag_of(body),
        }
    }
}

/// A page with its asset URLs versioned, and its ETag.
struct Page {
    html: Bytes,
    etag: String,
}

impl Page {
    fn new(html: String) -> Page {
        let etag = etag_of(&html);
        Page {
            html: Bytes::from(html),
            etag,
        }
    }
}

/// The pages and files one router serves: the engine's, and the panels of
/// the services it runs.
struct Site {
    assets: Vec<Asset>,
    /// One version for the whole set of assets, named in the pages' URLs.
    version: String,
    page: Page,
    docs: Page,
}

/// A panel script and the views it draws.
struct Script {
    body: &'static str,
    views: Vec<View>,
}

/// `&`, `<`, `>`, `"` and `'` as entities, for an attribute value.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Site {
    /// The site for `views`, with the `panels` and `styles` their services
    /// give (a panel of a view not served is left out; a script or style
    /// sheet given twice is served once).
    fn new(views: &[View], panels: &[Panel], styles: &[&'static str]) -> Site {
        let mut scripts: Vec<Script> = Vec::new();
        for panel in panels.iter().filter(|p| views.contains(&p.view)) {
            match scripts.iter_mut().find(|s| s.body == panel.script) {
                Some(script) if !script.views.contains(&panel.view) => {
                    script.views.push(panel.view)
                }
                Some(_) => {}
                None => scripts.push(Script {
                    body: panel.script,
                    views: vec![panel.view],
                }),
            }
        }
        let mut sheets: Vec<&'static str> = Vec::new();
        for &css in styles {
            if !sheets.contains(&css) {
                sheets.push(css);
            }
        }

        let mut assets: Vec<Asset> = FILES
            .iter()
            .map(|&(name, content_type, body)| Asset::new(name.to_string(), content_type, body))
            .collect();
        // Style sheets first: the page names them before the scripts.
        let mut tags = Vec::new();
        for (i, css) in sheets.iter().enumerate() {
            let path = format!("panels/style-{}.css", i + 1);
            tags.push(format!(
                "<link rel=\"stylesheet\" href=\"/assets/{path}?v={{{{version}}}}\">"
            ));
            assets.push(Asset::new(path, STYLE, css));
        }
        for script in &scripts {
            // View names are plain (letters, digits, `-`, `_`, `.`), so the
            // first one names the file.
            let path = format!("panels/{}.js", script.views[0].name());
            let names: Vec<&str> = script.views.iter().map(|v| v.name()).collect();
            tags.push(format!(
                "<script src=\"/assets/{path}?v={{{{version}}}}\" data-views=\"{}\" defer></script>",
                escaped(&names.join(" "))
            ));
            assets.push(Asset::new(path, SCRIPT, script.body));
        }

        let hash = assets
            .iter()
            .fold(FNV_OFFSET, |h, a| fnv1a(a.body.as_bytes(), h));
        let version = format!("{hash:016x}");
        let render = |html: &str| {
            Page::new(
                html.replace("{{panels}}", &tags.join("\n  "))
                    .replace("{{version}}", &version),
            )
        };
        let page = render(INDEX);
        let docs = render(DOCS);
        Site {
            assets,
            version,
            page,
            docs,
        }
    }

    fn asset(&self, path: &str, uri: &Uri, headers: &HeaderMap) -> Response {
        let Some(asset) = self.assets.iter().find(|a| a.path == path) else {
            return Error::NotFound(format!("no asset named `{path}`")).into_response();
        };
        let current = uri
            .query()
            .unwrap_or("")
            .split('&')
            .any(|pair| pair.strip_prefix("v=") == Some(self.version.as_str()));
        let cache = if current {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        respond(
            headers,
            asset.content_type,
            Bytes::from_static(asset.body.as_bytes()),
            &asset.etag,
            cache,
        )
    }
}

/// `/`, `/docs`, `/assets/{file}` and `/assets/panels/{file}` for the
/// views, panels and style sheets of `parts`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(parts: &Parts) -> Router<S> {
    let site = Arc::new(Site::new(&parts.views, &parts.panels, &parts.styles));
    let (index, docs, files, panels) = (site.clone(), site.clone(), site.clone(), site);
    Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move { page(&index.page, &headers) }),
        )
        .route(
            "/docs",
            get(move |headers: HeaderMap| async move { page(&docs.docs, &headers) }),
        )
        .route(
            "/assets/{file}",
            get(
                move |Path(file): Path<String>, uri: Uri, headers: HeaderMap| async move {
                    files.asset(&file, &uri, &headers)
                },
            ),
        )
        .route(
            "/assets/panels/{file}",
            get(
                move |Path(file): Path<String>, uri: Uri, headers: HeaderMap| async move {
                    panels.asset(&format!("panels/{file}"), &uri, &headers)
                },
            ),
        )
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
    body: Bytes,
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

fn page(page: &Page, headers: &HeaderMap) -> Response {
    let mut response = respond(
        headers,
        "text/html; charset=utf-8",
        page.html.clone(),
        &page.etag,
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

#[cfg(test)]
mod tests {
    use super::*;
    use duality_core::ViewSpec;

    static NOTES: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
    static TASKS: ViewSpec = ViewSpec::new("tasks", "/tasks", "/task-events");
    static GONE: ViewSpec = ViewSpec::new("gone", "/gone", "/gone-events");
    const TABLE: &str = "duality.panel({ mount() { return () => {}; } });";

    fn site() -> Site {
        let (notes, tasks, gone) = (View::of(&NOTES), View::of(&TASKS), View::of(&GONE));
        let panels = [
            Panel {
                view: notes,
                script: TABLE,
            },
            Panel {
                view: tasks,
                script: TABLE,
            },
            Panel {
                view: gone,
                script: "duality.panel({});",
            },
        ];
        Site::new(&[notes, tasks], &panels, &[".notes {}", ".notes {}"])
    }

    fn html(page: &Page) -> &str {
        std::str::from_utf8(&page.html).unwrap()
    }

    #[test]
    fn the_pages_name_every_asset_with_the_current_version() {
        for site in [Site::new(&[], &[], &[]), site()] {
            let pages = [html(&site.page), html(&site.docs)];
            for page in pages {
                assert!(!page.contains("{{"), "{page}");
                assert!(!page.contains("/assets/") || page.contains(&site.version));
            }
            for asset in &site.assets {
                let url = format!("/assets/{}?v={}", asset.path, site.version);
                assert!(
                    pages.iter().any(|p| p.contains(&url)),
                    "no page loads {url}"
                );
            }
        }
    }

    #[test]
    fn a_panel_script_is_served_once_for_all_its_views_and_only_for_served_views() {
        let site = site();
        let panels: Vec<&str> = site
            .assets
            .iter()
            .map(|a| a.path.as_str())
            .filter(|p| p.starts_with("panels/"))
            .collect();
        assert_eq!(panels, ["panels/style-1.css", "panels/notes.js"]);
        let page = html(&site.page);
        assert!(page.contains("data-views=\"notes tasks\" defer"), "{page}");
        // The panels load after the page's own script, which they call.
        let app = page.find("/assets/app.js").unwrap();
        assert!(page.find("/assets/panels/notes.js").unwrap() > app);
        assert_ne!(site.version, Site::new(&[], &[], &[]).version);
    }

    #[test]
    fn an_attribute_value_is_escaped() {
        assert_eq!(escaped("a\"<b>&'"), "a&quot;&lt;b&gt;&amp;&#39;");
    }

    #[test]
    fn the_scripts_set_no_text_through_inner_html() {
        // The services check their panel scripts with the same function.
        for (name, _, body) in FILES.iter().filter(|f| f.0.ends_with(".js")) {
            assert_eq!(writes_html(body), None, "{name}");
        }
        assert_eq!(writes_html("x.innerHTML = y"), Some("innerHTML"));
        assert_eq!(writes_html("document.write(y)"), Some("document.write"));
    }
}
