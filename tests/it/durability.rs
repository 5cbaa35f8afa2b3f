//! Durability (README, "Configuration"; docs/PROTOCOL.md): what a server wrote
//! to its SQLite file is what it serves after a restart, after a graceful
//! stop as after `kill -9`; revisions, ids and the epoch carry over, and
//! consumers resume their streams with `Last-Event-ID` without missing
//! anything. An in-memory database, which cannot carry anything over, gets
//! a new epoch on every start.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{
    ChildServer, Sse, TestServer, fold, header, locations_of, revision_of, spawn, spawn_default,
};
use duality::settings::Database;
use duality::store::sqlite::Location;
use duality_services::settings::Settings;
use serde_json::{Value, json};

/// Every await that talks to the network gets at most this long.
const WAIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

/// A server whose database is the SQLite file `db`.
fn on_file(db: &Path) -> Settings {
    let mut settings = Settings::ephemeral();
    settings.engine.db = Database::Sqlite(Location::File(db.to_path_buf()));
    settings
}

/// A snapshot as a consumer sees it: body, `X-Revision`, `X-Epoch`, `ETag`.
#[derive(Debug, PartialEq)]
struct Snap {
    body: Value,
    revision: u64,
    epoch: String,
    etag: String,
}

async fn snap(client: &reqwest::Client, url: String) -> Snap {
    let r = bounded(&url, client.get(&url).send()).await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    let revision = revision_of(&r);
    let epoch = header(&r, "x-epoch");
    let etag = header(&r, "etag");
    let body = bounded(&url, r.json::<Value>()).await.unwrap();
    Snap {
        body,
        revision,
        epoch,
        etag,
    }
}

async fn server_snap(server: &TestServer, path: &str) -> Snap {
    snap(&server.client, server.url(path)).await
}

/// Sends one write and checks its status and `X-Revision`.
async fn write(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
    revision: u64,
) -> reqwest::Response {
    let r = bounded(path, server.send(method, path, body)).await;
    assert_eq!(r.status(), status, "{method} {path}");
    assert_eq!(revision_of(&r), revision, "X-Revision of {method} {path}");
    r
}

/// Reads the stream from revision 1 up to `current` and folds it into `{}`;
/// panics unless the revisions are exactly 1, 2, ..., `current`.
async fn fold_from_the_start(
    client: &reqwest::Client,
    base: &str,
    stream: &str,
    current: u64,
) -> Value {
    let url = format!("{base}{stream}?revision=1");
    let r = bounded(&url, client.get(&url).send()).await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    let mut sse = Sse::new(r);
    let mut patches = Vec::with_capacity(current as usize);
    for expected in 1..=current {
        let (revision, patch) = sse.change().await;
        assert_eq!(
            revision, expected,
            "{stream}: revisions must be gapless from 1"
        );
        patches.push(patch);
    }
    fold(json!({}), &patches)
}

