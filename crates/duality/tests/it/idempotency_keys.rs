//! `Idempotency-Key` on creating `POST`s (docs/PROTOCOL.md, "Security
//! model"), through `duality::create_once` on the test service's
//! `POST /notes` (the next id) and `POST /tags/{tag}/notes` (a random key
//! drawn before the write), over HTTP, on a SQLite file and on PostgreSQL
//! through the same test functions (the latter with the engine's
//! `postgres` feature).
//!
//! A first request that is still running is made deterministic by holding
//! the store's write lock from the test (SQLite: a `BEGIN IMMEDIATE`
//! transaction on the file; PostgreSQL: the `views` row of the view, locked
//! `FOR UPDATE`): the server's write then waits in its queue until the test
//! lets it go.

use std::time::Duration;

use crate::common::{TestServer, spawn};
use duality::Config;
use duality::settings::Database;
use duality::store::Location;
use serde_json::{Value, json};

/// Every wait of these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// One database of a backend that servers can be started on.
struct Db {
    _dir: Option<tempfile::TempDir>,
    db: Database,
}

impl Db {
    async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let db = Database::Sqlite(Location::File(dir.path().join("duality.db")));
                Db {
                    _dir: Some(dir),
                    db,
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Db {
                _dir: None,
                db: Database::Postgres(crate::common::pg::shared().database().await),
            },
        }
    }

    async fn serve(&self) -> TestServer {
        self.serve_with(Config::ephemeral()).await
    }

    async fn serve_with(&self, mut config: Config) -> TestServer {
        config.db = self.db.clone();
        spawn(config).await
    }

    /// Takes the write lock of `view` away from the server until released.
    async fn hold(&self, view: &str) -> Hold {
        match &self.db {
            Database::Sqlite(Location::File(path)) => {
                // SQLite has one write lock, for every view of the file.
                let _ = view;
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                Hold::Sqlite(conn)
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute("BEGIN").await.unwrap();
                let rows = client
                    .query("SELECT 1 FROM views WHERE view = $1 FOR UPDATE", &[&view])
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 1, "the {view} row is locked");
                Hold::Postgres(client)
            }
            other => unreachable!("tests hold a file or a PostgreSQL database, not {other}"),
        }
    }
}

/// A write lock the test holds.
enum Hold {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(tokio_postgres::Client),
}

impl Hold {
    async fn release(self) {
        match self {
            Hold::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            #[cfg(feature = "postgres")]
            Hold::Postgres(client) => client.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}

/// What a client sees of an answer.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    location: Option<String>,
    revision: Option<String>,
}

async fn answer(r: reqwest::Response) -> Answer {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (location, revision) = (header("location"), header("x-revision"));
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        location,
        revision,
    }
}

async fn post_keyed(server: &TestServer, path: &str, key: &str, body: &Value) -> Answer {
    let r = server
        .client
        .post(server.url(path))
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    answer(r).await
}

/// The view's documents and its revision.
async fn view(server: &TestServer, path: &str) -> (Value, String) {
    let r = server.get(path).await;
    assert_eq!(r.status(), 200);
    let revision = crate::common::header(&r, "x-revision");
    (r.json().await.unwrap(), revision)
}

