//! `--cors-origin`: pages on another origin can read snapshots and streams
//! and see the revision headers; other origins get no CORS grant. Writes
//! from another origin need `--cors-allow-writes` too (docs/PROTOCOL.md, "Security model").

use crate::common::{TestServer, revision_of, spawn};
use duality::Config;
use duality_services::Settings;
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
        .post(server.url("/persons"))
        .header("origin", origin)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "Mallory"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn other_origins_may_only_read_unless_writes_are_allowed_too() {
    let read_only = spawn(Settings {
        engine: Config {
            cors_origin: vec!["https://dash.example".into()],
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    })
    .await;
    for method in ["POST", "PATCH", "DELETE"] {
        let r = preflight(&read_only, "/persons", method, "content-type").await;
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
    assert_eq!(revision_of(&read_only.get("/persons").await), 0);
    // Same-origin pages and clients that are not browsers write as before.
    let same = read_only
        .client
        .post(read_only.url("/persons"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 201);
    assert_eq!(
        read_only
            .post("/persons", json!({"name": "Bob"}))
            .await
            .status(),
        201
    );

    let writable = spawn(Settings {
        engine: Config {
            cors_origin: vec!["https://dash.example".into()],
            cors_allow_writes: true,
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    })
    .await;
    let r = preflight(&writable, "/persons", "POST", "content-type").await;
    assert!(allowed(&r, "access-control-allow-methods", "POST"));
    assert_eq!(
        write_from(&writable, "https://dash.example").await.status(),
        201
    );
    assert_eq!(
        write_from(&writable, "https://evil.example").await.status(),
        403
    );
}

#[tokio::test]
async fn an_allowed_origin_reads_snapshots_and_streams_with_revision_headers_exposed() {
    let settings = Settings {
        engine: Config {
            cors_origin: vec!["https://dash.example".into()],
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    for path in ["/persons", "/person-events"] {
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
    }
    // A reconnecting EventSource asks first whether it may send Last-Event-ID.
    let preflight = preflight(&server, "/person-events", "GET", "last-event-id").await;
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
        .get(server.url("/persons"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_the_flag_no_origin_is_granted() {
    let server = spawn(Settings::ephemeral()).await;
    let r = server
        .client
        .get(server.url("/persons"))
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
