//! Subscribing to part of a view (docs/PROTOCOL.md, "Filters"): a
//! snapshot narrowed with `key=` and `where=` is the view at its
//! `X-Revision` restricted to the matching documents, with its own `ETag`;
//! and a query parameter a path does not know is a `400` naming it, on
//! every path, instead of being ignored.

use serde_json::{Value, json};

use crate::common::{header, revision_of, spawn_default};

fn encoded(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_snapshot_narrowed_by_keys_or_where_holds_only_the_matching_documents() {
    let server = spawn_default().await;
    server.note("a", "one", Some("red")).await;
    server.note("b", "two", Some("blue")).await;
    server.note("c", "three", Some("red")).await;
    let whole = server.get("/notes").await;
    let revision = revision_of(&whole);

    let by_key = server.get("/notes?key=a&key=b&key=missing").await;
    assert_eq!(by_key.status(), 200);
    assert_eq!(revision_of(&by_key), revision);
    assert_eq!(
        by_key.json::<Value>().await.unwrap(),
        json!({"a": {"text": "one", "tag": "red"}, "b": {"text": "two", "tag": "blue"}})
    );

    let red = format!("/notes?where={}", encoded(r#"{"tag":"red"}"#));
    let by_where = server.get(&red).await;
    assert_eq!(revision_of(&by_where), revision);
    assert_eq!(
        by_where.json::<Value>().await.unwrap(),
        json!({"a": {"text": "one", "tag": "red"}, "c": {"text": "three", "tag": "red"}})
    );

    let both = format!("{red}&key=a&key=b");
    let body: Value = server.get(&both).await.json().await.unwrap();
    assert_eq!(body, json!({"a": {"text": "one", "tag": "red"}}));

    let none: Value = server.get("/notes?key=nothing").await.json().await.unwrap();
    assert_eq!(none, json!({}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_narrowed_snapshot_has_its_own_etag_and_answers_304_and_gzip() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    server.note("b", "two", None).await;
    let whole = server.get("/notes").await;
    let part = server.get("/notes?key=a").await;
    let (whole_tag, part_tag) = (header(&whole, "etag"), header(&part, "etag"));
    assert_ne!(whole_tag, part_tag, "another body, another tag");
    assert_eq!(
        header(&part, "link"),
        "</note-events?key=a>; rel=\"duality-stream\"",
        "the stream of the same subset"
    );
    let again = server
        .client
        .get(server.url("/notes?key=a"))
        .header("if-none-match", &part_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let other = server
        .client
        .get(server.url("/notes?key=b"))
        .header("if-none-match", &part_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another filter's tag does not match");
    let zipped = server
        .client
        .get(server.url("/notes?key=b"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert_eq!(text, r#"{"b":{"text":"two"}}"#);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_filter_or_an_unknown_parameter_is_a_400_naming_it_on_every_path() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    let cases = [
        ("/notes?warehouse=north", "warehouse"),
        ("/notes?limit=2", "limit"),
        ("/notes?where=%5B1%5D", "where"),
        ("/notes?where=%7B", "where"),
        ("/notes?where=%7B%7D&where=%7B%7D", "where"),
        ("/note-events?limit=2", "limit"),
        ("/note-events?snapshot=true&colour=red", "colour"),
        ("/healthz?verbose=1", "verbose"),
        ("/openapi.json?x=1", "x"),
        ("/?debug=1", "debug"),
    ];
    for (path, named) in cases {
        let r = server.get(path).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{path}: {error}");
    }
    let too_many: String = (0..=1000).map(|i| format!("key=k{i}&")).collect();
    let r = server.get(&format!("/notes?{too_many}")).await;
    assert_eq!(r.status(), 400);
    // The page's assets take their version, and nothing changed meanwhile.
    assert_eq!(server.get("/assets/app.js?v=1").await.status(), 200);
    assert_eq!(
        server.get_json("/notes").await,
        json!({"a": {"text": "one"}})
    );
    server.stop().await.unwrap();
}

/// The events of a stream, every one (`caught-up` and `progress` too).
async fn every_event(
    server: &crate::common::TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> crate::common::Sse {
    let mut req = server.client.get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    crate::common::Sse::every_event(r)
}

#[tokio::test]
async fn caught_up_comes_once_after_the_backlog_or_the_snapshot_also_when_there_is_nothing() {
    let server = spawn_default().await;
    let mut empty = every_event(&server, "/note-events", &[]).await;
    let e = empty.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data.as_str()),
        ("caught-up", r#"{"revision":0}"#)
    );
    assert!(e.id.is_empty(), "caught-up moves no position: {e:?}");

    for i in 1..=3 {
        server.note(&format!("n{i}"), "x", None).await;
    }
    let mut backlog = every_event(&server, "/note-events", &[]).await;
    for want in 1..=3 {
        let e = backlog.next().await.unwrap();
        assert_eq!(
            (e.event.as_str(), e.id.as_str()),
            ("message", want.to_string().as_str())
        );
    }
    let e = backlog.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data.as_str()),
        ("caught-up", r#"{"revision":3}"#)
    );
    server.note("n4", "x", None).await;
    let e = backlog.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.id.as_str()),
        ("message", "4"),
        "and only once"
    );

    let mut snapshot = every_event(&server, "/note-events?snapshot=true", &[]).await;
    let e = snapshot.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("snapshot", "4"));
    let e = snapshot.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data.as_str()),
        ("caught-up", r#"{"revision":4}"#)
    );
    // Already caught up on the stream of the empty view: a change, no repeat.
    let e = empty.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("message", "1"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_filtered_by_keys_sends_only_their_changes_at_their_revisions() {
    let server = spawn_default().await;
    server.note("a", "one", None).await; // 1
    server.note("x", "other", None).await; // 2
    let mut s = server
        .subscribe("/note-events?key=a&key=b&snapshot=true", &[])
        .await;
    let e = s.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("snapshot", "2"));
    let mut copy: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(copy, json!({"a": {"text": "one"}}));
    server.note("x", "changed", None).await; // 3: not ours
    server.note("b", "two", None).await; // 4
    server.send("DELETE", "/notes/a", None).await; // 5
    server.note("y", "other", None).await; // 6: not ours
    server.note("b", "three", None).await; // 7
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (revision, patch) = s.change().await;
        ids.push(revision);
        copy = crate::common::fold(copy, &[patch]);
    }
    assert_eq!(ids, [4, 5, 7]);
    let filtered: Value = server.get("/notes?key=a&key=b").await.json().await.unwrap();
    assert_eq!(copy, filtered);
    assert_eq!(copy, json!({"b": {"text": "three"}}));

    // Resuming after 4 replays 5 and 7 from the outbox, filtered alike.
    let mut again = server
        .subscribe("/note-events?key=a&key=b", &[("last-event-id", "4")])
        .await;
    assert_eq!(again.change().await, (5, json!({"a": null})));
    assert_eq!(again.change().await.0, 7);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_quiet_filter_still_advances_with_progress_and_resuming_from_it_loses_nothing() {
    let server = spawn_default().await;
    let mut s = every_event(&server, "/note-events?key=mine", &[]).await;
    let e = s.next().await.unwrap();
    assert_eq!(e.event, "caught-up");
    for i in 0..5 {
        server.note(&format!("other{i}"), "x", None).await;
    }
    let e = s
        .next_within(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(e.event, "progress", "{e:?}");
    let at: u64 = e.id.parse().unwrap();
    assert_eq!(e.data, format!(r#"{{"revision":{at}}}"#));
    assert!((1..=5).contains(&at), "{at}");
    drop(s);
    // Writes while it is away, to its key among others.
    server.note("other9", "x", None).await;
    server.note("mine", "here", None).await;
    let mut resumed = server
        .subscribe(
            "/note-events?key=mine",
            &[("last-event-id", &at.to_string())],
        )
        .await;
    let (revision, patch) = resumed.change().await;
    assert_eq!((revision, patch), (7, json!({"mine": {"text": "here"}})));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_filtered_by_where_follows_documents_into_and_out_of_the_subset() {
    let server = spawn_default().await;
    let red = encoded(r#"{"tag":"red"}"#);
    server.note("a", "one", Some("red")).await; // 1
    server.note("b", "two", Some("blue")).await; // 2
    let mut s = server
        .subscribe(&format!("/note-events?where={red}&snapshot=true"), &[])
        .await;
    let e = s.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("snapshot", "2"));
    let mut copy: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(copy, json!({"a": {"text": "one", "tag": "red"}}));
    server.note("b", "two", Some("red")).await; // 3: enters whole
    server.note("a", "one!", Some("red")).await; // 4: stays, its patch
    server.note("c", "three", Some("blue")).await; // 5: not ours
    server.note("a", "one!", Some("blue")).await; // 6: leaves as null
    server.send("DELETE", "/notes/c", None).await; // 7: not ours
    server.send("DELETE", "/notes/b", None).await; // 8: leaves as null
    let want = [
        (3, json!({"b": {"text": "two", "tag": "red"}})),
        (4, json!({"a": {"text": "one!"}})),
        (6, json!({"a": null})),
        (8, json!({"b": null})),
    ];
    for (revision, patch) in want {
        let got = s.change().await;
        assert_eq!(got, (revision, patch.clone()));
        copy = crate::common::fold(copy, &[patch]);
    }
    let filtered: Value = server
        .get(&format!("/notes?where={red}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(copy, filtered);

    // The same, replayed from the outbox after revision 2.
    let mut again = server
        .subscribe(
            &format!("/note-events?where={red}"),
            &[("last-event-id", "2")],
        )
        .await;
    let ids: Vec<u64> = [
        again.change().await.0,
        again.change().await.0,
        again.change().await.0,
        again.change().await.0,
    ]
    .into();
    assert_eq!(ids, [3, 4, 6, 8]);
    server.stop().await.unwrap();
}

/// Random writes over a few keys and tags; every filtered stream, folded
/// from its filtered snapshot, equals the filtered view at every revision,
/// with an event exactly at the revisions that changed its subset.
#[tokio::test]
async fn filtered_streams_fold_to_the_filtered_view_for_random_writes() {
    let server = spawn_default().await;
    random_writes_through_filters(&[&server], 0x5eed_1234_abcd_0042).await;
    server.stop().await.unwrap();
}

/// The same across two processes on one PostgreSQL database: writes go to
/// either, the streams follow the other, so every event they filter came
/// through the database (its patch and the documents it replaced).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn filtered_streams_fold_to_the_filtered_view_across_two_postgresql_servers() {
    let url = crate::common::pg::shared().database().await;
    let config = || duality::Config {
        db: duality::settings::Database::Postgres(url.clone()),
        ..duality::Config::ephemeral()
    };
    let a = crate::common::spawn(config()).await;
    let b = crate::common::spawn(config()).await;
    random_writes_through_filters(&[&a, &b], 0x0dd_ba11_5eed_0007).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Opens filtered streams on the last of `servers`, writes at random to
/// each in turn, and checks each stream against the filtered snapshots
/// taken after every write.
async fn random_writes_through_filters(servers: &[&crate::common::TestServer], mut seed: u64) {
    let filters = [
        "key=k1&key=k3".to_string(),
        format!("where={}", encoded(r#"{"tag":"red"}"#)),
        format!("where={}&key=k2&key=k3", encoded(r#"{"tag":"blue"}"#)),
        format!("where={}", encoded(r#"{"text":"same"}"#)),
    ];
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let follower = servers[servers.len() - 1];
    let mut streams = Vec::new();
    for filter in &filters {
        let mut s = follower
            .subscribe(&format!("/note-events?{filter}&snapshot=true"), &[])
            .await;
        let e = s.next().await.unwrap();
        assert_eq!(e.event, "snapshot");
        streams.push((s, serde_json::from_str::<Value>(&e.data).unwrap(), 0u64));
    }
    let mut views = Vec::new();
    for i in 0..60 {
        let server = servers[i % servers.len()];
        let key = format!("k{}", random(4));
        let done = match random(4) {
            0 => server.send("DELETE", &format!("/notes/{key}"), None).await,
            n => {
                let tag = ["red", "blue", "green"][random(3) as usize];
                let text = if n == 1 { "same" } else { "other" };
                server.note(&key, text, Some(tag)).await
            }
        };
        if done.status().is_success() {
            let revision = revision_of(&done);
            let mut per_filter = Vec::new();
            for filter in &filters {
                let part: Value = server
                    .get(&format!("/notes?{filter}"))
                    .await
                    .json()
                    .await
                    .unwrap();
                per_filter.push(part);
            }
            views.push((revision, per_filter));
        }
    }
    for (i, (s, copy, at)) in streams.iter_mut().enumerate() {
        let mut before = copy.clone();
        for (revision, parts) in &views {
            let want = &parts[i];
            if want != &before {
                let (got, patch) = s.change().await;
                assert_eq!(got, *revision, "{}: an event at {revision}", filters[i]);
                *copy = crate::common::fold(copy.clone(), &[patch]);
                *at = got;
            }
            assert_eq!(copy, want, "{} at {revision}", filters[i]);
            before = want.clone();
        }
        assert!(
            s.quiet_for(std::time::Duration::from_millis(200)).await,
            "{}: no event for a revision that left its subset alone",
            filters[i]
        );
    }
}
