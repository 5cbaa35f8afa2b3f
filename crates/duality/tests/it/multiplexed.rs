//! Several subscriptions over one connection (docs/PROTOCOL.md, "Many
//! views on one connection"): `GET /streams?s=<id>:<view>&<id>.…`. Each
//! subscription behaves as its own stream would (order, continuity,
//! filters, `caught-up`, `progress`), every event's id lists the position
//! of every subscription, and a `Last-Event-ID` taken from the last event
//! received resumes each one exactly, also across a restart of the server
//! on the same SQLite file.

use std::collections::BTreeMap;
use std::time::Duration;

use duality::Config;
use duality::settings::{Database, parse_token};
use duality::store::Location;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Sse, TestServer, fold, header, revision_of, spawn, spawn_default};

/// `where={"tag":"red"}`, encoded for a query.
const RED: &str = "%7B%22tag%22%3A%22red%22%7D";

/// One event of a multiplexed stream.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    id: String,
    data: Value,
}

impl Received {
    fn sub(&self) -> &str {
        self.data["sub"].as_str().unwrap_or_default()
    }

    fn revision(&self) -> u64 {
        self.data["revision"].as_u64().unwrap()
    }
}

/// The positions an event id lists: `a=12,b=7`.
fn positions(id: &str) -> BTreeMap<String, u64> {
    id.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (sub, at) = p.split_once('=').unwrap();
            (sub.to_string(), at.parse().unwrap())
        })
        .collect()
}

/// Opens a multiplexed stream; panics unless it is 200 `text/event-stream`.
async fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (Sse, String) {
    let mut req = server.client.get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    let epoch = header(&r, "x-epoch");
    (Sse::every_event(r), epoch)
}

/// What a consumer keeps: per subscription its copy and its position,
/// checked against every event it applies.
#[derive(Default)]
struct Copies {
    model: BTreeMap<String, Value>,
    at: BTreeMap<String, u64>,
    /// The subscriptions whose changes may skip revisions (filtered).
    filtered: Vec<String>,
    caught_up: Vec<String>,
    /// Every event, in order.
    seen: Vec<Received>,
}

impl Copies {
    fn filtered(subs: &[&str]) -> Copies {
        Copies {
            filtered: subs.iter().map(|s| s.to_string()).collect(),
            ..Copies::default()
        }
    }

    /// Reads and applies the next event; panics on any break of the protocol.
    async fn next(&mut self, s: &mut Sse) -> Received {
        let e = s.next().await.expect("the stream ended");
        let received = Received {
            event: e.event.clone(),
            id: e.id.clone(),
            data: serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("{e:?}")),
        };
        let sub = received.sub().to_string();
        assert!(!sub.is_empty(), "every event names its subscription: {e:?}");
        match received.event.as_str() {
            "snapshot" => {
                self.model
                    .insert(sub.clone(), received.data["view"].clone());
                self.at.insert(sub.clone(), received.revision());
            }
            "change" => {
                let revision = received.revision();
                let at = self.at.get(&sub).copied();
                if self.filtered.contains(&sub) {
                    assert!(
                        at.is_none_or(|at| revision > at),
                        "{sub}: {e:?} after {at:?}"
                    );
                } else if let Some(at) = at {
                    assert_eq!(revision, at + 1, "{sub}: every revision, once, in order");
                }
                let copy = self.model.entry(sub.clone()).or_insert(json!({}));
                *copy = fold(copy.clone(), &[received.data["patch"].clone()]);
                self.at.insert(sub.clone(), revision);
            }
            "progress" => {
                assert!(self.filtered.contains(&sub), "{e:?}");
                self.at.insert(sub.clone(), received.revision());
            }
            "caught-up" => {
                assert!(!self.caught_up.contains(&sub), "{sub}: caught-up twice");
                self.caught_up.push(sub.clone());
            }
            other => panic!("unexpected event {other}: {e:?}"),
        }
        assert_eq!(
            positions(&received.id),
            self.at,
            "the id lists every position: {e:?}"
        );
        self.seen.push(received.clone());
        received
    }

    /// Reads until every one of `subs` has sent `caught-up`.
    async fn until_caught_up(&mut self, s: &mut Sse, subs: &[&str]) {
        while !subs
            .iter()
            .all(|sub| self.caught_up.iter().any(|c| c == sub))
        {
            self.next(s).await;
        }
    }

    /// Reads until each `(sub, revision)` is reached.
    async fn until_at(&mut self, s: &mut Sse, wanted: &[(&str, u64)]) {
        while !wanted
            .iter()
            .all(|(sub, r)| self.at.get(*sub).is_some_and(|at| at >= r))
        {
            self.next(s).await;
        }
    }

    /// The id of the last event received.
    fn last_id(&self) -> String {
        self.seen.last().map(|e| e.id.clone()).unwrap_or_default()
    }
}

