//! The dashboard is derived (README, "The Aggregate Pattern"): on SQLite its commits are published
//! without waiting for a flush of their own, so a backend change reaches
//! dashboard subscribers after one fsync. What could lose such a commit is
//! a crash of the machine, so a start in another boot after an unclean
//! stop gives the database a new epoch (docs/PROTOCOL.md, "Epochs") and consumers start
//! over from a snapshot; a clean stop, or an unclean one in the same boot,
//! keeps the epoch. A reboot is simulated by changing the boot the file
//! recorded, which is what a new boot looks like to the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{ChildServer, header};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    tokio::time::timeout(WAIT, client.get(&url).send())
        .await
        .unwrap_or_else(|_| panic!("GET {url}: no answer within {WAIT:?}"))
        .unwrap()
}

/// The value of one metric series, named with its labels (0 if absent).
async fn metric(client: &reqwest::Client, server: &ChildServer, series: &str) -> u64 {
    let text = get(client, format!("{}/metrics", server.base()))
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The value of `duality_sqlite_commits_total{flush="…"}` (0 if absent).
async fn commits(client: &reqwest::Client, server: &ChildServer, flush: &str) -> u64 {
    let series = format!("duality_sqlite_commits_total{{flush=\"{flush}\"}}");
    metric(client, server, &series).await
}

/// `POST path` with `body`; panics unless it answers `201`. Answers the
/// created item's `Location`, if it has one.
async fn create(
    client: &reqwest::Client,
    server: &ChildServer,
    path: &str,
    body: Value,
) -> Option<String> {
    let url = format!("{}{path}", server.base());
    let r = tokio::time::timeout(WAIT, client.post(&url).json(&body).send())
        .await
        .unwrap_or_else(|_| panic!("POST {url}: no answer within {WAIT:?}"))
        .unwrap();
    assert_eq!(r.status(), 201, "POST {url}");
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
}

/// Polls `GET path` until `ok` accepts its body.
async fn eventually(
    client: &reqwest::Client,
    server: &ChildServer,
    path: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body: Value = get(client, format!("{}{path}", server.base()))
            .await
            .json()
            .await
            .unwrap();
        if ok(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never became as expected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A database file in a temporary directory, and a client for servers on it.
struct Site {
    dir: tempfile::TempDir,
    db: PathBuf,
    client: reqwest::Client,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        Site {
            dir,
            db,
            client: reqwest::Client::new(),
        }
    }

    fn args(&self) -> [&str; 2] {
        ["--db", self.db.to_str().unwrap()]
    }

    /// `duality serve` with every service on the file, on a free port.
    async fn start(&self) -> ChildServer {
        ChildServer::start(&self.args(), self.dir.path()).await
    }

    /// The same, on the address a stopped server listened on.
    async fn restart_on(&self, addr: SocketAddr) -> ChildServer {
        ChildServer::restart_on(addr, &self.args(), self.dir.path()).await
    }

    /// A site whose server has taken one write: `POST path` with `body`.
    async fn with_one_write(path: &str, body: Value) -> (Site, ChildServer) {
        let site = Site::new();
        let server = site.start().await;
        create(&site.client, &server, path, body).await;
        (site, server)
    }
}

async fn epoch(client: &reqwest::Client, server: &ChildServer) -> String {
    let r = get(client, format!("{}/persons", server.base())).await;
    assert_eq!(r.status(), 200);
    header(&r, "x-epoch")
}

/// Makes the file look as if the process that last used it ran in another
/// boot of the machine; answers whether a boot was recorded at all (it is
/// while the file was not closed cleanly).
fn pretend_the_machine_restarted(db: &Path) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let changed = conn
        .execute(
            "UPDATE meta SET value = 'a-boot-before-a-power-cut' WHERE key = 'unflushed_boot'",
            [],
        )
        .unwrap();
    changed == 1
}

#[tokio::test]
async fn a_dashboard_change_commits_without_a_flush_of_its_own_while_backend_writes_wait_for_theirs()
 {
    let site = Site::new();
    let server = site.start().await;
    let client = site.client.clone();
    // Whatever the start composed, the dashboard is settled once it answers.
    eventually(&client, &server, "/aggregates/dashboard", |d| {
        d["customerCount"] == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (waited, deferred) = (
        commits(&client, &server, "waited").await,
        commits(&client, &server, "deferred").await,
    );

    create(
        &client,
        &server,
        "/customers/items",
        json!({"name": "Amy", "city": "Oslo", "country": "NO", "scoring": 7}),
    )
    .await;
    eventually(&client, &server, "/aggregates/dashboard", |d| {
        d["customerCount"] == 1
    })
    .await;

    assert_eq!(
        commits(&client, &server, "waited").await,
        waited + 1,
        "the customer's commit waits for its flush"
    );
    assert_eq!(
        commits(&client, &server, "deferred").await,
        deferred + 1,
        "the dashboard's commit does not wait for one of its own"
    );
}

/// Dashboard compositions this process did not write: equal to the last.
async fn unchanged_compositions(client: &reqwest::Client, server: &ChildServer) -> u64 {
    metric(
        client,
        server,
        "duality_dashboard_unchanged_compositions_total",
    )
    .await
}

#[tokio::test]
async fn a_backend_change_that_leaves_the_dashboard_as_it_was_commits_nothing_for_the_dashboard() {
    let site = Site::new();
    let server = site.start().await;
    let client = site.client.clone();
    let item = create(
        &client,
        &server,
        "/customers/items",
        json!({"name": "Amy", "city": "Oslo", "country": "NO", "scoring": 7}),
    )
    .await
    .expect("a created customer has a Location");
    eventually(&client, &server, "/aggregates/dashboard", |d| {
        d["customerCount"] == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = (
        commits(&client, &server, "waited").await,
        commits(&client, &server, "deferred").await,
        unchanged_compositions(&client, &server).await,
    );

    // The dashboard shows a customer's name and scoring, not the city.
    let r = client
        .patch(format!("{}{item}", server.base()))
        .json(&json!({"city": "Bergen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Composed once the composition is counted as unchanged, or stored.
    let deadline = tokio::time::Instant::now() + WAIT;
    while unchanged_compositions(&client, &server).await == before.2
        && commits(&client, &server, "deferred").await == before.1
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change was never composed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        (
            commits(&client, &server, "waited").await,
            commits(&client, &server, "deferred").await,
        ),
        (before.0 + 1, before.1),
        "only the customer's own commit"
    );
    let dashboard: Value = get(&client, format!("{}/aggregates/dashboard", server.base()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        dashboard["topCustomers"],
        json!([{"customerName": "Amy", "scoring": 7}])
    );
}

#[tokio::test]
async fn after_an_unclean_stop_the_epoch_stays_in_the_same_boot_and_changes_after_a_reboot() {
    let (site, mut server) =
        Site::with_one_write("/persons", json!({"name": "Ada", "city": "Oslo"})).await;
    let (client, db) = (site.client.clone(), site.db.clone());
    let first = epoch(&client, &server).await;

    // kill -9 loses nothing the page cache holds: same history.
    server.kill_9();
    let mut server = site.restart_on(server.addr).await;
    assert_eq!(epoch(&client, &server).await, first);

    // kill -9, then the machine restarts: commits that were not flushed
    // may be gone, so this is another history.
    server.kill_9();
    assert!(
        pretend_the_machine_restarted(&db),
        "a running server records its boot in the file"
    );
    let server = site.restart_on(server.addr).await;
    let second = epoch(&client, &server).await;
    assert_ne!(second, first, "a new epoch after a reboot");
    let persons: Value = get(&client, format!("{}/persons", server.base()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(persons.as_object().unwrap().len(), 1, "the data is kept");
    let old = get(
        &client,
        format!("{}/person-events?revision=1&epoch={first}", server.base()),
    )
    .await;
    assert_eq!(
        old.status(),
        410,
        "a consumer of the old history starts over"
    );
}

#[tokio::test]
async fn a_clean_stop_keeps_the_epoch_even_when_the_machine_restarts() {
    let (site, mut server) = Site::with_one_write(
        "/customers/items",
        json!({"name": "Bo", "city": "Lund", "country": "SE", "scoring": 3}),
    )
    .await;
    let (client, db) = (site.client.clone(), site.db.clone());
    let dashboard = eventually(&client, &server, "/aggregates/dashboard", |d| {
        d["customerCount"] == 1
    })
    .await;
    let first = epoch(&client, &server).await;

    server.terminate();
    assert!(
        !pretend_the_machine_restarted(&db),
        "a clean stop flushes everything and takes the boot's record away"
    );
    let server = site.start().await;
    assert_eq!(epoch(&client, &server).await, first);
    let r = get(&client, format!("{}/aggregates/dashboard", server.base())).await;
    assert_eq!(r.json::<Value>().await.unwrap(), dashboard);
}
