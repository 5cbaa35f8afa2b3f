//! README, "Views at any size": each server serves every view from its
//! in-memory copy, which it advances with committed events. These tests
//! check that the copy always equals what the store holds: after random
//! write sequences, after a restart, and on two servers sharing one
//! PostgreSQL database (with the engine's `postgres` feature), down to the
//! revision that last changed each document (its `ETag`). They also check
//! that the gzip body and the `?snapshot=true` event carry the very same
//! view.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::common::{header, revision_of, spawn, spawn_default};
use duality::settings::Database;
use duality::store::Location;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

/// One write a random sequence is made of.
#[derive(Debug, Clone)]
enum Op {
    /// `POST /notes`: a new note under the next id.
    Create { text: u8, tag: Option<u8> },
    /// `PUT /notes/{id}` of a note created before (perhaps deleted since,
    /// which puts it back): a new text or tag, or the same note again.
    Put {
        who: usize,
        text: u8,
        tag: Option<u8>,
    },
    /// `DELETE /notes/{id}` (a note deleted before is a 404).
    Delete { who: usize },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0..5u8, proptest::option::of(0..3u8)).prop_map(|(text, tag)| Op::Create { text, tag }),
        2 => (any::<usize>(), 0..2u8, proptest::option::of(0..3u8))
            .prop_map(|(who, text, tag)| Op::Put { who, text, tag }),
        1 => any::<usize>().prop_map(|who| Op::Delete { who }),
    ];
    proptest::collection::vec(op, 1..40)
}

const TAGS: [&str; 3] = ["work", "home", "Köln \"old\""];

fn note(text: u8, tag: Option<u8>) -> Value {
    let mut body = json!({"text": format!("n{text}")});
    if let Some(t) = tag {
        body["tag"] = json!(TAGS[t as usize]);
    }
    body
}

/// Runs `ops` against the servers at `bases`, round-robin.
async fn run(client: &reqwest::Client, bases: &[String], ops: &[Op], ids: &mut Vec<u64>) {
    for (i, op) in ops.iter().enumerate() {
        let base = &bases[i % bases.len()];
        let sent = match op {
            Op::Create { text, tag } => {
                let r = client
                    .post(format!("{base}/notes"))
                    .json(&note(*text, *tag))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let created: Value = r.json().await.unwrap();
                ids.push(created["id"].as_u64().unwrap());
                continue;
            }
            _ if ids.is_empty() => continue,
            Op::Put { who, text, tag } => {
                let id = ids[who % ids.len()];
                client
                    .put(format!("{base}/notes/{id}"))
                    .json(&note(*text, *tag))
                    .send()
                    .await
            }
            Op::Delete { who } => {
                let id = ids[who % ids.len()];
                client.delete(format!("{base}/notes/{id}")).send().await
            }
        };
        // A delete of a note deleted earlier is a 404: fine.
        let status = sent.unwrap().status();
        assert!(status.is_success() || status == 404, "{op:?}: {status}");
    }
}

/// The view as a server serves it from memory: body and revision.
async fn served(client: &reqwest::Client, base: &str, path: &str) -> (Value, u64) {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let revision = revision_of(&r);
    (r.json().await.unwrap(), revision)
}

/// The view as the SQLite file holds it.
fn stored_sqlite(db: &Path, view: &str) -> (Value, u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, doc FROM docs WHERE view = ?1")
        .unwrap();
    let docs: Map<String, Value> = stmt
        .query_map([view], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .unwrap()
        .map(|row| {
            let (k, d) = row.unwrap();
            (k, serde_json::from_str(&d).unwrap())
        })
        .collect();
    let revision: i64 = conn
        .query_row(
            "SELECT COALESCE((SELECT revision FROM views WHERE view = ?1), 0)",
            [view],
            |r| r.get(0),
        )
        .unwrap();
    (Value::Object(docs), revision as u64)
}

/// The revision that last changed each note, as the SQLite file holds it.
fn stored_sqlite_changes(db: &Path) -> BTreeMap<String, u64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, revision FROM docs WHERE view = 'notes'")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The revision that last changed each note, as the PostgreSQL database
/// holds it.
#[cfg(feature = "postgres")]
async fn stored_pg_changes(url: &str) -> BTreeMap<String, u64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let rows = client
        .query("SELECT key, revision FROM docs WHERE view = 'notes'", &[])
        .await
        .unwrap();
    let changes = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    drop(client);
    let _ = driver.await;
    changes
}

/// Checks that the server at `base` answers, from its in-memory copy, the
/// `ETag` of each note the store holds: the epoch and the revision that
/// last changed it.
async fn assert_etags(client: &reqwest::Client, base: &str, stored: &BTreeMap<String, u64>) {
    for (key, changed) in stored {
        let r = client
            .get(format!("{base}/notes/{key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "note {key}");
        let epoch = header(&r, "x-epoch");
        assert_eq!(
            header(&r, "etag"),
            format!("\"{epoch}-{changed}\""),
            "note {key} on {base}"
        );
    }
}

/// The view as the PostgreSQL database holds it.
#[cfg(feature = "postgres")]
async fn stored_pg(url: &str, view: &str) -> (Value, u64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let rows = client
        .query("SELECT key, doc FROM docs WHERE view = $1", &[&view])
        .await
        .unwrap();
    let docs: Map<String, Value> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                serde_json::from_str(r.get(1)).unwrap(),
            )
        })
        .collect();
    let revision: i64 = client
        .query_one("SELECT revision FROM views WHERE view = $1", &[&view])
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    (Value::Object(docs), revision as u64)
}

