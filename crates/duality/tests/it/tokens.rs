//! Bearer tokens (docs/PROTOCOL.md, "Security model"): `--write-token`
//! guards writes, `--read-token` guards snapshots and streams (a stream
//! also takes `?access_token=`, which never reaches the log), probes stay
//! open, and a server on a non-loopback address refuses open writes unless
//! told otherwise.

use std::time::{Duration, Instant};

use crate::common::{TestServer, header, logs, notes, revision_of, spawn};
use duality::settings::parse_token;
use duality::{Config, LaunchError};
use serde_json::{Value, json};

fn with_tokens(write: &[&str], read: &[&str]) -> Config {
    let tokens = |list: &[&str]| list.iter().map(|t| parse_token(t).unwrap()).collect();
    Config {
        write_token: tokens(write),
        read_token: tokens(read),
        ..Config::ephemeral()
    }
}

/// `PUT /notes/{key}`: Ann's note, tagged `rome`.
async fn put_with(server: &TestServer, key: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = server
        .client
        .put(server.url(&format!("/notes/{key}")))
        .json(&json!({"text": "Ann", "tag": "rome"}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn get_with(server: &TestServer, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn assert_unauthorized(response: reqwest::Response, challenge: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "www-authenticate"), challenge);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn writes_need_one_of_the_write_tokens_and_a_refused_write_changes_nothing() {
    let server = spawn(with_tokens(&["old-token", "new-token"], &[])).await;

    assert_unauthorized(put_with(&server, "ann", None).await, "Bearer").await;
    assert_unauthorized(
        put_with(&server, "ann", Some("guess")).await,
        r#"Bearer error="invalid_token""#,
    )
    .await;
    for (method, path) in [("PUT", "/notes/other"), ("DELETE", "/notes/ann")] {
        let r = server
            .send(method, path, Some(json!({"text": "Oslo"})))
            .await;
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    let view = get_with(&server, "/notes", None).await;
    assert_eq!(revision_of(&view), 0, "a refused write wrote nothing");

    // Both tokens of a rotation are valid; reads stay open.
    assert_eq!(
        put_with(&server, "old", Some("old-token")).await.status(),
        200
    );
    assert_eq!(
        put_with(&server, "new", Some("new-token")).await.status(),
        200
    );
    let view = get_with(&server, "/notes", None).await;
    assert_eq!(view.status(), 200);
    assert_eq!(revision_of(&view), 2);
    server.subscribe("/note-events", &[]).await;
}

#[tokio::test]
async fn a_read_token_guards_views_and_streams_but_not_the_probes_or_the_page() {
    let server = spawn(with_tokens(&["w-token"], &["r-token"])).await;
    assert_eq!(
        put_with(&server, "ann", Some("w-token")).await.status(),
        200
    );

    for path in [
        "/notes",
        "/notes/ann",
        "/tags",
        "/note-events",
        "/tag-events",
    ] {
        assert_unauthorized(get_with(&server, path, None).await, "Bearer").await;
        let wrong = get_with(&server, path, Some("nope")).await;
        assert_eq!(wrong.status(), 401, "{path}");
    }
    // A read token reads, a write token reads too, a read token cannot write.
    assert_eq!(
        get_with(&server, "/notes", Some("r-token")).await.status(),
        200
    );
    assert_eq!(
        get_with(&server, "/notes", Some("w-token")).await.status(),
        200
    );
    assert_unauthorized(
        put_with(&server, "ann", Some("r-token")).await,
        r#"Bearer error="invalid_token""#,
    )
    .await;

    // A stream takes the token in the query, as a browser's EventSource must.
    let mut stream = server
        .subscribe("/note-events?revision=1&access_token=r-token", &[])
        .await;
    let (revision, patch) = stream.change().await;
    assert_eq!(
        (revision, patch),
        (1, json!({"ann": {"text": "Ann", "tag": "rome"}}))
    );
    let wrong = get_with(&server, "/note-events?access_token=nope", None).await;
    assert_eq!(wrong.status(), 401);
    // Only streams take it there: a snapshot URL with a token in it would
    // end up in caches and histories.
    let snapshot = get_with(&server, "/notes?access_token=r-token", None).await;
    assert_eq!(snapshot.status(), 401);

    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        assert_eq!(get_with(&server, path, None).await.status(), 200, "{path}");
    }
    // The OpenAPI document of this server says where it wants a token.
    let doc = server.get_json("/openapi.json").await;
    for (path, method) in [
        ("/notes", "get"),
        ("/notes/{key}", "put"),
        ("/notes/{key}", "delete"),
        ("/note-events", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op["responses"].get("401").is_some(), "{method} {path}");
        assert!(op["security"].is_array(), "{method} {path}");
    }
    assert!(
        doc["paths"]["/healthz"]["get"]["responses"]
            .get("401")
            .is_none()
    );
    let health = server.get_json("/healthz").await;
    assert_eq!(health["tokens"], json!({"read": true, "write": true}));
}

#[tokio::test]
async fn a_stream_token_in_the_query_never_reaches_the_log() {
    let server = spawn(with_tokens(&[], &["Sekr1t-read-token"])).await;
    // Each request is marked, to find its own log lines among those of
    // the other tests of this binary.
    for (token, mark) in [
        ("Sekr1t-read-token", "log-probe-right"),
        ("Wr0ng-guess-token", "log-probe-wrong"),
    ] {
        let r = server
            .client
            .get(server.url(&format!(
                "/note-events?access_token={token}&revision=1&key={mark}"
            )))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 200 || r.status() == 401);
    }
    // Let the log catch up with both requests.
    let deadline = Instant::now() + Duration::from_secs(5);
    for mark in ["log-probe-right", "log-probe-wrong"] {
        while !logs::contains(&["access_token=***", mark]) {
            assert!(
                Instant::now() < deadline,
                "{mark} not logged: {}",
                logs::text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let log = logs::text();
    assert!(!log.contains("Sekr1t"), "the read token is in the log");
    assert!(!log.contains("Wr0ng"), "a guessed token is in the log");
}

#[tokio::test]
async fn on_a_non_loopback_address_open_writes_must_be_asked_for() {
    let launch = |config: Config| async move {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(notes::server().launch(config, listener, async {
            let _ = stopped.await;
        }));
        (stop, run)
    };
    let (_stop, refused) = launch(Config::ephemeral()).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("the server refuses to start")
        .unwrap();
    let error = refused.expect_err("open writes on 0.0.0.0 are refused");
    assert!(matches!(error, LaunchError::Config(_)), "{error:?}");
    let message = error.to_string();
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    assert!(message.contains("--write-token") && message.contains("--open-writes"));

    // With either flag it serves (still running after a moment).
    for config in [
        Config {
            open_writes: true,
            ..Config::ephemeral()
        },
        with_tokens(&["a-token"], &[]),
    ] {
        let (stop, run) = launch(config).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!run.is_finished(), "it stopped at start: {:?}", run.await);
        let _ = stop.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(10), run).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    }
}
