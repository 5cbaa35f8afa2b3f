//! docs/PROTOCOL.md, "Reading the stream" over real HTTP/SSE: start
//! positions, snapshots, framing, keep-alive, 410 Gone, retention, reset,
//! ETags and shutdown.

use std::time::{Duration, Instant};

use crate::common::{Sse, TestServer, fold, revision_of, spawn, spawn_default};
use duality::Config;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// A server with `n` notes: notes revisions 1 to `n`.
async fn with_notes(n: usize) -> TestServer {
    let server = spawn_default().await;
    server.notes(n).await;
    server
}

async fn first_revision(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> u64 {
    let mut s = server.subscribe(path, headers).await;
    s.change().await.0
}

#[tokio::test]
async fn every_start_position_rule_picks_the_specified_first_event() {
    let server = with_notes(5).await;
    assert_eq!(
        first_revision(&server, "/note-events", &[("X-Revision", "3")]).await,
        3
    );
    assert_eq!(
        first_revision(&server, "/note-events?revision=3", &[]).await,
        3
    );
    assert_eq!(
        first_revision(&server, "/note-events", &[("Last-Event-ID", "3")]).await,
        4
    );
    assert_eq!(first_revision(&server, "/note-events", &[]).await, 1);
    assert_eq!(
        first_revision(&server, "/note-events?revision=0", &[]).await,
        1
    );
    // Last-Event-ID (a reconnecting browser) wins over the URL's position.
    assert_eq!(
        first_revision(
            &server,
            "/note-events?revision=1",
            &[("Last-Event-ID", "4")]
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_stream_sends_every_later_event_in_order_with_ids_and_no_names() {
    let server = with_notes(2).await;
    let mut s = server.subscribe("/note-events", &[]).await;
    for i in 2..40 {
        server.note(&format!("q{i}"), "later", None).await;
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
    let server = with_notes(3).await;
    let mut s = server.subscribe("/note-events?revision=4", &[]).await;
    assert!(s.quiet_for(Duration::from_millis(200)).await);
    server.note("d", "dee", None).await;
    assert_eq!(s.change().await, (4, json!({"d": {"text": "dee"}})));
}

#[tokio::test]
async fn snapshot_true_sends_the_view_then_the_changes_after_it() {
    let server = with_notes(2).await;
    let mut s = server.subscribe("/note-events?snapshot=true", &[]).await;
    let e = s.next().await.unwrap();
    assert_eq!(e.event, "snapshot");
    assert_eq!(e.id, "2");
    let snapshot: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(snapshot, server.get_json("/notes").await);
    server.note("n1", "changed", Some("rome")).await;
    let (rev, patch) = s.change().await;
    assert_eq!(rev, 3);
    assert_eq!(fold(snapshot, &[patch]), server.get_json("/notes").await);
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let server = spawn(Config {
        keep_alive: Duration::from_millis(100),
        ..Config::ephemeral()
    })
    .await;
    let r = server.get("/note-events").await;
    let mut body = r.bytes_stream();
    // First `caught-up` (there was nothing to send), then, idle, comments.
    let caught_up = b"event: caught-up\ndata: {\"revision\":0}\n\n";
    let mut seen = Vec::new();
    while seen.len() <= caught_up.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("no keep-alive within 5 s")
            .unwrap()
            .unwrap();
        seen.extend_from_slice(&chunk);
    }
    assert!(seen.starts_with(caught_up), "{seen:?}");
    assert!(seen[caught_up.len()..].starts_with(b": "), "{seen:?}");
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
    let server = with_notes(3).await;
    let body = gone(&server, "/note-events?revision=5", &[]).await;
    assert_eq!(body["currentRevision"], json!(3));
    assert_eq!(body["oldestRevision"], json!(1));
    assert_eq!(body["snapshot"], json!("/notes"));
    assert!(body["error"].is_string());
    gone(&server, "/note-events", &[("Last-Event-ID", "4")]).await;
    gone(&server, "/note-events?epoch=someone-else", &[]).await;
    gone(&server, "/note-events", &[("X-Epoch", "someone-else")]).await;

    let epoch = server.get("/notes").await.headers()["x-epoch"]
        .to_str()
        .unwrap()
        .to_string();
    let path = format!("/note-events?revision=4&epoch={epoch}");
    server.subscribe(&path, &[]).await;
    server
        .subscribe(
            "/note-events",
            &[("X-Epoch", &epoch), ("Last-Event-ID", "3")],
        )
        .await;
}

#[tokio::test]
async fn positions_that_retention_and_the_catch_up_horizon_deleted_answer_410_within_ten_seconds() {
    // Within the horizon such a position is caught up instead (catch_up.rs).
    let server = spawn(Config {
        retention: Duration::from_secs(1),
        catch_up_horizon: Duration::from_secs(1),
        ..Config::ephemeral()
    })
    .await;
    server.notes(3).await;
    let start = Instant::now();
    loop {
        let r = server.get("/note-events?revision=1").await;
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
    let r = server.get("/notes").await;
    assert_eq!(revision_of(&r), 3);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_object().unwrap().len(),
        3
    );
    let mut s = server.subscribe("/note-events?revision=4", &[]).await;
    server.note("late", "late", None).await;
    assert_eq!(s.change().await.0, 4);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_retention_gets_reset_and_the_stream_ends() {
    // The horizon as short as retention: `?revision=1` is 410 below once
    // the events are gone (within it, it would be caught up instead).
    let server = std::sync::Arc::new(
        spawn(Config {
            retention: Duration::from_secs(1),
            catch_up_horizon: Duration::from_secs(1),
            ..Config::ephemeral()
        })
        .await,
    );
    // Subscribed from the start, but not reading: the server soon cannot
    // send more, the live ring overflows, and retention deletes the rest.
    let slow = server.get("/note-events?revision=1").await;
    assert_eq!(slow.status(), 200);
    let text = "x".repeat(20_000);
    let mut writers = Vec::new();
    for t in 0..8 {
        let (server, text) = (server.clone(), text.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..190 {
                server.note(&format!("w{t}-{i}"), &text, None).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let start = Instant::now();
    while server.get("/note-events?revision=1").await.status() != 410 {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut slow = Sse::new(slow);
    let mut expected = 1u64;
    loop {
        let e = slow.next().await.expect("stream ended without reset");
        if e.event == "reset" {
            let body: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(body["snapshot"], json!("/notes"));
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
    let server = with_notes(1).await;
    let r = server.get("/notes").await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let epoch = r.headers()["x-epoch"].to_str().unwrap().to_string();
    assert!(etag.contains(&epoch));
    assert_eq!(revision_of(&r), 1);
    let again = server
        .client
        .get(server.url("/notes"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(revision_of(&again), 1);
    server.note("b", "bee", None).await;
    let changed = server
        .client
        .get(server.url("/notes"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    // A view that never had an event is at revision 0.
    assert_eq!(revision_of(&server.get("/tags").await), 0);
}

#[tokio::test]
async fn shutdown_ends_open_streams_within_a_few_seconds() {
    let server = with_notes(1).await;
    let mut a = server.subscribe("/note-events", &[]).await;
    let mut b = server.subscribe("/tag-events", &[]).await;
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
        subs.push(server.subscribe("/tag-events?snapshot=true", &[]).await);
    }
    for i in 0..60 {
        let tag = ["rome", "oslo", "lima", "kyiv"][i % 4];
        server.note(&format!("k{i}"), "n", Some(tag)).await;
        if i % 3 == 0 {
            let r = server
                .send("DELETE", &format!("/notes/k{}", i / 2), None)
                .await;
            assert_eq!(r.status(), 204);
        }
    }
    let r = server.get("/tags").await;
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
            duality::merge::apply(&mut doc, &patch);
            rev = r;
        }
        assert_eq!(doc, view);
    }
}