/// Waits until the server at `base` serves revision `revision` of `path`.
#[cfg(feature = "postgres")]
async fn served_at(client: &reqwest::Client, base: &str, path: &str, revision: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (body, at) = served(client, base, path).await;
        if at >= revision {
            assert_eq!(at, revision, "{base}{path} went past the store");
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base}{path} stuck at {at} < {revision}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The test service on the SQLite file `db`.
fn on_file(db: &Path) -> duality::Config {
    duality::Config {
        db: Database::Sqlite(Location::File(db.to_path_buf())),
        ..duality::Config::ephemeral()
    }
}

#[test]
fn the_in_memory_view_and_its_etags_equal_the_sqlite_file_after_random_writes_and_after_a_restart()
{
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(6));
    runner
        .run(&(ops(), ops()), |(before, after)| {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("views.db");
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                let server = spawn(on_file(&db)).await;
                run(&client, &[server.url("")], &before, &mut ids).await;
                for view in ["notes", "tags"] {
                    let (body, revision) =
                        served(&client, &server.url(""), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} before restart"
                    );
                }
                assert_etags(&client, &server.url(""), &stored_sqlite_changes(&db)).await;
                server.stop().await.unwrap();
                let server = spawn(on_file(&db)).await;
                for view in ["notes", "tags"] {
                    let (body, revision) =
                        served(&client, &server.url(""), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} after restart"
                    );
                }
                assert_etags(&client, &server.url(""), &stored_sqlite_changes(&db)).await;
                run(&client, &[server.url("")], &after, &mut ids).await;
                for view in ["notes", "tags"] {
                    let (body, revision) =
                        served(&client, &server.url(""), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} after more writes"
                    );
                }
                assert_etags(&client, &server.url(""), &stored_sqlite_changes(&db)).await;
                server.stop().await.unwrap();
            });
            Ok(())
        })
        .unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn two_servers_on_one_postgresql_database_each_serve_the_view_and_etags_it_holds_after_random_writes()
 {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(4));
    runner
        .run(&ops(), |ops| {
            rt.block_on(async {
                let url = crate::common::pg::shared().database().await;
                let config = || duality::Config {
                    db: Database::Postgres(url.clone()),
                    ..duality::Config::ephemeral()
                };
                let a = spawn(config()).await;
                let b = spawn(config()).await;
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                run(&client, &[a.url(""), b.url("")], &ops, &mut ids).await;
                for view in ["notes", "tags"] {
                    let (stored, revision) = stored_pg(&url, view).await;
                    for base in [a.url(""), b.url("")] {
                        let body = served_at(&client, &base, &format!("/{view}"), revision).await;
                        assert_eq!(body, stored, "{view} on {base}");
                    }
                }
                let changes = stored_pg_changes(&url).await;
                for base in [a.url(""), b.url("")] {
                    assert_etags(&client, &base, &changes).await;
                }
                a.stop().await.unwrap();
                b.stop().await.unwrap();
            });
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn gzip_bodies_and_snapshot_events_carry_the_same_view_as_the_plain_body() {
    let server = spawn_default().await;
    // Enough notes for the view to span many chunks.
    for i in 0..3000 {
        let tag = TAGS[i % 3];
        let r = server
            .post(
                "/notes",
                json!({"text": format!("note number {i} with a longer text"), "tag": tag}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let plain = server.get("/notes").await;
    let plain_revision = revision_of(&plain);
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain.as_object().unwrap().len(), 3000);

    let zipped = server
        .client
        .get(server.url("/notes"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    assert_eq!(revision_of(&zipped), plain_revision);
    let bytes = zipped.bytes().await.unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), plain);
    assert!(bytes.len() * 3 < text.len(), "gzip should compress");

    // One more write: only its chunk changes, and both forms follow.
    let r = server
        .put("/notes/17", json!({"text": "changed", "tag": TAGS[16 % 3]}))
        .await;
    assert_eq!(r.status(), 200);
    let mut sse = server.subscribe("/note-events?snapshot=true", &[]).await;
    let event = sse.next().await.unwrap();
    assert_eq!(event.event, "snapshot");
    assert_eq!(event.id, (plain_revision + 1).to_string());
    let view: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(view["17"]["text"], json!("changed"));
    assert_eq!(view, server.get_json("/notes").await);
}

#[tokio::test]
async fn a_new_revision_is_served_from_memory_without_reading_the_view_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let server = spawn(on_file(&db)).await;
    for text in ["Ann", "Bob"] {
        let r = server.post("/notes", json!({"text": text})).await;
        assert_eq!(r.status(), 201);
    }
    // Behind the server's back, a row disappears from the file. A server
    // that re-read the view for the next revision would lose note 1; one
    // that folds events into its copy keeps serving it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM docs WHERE view = 'notes' AND key = '1'", [])
        .unwrap();
    let r = server.post("/notes", json!({"text": "Cy"})).await;
    assert_eq!(r.status(), 201);
    let (view, revision) = served(&server.client, &server.url(""), "/notes").await;
    assert_eq!(revision, 3);
    assert_eq!(
        view,
        json!({"1": {"text": "Ann"}, "2": {"text": "Bob"}, "3": {"text": "Cy"}})
    );
    server.stop().await.unwrap();
}
