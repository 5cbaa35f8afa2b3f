//! `--cors-origin`: pages on another origin can read snapshots and streams
//! and see the revision headers; other origins get no CORS grant.

mod common;

use common::spawn;
use duality::settings::Settings;

#[tokio::test]
async fn an_allowed_origin_reads_snapshots_and_streams_with_revision_headers_exposed() {
    let settings = Settings {
        cors_origin: vec!["https://dash.example".into()],
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
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/persons"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://dash.example"
    );

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
