//! The Node.js example consumer (`examples/node-consumer/`, README, "Consumers") run
//! against a real server: its read models must end equal to the snapshots.
//!
//! Needs `node` (18 or later) and `npm`; without them the tests fail and say
//! so (they never skip). `npm ci` runs here when the example's
//! `node_modules` is missing or older than its lock file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{ChildServer, TestServer, spawn_default};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node-consumer")
}

/// Fails with a clear message unless node ≥ 18 and npm are there; then
/// installs the example's npm packages if needed.
async fn prepare() {
    crate::common::node::require("the Node consumer tests").await;
    crate::common::node::npm_ci(&example(), "the Node consumer tests").await;
}

/// One line the consumer printed.
#[derive(Debug, Clone)]
struct Line {
    revision: u64,
    from: String,
    model: Value,
}

/// `node index.js ARGS`, its stdout parsed line by line.
struct Consumer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    /// Every line, by view.
    seen: BTreeMap<String, Vec<Line>>,
}

impl Consumer {
    fn start(args: &[&str]) -> Consumer {
        let mut child = Command::new("node")
            .arg("index.js")
            .args(args)
            .current_dir(example())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node index.js");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Consumer {
            child,
            lines,
            stderr,
            seen: BTreeMap::new(),
        }
    }

    fn last(&self, view: &str) -> Option<&Line> {
        self.seen.get(view).and_then(|l| l.last())
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (view, lines) in &self.seen {
            for l in lines {
                out.push_str(&format!("{view} r{} {} {}\n", l.revision, l.from, l.model));
            }
        }
        format!(
            "--- stdout ---\n{out}--- stderr ---\n{}",
            self.stderr.lock().unwrap()
        )
    }

    /// Reads lines until `done(self)` holds; fails with all output after
    /// `wait` or if the consumer ends first.
    async fn until(&mut self, what: &str, wait: Duration, done: impl Fn(&Consumer) -> bool) {
        let deadline = tokio::time::Instant::now() + wait;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(text))) => self.record(&text),
                outcome => {
                    tokio::time::sleep(Duration::from_millis(100)).await; // let stderr arrive
                    panic!(
                        "waiting for {what}: {}\n{}",
                        match outcome {
                            Err(_) => "timed out",
                            _ => "the consumer ended",
                        },
                        self.report()
                    );
                }
            }
        }
    }

    fn record(&mut self, text: &str) {
        let line: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {text}\n{}", self.report()));
        let view = line["view"].as_str().expect("a view").to_string();
        self.seen.entry(view).or_default().push(Line {
            revision: line["revision"].as_u64().expect("a revision"),
            from: line["from"].as_str().expect("from").to_string(),
            model: line["model"].clone(),
        });
    }

    /// Reads the rest of stdout and waits for the exit.
    async fn exit(&mut self) -> ExitStatus {
        let wait = Duration::from_secs(30);
        let status = tokio::time::timeout(wait, async {
            while let Ok(Some(text)) = self.lines.next_line().await {
                self.record(&text);
            }
            self.child.wait().await.unwrap()
        })
        .await;
        status.unwrap_or_else(|_| {
            panic!(
                "the consumer did not exit within {wait:?}\n{}",
                self.report()
            )
        })
    }

    /// Each change line continues its view's revision by exactly one.
    fn assert_gapless(&self) {
        for (view, lines) in &self.seen {
            for pair in lines.windows(2) {
                if pair[1].from == "patch" {
                    assert_eq!(
                        pair[1].revision,
                        pair[0].revision + 1,
                        "{view}: a patch line that does not follow the one before\n{}",
                        self.report()
                    );
                }
            }
        }
    }
}

async fn snapshot(client: &reqwest::Client, base: &str, path: &str) -> (u64, Value) {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    let revision = r.headers()["x-revision"].to_str().unwrap().parse().unwrap();
    (revision, r.json().await.unwrap())
}

/// Waits until the consumer's last line for each view is at the snapshot's
/// revision, then asserts its model is the snapshot.
async fn assert_caught_up(consumer: &mut Consumer, client: &reqwest::Client, base: &str) {
    for (view, path) in [("persons", "/persons"), ("locations", "/locations")] {
        let (revision, body) = snapshot(client, base, path).await;
        consumer
            .until(
                &format!("{view} at revision {revision}"),
                Duration::from_secs(20),
                |c| c.last(view).is_some_and(|l| l.revision == revision),
            )
            .await;
        assert_eq!(
            consumer.last(view).unwrap().model,
            body,
            "the consumer's {view} read model differs from GET {path}\n{}",
            consumer.report()
        );
    }
}

async fn both_bootstrapped(consumer: &mut Consumer) {
    consumer
        .until("both snapshots", Duration::from_secs(20), |c| {
            c.last("persons").is_some() && c.last("locations").is_some()
        })
        .await;
}

