//! Long-polling a stream path (docs/PROTOCOL.md, "Long-polling"): pages of
//! changes that fold to the snapshot from any position, a wait at the head,
//! 410 where a stream would be gone, and answers that say how long a cache
//! may keep them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, fold, header, spawn_default};

async fn poll(server: &TestServer, query: &str) -> reqwest::Response {
    server.get(&format!("/note-events?mode=poll&{query}")).await
}

/// Follows `next` from `after` until an empty page, folding the patches.
async fn fold_from(server: &TestServer, after: u64, mut doc: Value) -> (Value, u64) {
    let mut url = format!("/note-events?mode=poll&after={after}&wait=0");
    let mut at = after;
    loop {
        let r = server.get(&url).await;
        assert_eq!(r.status(), 200, "{url}");
        let page: Value = r.json().await.unwrap();
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return (doc, at);
        }
        for change in changes {
            let revision = change["revision"].as_u64().unwrap();
            assert!(revision > at, "{revision} after {at}");
            at = revision;
            doc = fold(doc, &[change["patch"].clone()]);
        }
        url = page["next"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn polling_folds_to_the_snapshot_from_any_position() {
    let server = spawn_default().await;
    let mut views = vec![json!({})];
    for i in 0..6 {
        server
            .note(&format!("n{}", i % 3), &format!("text {i}"), None)
            .await;
        views.push(server.get_json("/notes").await);
    }
    for from in 0..=6u64 {
        let (doc, at) = fold_from(&server, from, views[from as usize].clone()).await;
        assert_eq!(at, 6, "from {from}");
        assert_eq!(doc, views[6], "from {from}");
    }
    let page: Value = poll(&server, "after=4&wait=0").await.json().await.unwrap();
    let revisions: Vec<u64> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [5, 6]);
    assert!(page["epoch"].is_string());
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("/note-events?mode=poll&after=6&epoch="),
        "{next}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_poll_at_the_head_waits_for_the_next_change_or_answers_empty_when_its_wait_ends() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    let started = Instant::now();
    let empty = poll(&server, "after=1&wait=1").await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(header(&empty, "cache-control"), "no-store");
    let page: Value = empty.json().await.unwrap();
    assert_eq!(page["changes"], json!([]));
    assert!(
        page["next"].as_str().unwrap().contains("after=1&"),
        "{page}"
    );

    let waiting = {
        let client = server.client.clone();
        let url = server.url("/note-events?mode=poll&after=1&wait=20");
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server.note("b", "two", None).await;
    let answered = waiting.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the write"
    );
    assert_eq!(header(&answered, "cache-control"), "public, max-age=1");
    let page: Value = answered.json().await.unwrap();
    assert_eq!(
        page["changes"],
        json!([{"revision": 2, "patch": {"b": {"text": "two"}}}])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_whole_page_in_the_past_is_immutable_and_pages_meet_on_aligned_boundaries() {
    let server = spawn_default().await;
    for i in 0..300 {
        server
            .note(&format!("n{}", i % 7), &format!("t{i}"), None)
            .await;
    }
    let from_0 = poll(&server, "after=0&wait=0").await;
    assert_eq!(
        header(&from_0, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let from_0: Value = from_0.json().await.unwrap();
    let from_100: Value = poll(&server, "after=100&wait=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(from_0["changes"].as_array().unwrap().len(), 256);
    assert_eq!(from_100["changes"].as_array().unwrap().len(), 156);
    // Both continue at the same URL.
    assert_eq!(from_0["next"], from_100["next"]);
    let rest = server.get(from_0["next"].as_str().unwrap()).await;
    assert_eq!(header(&rest, "cache-control"), "public, max-age=1");
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest["changes"].as_array().unwrap().len(), 44);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_filtered_poll_carries_only_its_subset() {
    let server = spawn_default().await;
    server.note("a", "one", Some("red")).await; // 1
    server.note("b", "two", Some("blue")).await; // 2
    server.note("a", "one", Some("blue")).await; // 3: leaves
    let red = poll(&server, "after=0&wait=0&where=%7B%22tag%22%3A%22red%22%7D").await;
    let page: Value = red.json().await.unwrap();
    assert_eq!(
        page["changes"],
        json!([
            {"revision": 1, "patch": {"a": {"text": "one", "tag": "red"}}},
            {"revision": 3, "patch": {"a": null}}
        ])
    );
    let next = page["next"].as_str().unwrap();
    assert!(
        next.contains("after=3") && next.contains("where="),
        "{next}"
    );
    let keys: Value = poll(&server, "after=0&wait=0&key=b")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        keys["changes"],
        json!([{"revision": 2, "patch": {"b": {"text": "two", "tag": "blue"}}}])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_position_a_stream_could_not_serve_is_410_and_bad_polls_are_400_by_name() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    let beyond = poll(&server, "after=9&wait=0").await;
    assert_eq!(beyond.status(), 410);
    let body: Value = beyond.json().await.unwrap();
    assert_eq!(body["currentRevision"], 1);
    let other = poll(&server, "after=0&wait=0&epoch=another").await;
    assert_eq!(other.status(), 410);
    for (query, named) in [
        ("after=x", "after"),
        ("wait=1", "after"),
        ("after=0&wait=61", "wait"),
        ("after=0&revision=1", "revision"),
        ("after=0&snapshot=true", "snapshot"),
    ] {
        let r = poll(&server, query).await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().starts_with(named),
            "{query}: {body}"
        );
    }
    let r = server.get("/note-events?mode=push&after=0").await;
    assert_eq!(r.status(), 400);
    server.stop().await.unwrap();
}