async fn a_repeated_key_answers_the_first_outcome_and_writes_nothing(backend: Backend) {
    let db = Db::new(backend).await;
    let server = db.serve().await;
    let ann = json!({"text": "Ann", "tag": "work"});
    let first = post_keyed(&server, "/notes", "order-1", &ann).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.location.as_deref(), Some("/notes/1"));
    let after_first = view(&server, "/notes").await;

    // The same key and body, even with other whitespace and member order.
    let again = post_keyed(
        &server,
        "/notes",
        "order-1",
        &json!({"tag": "work", "text": "Ann"}),
    )
    .await;
    assert_eq!(again, first);
    assert_eq!(
        view(&server, "/notes").await,
        after_first,
        "nothing written"
    );

    // The same key with another body: 422, and still nothing written.
    let other = post_keyed(&server, "/notes", "order-1", &json!({"text": "Bob"})).await;
    assert_eq!(other.status, 422, "{other:?}");
    assert!(other.body["error"].is_string());
    assert_eq!(
        view(&server, "/notes").await,
        after_first,
        "nothing written"
    );

    // A key belongs to its route; another key is another request.
    let tagged = json!({"text": "Cy"});
    let h1 = post_keyed(&server, "/tags/home/notes", "order-1", &tagged).await;
    assert_eq!(h1.status, 201, "{h1:?}");
    let h2 = post_keyed(&server, "/tags/home/notes", "order-1", &tagged).await;
    assert_eq!(h2, h1, "a note's random key is the first one's too");
    let i1 = post_keyed(&server, "/tags/idea/notes", "order-1", &tagged).await;
    assert_eq!(i1.status, 201, "{i1:?}");
    assert_ne!(i1.location, h1.location);
    assert_eq!(
        post_keyed(&server, "/tags/idea/notes", "order-1", &tagged).await,
        i1
    );
    assert_eq!(
        server.get_json("/tags").await,
        json!({"work": {"total": 1}, "home": {"total": 1}, "idea": {"total": 1}})
    );
    let bob = post_keyed(&server, "/notes", "order-2", &json!({"text": "Bob"})).await;
    assert_eq!(bob.location.as_deref(), Some("/notes/2"));

    // Keys outlive the process: a restarted server still answers them.
    server.stop().await.unwrap();
    let server = db.serve().await;
    assert_eq!(post_keyed(&server, "/notes", "order-1", &ann).await, first);
    assert_eq!(
        server.get_json("/notes").await.as_object().unwrap().len(),
        4
    );
    server.stop().await.unwrap();
}

