//! Catch-up instead of `410` (docs/PROTOCOL.md, "Catch-up"): a position
//! older than the retained events but within `--catch-up-horizon` gets one
//! `catch-up` event (a poll: one change marked `compacted`), a merge patch
//! of the keys changed since, that folds onto the consumer's old copy into
//! exactly the snapshot at its id; then the stream goes on live. Only a
//! position past the horizon is `410`. On SQLite and PostgreSQL, and after
//! a restart.

use std::time::{Duration, Instant};

use duality::Config;
use duality::settings::Database;
use duality::store::Location;
use serde_json::{Value, json};

use crate::common::{Sse, TestServer, fold, revision_of, spawn};

/// Retention short enough to age events out within a test.
const RETENTION: Duration = Duration::from_secs(1);

fn config(db: Database) -> Config {
    Config {
        db,
        retention: RETENTION,
        ..Config::ephemeral()
    }
}

async fn sqlite_file() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(Location::File(dir.path().join("notes.db")));
    (dir, db)
}

fn encoded(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` as JSON with its `X-Revision`.
async fn snapshot(server: &TestServer, path: &str) -> (Value, u64) {
    let r = server.get(path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    let revision = revision_of(&r);
    (r.json().await.unwrap(), revision)
}

/// Waits until retention deleted the event after `after`: a poll from it
/// is then answered by a catch-up.
async fn until_trimmed(server: &TestServer, after: u64) {
    let start = Instant::now();
    loop {
        let r = server
            .get(&format!("/note-events?mode=poll&after={after}&wait=0"))
            .await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        if page["changes"][0]["compacted"] == json!(true) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "retention did not trim the events after {after}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes that touch a few keys many times: more events than changed keys.
async fn churn(server: &TestServer) {
    for round in 0..5 {
        server.note("a", &format!("a{round}"), Some("red")).await;
        server.note("c", &format!("c{round}"), None).await;
    }
    let r = server.send("DELETE", "/notes/b", None).await;
    assert_eq!(r.status(), 204);
    server.note("e", "new", Some("blue")).await;
}

/// The first event of a stream opened with `Last-Event-ID: after`, which
/// must be its one `catch-up`: (id, patch).
async fn caught_up_from(server: &TestServer, after: u64) -> (u64, Value, Sse) {
    let mut s = server
        .subscribe("/note-events", &[("Last-Event-ID", &after.to_string())])
        .await;
    let e = s.next().await.expect("the stream ended");
    assert_eq!(e.event, "catch-up", "{e:?}");
    (
        e.id.parse().unwrap(),
        serde_json::from_str(&e.data).unwrap(),
        s,
    )
}

/// The whole story on one database: a consumer's copy at `r`, churn,
/// retention, a catch-up that folds exactly into the snapshot, the stream
/// live after it; then the same after the server restarts.
async fn catch_up_folds_exactly_into_the_snapshot_and_after_a_restart(db: Database) {
    let server = spawn(config(db.clone())).await;
    for key in ["a", "b", "c", "d"] {
        server.note(key, key, None).await;
    }
    let (old, r) = snapshot(&server, "/notes").await;
    churn(&server).await;
    until_trimmed(&server, r).await;

    let (now, current) = snapshot(&server, "/notes").await;
    let (id, patch, mut stream) = caught_up_from(&server, r).await;
    assert_eq!(
        id, current,
        "the catch-up takes the consumer to the current revision"
    );
    assert_eq!(fold(old.clone(), std::slice::from_ref(&patch)), now);
    let mut changed: Vec<&String> = patch.as_object().unwrap().keys().collect();
    changed.sort();
    assert_eq!(
        changed,
        ["a", "b", "c", "e"],
        "the changed keys, not the view"
    );
    assert_eq!(patch["b"], Value::Null, "a deleted document is null");

    // Live after it, from the next revision on.
    server.note("d", "later", None).await;
    assert_eq!(
        stream.change().await,
        (current + 1, json!({"d": {"text": "later"}}))
    );
    drop(stream);
    server.stop().await.unwrap();

    // What catch-up needs is stored with the database: a restart keeps it.
    let server = spawn(config(db)).await;
    let (now, current) = snapshot(&server, "/notes").await;
    let (id, patch, _stream) = caught_up_from(&server, r).await;
    assert_eq!(id, current);
    assert_eq!(fold(old, &[patch]), now);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn on_sqlite_a_position_older_than_retention_catches_up_exactly_also_after_a_restart() {
    let (_dir, db) = sqlite_file().await;
    catch_up_folds_exactly_into_the_snapshot_and_after_a_restart(db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgresql_a_position_older_than_retention_catches_up_exactly_also_after_a_restart() {
    let url = crate::common::pg::shared().database().await;
    catch_up_folds_exactly_into_the_snapshot_and_after_a_restart(Database::Postgres(url)).await;
}

#[tokio::test]
async fn a_poll_older_than_retention_gets_one_compacted_change_then_goes_on_from_it() {
    let server = spawn(config(Database::Sqlite(Location::Memory))).await;
    for key in ["a", "b", "c", "d"] {
        server.note(key, key, None).await;
    }
    let (old, r) = snapshot(&server, "/notes").await;
    churn(&server).await;
    until_trimmed(&server, r).await;
    let (now, current) = snapshot(&server, "/notes").await;

    let answer = server
        .get(&format!("/note-events?mode=poll&after={r}"))
        .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["cache-control"],
        "public, max-age=1",
        "a catch-up depends on when it is asked: never immutable"
    );
    let page: Value = answer.json().await.unwrap();
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{page}");
    assert_eq!(changes[0]["revision"], json!(current));
    assert_eq!(changes[0]["compacted"], json!(true));
    assert_eq!(fold(old, &[changes[0]["patch"].clone()]), now);
    let next = page["next"].as_str().unwrap();
    assert!(next.contains(&format!("after={current}")), "{next}");

    // The next poll waits at the head and gets the next change, ordinary.
    let waiting = {
        let (client, url) = (server.client.clone(), server.url(next));
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.note("d", "later", None).await;
    let page: Value = waiting.await.unwrap().json().await.unwrap();
    assert_eq!(
        page["changes"],
        json!([{"revision": current + 1, "patch": {"d": {"text": "later"}}}])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_filtered_catch_up_holds_the_subset_and_nulls_what_left_it() {
    let server = spawn(config(Database::Sqlite(Location::Memory))).await;
    server.note("a", "a", Some("red")).await;
    server.note("b", "b", Some("blue")).await;
    server.note("c", "c", Some("red")).await;
    server.note("d", "d", Some("red")).await;
    server.note("k", "k", Some("red")).await;
    let red = format!("where={}", encoded(r#"{"tag":"red"}"#));
    let keys = "key=a&key=b&key=z";
    let (old_red, r) = snapshot(&server, &format!("/notes?{red}")).await;
    let (old_keys, _) = snapshot(&server, &format!("/notes?{keys}")).await;
    server.note("a", "a", Some("blue")).await; // leaves red
    server.note("b", "b", Some("red")).await; // joins red
    server.note("c", "c2", Some("red")).await; // stays red, changed
    let r2 = server.send("DELETE", "/notes/d", None).await; // red, deleted
    assert_eq!(r2.status(), 204);
    server.note("z", "z", Some("blue")).await; // new, not red
    until_trimmed(&server, r).await;

    for (filter, old, expected) in [
        (
            red.as_str(),
            old_red,
            json!({"a": null, "b": {"text": "b", "tag": "red"}, "c": {"text": "c2", "tag": "red"},
                   "d": null, "z": null}),
        ),
        (
            keys,
            old_keys,
            json!({"a": {"text": "a", "tag": "blue"}, "b": {"text": "b", "tag": "red"},
                   "z": {"text": "z", "tag": "blue"}}),
        ),
    ] {
        let (now, current) = snapshot(&server, &format!("/notes?{filter}")).await;
        let mut s = server
            .subscribe(
                &format!("/note-events?{filter}"),
                &[("Last-Event-ID", &r.to_string())],
            )
            .await;
        let e = s.next().await.unwrap();
        assert_eq!(e.event, "catch-up", "{filter}: {e:?}");
        assert_eq!(e.id, current.to_string());
        let patch: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(
            patch, expected,
            "{filter}: changed keys of the subset whole, those that left it or never were in it \
             null, no key the filter excludes, nothing unchanged (k)"
        );
        assert_eq!(fold(old, &[patch]), now, "{filter}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_multiplexed_subscription_older_than_retention_gets_a_catch_up_naming_it() {
    let server = spawn(config(Database::Sqlite(Location::Memory))).await;
    for key in ["a", "b", "c", "d"] {
        server.note(key, key, None).await;
    }
    let (old, r) = snapshot(&server, "/notes").await;
    churn(&server).await;
    until_trimmed(&server, r).await;
    let (now, current) = snapshot(&server, "/notes").await;
    let (tags, tags_at) = snapshot(&server, "/tags").await;
    let mut s = server
        .subscribe(
            "/streams?s=n:notes&s=t:tags",
            &[("Last-Event-ID", &format!("n={r},t={tags_at}"))],
        )
        .await;
    let e = s.next().await.unwrap();
    assert_eq!(e.event, "catch-up", "{e:?}");
    assert_eq!(e.id, format!("n={current},t={tags_at}"));
    let data: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        (&data["sub"], &data["revision"]),
        (&json!("n"), &json!(current))
    );
    assert_eq!(fold(old, &[data["patch"].clone()]), now);
    assert_eq!(
        snapshot(&server, "/tags").await.0,
        tags,
        "the other goes on untouched"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_position_past_the_catch_up_horizon_is_410_for_streams_and_polls() {
    let (_dir, db) = sqlite_file().await;
    let server = spawn(config(db.clone())).await;
    server.notes(4).await;
    let r = 2;
    server.note("n0", "changed", None).await;
    until_trimmed(&server, r).await;
    server.stop().await.unwrap();

    // The same database, now with a horizon as short as the retention:
    // the changed keys go too, and only then is the position gone.
    let server = spawn(Config {
        catch_up_horizon: RETENTION,
        ..config(db)
    })
    .await;
    let start = Instant::now();
    let body = loop {
        let answer = server
            .get(&format!("/note-events?revision={}", r + 1))
            .await;
        if answer.status() == 410 {
            break answer.json::<Value>().await.unwrap();
        }
        assert_eq!(answer.status(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the horizon did not pass"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["currentRevision"], json!(5), "{body}");
    assert_eq!(body["snapshot"], json!("/notes"));
    let poll = server
        .get(&format!("/note-events?mode=poll&after={r}&wait=0"))
        .await;
    assert_eq!(poll.status(), 410);
    // The current position is still served.
    let mut s = server.subscribe("/note-events?revision=6", &[]).await;
    server.note("n9", "late", None).await;
    assert_eq!(s.change().await.0, 6);
    server.stop().await.unwrap();
}