#[tokio::test]
async fn a_restart_on_the_same_file_keeps_views_revisions_epoch_and_ids_and_streams_resume_after_last_event_id()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");

    // The reference sequence of README "What it serves" on a fresh file.
    let first = spawn(on_file(&db)).await;
    let r = write(
        &first,
        "POST",
        "/persons",
        Some(json!({"name":"Ann","city":"Rome"})),
        201,
        1,
    )
    .await;
    assert_eq!(header(&r, "location"), "/persons/1");
    let r = write(
        &first,
        "POST",
        "/persons",
        Some(json!({"name":"Bob"})),
        201,
        2,
    )
    .await;
    assert_eq!(header(&r, "location"), "/persons/2");
    write(
        &first,
        "PATCH",
        "/persons/2",
        Some(json!({"city":"Rome"})),
        200,
        3,
    )
    .await;
    write(
        &first,
        "PATCH",
        "/persons/1",
        Some(json!({"city":null})),
        200,
        4,
    )
    .await;
    write(&first, "DELETE", "/persons/2", None, 204, 5).await;

    let persons = server_snap(&first, "/persons").await;
    let locations = server_snap(&first, "/locations").await;
    assert_eq!(persons.body, json!({"1":{"name":"Ann"}}));
    assert_eq!(persons.revision, 5);
    assert_eq!(locations.body, json!({}));
    assert_eq!(locations.revision, 4);
    assert!(!persons.epoch.is_empty());
    assert_eq!(locations.epoch, persons.epoch);

    bounded("stop", first.stop())
        .await
        .expect("the first server failed");

    // A new server on the same file serves the same history.
    let second = spawn(on_file(&db)).await;
    assert_eq!(server_snap(&second, "/persons").await, persons);
    assert_eq!(server_snap(&second, "/locations").await, locations);
    let ann = bounded("GET /persons/1", second.get_json("/persons/1")).await;
    assert_eq!(ann, json!({"id":1,"name":"Ann"}));
    let bob = bounded("GET /persons/2", second.get("/persons/2")).await;
    assert_eq!(bob.status(), 404, "a deleted person stays deleted");
    // A consumer's cached snapshot is still current.
    let cached = bounded(
        "conditional GET",
        second
            .client
            .get(second.url("/persons"))
            .header("if-none-match", &persons.etag)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(cached.status(), 304);

    // Consumers that had seen revision 2 resume after it and miss nothing.
    let mut person_events = bounded(
        "subscribe /person-events",
        second.subscribe("/person-events", &[("last-event-id", "2")]),
    )
    .await;
    let mut location_events = bounded(
        "subscribe /location-events",
        second.subscribe("/location-events", &[("last-event-id", "2")]),
    )
    .await;
    assert_eq!(
        person_events.change().await,
        (3, json!({"2":{"city":"Rome"}}))
    );
    assert_eq!(
        person_events.change().await,
        (4, json!({"1":{"city":null}}))
    );
    assert_eq!(person_events.change().await, (5, json!({"2":null})));
    assert_eq!(
        location_events.change().await,
        (3, json!({"Rome":{"total":1}}))
    );
    assert_eq!(location_events.change().await, (4, json!({"Rome":null})));

    // Ids are never reused: the counter survived the restart too.
    let r = write(
        &second,
        "POST",
        "/persons",
        Some(json!({"name":"Cid","city":"Oslo"})),
        201,
        6,
    )
    .await;
    assert_eq!(header(&r, "location"), "/persons/3");
    let cid = bounded("POST body", r.json::<Value>()).await.unwrap();
    assert_eq!(cid, json!({"id":3,"name":"Cid","city":"Oslo"}));
    assert_eq!(
        person_events.change().await,
        (6, json!({"3":{"name":"Cid","city":"Oslo"}}))
    );
    assert_eq!(
        location_events.change().await,
        (5, json!({"Oslo":{"total":1}}))
    );

    // The whole event log still folds to the snapshot.
    let base = second.url("");
    for (snapshot, stream) in [
        ("/persons", "/person-events"),
        ("/locations", "/location-events"),
    ] {
        let now = server_snap(&second, snapshot).await;
        assert_eq!(now.epoch, persons.epoch);
        let folded = fold_from_the_start(&second.client, &base, stream, now.revision).await;
        assert_eq!(folded, now.body, "{stream} folded vs GET {snapshot}");
    }
    assert_eq!(
        server_snap(&second, "/persons").await.body,
        json!({"1":{"name":"Ann"},"3":{"name":"Cid","city":"Oslo"}})
    );

    drop((person_events, location_events));
    bounded("stop", second.stop())
        .await
        .expect("the second server failed");
}

#[tokio::test]
async fn an_in_memory_database_gets_a_new_epoch_on_every_start() {
    let first = spawn_default().await;
    let before = server_snap(&first, "/persons").await;
    write(
        &first,
        "POST",
        "/persons",
        Some(json!({"name":"Ann"})),
        201,
        1,
    )
    .await;
    let after = server_snap(&first, "/persons").await;
    assert!(!before.epoch.is_empty());
    assert_eq!(after.epoch, before.epoch, "one server keeps one epoch");
    assert_eq!(after.revision, 1);
    bounded("stop", first.stop())
        .await
        .expect("the first server failed");

    let second = spawn_default().await;
    let fresh = server_snap(&second, "/persons").await;
    assert_eq!((fresh.body, fresh.revision), (json!({}), 0));
    assert_ne!(
        fresh.epoch, before.epoch,
        "a restarted :memory: database is another history"
    );
    // A consumer that still holds the old history's revisions is told so.
    let stale = bounded(
        "stream with the old epoch",
        second.get(&format!("/person-events?revision=2&epoch={}", before.epoch)),
    )
    .await;
    assert_eq!(stale.status(), 410);
    bounded("stop", second.stop())
        .await
        .expect("the second server failed");
}

