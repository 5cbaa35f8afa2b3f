//! docs/PROTOCOL.md "Continuity": a stream never skips a revision. Each
//! test breaks the outbox of a real server's SQLite file on purpose (a row
//! deleted through a second connection, as a bug or a bad restore might)
//! and checks that a stream from before the hole sends every revision up
//! to it, then a `reset`, then ends: never a later revision.

use std::path::Path;
use std::time::Duration;

use crate::common::{Sse, TestServer, spawn};
use duality::Config;
use duality::settings::Database;
use duality::store::Location;
use serde_json::{Value, json};

/// The test service on the SQLite file `db`.
async fn on_file(db: &Path) -> TestServer {
    spawn(Config {
        db: Database::Sqlite(Location::File(db.to_path_buf())),
        ..Config::ephemeral()
    })
    .await
}

/// Deletes one notes event behind the server's back.
fn delete_event(db: &Path, revision: u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM events WHERE view = 'notes' AND revision = ?1",
            [revision as i64],
        )
        .unwrap();
    assert_eq!(deleted, 1, "revision {revision} was in the outbox");
}

/// Reads the stream to its end: the change revisions, then the reset body.
async fn read_to_reset(sse: &mut Sse) -> (Vec<u64>, Value) {
    let mut revisions = Vec::new();
    loop {
        let e = sse.next().await.expect("the stream ended without a reset");
        if e.event == "reset" {
            let body = serde_json::from_str(&e.data).unwrap();
            assert!(sse.next().await.is_none(), "the stream ends after reset");
            return (revisions, body);
        }
        assert_eq!(e.event, "message", "{e:?}");
        revisions.push(e.id.parse().unwrap());
    }
}

#[tokio::test]
async fn a_stream_from_before_a_hole_in_the_middle_sends_up_to_it_then_reset_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    let server = on_file(&db).await;
    server.notes(10).await;
    delete_event(&db, 5);

    for start in ["?revision=1", "?revision=3", ""] {
        let mut sse = server.subscribe(&format!("/note-events{start}"), &[]).await;
        let (sent, reset) = read_to_reset(&mut sse).await;
        let first = sent.first().copied().unwrap_or(5);
        assert_eq!(sent, (first..5).collect::<Vec<_>>(), "from {start:?}");
        assert_eq!(reset["currentRevision"], json!(10));
        assert_eq!(reset["snapshot"], json!("/notes"));
        assert!(
            reset["error"].as_str().unwrap().contains("lacks"),
            "{reset}"
        );
    }
    // Past the hole, the stream is whole again.
    let mut sse = server.subscribe("/note-events?revision=6", &[]).await;
    for want in 6..=10 {
        assert_eq!(sse.change().await.0, want);
    }
    assert!(sse.quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_hole_in_a_later_catch_up_page_resets_after_the_last_revision_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    let server = on_file(&db).await;
    // More than one outbox page; the hole is inside the second.
    let hole = duality::stream::PAGE as u64 + 20;
    server.notes(hole as usize + 10).await;
    delete_event(&db, hole);

    let mut sse = server.subscribe("/note-events?revision=1", &[]).await;
    let (sent, _) = read_to_reset(&mut sse).await;
    assert_eq!(sent, (1..hole).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_missing_newest_event_resets_instead_of_waiting_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    let server = on_file(&db).await;
    server.notes(6).await;
    delete_event(&db, 6);

    let mut sse = server.subscribe("/note-events?revision=2", &[]).await;
    let (sent, reset) = read_to_reset(&mut sse).await;
    assert_eq!(sent, vec![2, 3, 4, 5]);
    assert_eq!(reset["currentRevision"], json!(6));
    // A later write does not paper over the hole for a new subscriber.
    server.note("later", "later", None).await;
    let mut sse = server.subscribe("/note-events?revision=5", &[]).await;
    let (sent, _) = read_to_reset(&mut sse).await;
    assert_eq!(sent, vec![5]);
}

/// An event stored without the documents it replaced (by a server from
/// before events kept them) cannot be passed through a `where` filter: the
/// filtered stream sends what comes before it, then `reset`; a stream of
/// keys, which needs nothing more than the patch, passes it.
#[tokio::test]
async fn a_where_stream_resets_at_an_event_stored_without_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    let server = on_file(&db).await;
    server.note("a", "one", Some("red")).await; // 1
    server.note("a", "two", Some("red")).await; // 2
    server.note("a", "three", Some("red")).await; // 3
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let stripped = conn
        .execute(
            "UPDATE events SET prior = NULL WHERE view = 'notes' AND revision = 3",
            [],
        )
        .unwrap();
    assert_eq!(stripped, 1);
    let mut red = server
        .subscribe(
            "/note-events?where=%7B%22tag%22%3A%22red%22%7D&revision=1",
            &[],
        )
        .await;
    let (revisions, body) = read_to_reset(&mut red).await;
    assert_eq!(revisions, [1, 2]);
    assert!(body["error"].as_str().unwrap().contains("where"), "{body}");
    let mut keyed = server.subscribe("/note-events?key=a&revision=1", &[]).await;
    for want in 1..=3 {
        assert_eq!(keyed.change().await.0, want);
    }
    server.stop().await.unwrap();
}

/// A file whose outbox predates the column of replaced documents gets it
/// at start, and what is written from then on passes `where` filters.
#[tokio::test]
async fn a_file_from_before_events_kept_what_they_replaced_is_upgraded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (
                view TEXT NOT NULL, revision INTEGER NOT NULL, patch TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                PRIMARY KEY (view, revision)) WITHOUT ROWID;",
        )
        .unwrap();
    }
    let server = on_file(&db).await;
    server.note("a", "one", Some("red")).await;
    server.note("a", "two", Some("blue")).await;
    let mut red = server
        .subscribe(
            "/note-events?where=%7B%22tag%22%3A%22red%22%7D&revision=1",
            &[],
        )
        .await;
    assert_eq!(
        red.change().await,
        (1, json!({"a": {"text": "one", "tag": "red"}}))
    );
    assert_eq!(red.change().await, (2, json!({"a": null})));
    server.stop().await.unwrap();
}
