//! `duality watch`: prints a view once, or keeps it current (with one
//! catch-up after an absence longer than retention); refuses an
//! unreachable server or a URL that is not a view.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{ChildServer, spawn_default};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn watch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_duality"))
        .arg("watch")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run duality watch")
}

#[tokio::test]
async fn watch_once_prints_a_flat_view_as_a_table_and_a_nested_one_as_json() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    server.post("/persons", json!({"name":"Bob"})).await;
    let url = server.url("/persons");
    let out = tokio::task::spawn_blocking(move || watch(&[&url, "--once"]))
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "persons @ revision 2 (snapshot)\nkey  city  name\n1    Rome  Ann\n2          Bob\n"
    );
    let url = server.url("/aggregates/dashboard");
    let out = tokio::task::spawn_blocking(move || watch(&[&url, "--once"]))
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("dashboard @ revision "), "{text}");
    assert!(text.contains("\"topCustomers\""), "{text}");
}

#[tokio::test]
async fn watch_reprints_the_view_as_patches_arrive() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["watch", &server.url("/locations"), "--until", "3"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch printed nothing within 10 s")
            .unwrap()
            .expect("watch ended early")
    };
    assert_eq!(next().await, "locations @ revision 1 (live)");
    assert_eq!(next().await, "key   total");
    assert_eq!(next().await, "Rome  1");
    server
        .post("/persons", json!({"name":"Bob","city":"Oslo"}))
        .await;
    server
        .send("PATCH", "/persons/1", Some(json!({"city":"Oslo"})))
        .await;
    let mut rest = Vec::new();
    loop {
        let line = next().await;
        let done = line == "Oslo  2";
        rest.push(line);
        if done {
            break;
        }
    }
    assert!(
        rest.contains(&"locations @ revision 3 (live)".to_string()),
        "{rest:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "--until 3 ends the watch");
}

#[tokio::test]
async fn watch_refuses_an_unreachable_server_and_a_url_that_is_not_a_view() {
    let server = spawn_default().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (format!("http://127.0.0.1:{port}/persons"), "cannot reach"),
        (server.url("/nowhere"), "not a view"),
        (server.url("/healthz"), "not a duality view"),
        ("nonsense".to_string(), ""),
    ];
    for (url, message) in cases {
        let out = tokio::task::spawn_blocking({
            let url = url.clone();
            move || watch(&[&url])
        })
        .await
        .unwrap();
        assert!(!out.status.success(), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{url}: {err}");
    }
}

/// True if `text` holds a character a terminal could act on (other than
/// the line breaks of the layout).
fn has_controls(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
}

#[tokio::test]
async fn watch_escapes_control_characters_that_clients_stored() {
    let server = spawn_default().await;
    let evil = "\u{1b}]0;pwned\u{7}";
    server
        .post(
            "/persons",
            json!({"name": evil, "city": "\u{9b}2J\u{202e}"}),
        )
        .await;
    let customer = json!({"name": evil, "city": "x", "country": "y", "scoring": 10});
    assert_eq!(
        server.post("/customers/items", customer).await.status(),
        201
    );
    // The dashboard (printed as JSON) shows the customer once composed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .get("/aggregates/dashboard")
        .await
        .text()
        .await
        .unwrap()
        .contains("pwned")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "dashboard not composed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in ["/persons", "/aggregates/dashboard"] {
        let url = server.url(path);
        let out = tokio::task::spawn_blocking(move || watch(&[&url, "--once"]))
            .await
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("pwned"), "{text}");
        assert!(
            !has_controls(&text),
            "{path} printed raw controls: {text:?}"
        );
    }
}