// ---------------------------------------------------------------------------
// kill -9 of the real binary under concurrent writes
// ---------------------------------------------------------------------------

/// Starts `duality serve` on the SQLite file `db` and waits for `/healthz`.
async fn start_binary(db: &Path, dir: &Path, _client: &reqwest::Client) -> ChildServer {
    let db = db.to_str().expect("a UTF-8 temp path");
    ChildServer::start(
        &["--db", db, "--services", "persons", "--retention", "1h"],
        dir,
    )
    .await
}

/// Which person a write was about.
#[derive(Debug, Clone)]
enum Target {
    Id(u64),
    /// A `POST` whose answer never arrived: only the (unique) name is known.
    Unanswered(String),
}

/// One write and what it leaves the person as (`None`: deleted).
#[derive(Debug, Clone)]
struct Record {
    what: String,
    target: Target,
    after: Option<Value>,
    acknowledged: bool,
    revision: Option<u64>,
}

#[derive(Debug, Default)]
struct WriterLog {
    records: Vec<Record>,
    /// Anything a correct server must never do (a non-2xx answer, an
    /// answer that does not match the write, a failure before the kill).
    unexpected: Vec<String>,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const CITIES: [&str; 5] = ["Rome", "Paris", "Oslo", "Lima", "Kyoto"];

/// A random city, or none one time in six.
fn city(rng: &mut Rng) -> Option<&'static str> {
    let i = rng.below(CITIES.len() + 1);
    CITIES.get(i).copied()
}

