//! README, "Deployment: N processes on PostgreSQL": several `duality`
//! processes (the real binary) on one PostgreSQL database, every one serving
//! every stream with the SQLite store's guarantees: gapless, ordered
//! revisions on every process, folded patches equal to the snapshot,
//! derived views exact, the same epoch and ETags everywhere; a lost LISTEN
//! connection is caught up; a bad URL is a one-line error at start.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::common::{ChildServer, Sse, fold, header, locations_of};
use serde_json::{Value, json};

/// Every step that talks to the network gets at most this long.
const WAIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// `duality serve --db URL ARGS` as a child process.
async fn serve(url: &str, dir: &Path, args: &[&str]) -> ChildServer {
    let mut all = vec!["--db", url];
    all.extend_from_slice(args);
    ChildServer::start(&all, dir).await
}

/// A snapshot as a consumer sees it.
#[derive(Debug, PartialEq)]
struct Snap {
    body: Value,
    revision: u64,
    epoch: String,
    etag: String,
}

async fn snap(http: &reqwest::Client, base: &str, path: &str) -> Snap {
    let r = bounded(path, http.get(format!("{base}{path}")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    let revision = header(&r, "x-revision").parse().unwrap();
    let epoch = header(&r, "x-epoch");
    let etag = header(&r, "etag");
    Snap {
        body: r.json().await.unwrap(),
        revision,
        epoch,
        etag,
    }
}

/// Polls until the snapshot reflects at least `revision`.
async fn snap_at(http: &reqwest::Client, base: &str, path: &str, revision: u64) -> Snap {
    bounded(&format!("{base}{path} reaching {revision}"), async {
        loop {
            let s = snap(http, base, path).await;
            if s.revision >= revision {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn follow(http: &reqwest::Client, base: &str, stream: &str) -> Sse {
    let url = format!("{base}{stream}?revision=1");
    let r = bounded(&url, http.get(&url).send()).await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    Sse::new(r)
}

/// Reads changes until `last`; panics unless they are exactly 1..=last.
async fn read_until(sse: &mut Sse, last: u64, what: &str) -> Vec<Value> {
    let mut patches = Vec::new();
    for expected in 1..=last {
        let (revision, patch) = sse.change().await;
        assert_eq!(revision, expected, "{what}: revisions gapless and in order");
        patches.push(patch);
    }
    patches
}

/// One writer: creates persons, moves some, deletes some; answers the
/// `X-Revision` of every write (each one changes `persons`).
async fn writer(http: reqwest::Client, base: String, w: usize, n: usize) -> Vec<u64> {
    let cities = ["Rome", "Oslo", "Lima", "Pune"];
    let mut revisions = Vec::new();
    let mut mine = Vec::new();
    for i in 0..n {
        let body = json!({"name": format!("W{w}-{i}"), "city": cities[(w + i) % 4]});
        let r = http
            .post(format!("{base}/persons"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        revisions.push(header(&r, "x-revision").parse().unwrap());
        let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        mine.push(id);
        if i % 4 == 3 {
            let moved = mine[i - 1];
            let r = http
                .patch(format!("{base}/persons/{moved}"))
                .json(&json!({"city": "Bern"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            revisions.push(header(&r, "x-revision").parse().unwrap());
        }
        if i % 6 == 5 {
            let gone = mine[i - 2];
            let r = http
                .delete(format!("{base}/persons/{gone}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
            revisions.push(header(&r, "x-revision").parse().unwrap());
        }
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_with_concurrent_writers_serve_the_same_gapless_streams_and_views() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&url, dir.path(), &[]).await;
    let b = serve(&url, dir.path(), &[]).await;
    let http = client();
    let (base_a, base_b) = (a.base(), b.base());

    // A follower of each stream on each process, from revision 1.
    let mut persons_a = follow(&http, &base_a, "/person-events").await;
    let mut persons_b = follow(&http, &base_b, "/person-events").await;
    let mut locations_a = follow(&http, &base_a, "/location-events").await;
    let mut locations_b = follow(&http, &base_b, "/location-events").await;

    // Concurrent writers on both processes.
    const WRITERS: usize = 4;
    const EACH: usize = 24;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let base = if w % 2 == 0 { &base_a } else { &base_b };
        tasks.push(tokio::spawn(writer(http.clone(), base.clone(), w, EACH)));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.extend(bounded("writers", t).await.unwrap());
    }
    revisions.sort();
    let last = revisions.len() as u64;
    assert_eq!(
        revisions,
        (1..=last).collect::<Vec<_>>(),
        "every write got its own persons revision, with no gap"
    );

    let persons = snap_at(&http, &base_a, "/persons", last).await;
    assert_eq!(persons.revision, last);
    assert_eq!(snap_at(&http, &base_b, "/persons", last).await, persons);
    let locations = snap(&http, &base_a, "/locations").await;
    assert_eq!(
        snap_at(&http, &base_b, "/locations", locations.revision).await,
        locations,
        "snapshots, revisions, epochs and ETags agree across processes"
    );
    assert_eq!(
        locations.body,
        locations_of(&persons.body),
        "locations exact"
    );

    for (sse, what) in [
        (&mut persons_a, "persons on A"),
        (&mut persons_b, "persons on B"),
    ] {
        let patches = bounded(what, read_until(sse, last, what)).await;
        assert_eq!(fold(json!({}), &patches), persons.body, "{what}");
    }
    for (sse, what) in [
        (&mut locations_a, "locations on A"),
        (&mut locations_b, "locations on B"),
    ] {
        let patches = bounded(what, read_until(sse, locations.revision, what)).await;
        assert_eq!(fold(json!({}), &patches), locations.body, "{what}");
    }
    // Nothing more: no event was delivered twice.
    assert!(persons_a.quiet_for(Duration::from_millis(300)).await);
    assert!(persons_b.quiet_for(Duration::from_millis(100)).await);

    // A consumer that read the snapshot on A resumes its stream on B.
    let r = bounded(
        "resume on B",
        http.get(format!("{base_b}/person-events"))
            .header("Last-Event-ID", (last - 2).to_string())
            .send(),
    )
    .await
    .unwrap();
    let mut resumed = Sse::new(r);
    assert_eq!(resumed.change().await.0, last - 1);
    assert_eq!(resumed.change().await.0, last);
    // An ETag from one process is current on the other.
    let r = http
        .get(format!("{base_b}/persons"))
        .header("If-None-Match", &persons.etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
}

/// Waits until `n` processes LISTEN on `db`.
async fn listening(db: &str, n: usize) {
    bounded("waiting for LISTEN connections", async {
        loop {
            let rows = crate::common::pg::shared()
                .sql(&format!(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE datname = '{db}' AND query LIKE 'LISTEN%'"
                ))
                .await;
            let count = rows
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            if count >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Terminates the LISTEN connections of `db` (as a failover or a network
/// cut would); answers how many were terminated.
async fn terminate_listeners(db: &str) -> usize {
    let rows = crate::common::pg::shared()
        .sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND query LIKE 'LISTEN%'"
        ))
        .await;
    rows.iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count()
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_that_loses_its_listen_connection_reconnects_and_misses_nothing() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&url, dir.path(), &[]).await;
    let b = serve(&url, dir.path(), &[]).await;
    let http = client();
    let (base_a, base_b) = (a.base(), b.base());
    let mut on_a = follow(&http, &base_a, "/person-events").await;

    let post = |base: String, name: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/persons"))
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            header(&r, "x-revision").parse::<u64>().unwrap()
        }
    };
    assert_eq!(post(base_b.clone(), "before".into()).await, 1);
    assert_eq!(on_a.change().await.0, 1, "B's write reaches A's stream");

    let mut expected = 1;
    for round in 0..3 {
        listening(db_name(&url), 2).await;
        let terminated = terminate_listeners(db_name(&url)).await;
        assert!(terminated >= 2, "both processes LISTEN: {terminated}");
        // Written while A's listener is away: A catches up from the outbox.
        for i in 0..5 {
            expected += 1;
            let r = post(base_b.clone(), format!("r{round}-{i}")).await;
            assert_eq!(r, expected);
        }
        for want in (expected - 4)..=expected {
            let (revision, patch) = bounded("catch-up on A", on_a.change()).await;
            assert_eq!(revision, want, "in order, none missed");
            assert!(patch.as_object().unwrap().contains_key(&want.to_string()));
        }
    }
    // And live delivery works again afterwards, both ways.
    let mut on_b = follow(&http, &base_b, "/person-events").await;
    for want in 1..=expected {
        assert_eq!(on_b.change().await.0, want);
    }
    expected += 1;
    assert_eq!(post(base_a.clone(), "after".into()).await, expected);
    assert_eq!(bounded("live on B", on_b.change()).await.0, expected);
    assert_eq!(bounded("live on A", on_a.change()).await.0, expected);
    let s = snap_at(&http, &base_b, "/persons", expected).await;
    assert_eq!(s, snap(&http, &base_a, "/persons").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aggregates_service_composes_the_dashboard_on_every_process() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&url, dir.path(), &[]).await;
    let b = serve(&url, dir.path(), &[]).await;
    let http = client();
    let (base_a, base_b) = (a.base(), b.base());
    let mut dashboard_b = follow(&http, &base_b, "/aggregates/dashboard-events").await;

    for (i, (name, scoring)) in [("Ada", 9), ("Bo", 4), ("Cy", 7)].into_iter().enumerate() {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        let r = http
            .post(format!("{base}/customers/items"))
            .json(&json!({"name": name, "city": "Rome", "country": "IT", "scoring": scoring}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    for (i, (customer, amount)) in [("Bo", 10.0), ("Bo", 5.5), ("Cy", 100.0)]
        .into_iter()
        .enumerate()
    {
        let base = if i % 2 == 0 { &base_b } else { &base_a };
        let r = http
            .post(format!("{base}/incidents/items"))
            .json(&json!({"amount": amount, "customerName": customer, "category": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let expected = json!({
        "customerCount": 3,
        "topCustomers": [
            {"customerName": "Ada", "scoring": 9},
            {"customerName": "Cy", "scoring": 7},
            {"customerName": "Bo", "scoring": 4}],
        "customersWithMostIncidents": [
            {"customerName": "Bo", "numberOfIncidents": 2},
            {"customerName": "Cy", "numberOfIncidents": 1}],
        "customersWithHighestIncidentVolume": [
            {"customerName": "Cy", "incidentVolume": 100.0},
            {"customerName": "Bo", "incidentVolume": 15.5}],
    });
    // Both processes settle on the same dashboard, at the same revision.
    let settled = bounded("the dashboard settles", async {
        loop {
            let (sa, sb) = (
                snap(&http, &base_a, "/aggregates/dashboard").await,
                snap(&http, &base_b, "/aggregates/dashboard").await,
            );
            if sa.body == expected && sa == sb {
                return sa;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let patches = bounded(
        "dashboard events on B",
        read_until(&mut dashboard_b, settled.revision, "dashboard on B"),
    )
    .await;
    assert_eq!(fold(json!({}), &patches), expected);
}

/// A customer's incident volume on a folded dashboard (0 if not listed).
fn volume_of(dashboard: &Value, customer: &str) -> f64 {
    dashboard["customersWithHighestIncidentVolume"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["customerName"] == customer)
        .map_or(0.0, |e| e["incidentVolume"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_composing_processes_never_move_a_customers_incident_volume_backwards() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&url, dir.path(), &[]).await;
    let b = serve(&url, dir.path(), &[]).await;
    let http = client();
    let r = http
        .post(format!("{}/customers/items", a.base()))
        .json(&json!({"name": "Acme", "city": "Rome", "country": "IT", "scoring": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut dashboards = [
        follow(&http, &a.base(), "/aggregates/dashboard-events").await,
        follow(&http, &b.base(), "/aggregates/dashboard-events").await,
    ];

    // Concurrent writers on both processes, positive amounts only.
    const WRITERS: usize = 6;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (http, base) = (http.clone(), [a.base(), b.base()][w % 2].clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let amount = (1 + (w * EACH + i) % 7) as f64;
                let r = http
                    .post(format!("{base}/incidents/items"))
                    .json(&json!({"amount": amount, "customerName": "Acme", "category": "x"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        bounded("writers", t).await.unwrap();
    }
    let total: f64 = (0..WRITERS * EACH).map(|n| (1 + n % 7) as f64).sum();

    for (dashboard, process) in dashboards.iter_mut().zip(["A", "B"]) {
        let (mut folded, mut volume, mut revision) = (json!({}), 0.0, 0);
        let mut volumes = Vec::new();
        while volume < total {
            let e = bounded("the dashboard stream", dashboard.next())
                .await
                .expect("the dashboard stream ended");
            if e.event == "stale" || e.event == "fresh" {
                continue;
            }
            assert_eq!(e.event, "message", "{e:?}");
            let r: u64 = e.id.parse().unwrap();
            assert_eq!(r, revision + 1, "gapless on {process}");
            revision = r;
            let patch: Value = serde_json::from_str(&e.data).unwrap();
            json_patch::merge(&mut folded, &patch);
            let now = volume_of(&folded, "Acme");
            volumes.push(now);
            assert!(
                now >= volume,
                "the volume went from {volume} back to {now} on {process}: {volumes:?}"
            );
            volume = now;
        }
        assert_eq!(volume, total, "{process}");
    }
}

/// Every view's outbox in the database at `url`, read directly:
/// (view, oldest, newest, how many events, the view's current revision).
async fn outboxes(url: &str) -> Vec<(String, Option<i64>, Option<i64>, i64, i64)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT v.view, MIN(e.revision), MAX(e.revision), COUNT(e.revision), v.revision
             FROM views AS v LEFT JOIN events AS e ON e.view = v.view
             GROUP BY v.view, v.revision ORDER BY v.view",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_in_two_processes_whose_clocks_differ_by_an_hour_deletes_only_prefixes() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    // Trims every 5 s; an hour-old event is long expired, a new one is not.
    let args = ["--db", url.as_str(), "--retention", "20s"];
    let behind = ChildServer::start_with_clock(Some("-1h"), &args, dir.path()).await;
    let on_time = ChildServer::start(&args, dir.path()).await;
    let http = client();
    let post = |base: String, name: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/persons"))
                .json(&json!({"name": name, "city": "Oslo"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    // The process an hour behind writes first, then both take turns: to
    // the process on time, every other event looks an hour old.
    for i in 0..5 {
        post(behind.base(), format!("B{i}")).await;
    }
    for i in 0..10 {
        post(on_time.base(), format!("T{i}")).await;
        post(behind.base(), format!("B{}", i + 5)).await;
    }
    // Retention runs in both: the leading old-looking events go.
    bounded("the first trim", async {
        while outboxes(&url)
            .await
            .iter()
            .all(|o| o.1.is_none_or(|oldest| oldest <= 5))
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let all = outboxes(&url).await;
    for (view, oldest, newest, count, current) in &all {
        if let (Some(oldest), Some(newest)) = (oldest, newest) {
            assert_eq!(
                (*count, *newest),
                (newest - oldest + 1, *current),
                "{view}: a contiguous range ending at the current revision: {all:?}"
            );
        }
    }
    let persons = all.iter().find(|o| o.0 == "persons").unwrap();
    assert_eq!(persons.4, 25);
    assert!(persons.3 > 0, "the events on time are kept: {all:?}");
    // And each process streams what is left without a gap.
    for server in [&on_time, &behind] {
        let r = bounded(
            "stream",
            http.get(format!("{}/person-events", server.base())).send(),
        )
        .await
        .unwrap();
        let mut sse = Sse::new(r);
        let first = bounded("a change", sse.change()).await.0;
        assert!(first >= persons.1.unwrap() as u64);
        for want in first + 1..=25 {
            assert_eq!(bounded("a change", sse.change()).await.0, want);
        }
    }
}

/// `duality serve --db URL` with nothing else; answers (success, stderr).
fn serve_and_exit(url: &str) -> (bool, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            url,
        ])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("duality --db {url} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_unreachable_database_url_is_refused_at_start_with_one_line() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let missing_db = crate::common::pg::shared().url("no_such_database");
    // Each error names where it tried (without a password) or what is wrong.
    let cases = [
        (
            format!("postgres://duality:secret@127.0.0.1:{refused}/x"),
            format!("127.0.0.1:{refused}"),
        ),
        ("postgres://bad".to_string(), "bad".to_string()),
        (
            "postgres://u@h:notaport/db".to_string(),
            "invalid".to_string(),
        ),
        (missing_db, "does not exist".to_string()),
    ];
    for (url, mentions) in cases {
        let (ok, err) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || serve_and_exit(&url)
        })
        .await
        .unwrap();
        assert!(!ok, "{url} must be refused");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line for {url}: {err}"
        );
        assert!(err.contains("database"), "{err}");
        assert!(err.to_lowercase().contains(&mentions), "{url}: {err}");
        assert!(!err.contains("secret"), "no password in {err}");
    }
}