async fn write(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = server.send(method, path, body).await;
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_follows_the_reference_sequence_and_exits_at_the_revisions_it_was_given() {
    prepare().await;
    let server = spawn_default().await;
    let base = server.url("");
    let mut consumer = Consumer::start(&[
        &base,
        "--until-revision",
        "persons=5,locations=4",
        "--seconds",
        "30",
    ]);
    both_bootstrapped(&mut consumer).await;

    // The reference sequence of README "What it serves".
    write(
        &server,
        "POST",
        "/persons",
        Some(json!({"name":"Ann","city":"Rome"})),
    )
    .await;
    write(&server, "POST", "/persons", Some(json!({"name":"Bob"}))).await;
    write(&server, "PATCH", "/persons/2", Some(json!({"city":"Rome"}))).await;
    write(&server, "PATCH", "/persons/1", Some(json!({"city":null}))).await;
    write(&server, "DELETE", "/persons/2", None).await;

    let status = consumer.exit().await;
    assert!(
        status.success(),
        "the consumer exited with {status}\n{}",
        consumer.report()
    );
    consumer.assert_gapless();
    let persons = consumer.last("persons").unwrap().clone();
    let locations = consumer.last("locations").unwrap().clone();
    assert_eq!(
        (persons.revision, persons.model),
        (5, json!({"1":{"name":"Ann"}}))
    );
    assert_eq!((locations.revision, locations.model), (4, json!({})));
    // One line per event: a snapshot line and 5 and 4 patch lines.
    assert_eq!(consumer.seen["persons"].len(), 6, "{}", consumer.report());
    assert_eq!(consumer.seen["locations"].len(), 5, "{}", consumer.report());
    assert_eq!(
        server.get_json("/persons").await,
        json!({"1":{"name":"Ann"}})
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_read_models_equal_the_snapshots_after_concurrent_writes() {
    prepare().await;
    let server = Arc::new(spawn_default().await);
    let base = server.url("");
    // Some state before the consumer starts: it must come from the snapshot.
    for i in 0..10 {
        let city = ["Rome", "Oslo", "Lima"][i % 3];
        write(
            &server,
            "POST",
            "/persons",
            Some(json!({"name": format!("early {i}"), "city": city})),
        )
        .await;
    }
    let mut consumer = Consumer::start(&[&base, "--seconds", "60"]);
    both_bootstrapped(&mut consumer).await;
    assert_eq!(consumer.last("persons").unwrap().from, "snapshot");
    assert_eq!(consumer.last("persons").unwrap().revision, 10);

    // Four writers at once: creates, moves (among them to cities whose
    // names are keys json-merge-patch refuses), city removals, deletes.
    let cities = ["Rome", "Oslo", "Lima", "Kyiv", "constructor", "__proto__"];
    let mut writers = Vec::new();
    for w in 0..4usize {
        let server = server.clone();
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..15usize {
                let city = cities[(w + i) % cities.len()];
                match i % 5 {
                    0 | 1 => {
                        let p = write(
                            &server,
                            "POST",
                            "/persons",
                            Some(json!({"name": format!("w{w} p{i}"), "city": city})),
                        )
                        .await;
                        mine.push(p["id"].as_u64().unwrap());
                    }
                    2 => {
                        let id = mine[i % mine.len()];
                        write(
                            &server,
                            "PATCH",
                            &format!("/persons/{id}"),
                            Some(json!({"city": city})),
                        )
                        .await;
                    }
                    3 => {
                        let id = mine[0];
                        write(
                            &server,
                            "PATCH",
                            &format!("/persons/{id}"),
                            Some(json!({"city": null, "name": format!("w{w} renamed {i}")})),
                        )
                        .await;
                    }
                    _ => {
                        let id = mine.remove(0);
                        write(&server, "DELETE", &format!("/persons/{id}"), None).await;
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    assert_caught_up(&mut consumer, &server.client, &base).await;
    consumer.assert_gapless();
    let locations = consumer.last("locations").unwrap().model.clone();
    assert!(
        locations.get("constructor").is_some() || locations.get("__proto__").is_some(),
        "the writes were meant to leave a guarded key in the locations view: {locations}"
    );
    drop(consumer);
    Arc::try_unwrap(server).ok().unwrap().stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_starts_over_from_the_snapshot_when_the_server_returns_with_a_new_history() {
    prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--db", ":memory:", "--services", "persons"];
    let server = ChildServer::start(&args, dir.path()).await;
    let (addr, base) = (server.addr, server.base());
    let client = reqwest::Client::new();
    let post = |name: &'static str, city: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .post(format!("{base}/persons"))
                .json(&json!({"name": name, "city": city}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };

    let mut consumer = Consumer::start(&[&base, "--seconds", "60"]);
    both_bootstrapped(&mut consumer).await;
    post("Ann", "Rome").await;
    post("Cyd", "Rome").await;
    assert_caught_up(&mut consumer, &client, &base).await;

    // kill -9, then a new in-memory database on the same address: a new
    // epoch, and revisions that start over (Bob gets id 1 and revision 1).
    let lines_before = consumer.seen["persons"].len();
    let mut server = server;
    server.kill_9();
    let _server = ChildServer::restart_on(addr, &args, dir.path()).await;
    post("Bob", "Oslo").await;

    consumer
        .until("Bob from the new history", Duration::from_secs(20), |c| {
            c.last("persons")
                .is_some_and(|l| l.model == json!({"1": {"name": "Bob", "city": "Oslo"}}))
        })
        .await;
    assert!(
        consumer.seen["persons"][lines_before..]
            .iter()
            .any(|l| l.from == "snapshot"),
        "the consumer did not start over from a snapshot\n{}",
        consumer.report()
    );
    assert_caught_up(&mut consumer, &client, &base).await;
    // And it keeps following the new server.
    post("Dee", "Oslo").await;
    assert_caught_up(&mut consumer, &client, &base).await;
    assert_eq!(
        consumer.last("locations").unwrap().model,
        json!({"Oslo": {"total": 2}})
    );
    assert!(
        consumer.stderr.lock().unwrap().contains("starting over"),
        "{}",
        consumer.report()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_follows_filtered_views_whose_revisions_skip_and_moves_with_progress() {
    prepare().await;
    let server = spawn_default().await;
    let base = server.url("");
    for (name, city) in [("Ann", "Rome"), ("Bob", "Oslo"), ("Cy", "Rome")] {
        write(
            &server,
            "POST",
            "/persons",
            Some(json!({"name": name, "city": city})),
        )
        .await;
    }
    let persons = "/persons?key=1&key=2";
    let locations = r#"/locations?where={"total":1}"#;
    let mut consumer = Consumer::start(&[
        &base,
        persons,
        locations,
        "--until-revision",
        "persons=7,locations=6",
        "--seconds",
        "30",
    ]);
    both_bootstrapped(&mut consumer).await;
    let first = consumer.seen["persons"][0].clone();
    assert_eq!((first.revision, first.from.as_str()), (3, "snapshot"));
    assert_eq!(
        first.model,
        json!({"1": {"name": "Ann", "city": "Rome"}, "2": {"name": "Bob", "city": "Oslo"}})
    );
    assert_eq!(
        consumer.seen["locations"][0].model,
        json!({"Oslo": {"total": 1}})
    );

    // Persons: only 5 changes key 1 or 2. Locations with a total of 1:
    // 4 Rome enters and Oslo leaves, 5 Oslo and Lima enter, 6 Oslo leaves;
    // 7 (a person without a city) leaves locations alone.
    write(
        &server,
        "PATCH",
        "/persons/3",
        Some(json!({"city": "Oslo"})),
    )
    .await;
    write(
        &server,
        "PATCH",
        "/persons/2",
        Some(json!({"city": "Lima"})),
    )
    .await;
    write(&server, "DELETE", "/persons/3", None).await;
    write(&server, "POST", "/persons", Some(json!({"name": "Dee"}))).await;

    let status = consumer.exit().await;
    assert!(
        status.success(),
        "the consumer exited with {status}\n{}",
        consumer.report()
    );
    let changes = |view: &str| -> Vec<u64> {
        consumer.seen[view]
            .iter()
            .filter(|l| l.from == "patch")
            .map(|l| l.revision)
            .collect()
    };
    assert_eq!(changes("persons"), [5], "{}", consumer.report());
    assert_eq!(changes("locations"), [4, 5, 6], "{}", consumer.report());
    // Revision 7 changed no person shown: the stream's progress told it.
    let last = consumer.last("persons").unwrap().clone();
    assert_eq!(
        (last.revision, last.from.as_str()),
        (7, "progress"),
        "{}",
        consumer.report()
    );
    for line in &consumer.seen["persons"] {
        let keys: Vec<&String> = line.model.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["1", "2"], "{}", consumer.report());
    }
    for (view, path) in [("persons", persons), ("locations", locations)] {
        let (revision, body) = snapshot(&server.client, &base, path).await;
        let last = consumer.last(view).unwrap();
        assert_eq!(
            (last.revision, &last.model),
            (revision, &body),
            "{view}: GET {path}\n{}",
            consumer.report()
        );
    }
    let stderr = consumer.stderr.lock().unwrap().clone();
    assert!(stderr.contains("caught up at revision"), "{stderr}");
    assert!(!stderr.contains("starting over"), "{stderr}");
    server.stop().await.unwrap();
}