/// Writes persons of its own (so no two writes to one person are ever in
/// flight together) until a request fails, recording every write and
/// whether it was acknowledged.
async fn writer(
    me: usize,
    seed: u64,
    client: reqwest::Client,
    base: String,
    killed: Arc<AtomicBool>,
) -> WriterLog {
    let mut rng = Rng(seed | 1);
    let mut log = WriterLog::default();
    let mut mine: Vec<(u64, Value)> = Vec::new();
    for n in 0.. {
        let choice = rng.below(10);
        let (method, path, body, target, after, slot) = if mine.is_empty() || choice < 4 {
            let name = format!("w{me}-{n}");
            let mut doc = json!({ "name": name });
            if let Some(c) = city(&mut rng) {
                doc["city"] = json!(c);
            }
            let body = doc.clone();
            (
                reqwest::Method::POST,
                "/persons".to_string(),
                Some(body),
                Target::Unanswered(name),
                Some(doc),
                None,
            )
        } else if choice < 8 {
            let k = rng.below(mine.len());
            let (id, old) = mine[k].clone();
            let patch = if rng.below(4) == 0 {
                json!({ "name": format!("w{me}-{n}-renamed") })
            } else {
                json!({ "city": city(&mut rng) })
            };
            let mut doc = old;
            json_patch::merge(&mut doc, &patch);
            (
                reqwest::Method::PATCH,
                format!("/persons/{id}"),
                Some(patch),
                Target::Id(id),
                Some(doc),
                Some(k),
            )
        } else {
            let k = rng.below(mine.len());
            let id = mine[k].0;
            (
                reqwest::Method::DELETE,
                format!("/persons/{id}"),
                None,
                Target::Id(id),
                None,
                Some(k),
            )
        };
        let what = format!(
            "{method} {path} {}",
            body.as_ref().map_or(String::new(), Value::to_string)
        );
        let mut request = client.request(method.clone(), format!("{base}{path}"));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let mut record = Record {
            what,
            target,
            after,
            acknowledged: false,
            revision: None,
        };
        let answered = match request.send().await {
            Ok(r) if r.status().is_success() => Some(r),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                log.unexpected
                    .push(format!("{}: {status} {text}", record.what));
                None
            }
            Err(e) => {
                if !killed.load(Ordering::SeqCst) {
                    log.unexpected
                        .push(format!("{} failed before the kill: {e}", record.what));
                }
                None
            }
        };
        let Some(r) = answered else {
            // Unacknowledged: it may or may not have committed.
            log.records.push(record);
            return log;
        };
        record.revision = r
            .headers()
            .get("x-revision")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if method == reqwest::Method::POST {
            // The id is in the body; without it the write stays "unanswered".
            let Ok(person) = r.json::<Value>().await else {
                log.records.push(record);
                return log;
            };
            let id = person["id"].as_u64().unwrap_or(0);
            let mut expected = record.after.clone().unwrap();
            expected["id"] = json!(id);
            if id == 0 || person != expected {
                log.unexpected
                    .push(format!("{} answered {person}", record.what));
            }
            record.target = Target::Id(id);
            mine.push((id, record.after.clone().unwrap()));
        } else {
            let k = slot.unwrap();
            match &record.after {
                Some(doc) => mine[k].1 = doc.clone(),
                None => {
                    mine.swap_remove(k);
                }
            }
        }
        record.acknowledged = true;
        log.records.push(record);
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_the_event_log_folds_to_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duality.db");
    let client = reqwest::Client::new();

    let mut server = start_binary(&db, dir.path(), &client).await;
    let epoch = snap(&client, format!("{}/persons", server.base()))
        .await
        .epoch;

    // Load: 8 writers, each on its own persons, for about a second.
    let killed = Arc::new(AtomicBool::new(false));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("writer seed {seed}");
    let writer_client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let writers: Vec<_> = (0..8)
        .map(|me| {
            let seed = seed.wrapping_add((me as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            tokio::spawn(writer(
                me,
                seed,
                writer_client.clone(),
                server.base(),
                Arc::clone(&killed),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    killed.store(true, Ordering::SeqCst);
    server.kill_9();

    let mut logs = Vec::new();
    for w in writers {
        logs.push(
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a writer hung")
                .unwrap(),
        );
    }
    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    assert!(
        unexpected.is_empty(),
        "the server misbehaved under load: {unexpected:#?}"
    );
    let acknowledged = logs
        .iter()
        .flat_map(|l| &l.records)
        .filter(|r| r.acknowledged)
        .count();
    let in_flight = logs
        .iter()
        .flat_map(|l| &l.records)
        .filter(|r| !r.acknowledged)
        .count();
    eprintln!("{acknowledged} acknowledged writes, {in_flight} in flight at the kill");
    assert!(
        acknowledged >= 20,
        "too little load to prove anything: {acknowledged} writes"
    );

    // Restart on the same file.
    drop(server);
    let server = start_binary(&db, dir.path(), &client).await;
    let base = server.base();
    let persons = snap(&client, format!("{base}/persons")).await;
    let locations = snap(&client, format!("{base}/locations")).await;
    assert_eq!(
        persons.epoch, epoch,
        "the epoch belongs to the file and survives"
    );
    assert_eq!(locations.epoch, epoch);
    let view = persons
        .body
        .as_object()
        .expect("the persons view is an object");

    // Each person is as its last acknowledged write left it, or as the one
    // write still in flight at the kill left it (that one may or may not
    // have committed).
    #[derive(Default)]
    struct Expect {
        acknowledged: Option<Value>,
        in_flight: Option<Option<Value>>,
        last: String,
    }
    let mut expect: BTreeMap<u64, Expect> = BTreeMap::new();
    let mut unanswered_posts: HashMap<String, Value> = HashMap::new();
    let mut highest_revision = 0;
    for record in logs.iter().flat_map(|l| &l.records) {
        if record.acknowledged {
            highest_revision = highest_revision.max(
                record
                    .revision
                    .expect("acknowledged writes carry X-Revision"),
            );
        }
        match &record.target {
            Target::Id(id) => {
                let e = expect.entry(*id).or_default();
                if record.acknowledged {
                    e.acknowledged = record.after.clone();
                    e.last = record.what.clone();
                } else {
                    e.in_flight = Some(record.after.clone());
                }
            }
            Target::Unanswered(name) => {
                unanswered_posts.insert(name.clone(), record.after.clone().unwrap());
            }
        }
    }
    assert!(
        persons.revision >= highest_revision,
        "an acknowledged write had revision {highest_revision}, the restarted server is at {}",
        persons.revision
    );
    for (id, e) in &expect {
        let actual = view.get(&id.to_string()).cloned();
        let ok = actual == e.acknowledged || e.in_flight.as_ref().is_some_and(|f| actual == *f);
        assert!(
            ok,
            "person {id} is {actual:?} after the restart; its last acknowledged write ({}) left it {:?}, \
             the write in flight would leave it {:?}",
            e.last, e.acknowledged, e.in_flight
        );
    }
    // Persons nobody was told about can only be POSTs in flight at the kill.
    for (key, person) in view {
        let id: u64 = key.parse().expect("person keys are ids");
        if expect.contains_key(&id) {
            continue;
        }
        let name = person["name"].as_str().unwrap_or_default();
        let posted = unanswered_posts.remove(name);
        assert_eq!(
            posted.as_ref(),
            Some(person),
            "person {id} = {person} was never written (or twice)"
        );
    }

    // The event logs fold to the snapshots, revisions gapless from 1.
    let folded = fold_from_the_start(&client, &base, "/person-events", persons.revision).await;
    assert_eq!(
        folded, persons.body,
        "persons folded from /person-events vs GET /persons"
    );
    let folded = fold_from_the_start(&client, &base, "/location-events", locations.revision).await;
    assert_eq!(
        folded, locations.body,
        "locations folded from /location-events vs GET /locations"
    );
    assert_eq!(
        locations.body,
        locations_of(&persons.body),
        "locations must count the persons by city"
    );

    // A consumer resumes across the crash, and ids are not reused.
    let last = persons.revision.to_string();
    let stream = bounded(
        "subscribe /person-events",
        client
            .get(format!("{base}/person-events"))
            .header("last-event-id", &last)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = Sse::new(stream);
    let r = bounded(
        "POST after restart",
        client
            .post(format!("{base}/persons"))
            .json(&json!({"name":"after"}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(revision_of(&r), persons.revision + 1);
    let created = bounded("POST body", r.json::<Value>()).await.unwrap();
    let id = created["id"].as_u64().unwrap();
    let highest_id = expect
        .keys()
        .copied()
        .chain(view.keys().map(|k| k.parse::<u64>().unwrap()))
        .max()
        .unwrap_or(0);
    assert!(
        id > highest_id,
        "new id {id} reuses or precedes id {highest_id}"
    );
    assert_eq!(
        stream.change().await,
        (
            persons.revision + 1,
            json!({ id.to_string(): {"name":"after"} })
        )
    );
}

/// Committed writes are copied from the write-ahead log into the database
/// file within moments, by a checkpoint beside the writer, long before the
/// log reaches the thousand frames at which SQLite's own checkpoint (the
/// one that stalls a commit) would run.
#[tokio::test]
async fn committed_writes_reach_the_database_file_itself_within_moments() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wal.db");
    let server = spawn(on_file(&db)).await;
    for i in 0..20 {
        let r = server
            .post("/persons", json!({"name": format!("P{i}")}))
            .await;
        assert_eq!(r.status(), 201);
    }
    // `immutable` reads the database file alone, ignoring the log.
    let in_file = || -> i64 {
        let url = format!("file:{}?immutable=1", db.display());
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let Ok(conn) = rusqlite::Connection::open_with_flags(&url, flags) else {
            return -1;
        };
        conn.query_row(
            "SELECT COUNT(*) FROM docs WHERE view = 'persons'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(-1)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = in_file();
    while seen != 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = in_file();
    }
    assert_eq!(seen, 20, "the database file holds {seen} of 20 persons");
    server.stop().await.unwrap();
}

/// A server started through `faketime` runs as `faketime`'s child. The
/// harness must stop both, or every test with a shifted clock leaves a
/// server behind, holding its port and its database.
#[tokio::test]
async fn a_server_with_a_shifted_clock_is_gone_once_the_test_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shifted.db");
    let args = ["--db", db.to_str().unwrap()];
    let server = ChildServer::start_with_clock(Some("-1h"), &args, dir.path()).await;
    let addr = server.addr;
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(server);
    let mut gone = false;
    for _ in 0..40 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "something still listens on {addr} after the server was dropped"
    );
}
