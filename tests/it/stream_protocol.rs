//! docs/PROTOCOL.md, "Reading the stream" over real HTTP/SSE: start positions, snapshots, framing,
//! keep-alive, 410 Gone, retention, reset, ETags and shutdown.

use std::time::{Duration, Instant};

use crate::common::{Sse, TestServer, fold, revision_of, spawn, spawn_default};
use duality::Config;
use duality_services::Settings;
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn with_persons(n: usize) -> TestServer {
    let server = spawn_default().await;
    for i in 0..n {
        let r = server
            .post("/persons", json!({"name": format!("p{i}")}))
            .await;
        assert_eq!(r.status(), 201);
    }
    server
}

async fn first_revision(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> u64 {
    let mut s = server.subscribe(path, headers).await;
    s.change().await.0
}

#[tokio::test]
async fn every_start_position_rule_picks_the_specified_first_event() {
    let server = with_persons(5).await;
    assert_eq!(
        first_revision(&server, "/person-events", &[("X-Revision", "3")]).await,
        3
    );
    assert_eq!(
        first_revision(&server, "/person-events?revision=3", &[]).await,
        3
    );
    assert_eq!(
        first_revision(&server, "/person-events", &[("Last-Event-ID", "3")]).await,
        4
    );
    assert_eq!(first_revision(&server, "/person-events", &[]).await, 1);
    assert_eq!(
        first_revision(&server, "/person-events?revision=0", &[]).await,
        1
    );
    // Last-Event-ID (a reconnecting browser) wins over the URL's position.
    assert_eq!(
        first_revision(
            &server,
            "/person-events?revision=1",
            &[("Last-Event-ID", "4")]
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_stream_sends_every_later_event_in_order_with_ids_and_no_names() {
    let server = with_persons(2).await;
    let mut s = server.subscribe("/person-events", &[]).await;
    for i in 2..40 {
        server
            .post("/persons", json!({"name": format!("q{i}")}))
            .await;
    }
    for expected in 1..=39u64 {
        let e = s.next().await.unwrap();
        assert_eq!(e.event, "message");
        assert_eq!(e.id, expected.to_string());
        serde_json::from_str::<Value>(&e.data).unwrap();
    }
}

#[tokio::test]
async fn a_position_just_after_the_current_revision_waits_for_the_next_write() {
    let server = with_persons(3).await;
    let mut s = server.subscribe("/person-events?revision=4", &[]).await;
    assert!(s.quiet_for(Duration::from_millis(200)).await);
    server.post("/persons", json!({"name":"d"})).await;
    assert_eq!(s.change().await, (4, json!({"4":{"name":"d"}})));
}

#[tokio::test]
async fn snapshot_true_sends_the_view_then_the_changes_after_it() {
    let server = with_persons(2).await;
    let mut s = server.subscribe("/person-events?snapshot=true", &[]).await;
    let e = s.next().await.unwrap();
    assert_eq!(e.event, "snapshot");
    assert_eq!(e.id, "2");
    let snapshot: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(snapshot, server.get_json("/persons").await);
    server
        .send("PATCH", "/persons/1", Some(json!({"city":"Rome"})))
        .await;
    let (rev, patch) = s.change().await;
    assert_eq!(rev, 3);
    assert_eq!(fold(snapshot, &[patch]), server.get_json("/persons").await);
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let settings = Settings {
        engine: Config {
            keep_alive: Duration::from_millis(100),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    let r = server.get("/person-events").await;
    let mut body = r.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("no keep-alive within 5 s")
        .unwrap()
        .unwrap();
    assert!(chunk.starts_with(b": "), "{chunk:?}");
}

async fn gone(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = server.client.get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 410, "{path} {headers:?}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    r.json().await.unwrap()
}

#[tokio::test]
async fn positions_beyond_current_plus_one_or_of_another_epoch_are_gone() {
    let server = with_persons(3).await;
    let body = gone(&server, "/person-events?revision=5", &[]).await;
    assert_eq!(body["currentRevision"], json!(3));
    assert_eq!(body["oldestRevision"], json!(1));
    assert_eq!(body["snapshot"], json!("/persons"));
    assert!(body["error"].is_string());
    gone(&server, "/person-events", &[("Last-Event-ID", "4")]).await;
    gone(&server, "/person-events?epoch=someone-else", &[]).await;
    gone(&server, "/person-events", &[("X-Epoch", "someone-else")]).await;

    let epoch = server.get("/persons").await.headers()["x-epoch"]
        .to_str()
        .unwrap()
        .to_string();
    let path = format!("/person-events?revision=4&epoch={epoch}");
    server.subscribe(&path, &[]).await;
    server
        .subscribe(
            "/person-events",
            &[("X-Epoch", &epoch), ("Last-Event-ID", "3")],
        )
        .await;
}

#[tokio::test]
async fn positions_that_retention_deleted_answer_410_within_ten_seconds() {
    let settings = Settings {
        engine: Config {
            retention: Duration::from_secs(1),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    for i in 0..3 {
        server
            .post("/persons", json!({"name": format!("p{i}")}))
            .await;
    }
    let start = Instant::now();
    loop {
        let r = server.get("/person-events?revision=1").await;
        if r.status() == 410 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["currentRevision"], json!(3));
            // Event 1 is gone; later ones may not be expired yet.
            let oldest = &body["oldestRevision"];
            assert!(oldest.is_null() || oldest.as_u64().unwrap() > 1, "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The aggregate is never trimmed, and the position after it still works.
    let r = server.get("/persons").await;
    assert_eq!(revision_of(&r), 3);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_object().unwrap().len(),
        3
    );
    let mut s = server.subscribe("/person-events?revision=4", &[]).await;
    server.post("/persons", json!({"name":"late"})).await;
    assert_eq!(s.change().await.0, 4);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_retention_gets_reset_and_the_stream_ends() {
    let settings = Settings {
        engine: Config {
            retention: Duration::from_secs(1),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = std::sync::Arc::new(spawn(settings).await);
    // Subscribed from the start, but not reading: the server soon cannot
    // send more, the live ring overflows, and retention deletes the rest.
    let slow = server.get("/person-events?revision=1").await;
    assert_eq!(slow.status(), 200);
    let name = "x".repeat(20_000);
    let mut writers = Vec::new();
    for t in 0..8 {
        let (server, name) = (server.clone(), name.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..190 {
                let r = server
                    .post("/persons", json!({"name": format!("{name}{t}-{i}")}))
                    .await;
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let start = Instant::now();
    while server.get("/person-events?revision=1").await.status() != 410 {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut slow = Sse::new(slow);
    let mut expected = 1u64;
    loop {
        let e = slow.next().await.expect("stream ended without reset");
        if e.event == "reset" {
            let body: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(body["snapshot"], json!("/persons"));
            assert_eq!(body["currentRevision"], json!(1520));
            break;
        }
        assert_eq!(e.event, "message");
        assert_eq!(
            e.id,
            expected.to_string(),
            "events arrive gapless and in order"
        );
        expected += 1;
    }
    assert!(
        expected <= 1520,
        "the subscriber must have been reset before the end"
    );
    assert!(slow.next().await.is_none(), "the stream ends after reset");
}

#[tokio::test]
async fn snapshots_carry_revision_epoch_and_an_etag_that_answers_304() {
    let server = with_persons(1).await;
    let r = server.get("/persons").await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let epoch = r.headers()["x-epoch"].to_str().unwrap().to_string();
    assert!(etag.contains(&epoch));
    assert_eq!(revision_of(&r), 1);
    let again = server
        .client
        .get(server.url("/persons"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(revision_of(&again), 1);
    server.post("/persons", json!({"name":"b"})).await;
    let changed = server
        .client
        .get(server.url("/persons"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    // A view that never had an event is at revision 0.
    assert_eq!(revision_of(&server.get("/locations").await), 0);
}

#[tokio::test]
async fn shutdown_ends_open_streams_within_a_few_seconds() {
    let server = with_persons(1).await;
    let mut a = server.subscribe("/person-events", &[]).await;
    let mut b = server.subscribe("/location-events", &[]).await;
    assert_eq!(a.change().await.0, 1);
    let start = Instant::now();
    server.stop().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(a.next().await.is_none());
    assert!(b.next().await.is_none());
}

#[tokio::test]
async fn many_subscribers_fold_the_same_patches_into_the_same_view() {
    let server = std::sync::Arc::new(spawn_default().await);
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(
            server
                .subscribe("/location-events?snapshot=true", &[])
                .await,
        );
    }
    for i in 0..60 {
        let city = ["Rome", "Oslo", "Lima", "Kyiv"][i % 4];
        server
            .post("/persons", json!({"name": "n", "city": city}))
            .await;
        if i % 3 == 0 {
            server
                .send("DELETE", &format!("/persons/{}", i / 2 + 1), None)
                .await;
        }
    }
    let r = server.get("/locations").await;
    let current = revision_of(&r);
    let view: Value = r.json().await.unwrap();
    for mut s in subs {
        let first = s.next().await.unwrap();
        assert_eq!(first.event, "snapshot");
        let mut doc: Value = serde_json::from_str(&first.data).unwrap();
        let mut rev: u64 = first.id.parse().unwrap();
        while rev < current {
            let (r, patch) = s.change().await;
            assert_eq!(r, rev + 1);
            json_patch::merge(&mut doc, &patch);
            rev = r;
        }
        assert_eq!(doc, view);
    }
}
