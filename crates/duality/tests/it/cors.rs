//! `--cors-origin`: pages on another origin can read snapshots and streams
//! and see the revision headers; other origins get no CORS grant. Writes
//! from another origin need `--cors-allow-writes` too (docs/PROTOCOL.md,
//! "Security model").

use crate::common::{TestServer, revision_of, spawn};
use duality::Config;
use serde_json::json;

async fn preflight(
    server: &TestServer,
    path: &str,
    method: &str,
    headers: &str,
) -> reqwest::Response {
    let r = server
        .client
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r
}

/// True if the comma list in header `name` holds `item`.
fn allowed(r: &reqwest::Response, name: &str, item: &str) -> bool {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(item)))
}

/// A write as a browser sends it from a page of `origin`.
async fn write_from(server: &TestServer, origin: &str) -> reqwest::Response {
    server
        .client
        .put(server.url("/notes/mallory"))
        .header("origin", origin)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"text": "Mallory was here"}))
        .send()
        .await
        .unwrap()
}

fn with_origin(allow_writes: bool) -> Config {
    Config {
        cors_origin: vec!["https://dash.example".into()],
        cors_allow_writes: allow_writes,
        ..Config::ephemeral()
    }
}

#[tokio::test]
async fn other_origins_may_only_read_unless_writes_are_allowed_too() {
    let read_only = spawn(with_origin(false)).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let r = preflight(&read_only, "/notes/a", method, "content-type").await;
        assert!(
            !allowed(&r, "access-control-allow-methods", method),
            "{method} granted"
        );
    }
    // The browser is refused even when it does not ask first (a form post).
    for origin in ["https://dash.example", "https://evil.example"] {
        let r = write_from(&read_only, origin).await;
        assert_eq!(r.status(), 403, "{origin}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("--cors-allow-writes")
        );
    }
    assert_eq!(revision_of(&read_only.get("/notes").await), 0);
    // Same-origin pages and clients that are not browsers write as before.
    let same = read_only
        .client
        .put(read_only.url("/notes/ann"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"text": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200);
    assert_eq!(
        read_only
            .put("/notes/bob", json!({"text": "Bob"}))
            .await
            .status(),
        200
    );

    let writable = spawn(with_origin(true)).await;
    let r = preflight(&writable, "/notes/a", "PUT", "content-type, if-match").await;
    assert!(allowed(&r, "access-control-allow-methods", "PUT"));
    for header in [
        "content-type",
        "if-match",
        "if-none-match",
        "idempotency-key",
    ] {
        assert!(
            allowed(&r, "access-control-allow-headers", header),
            "{header}"
        );
    }
    assert_eq!(
        write_from(&writable, "https://dash.example").await.status(),
        200
    );
    assert_eq!(
        write_from(&writable, "https://evil.example").await.status(),
        403
    );
}

#[tokio::test]
async fn an_allowed_origin_reads_snapshots_and_streams_with_revision_headers_exposed() {
    let server = spawn(with_origin(false)).await;
    for path in ["/notes", "/note-events"] {
        let r = server
            .client
            .get(server.url(path))
            .header("origin", "https://dash.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://dash.example"
        );
        let exposed = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for h in ["x-revision", "x-epoch", "etag"] {
            assert!(exposed.contains(h), "{h} not exposed on {path}: {exposed}");
        }
        if path == "/notes" {
            assert!(exposed.contains("link"), "the stream's Link: {exposed}");
        }
    }
    // A reconnecting EventSource asks first whether it may send Last-Event-ID.
    let preflight = preflight(&server, "/note-events", "GET", "last-event-id").await;
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    assert!(allowed(
        &preflight,
        "access-control-allow-headers",
        "last-event-id"
    ));

    let other = server
        .client
        .get(server.url("/notes"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_the_flag_no_origin_is_granted() {
    let server = spawn(Config::ephemeral()).await;
    let r = server
        .client
        .get(server.url("/notes"))
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