async fn watch_async(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        watch(&args)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn watch_once_says_snapshot_and_an_empty_view_says_empty() {
    let server = spawn_default().await;
    let out = watch_async(vec![server.url("/persons"), "--once".into()]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "persons @ revision 0 (snapshot)\n(empty)\n"
    );
}

#[tokio::test]
async fn watch_takes_a_url_without_a_scheme_as_http() {
    let server = spawn_default().await;
    server.post("/persons", json!({"name":"Ann"})).await;
    let bare = server.url("/persons").replacen("http://", "", 1);
    let out = watch_async(vec![bare, "--once".into()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("persons @ revision 1 "),
        "{out:?}"
    );
}

#[tokio::test]
async fn watch_on_a_stream_url_names_the_view_to_watch_instead() {
    let server = spawn_default().await;
    for (stream, view) in [
        ("/person-events", "/persons"),
        ("/aggregates/dashboard-events", "/aggregates/dashboard"),
    ] {
        let out = watch_async(vec![server.url(stream), "--once".into()]).await;
        assert!(!out.status.success(), "{stream}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("duality watch {}", server.url(view))),
            "{stream}: {err}"
        );
    }
}

#[tokio::test]
async fn watch_output_json_prints_the_snapshot_then_every_patch_as_json_lines() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    let once = watch_async(vec![
        server.url("/persons"),
        "--once".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    assert!(once.status.success());
    let line: serde_json::Value = serde_json::from_slice(&once.stdout).unwrap();
    assert_eq!(line["revision"], 1);
    assert_eq!(line["view"], json!({"1": {"name": "Ann", "city": "Rome"}}));
    assert!(
        line["epoch"].as_str().is_some_and(|e| !e.is_empty()),
        "{line}"
    );

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args([
            "watch",
            &server.url("/persons"),
            "--output",
            "json",
            "--until",
            "3",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch printed nothing within 10 s")
            .unwrap()
            .expect("watch ended early");
        serde_json::from_str(&line).unwrap()
    };
    let first = next().await;
    assert_eq!(first["revision"], 1);
    assert_eq!(first["view"]["1"]["name"], "Ann");
    server.post("/persons", json!({"name":"Bob"})).await;
    server
        .send("PATCH", "/persons/1", Some(json!({"city":"Oslo"})))
        .await;
    assert_eq!(
        next().await,
        json!({"revision": 2, "patch": {"2": {"name": "Bob"}}})
    );
    assert_eq!(
        next().await,
        json!({"revision": 3, "patch": {"1": {"city": "Oslo"}}})
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "--until 3 ends the watch");
}

#[tokio::test]
async fn watch_shows_and_follows_a_filtered_view_and_only_its_keys() {
    let server = spawn_default().await;
    for (name, city) in [("Ann", "Rome"), ("Bob", "Oslo"), ("Cy", "Rome")] {
        server
            .post("/persons", json!({"name": name, "city": city}))
            .await;
    }
    // The query reaches the server as given, quotes and braces included.
    let once = watch_async(vec![
        server.url(r#"/persons?where={"city":"Rome"}"#),
        "--once".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&once.stderr);
    assert!(once.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&once.stdout),
        "persons?where={\"city\":\"Rome\"} @ revision 3 (snapshot)\n\
         key  city  name\n1    Rome  Ann\n3    Rome  Cy\n"
    );

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args([
            "watch",
            &server.url("/persons?key=1&key=2"),
            "--output",
            "json",
            "--until",
            "7",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("watch printed nothing within 10 s")
        .unwrap()
        .expect("watch ended early");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["revision"], 3);
    assert_eq!(
        first["view"],
        json!({"1": {"name": "Ann", "city": "Rome"}, "2": {"name": "Bob", "city": "Oslo"}})
    );
    // 4 and 6 leave keys 1 and 2 alone, 5 changes 2, 7 creates 4.
    server
        .send("PATCH", "/persons/3", Some(json!({"city": "Oslo"})))
        .await;
    server
        .send("PATCH", "/persons/2", Some(json!({"city": "Lima"})))
        .await;
    server.send("DELETE", "/persons/3", None).await;
    server.post("/persons", json!({"name": "Dee"})).await;
    // Revision 7 changes nothing shown: the stream's progress ends the
    // watch, after the one change of the subset.
    let mut rest = Vec::new();
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
        child.wait().await.unwrap()
    })
    .await
    .unwrap_or_else(|_| panic!("--until 7 did not end the watch; it printed {rest:?}"));
    assert!(status.success());
    assert_eq!(
        rest,
        [json!({"revision": 5, "patch": {"2": {"city": "Lima"}}})]
    );

    // The table follows the same subset, live.
    let table = watch_async(vec![
        server.url("/persons?key=1&key=2"),
        "--until".into(),
        "7".into(),
    ])
    .await;
    assert!(table.status.success());
    assert_eq!(
        String::from_utf8_lossy(&table.stdout),
        "persons?key=1&key=2 @ revision 7 (live)\n\
         key  city  name\n1    Rome  Ann\n2    Lima  Bob\n"
    );
}

#[tokio::test]
async fn watch_after_an_absence_longer_than_retention_prints_one_compacted_line_and_follows_on() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--db",
        "watched.db",
        "--services",
        "persons",
        "--retention",
        "1s",
    ];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let addr = server.addr;
    let client = reqwest::Client::new();
    let post = async |base: String, name: &str| {
        let r = client
            .post(format!("{base}/persons"))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    post(server.base(), "Ann").await;
    post(server.base(), "Bob").await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["watch", &format!("{}/persons", server.base())])
        .args(["--output", "json", "--until", "6"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("watch printed nothing within 30 s")
            .unwrap()
            .expect("watch ended early");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next().await["revision"], 2);

    // The watch loses its server; meanwhile the same database is served
    // elsewhere, changes, and retention deletes the events it would need.
    server.terminate();
    let away = ChildServer::start(&args, dir.path()).await;
    let r = client
        .patch(format!("{}/persons/1", away.base()))
        .json(&json!({"name": "Ann B."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .delete(format!("{}/persons/2", away.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    post(away.base(), "Cy").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{}/person-events?mode=poll&after=2&wait=0",
                away.base()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["changes"][0]["compacted"] == json!(true) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not trimmed: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut away = away;
    away.terminate();

    // Back where the watch looks: it resumes after 2 and is caught up.
    let back = ChildServer::restart_on(addr, &args, dir.path()).await;
    assert_eq!(
        next().await,
        json!({"revision": 5, "patch": {"1": {"name": "Ann B."}, "2": null, "3": {"name": "Cy"}},
               "compacted": true})
    );
    post(back.base(), "Dee").await;
    assert_eq!(
        next().await,
        json!({"revision": 6, "patch": {"4": {"name": "Dee"}}})
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "--until 6 ends the watch");
}
