//! Bearer tokens (docs/PROTOCOL.md, "Security model"): `--write-token` guards writes, `--read-token`
//! guards snapshots and streams (a stream also takes `?access_token=`,
//! which never reaches the log), probes stay open, and a server on a
//! non-loopback address refuses open writes unless told otherwise.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ChildServer, TestServer, header, revision_of, spawn};
use duality::Config;
use duality::settings::parse_token;
use duality_services::Builtin;
use duality_services::settings::Settings;
use serde_json::{Value, json};

fn with_tokens(write: &[&str], read: &[&str]) -> Settings {
    let tokens = |list: &[&str]| list.iter().map(|t| parse_token(t).unwrap()).collect();
    Settings {
        engine: Config {
            write_token: tokens(write),
            read_token: tokens(read),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    }
}

async fn post_with(server: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url("/persons"))
        .json(&json!({"name": "Ann", "city": "Rome"}));
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

    assert_unauthorized(post_with(&server, None).await, "Bearer").await;
    assert_unauthorized(
        post_with(&server, Some("guess")).await,
        r#"Bearer error="invalid_token""#,
    )
    .await;
    for (method, path) in [("PATCH", "/persons/1"), ("DELETE", "/persons/1")] {
        let r = server
            .send(method, path, Some(json!({"city": "Oslo"})))
            .await;
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    let view = get_with(&server, "/persons", None).await;
    assert_eq!(revision_of(&view), 0, "a refused write wrote nothing");

    // Both tokens of a rotation are valid; reads stay open.
    assert_eq!(post_with(&server, Some("old-token")).await.status(), 201);
    assert_eq!(post_with(&server, Some("new-token")).await.status(), 201);
    let view = get_with(&server, "/persons", None).await;
    assert_eq!(view.status(), 200);
    assert_eq!(revision_of(&view), 2);
    server.subscribe("/person-events", &[]).await;
}

#[tokio::test]
async fn a_read_token_guards_views_and_streams_but_not_the_probes_or_the_page() {
    let server = spawn(with_tokens(&["w-token"], &["r-token"])).await;
    assert_eq!(post_with(&server, Some("w-token")).await.status(), 201);

    for path in ["/persons", "/persons/1", "/locations", "/person-events"] {
        assert_unauthorized(get_with(&server, path, None).await, "Bearer").await;
        let wrong = get_with(&server, path, Some("nope")).await;
        assert_eq!(wrong.status(), 401, "{path}");
    }
    // A read token reads, a write token reads too, a read token cannot write.
    assert_eq!(
        get_with(&server, "/persons", Some("r-token"))
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with(&server, "/persons", Some("w-token"))
            .await
            .status(),
        200
    );
    assert_unauthorized(
        post_with(&server, Some("r-token")).await,
        r#"Bearer error="invalid_token""#,
    )
    .await;

    // A stream takes the token in the query, as a browser's EventSource must.
    let mut stream = server
        .subscribe("/person-events?revision=1&access_token=r-token", &[])
        .await;
    let (revision, patch) = stream.change().await;
    assert_eq!(
        (revision, patch),
        (1, json!({"1": {"name": "Ann", "city": "Rome"}}))
    );
    let wrong = get_with(&server, "/person-events?access_token=nope", None).await;
    assert_eq!(wrong.status(), 401);
    // Only streams take it there: a snapshot URL with a token in it would
    // end up in caches and histories.
    let snapshot = get_with(&server, "/persons?access_token=r-token", None).await;
    assert_eq!(snapshot.status(), 401);

    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        assert_eq!(get_with(&server, path, None).await.status(), 200, "{path}");
    }
    // The OpenAPI document of this server says where it wants a token.
    let doc = server.get_json("/openapi.json").await;
    for (path, method) in [
        ("/persons", "get"),
        ("/persons", "post"),
        ("/person-events", "get"),
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
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = ["--db", ":memory:", "--read-token", "Sekr1t-read-token"];
    let server = ChildServer::start_logging(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &args,
        dir.path(),
        "debug",
    )
    .await
    .expect("server starts");
    let client = reqwest::Client::new();
    for token in ["Sekr1t-read-token", "Wr0ng-guess-token"] {
        let r = client
            .get(format!(
                "{}/person-events?access_token={token}&revision=1",
                server.base()
            ))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 200 || r.status() == 401);
    }
    // Let the log catch up with both requests.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.log().matches("access_token=***").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no request logged: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    assert!(!log.contains("Sekr1t"), "the read token is in the log");
    assert!(!log.contains("Wr0ng"), "a guessed token is in the log");
}

/// Runs `duality serve ARGS` until it exits or `wait` passes; returns its
/// exit status (`None` if still running, then killed) and stderr.
fn run_serve(args: &[&str], wait: Duration) -> (Option<std::process::ExitStatus>, String) {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_duality"))
        .arg("serve")
        .args(args)
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(stderr).unwrap())
}

#[test]
fn on_a_non_loopback_address_open_writes_must_be_asked_for() {
    let (status, stderr) = run_serve(
        &["--listen", "0.0.0.0:0", "--db", ":memory:"],
        Duration::from_secs(10),
    );
    let status = status.expect("the server refuses to start");
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--write-token") && stderr.contains("--open-writes"));

    // With either flag it serves (still running after a moment).
    for flag in [&["--open-writes"][..], &["--write-token", "a-token"]] {
        let mut args = vec!["--listen", "0.0.0.0:0", "--db", ":memory:"];
        args.extend(flag);
        let (status, stderr) = run_serve(&args, Duration::from_secs(2));
        assert!(status.is_none(), "{flag:?} exited: {stderr}");
    }
    // A loopback address needs neither.
    let (status, stderr) = run_serve(
        &["--listen", "127.0.0.1:0", "--db", ":memory:"],
        Duration::from_secs(2),
    );
    assert!(status.is_none(), "{stderr}");
}

#[tokio::test]
async fn the_aggregates_service_and_watch_read_a_guarded_server_with_their_tokens() {
    let backends = spawn({
        let base = with_tokens(&["w-token"], &["r-token"]);
        Settings {
            engine: base.engine,
            builtin: Builtin {
                services: duality_services::settings::parse_services("customers,incidents")
                    .unwrap(),
                ..base.builtin
            },
        }
    })
    .await;
    let customer = json!({"name": "Amy", "city": "Oslo", "country": "Norway", "scoring": 7});
    let created = backends
        .client
        .post(backends.url("/customers/items"))
        .bearer_auth("w-token")
        .json(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let aggregates = spawn(Settings {
        builtin: Builtin {
            services: duality_services::settings::parse_services("aggregates").unwrap(),
            customers_url: Some(backends.url("")),
            incidents_url: Some(backends.url("")),
            upstream_token: Some(parse_token("r-token").unwrap()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dashboard: Value = aggregates.get_json("/aggregates/dashboard").await;
        if dashboard["customerCount"] == json!(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard never composed: {dashboard}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = backends.url("/customers");
    let watch = move |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duality"));
        command
            .args(["watch", &url])
            .args(extra)
            .env("RUST_LOG", "warn");
        command.stdin(Stdio::null());
        command
    };
    let output = |mut command: Command| async move {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };
    let refused = output(watch(&["--once"])).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let once = output(watch(&["--once", "--token", "r-token"])).await;
    assert!(once.status.success());
    assert!(String::from_utf8_lossy(&once.stdout).contains("Amy"));
    // Live mode follows the stream with the token too (DUALITY_TOKEN).
    let mut live = watch(&["--until", "1"]);
    live.env("DUALITY_TOKEN", "r-token").stdout(Stdio::null());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = live.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "watch --until: {status:?}"
    );
}