async fn keys_that_are_not_bounded_visible_ascii_are_refused(backend: Backend) {
    let db = Db::new(backend).await;
    let server = db.serve().await;
    let long = "k".repeat(256);
    let bad: [&[u8]; 5] = [
        b"",
        b"two words",
        b"caf\xc3\xa9",
        long.as_bytes(),
        b"tab\tkey",
    ];
    for key in bad {
        let r = server
            .client
            .post(server.url("/notes"))
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .json(&json!({"text": "Ann"}))
            .send()
            .await
            .unwrap();
        let a = answer(r).await;
        assert_eq!(
            a.status,
            400,
            "key {:?}: {a:?}",
            String::from_utf8_lossy(key)
        );
        assert!(
            a.body["error"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key")
        );
    }
    let ok = "k".repeat(255);
    assert_eq!(
        post_keyed(&server, "/notes", &ok, &json!({"text": "Ann"}))
            .await
            .status,
        201
    );
    assert_eq!(
        view(&server, "/notes").await.1,
        "1",
        "only the valid key wrote"
    );
    server.stop().await.unwrap();
}

async fn a_repeat_while_the_first_is_running_is_409(backend: Backend) {
    let db = Db::new(backend).await;
    let server = db.serve().await;
    let body = json!({"text": "Ann"});
    let hold = db.hold("notes").await;
    // Both are sent at once; whichever the server takes first waits for
    // the lock, so the other one finds its key running.
    let (conflict, created) = {
        let mut first = Box::pin(post_keyed(&server, "/notes", "k-409", &body));
        let mut second = Box::pin(post_keyed(&server, "/notes", "k-409", &body));
        let (conflict, running) = tokio::select! {
            a = &mut first => (a, second),
            b = &mut second => (b, first),
        };
        assert_eq!(conflict.status, 409, "{conflict:?}");
        hold.release().await;
        (conflict, running.await)
    };
    assert!(conflict.body["error"].is_string());
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(post_keyed(&server, "/notes", "k-409", &body).await, created);
    assert_eq!(view(&server, "/notes").await.1, "1", "one note");
    server.stop().await.unwrap();
}

async fn a_retry_after_a_write_that_timed_out_but_committed_creates_nothing(backend: Backend) {
    let db = Db::new(backend).await;
    let server = db.serve().await;
    let body = json!({"text": "Ann", "tag": "home"});
    let hold = db.hold("notes").await;
    // The client gives up while the write waits for the lock ...
    let gave_up = server
        .client
        .post(server.url("/notes"))
        .header("Idempotency-Key", "k-retry")
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    // ... and the write commits after all.
    hold.release().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while view(&server, "/notes").await.1 != "1" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The retry answers the committed note instead of creating another
    // (a 409 only while the first request is still being answered).
    let retried = loop {
        let a = post_keyed(&server, "/notes", "k-retry", &body).await;
        if a.status != 409 {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(retried.status, 201, "{retried:?}");
    assert_eq!(retried.body, json!({"id": 1, "text": "Ann", "tag": "home"}));
    assert_eq!(retried.revision.as_deref(), Some("1"));
    let (notes, revision) = view(&server, "/notes").await;
    assert_eq!(
        (notes.as_object().unwrap().len(), revision.as_str()),
        (1, "1")
    );
    server.stop().await.unwrap();
}

async fn keys_are_trimmed_with_the_events(backend: Backend) {
    let db = Db::new(backend).await;
    let config = Config {
        retention: Duration::from_millis(400),
        ..Config::ephemeral()
    };
    let server = db.serve_with(config).await;
    let first = post_keyed(&server, "/notes", "k-trim", &json!({"text": "Ann"})).await;
    assert_eq!(first.status, 201);
    let reused = post_keyed(&server, "/notes", "k-trim", &json!({"text": "Bob"})).await;
    assert_eq!(reused.status, 422, "the key is kept");
    // Once retention has passed, the key is forgotten: it is a new key.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = post_keyed(&server, "/notes", "k-trim", &json!({"text": "Bob"})).await;
        if a.status == 201 {
            assert_eq!(a.location.as_deref(), Some("/notes/2"));
            break;
        }
        assert_eq!(a.status, 422, "{a:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key was never trimmed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await.unwrap();
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                tokio::time::timeout(super::WAIT * 2, super::$name(super::Backend::Sqlite))
                    .await
                    .expect("the test finished in time");
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                tokio::time::timeout(super::WAIT * 2, super::$name(super::Backend::Postgres))
                    .await
                    .expect("the test finished in time");
            })*
        }
    };
}

on_both!(
    a_repeated_key_answers_the_first_outcome_and_writes_nothing,
    keys_that_are_not_bounded_visible_ascii_are_refused,
    a_repeat_while_the_first_is_running_is_409,
    a_retry_after_a_write_that_timed_out_but_committed_creates_nothing,
    keys_are_trimmed_with_the_events,
);

/// Two servers on one PostgreSQL database, as two processes: the same key
/// sent to both at once creates one note, and both answer it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgresql_a_key_sent_to_two_processes_at_once_writes_once() {
    let db = Db::new(Backend::Postgres).await;
    let (a, b) = (db.serve().await, db.serve().await);
    let body = json!({"text": "Ann"});
    let hold = db.hold("notes").await;
    let both = async {
        tokio::join!(
            post_keyed(&a, "/notes", "k-two", &body),
            post_keyed(&b, "/notes", "k-two", &body)
        )
    };
    let release = async {
        // Both requests are waiting for the lock by now, or soon will be;
        // either way only one of them can write.
        tokio::time::sleep(Duration::from_millis(300)).await;
        hold.release().await;
    };
    let ((on_a, on_b), ()) = tokio::join!(both, release);
    assert_eq!(on_a.status, 201, "{on_a:?}");
    assert_eq!(on_a, on_b);
    let deadline = tokio::time::Instant::now() + WAIT;
    for server in [&a, &b] {
        while view(server, "/notes").await.1 != "1" {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let notes = server.get_json("/notes").await;
        assert_eq!(notes, json!({"1": {"text": "Ann"}}));
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
