//! README, "Views at any size": each process serves every view from its in-memory copy, which
//! it advances with committed events. These tests check that the copy
//! always equals what the store holds: after random write sequences, after
//! a restart, and on two processes sharing one PostgreSQL database. They
//! also check that the gzip body and the `?snapshot=true` event carry the
//! very same view.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::common::ChildServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

/// One write a random sequence is made of.
#[derive(Debug, Clone)]
enum Op {
    Create {
        name: u8,
        city: Option<u8>,
    },
    /// `city`: `None` leaves it, `Some(None)` removes it.
    Patch {
        who: usize,
        city: Option<Option<u8>>,
    },
    Delete {
        who: usize,
    },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0..5u8, proptest::option::of(0..3u8)).prop_map(|(name, city)| Op::Create { name, city }),
        2 => (any::<usize>(), proptest::option::of(proptest::option::of(0..3u8)))
            .prop_map(|(who, city)| Op::Patch { who, city }),
        1 => any::<usize>().prop_map(|who| Op::Delete { who }),
    ];
    proptest::collection::vec(op, 1..40)
}

const CITIES: [&str; 3] = ["Rome", "Paris", "Köln \"old\""];

/// Runs `ops` against the servers at `bases`, round-robin.
async fn run(client: &reqwest::Client, bases: &[String], ops: &[Op], ids: &mut Vec<u64>) {
    for (i, op) in ops.iter().enumerate() {
        let base = &bases[i % bases.len()];
        let sent = match op {
            Op::Create { name, city } => {
                let mut body = json!({"name": format!("p{name}")});
                if let Some(c) = city {
                    body["city"] = json!(CITIES[*c as usize]);
                }
                let r = client
                    .post(format!("{base}/persons"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let created: Value = r.json().await.unwrap();
                ids.push(created["id"].as_u64().unwrap());
                continue;
            }
            _ if ids.is_empty() => continue,
            Op::Patch { who, city } => {
                let id = ids[who % ids.len()];
                let body = match city {
                    None => json!({}),
                    Some(None) => json!({"city": null}),
                    Some(Some(c)) => json!({"city": CITIES[*c as usize]}),
                };
                client
                    .patch(format!("{base}/persons/{id}"))
                    .json(&body)
                    .send()
                    .await
            }
            Op::Delete { who } => {
                let id = ids[who % ids.len()];
                client.delete(format!("{base}/persons/{id}")).send().await
            }
        };
        // A patch or delete of a person deleted earlier is a 404: fine.
        let status = sent.unwrap().status();
        assert!(status.is_success() || status == 404, "{op:?}: {status}");
    }
}

/// The view as a process serves it from memory: body and revision.
async fn served(client: &reqwest::Client, base: &str, path: &str) -> (Value, u64) {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let revision = crate::common::revision_of(&r);
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

/// The view as the PostgreSQL database holds it.
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

/// Waits until the process at `base` serves revision `revision` of `path`.
async fn served_at(client: &reqwest::Client, base: &str, path: &str, revision: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_in_memory_view_equals_the_sqlite_file_after_random_writes_and_after_a_restart() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(6));
    runner
        .run(&(ops(), ops()), |(before, after)| {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("views.db");
                let db_arg = db.to_str().unwrap().to_string();
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                let server =
                    ChildServer::start(&["--db", &db_arg, "--services", "persons"], dir.path())
                        .await;
                run(&client, &[server.base()], &before, &mut ids).await;
                for view in ["persons", "locations"] {
                    let (body, revision) =
                        served(&client, &server.base(), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} before restart"
                    );
                }
                let addr = server.addr;
                drop(server);
                let server = ChildServer::restart_on(
                    addr,
                    &["--db", &db_arg, "--services", "persons"],
                    dir.path(),
                )
                .await;
                for view in ["persons", "locations"] {
                    let (body, revision) =
                        served(&client, &server.base(), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} after restart"
                    );
                }
                run(&client, &[server.base()], &after, &mut ids).await;
                for view in ["persons", "locations"] {
                    let (body, revision) =
                        served(&client, &server.base(), &format!("/{view}")).await;
                    assert_eq!(
                        (body, revision),
                        stored_sqlite(&db, view),
                        "{view} after more writes"
                    );
                }
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn two_postgresql_processes_each_serve_the_view_the_database_holds_after_random_writes() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(4));
    runner
        .run(&ops(), |ops| {
            rt.block_on(async {
                let url = crate::common::pg::shared().database().await;
                let dir = tempfile::tempdir().unwrap();
                let args = ["--db", url.as_str(), "--services", "persons"];
                let a = ChildServer::start(&args, dir.path()).await;
                let b = ChildServer::start(&args, dir.path()).await;
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                run(&client, &[a.base(), b.base()], &ops, &mut ids).await;
                for view in ["persons", "locations"] {
                    let (stored, revision) = stored_pg(&url, view).await;
                    for base in [a.base(), b.base()] {
                        let body = served_at(&client, &base, &format!("/{view}"), revision).await;
                        assert_eq!(body, stored, "{view} on {base}");
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn gzip_bodies_and_snapshot_events_carry_the_same_view_as_the_plain_body() {
    let server = crate::common::spawn_default().await;
    // Enough persons for the view to span many chunks.
    for i in 0..3000 {
        let city = CITIES[i % 3];
        let r = server
            .post(
                "/persons",
                json!({"name": format!("person number {i} with a longer name"), "city": city}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let plain = server.get("/persons").await;
    let plain_revision = crate::common::revision_of(&plain);
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain.as_object().unwrap().len(), 3000);

    let zipped = server
        .client
        .get(server.url("/persons"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(crate::common::header(&zipped, "content-encoding"), "gzip");
    assert_eq!(crate::common::revision_of(&zipped), plain_revision);
    let bytes = zipped.bytes().await.unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), plain);
    assert!(bytes.len() * 3 < text.len(), "gzip should compress");

    // One more write: only its chunk changes, and both forms follow.
    let r = server
        .send("PATCH", "/persons/17", Some(json!({"name": "changed"})))
        .await;
    assert_eq!(r.status(), 200);
    let mut sse = server.subscribe("/person-events?snapshot=true", &[]).await;
    let event = sse.next().await.unwrap();
    assert_eq!(event.event, "snapshot");
    assert_eq!(event.id, (plain_revision + 1).to_string());
    let view: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(view["17"]["name"], json!("changed"));
    assert_eq!(view, server.get_json("/persons").await);
}

#[tokio::test]
async fn a_new_revision_is_served_from_memory_without_reading_the_view_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let db_arg = db.to_str().unwrap().to_string();
    let server = ChildServer::start(&["--db", &db_arg, "--services", "persons"], dir.path()).await;
    let client = reqwest::Client::new();
    for name in ["Ann", "Bob"] {
        let r = client
            .post(format!("{}/persons", server.base()))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Behind the server's back, a row disappears from the file. A server
    // that re-read the view for the next revision would lose person 1; one
    // that folds events into its copy keeps serving it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM docs WHERE view = 'persons' AND key = '1'", [])
        .unwrap();
    let r = client
        .post(format!("{}/persons", server.base()))
        .json(&json!({"name": "Cy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (view, revision) = served(&client, &server.base(), "/persons").await;
    assert_eq!(revision, 3);
    assert_eq!(
        view,
        json!({"1": {"name": "Ann"}, "2": {"name": "Bob"}, "3": {"name": "Cy"}})
    );
}
