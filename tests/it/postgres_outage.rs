//! A PostgreSQL database that goes away at run time (README, "Deployment: N processes on PostgreSQL"):
//! writes answer 503, open streams stay open (keep-alives go on), and when
//! the database returns everything recovers by itself: writes succeed, and
//! every process's LISTEN connection reconnects and catches up, so streams
//! on both processes continue gapless.
//!
//! It stops a PostgreSQL server of its own, not the one the other tests of
//! this binary share while they run. On a server the tests did not start
//! (`DUALITY_TEST_PG`), it takes its database away instead: no new
//! connections allowed, and every open one terminated.

use std::time::{Duration, Instant};

use crate::common::ChildServer;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// What a raw SSE stream carried: changes and keep-alive comments.
#[derive(Debug, PartialEq)]
enum Item {
    Change(u64, Value),
    Comment,
    Other(String),
}

/// An SSE reader that also reports comments (keep-alives).
struct Raw {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl Raw {
    async fn open(http: &reqwest::Client, url: &str) -> Raw {
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        Raw {
            body: Box::pin(r.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next item; panics if the stream ends or nothing comes in time.
    async fn next(&mut self) -> Item {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut data, mut event, mut comment) = (None, None, None, false);
                for line in block.lines() {
                    if line.starts_with(':') {
                        comment = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    }
                }
                return match (event, id, data) {
                    // Position bookkeeping, not a change.
                    (Some(e), _, _) if e == "caught-up" || e == "progress" => continue,
                    (Some(e), _, _) => Item::Other(e),
                    (None, Some(id), Some(data)) => Item::Change(id, data),
                    _ if comment => Item::Comment,
                    _ => continue,
                };
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Some(Err(e))) => panic!("stream failed: {e}"),
                Ok(None) => panic!("the stream ended"),
                Err(_) => panic!("nothing on the stream within {WAIT:?}"),
            }
        }
    }

    /// The next change, skipping keep-alives.
    async fn change(&mut self) -> (u64, Value) {
        loop {
            match self.next().await {
                Item::Change(r, p) => return (r, p),
                Item::Comment => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Takes the database away and brings it back.
struct Outage<'a> {
    server: &'a crate::common::pg::PgServer,
    db: String,
}

impl Outage<'_> {
    async fn begin(&self) {
        if self.server.owned() {
            self.server.stop();
        } else {
            let db = &self.db;
            self.server
                .sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
                .await;
            self.server
                .sql(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
                ))
                .await;
        }
    }

    async fn end(&self) {
        if self.server.owned() {
            self.server.restart();
        } else {
            let db = &self.db;
            self.server
                .sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
                .await;
        }
    }
}

async fn post(http: &reqwest::Client, base: &str, name: &str) -> reqwest::Response {
    http.post(format!("{base}/persons"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
}

fn revision(r: &reqwest::Response) -> u64 {
    r.headers()["x-revision"].to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_goes_away_gives_503_on_writes_keeps_streams_open_and_recovers() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("the outage scenario took too long");
}

async fn scenario() {
    let own;
    let server = if crate::common::pg::shared().owned() {
        own = crate::common::pg::PgServer::start();
        &own
    } else {
        crate::common::pg::shared()
    };
    let url = server.database().await;
    let outage = Outage {
        server,
        db: url.rsplit('/').next().unwrap().to_string(),
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--db", url.as_str(), "--keep-alive", "200ms"];
    let a = ChildServer::start(&args, dir.path()).await;
    let b = ChildServer::start(&args, dir.path()).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let stream = "/person-events?revision=1";
    let mut on_a = Raw::open(&http, &format!("{}{stream}", a.base())).await;
    let mut on_b = Raw::open(&http, &format!("{}{stream}", b.base())).await;

    assert_eq!(revision(&post(&http, &a.base(), "one").await), 1);
    assert_eq!(revision(&post(&http, &b.base(), "two").await), 2);
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(sse.change().await.0, 1);
        assert_eq!(sse.change().await.0, 2);
    }

    outage.begin().await;
    // Writes on either process answer 503 with a JSON error, promptly.
    for base in [a.base(), b.base()] {
        let started = Instant::now();
        let r = post(&http, &base, "lost").await;
        assert_eq!(r.status(), 503, "a write without a database");
        // The body says what is wrong, never how: no SQL, no database
        // error text, no host names (those go to the log).
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "the store is unavailable; try again"}),
            "a 503 body carries no internals"
        );
        assert!(started.elapsed() < Duration::from_secs(12));
    }
    // Streams stay open: keep-alives keep coming, and no change does.
    for sse in [&mut on_a, &mut on_b] {
        for _ in 0..3 {
            assert_eq!(sse.next().await, Item::Comment);
        }
    }
    // The service itself stays up.
    let health = http
        .get(format!("{}/healthz", a.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // But it is not ready, and says why.
    let ready = http
        .get(format!("{}/readyz", a.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], json!("unavailable"), "{ready}");

    outage.end().await;
    // Writes recover by themselves (the pool reconnects).
    let deadline = Instant::now() + WAIT;
    let third = loop {
        let r = post(&http, &a.base(), "three").await;
        if r.status() == 201 {
            break revision(&r);
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "writes did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(third, 3, "the refused writes left no trace");
    let ready = http
        .get(format!("{}/readyz", a.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(revision(&post(&http, &b.base(), "four").await), 4);
    // Both streams continue, gapless: the write on the other process comes
    // through the reconnected LISTEN connection (or its catch-up).
    for sse in [&mut on_a, &mut on_b] {
        let (r3, p3) = sse.change().await;
        let (r4, p4) = sse.change().await;
        assert_eq!((r3, r4), (3, 4));
        assert_eq!(p3, json!({"3": {"name": "three"}}));
        assert_eq!(p4, json!({"4": {"name": "four"}}));
    }
    // Live delivery between the processes works again, not only catch-up.
    for (writer, n) in [(&b, 5), (&a, 6)] {
        assert_eq!(revision(&post(&http, &writer.base(), "live").await), n);
        assert_eq!(on_a.change().await.0, n);
        assert_eq!(on_b.change().await.0, n);
    }
}