/// The current revision and body of a snapshot path.
async fn snapshot(server: &TestServer, path: &str) -> (u64, Value) {
    let r = server.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    (revision_of(&r), r.json().await.unwrap())
}

/// The notes `k0`…`k4` rewritten with rotating tags: `n` writes, each a
/// notes revision and, when a tag count changes, a tags revision.
async fn churn(server: &TestServer, from: usize, n: usize) {
    for i in from..from + n {
        let tag = ["red", "blue", "green"][i % 3];
        server
            .note(&format!("k{}", i % 5), &format!("text {i}"), Some(tag))
            .await;
    }
}

#[tokio::test]
async fn two_subscriptions_interleave_on_one_connection_and_each_folds_to_its_snapshot() {
    let server = spawn_default().await;
    churn(&server, 0, 3).await;
    let (mut s, _) = open(
        &server,
        "/streams?s=n:notes&n.snapshot=true&s=t:tags&t.snapshot=true",
        &[],
    )
    .await;
    let mut copies = Copies::default();
    copies.until_caught_up(&mut s, &["n", "t"]).await;
    let firsts: Vec<(&str, &str)> = copies
        .seen
        .iter()
        .map(|e| (e.sub(), e.event.as_str()))
        .collect();
    for sub in ["n", "t"] {
        let mine: Vec<&str> = firsts
            .iter()
            .filter(|(s, _)| *s == sub)
            .map(|(_, e)| *e)
            .collect();
        assert_eq!(mine, ["snapshot", "caught-up"], "{sub}");
    }
    assert_eq!(copies.model["n"], snapshot(&server, "/notes").await.1);
    assert_eq!(copies.model["t"], snapshot(&server, "/tags").await.1);

    // Each write changes both views: their events interleave.
    for i in 3..13 {
        churn(&server, i, 1).await;
        let notes = snapshot(&server, "/notes").await.0;
        let tags = snapshot(&server, "/tags").await.0;
        copies.until_at(&mut s, &[("n", notes), ("t", tags)]).await;
    }
    let order: Vec<&str> = copies
        .seen
        .iter()
        .filter(|e| e.event == "change")
        .map(|e| e.sub())
        .collect();
    assert!(order.contains(&"n") && order.contains(&"t"), "{order:?}");
    assert!(
        order.windows(2).any(|w| w[0] == "t" && w[1] == "n"),
        "interleaved, not one after the other: {order:?}"
    );
    assert_eq!(copies.model["n"], snapshot(&server, "/notes").await.1);
    assert_eq!(copies.model["t"], snapshot(&server, "/tags").await.1);
    assert!(
        s.quiet_for(Duration::from_millis(100)).await,
        "nothing more"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn snapshots_sent_in_many_pieces_are_never_interleaved_with_other_events() {
    let server = spawn_default().await;
    // About 300 KiB of notes: each snapshot body is sent in pieces.
    let text = "x".repeat(3000);
    for i in 0..100 {
        server
            .note(&format!("n{i}"), &text, Some(["red", "blue"][i % 2]))
            .await;
    }
    let (mut s, _) = open(
        &server,
        "/streams?s=a:notes&a.snapshot=true&s=b:tags&b.snapshot=true&s=c:notes&c.snapshot=true\
         &s=d:notes",
        &[],
    )
    .await;
    let mut copies = Copies::default();
    // `d` sends the whole history as changes while the others' snapshots go.
    copies.until_caught_up(&mut s, &["a", "b", "c", "d"]).await;
    let notes = snapshot(&server, "/notes").await.1;
    for sub in ["a", "c", "d"] {
        assert_eq!(copies.model[sub], notes, "{sub}");
    }
    assert_eq!(copies.model["b"], snapshot(&server, "/tags").await.1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_filtered_subscription_sends_its_own_changes_and_progress_beside_the_others() {
    let server = spawn_default().await;
    let (mut s, _) = open(
        &server,
        &format!("/streams?s=mine:notes&mine.key=mine&s=red:notes&red.where={RED}&s=all:notes"),
        &[],
    )
    .await;
    let mut copies = Copies::filtered(&["mine", "red"]);
    copies
        .until_caught_up(&mut s, &["mine", "red", "all"])
        .await;
    server.note("x", "other", Some("blue")).await; // 1
    server.note("y", "red one", Some("red")).await; // 2
    copies.until_at(&mut s, &[("all", 2), ("red", 2)]).await;
    // `mine` saw nothing of its own: its progress says it is at 2.
    copies.until_at(&mut s, &[("mine", 2)]).await;
    let progress = copies.seen.last().unwrap();
    assert_eq!(
        (progress.event.as_str(), progress.sub()),
        ("progress", "mine")
    );
    server.note("mine", "here", None).await; // 3
    copies.until_at(&mut s, &[("all", 3), ("mine", 3)]).await;
    let changes: Vec<(String, u64, Value)> = copies
        .seen
        .iter()
        .filter(|e| e.event == "change" && e.sub() != "all")
        .map(|e| (e.sub().to_string(), e.revision(), e.data["patch"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "red".into(),
                2,
                json!({"y": {"text": "red one", "tag": "red"}})
            ),
            ("mine".into(), 3, json!({"mine": {"text": "here"}})),
        ]
    );
    assert_eq!(
        copies.model["red"],
        snapshot(&server, &format!("/notes?where={RED}")).await.1
    );
    server.stop().await.unwrap();
}

/// Follows notes, tags and the red notes from their snapshots, with
/// writes in between, then drops the connection: the copies and the id of
/// the last event received.
async fn follow_then_drop(server: &TestServer, path: &str, writes: usize) -> Copies {
    let (mut s, _) = open(server, path, &[]).await;
    let mut copies = Copies::filtered(&["r"]);
    copies.until_caught_up(&mut s, &["n", "t", "r"]).await;
    for i in 0..writes {
        churn(server, i, 1).await;
        let notes = snapshot(server, "/notes").await.0;
        let tags = snapshot(server, "/tags").await.0;
        copies.until_at(&mut s, &[("n", notes), ("t", tags)]).await;
    }
    copies
}

/// Resumes `copies` with the id of its last event, on the same path, and
/// follows until every copy equals its snapshot again: every subscription
/// continues after its position, with no snapshot sent again.
async fn resume_and_check(server: &TestServer, path: &str, mut copies: Copies) {
    let last = copies.last_id();
    assert_eq!(
        positions(&last).keys().collect::<Vec<_>>(),
        ["n", "r", "t"],
        "{last}"
    );
    let (mut s, _) = open(server, path, &[("last-event-id", &last)]).await;
    copies.caught_up.clear();
    let resumed_from = copies.seen.len();
    copies.until_caught_up(&mut s, &["n", "t", "r"]).await;
    let notes = snapshot(server, "/notes").await;
    let tags = snapshot(server, "/tags").await;
    copies
        .until_at(&mut s, &[("n", notes.0), ("t", tags.0)])
        .await;
    assert!(
        copies.seen[resumed_from..]
            .iter()
            .all(|e| e.event != "snapshot"),
        "a resumed subscription gets no snapshot again"
    );
    assert_eq!(copies.model["n"], notes.1);
    assert_eq!(copies.model["t"], tags.1);
    assert_eq!(
        copies.model["r"],
        snapshot(server, &format!("/notes?where={RED}")).await.1
    );
}

fn resumable_path(epoch: Option<&str>) -> String {
    let epoch = epoch.map(|e| format!("&epoch={e}")).unwrap_or_default();
    format!(
        "/streams?s=n:notes&n.snapshot=true&s=t:tags&t.snapshot=true\
         &s=r:notes&r.where={RED}&r.snapshot=true{epoch}"
    )
}

#[tokio::test]
async fn the_last_event_id_resumes_every_subscription_exactly() {
    let server = spawn_default().await;
    churn(&server, 100, 4).await;
    let path = resumable_path(None);
    let copies = follow_then_drop(&server, &path, 6).await;
    // While it is away: changes to all three, and to some only.
    churn(&server, 6, 7).await;
    server.note("blue-only", "x", Some("blue")).await;
    resume_and_check(&server, &path, copies).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_last_event_id_resumes_every_subscription_after_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        db: Database::Sqlite(Location::File(dir.path().join("notes.db"))),
        ..Config::ephemeral()
    };
    let server = spawn(config()).await;
    churn(&server, 100, 4).await;
    let epoch = header(&server.get("/notes").await, "x-epoch");
    let path = resumable_path(Some(&epoch));
    let copies = follow_then_drop(&server, &path, 5).await;
    server.stop().await.unwrap();

    let server = spawn(config()).await;
    churn(&server, 5, 6).await;
    resume_and_check(&server, &path, copies).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_subscription_whose_position_is_gone_gets_its_own_reset_and_the_others_go_on() {
    let server = spawn_default().await;
    server.note("a", "one", Some("red")).await; // notes 1, tags 1
    let (mut s, epoch) = open(
        &server,
        "/streams?s=n:notes&s=t:tags",
        &[("last-event-id", "n=9,t=1")],
    )
    .await;
    let e = s.next().await.unwrap();
    assert_eq!(e.event, "reset", "{e:?}");
    let reset: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(reset["sub"], "n");
    assert_eq!(reset["snapshot"], "/notes");
    assert_eq!(reset["currentRevision"], 1);
    assert_eq!(e.id, "t=1", "the reset one leaves the positions");
    let e = s.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("caught-up", "t=1"));
    server.note("b", "two", Some("blue")).await; // notes 2, tags 2
    let e = s.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("change", "t=2"));
    let change: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        change,
        json!({"sub": "t", "revision": 2, "patch": {"blue": {"total": 1}}})
    );

    // When every subscription is reset, the connection ends.
    let (mut s, _) = open(&server, "/streams?s=n:notes", &[("last-event-id", "n=9")]).await;
    assert_eq!(s.next().await.unwrap().event, "reset");
    assert!(s.next().await.is_none(), "the stream ends");

    // Another epoch is gone for the whole connection.
    let r = server.get("/streams?s=n:notes&epoch=elsewhere").await;
    assert_eq!(r.status(), 410);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["epoch"], epoch);
    assert!(body["error"].as_str().unwrap().contains("epoch"), "{body}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_multiplexed_request_is_a_400_naming_what_is_wrong() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("/streams", None, "s:"),
        ("/streams?s=notes", None, "`notes`"),
        ("/streams?s=a:nope", None, "`nope`"),
        ("/streams?s=a:notes&s=a:tags", None, "`a`"),
        ("/streams?s=a%3Db:notes", None, "id"),
        ("/streams?s=a:notes&a.limit=1", None, "`a.limit`"),
        ("/streams?s=a:notes&b.key=x", None, "`b.key`"),
        ("/streams?s=a:notes&snapshot=true", None, "`snapshot`"),
        ("/streams?s=a:notes&a.where=%5B%5D", None, "a.where"),
        ("/streams?s=a:notes&a.revision=-1", None, "a.revision"),
        ("/streams?s=a:notes", Some("3"), "Last-Event-ID"),
        ("/streams?s=a:notes", Some("a=x"), "Last-Event-ID"),
        ("/streams?s=a:notes", Some("zz=3"), "`zz`"),
    ];
    for (path, last, named) in cases {
        let mut req = server.client.get(server.url(path));
        if let Some(last) = last {
            req = req.header("last-event-id", *last);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{path} {last:?}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{path} {last:?}: {error}");
    }
    let many: String = (0..65).map(|i| format!("s=s{i}:notes&")).collect();
    let r = server.get(&format!("/streams?{many}")).await;
    assert_eq!(r.status(), 400);
    let sixty_four: String = (0..64).map(|i| format!("s=s{i}:notes&")).collect();
    let (mut s, _) = open(&server, &format!("/streams?{sixty_four}"), &[]).await;
    assert_eq!(s.next().await.unwrap().event, "change");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alives_are_sent_once_per_connection_not_per_subscription() {
    let server = spawn(Config {
        keep_alive: Duration::from_millis(100),
        ..Config::ephemeral()
    })
    .await;
    let subs: String = (0..8).map(|i| format!("s=s{i}:notes&")).collect();
    let r = server.get(&format!("/streams?{subs}")).await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(550);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(until, body.next()).await {
        seen.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(seen).unwrap();
    let comments = text.matches(": keep-alive\n\n").count();
    assert!((1..=6).contains(&comments), "{comments}: {text}");
    assert_eq!(text.matches("event: caught-up").count(), 8, "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_with_a_read_token_takes_it_as_access_token_on_the_multiplexed_stream() {
    let server = spawn(Config {
        read_token: vec![parse_token("mux-read-token").unwrap()],
        ..Config::ephemeral()
    })
    .await;
    let r = server.get("/streams?s=a:notes").await;
    assert_eq!(r.status(), 401);
    let (mut s, _) = open(
        &server,
        "/streams?s=a:notes&access_token=mux-read-token",
        &[],
    )
    .await;
    let e = s.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data.as_str()),
        ("caught-up", r#"{"sub":"a","revision":0}"#)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_page_of_an_allowed_origin_may_follow_the_multiplexed_stream_and_others_may_not() {
    let server = spawn(Config {
        cors_origin: vec!["https://dash.example".into()],
        ..Config::ephemeral()
    })
    .await;
    for (origin, allowed) in [
        ("https://dash.example", true),
        ("https://evil.example", false),
    ] {
        let r = server
            .client
            .get(server.url("/streams?s=a:notes&s=b:tags"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{origin}");
        let granted = r.headers().get("access-control-allow-origin");
        assert_eq!(
            granted.and_then(|v| v.to_str().ok()),
            allowed.then_some(origin),
            "{origin}"
        );
    }
    server.stop().await.unwrap();
}
