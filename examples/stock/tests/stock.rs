//! Starts the stock service on 127.0.0.1:0, writes through HTTP, and
//! checks that each view's change stream folds into its snapshot; then
//! runs the built `duality-stock` binary, a server made from the engine
//! alone, for its `--help`, its one-line errors, its OpenAPI document and
//! its snapshots' `Link` headers.

use std::time::Duration;

use duality::Config;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

struct Running {
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        duality_stock::server().launch(Config::ephemeral(), listener, async {
            let _ = stopped.await;
        }),
    );
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running { base, http, stop }
}

impl Running {
    async fn put(&self, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.put(url).json(&body).send().await.unwrap()
    }

    async fn snapshot(&self, path: &str) -> (Value, u64) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let revision = response.headers()["x-revision"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (response.json().await.unwrap(), revision)
    }

    /// Reads the stream from revision 1 and folds its first `count` patches.
    async fn fold(&self, stream: &str, count: usize) -> Value {
        let url = format!("{}{stream}?revision=1", self.base);
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut events = response.bytes_stream().eventsource();
        let mut view = json!({});
        for expected in 1..=count as u64 {
            let next = tokio::time::timeout(Duration::from_secs(10), events.next());
            let event = next.await.unwrap().unwrap().unwrap();
            assert_eq!(event.id, expected.to_string(), "revisions are gapless");
            let patch: Value = serde_json::from_str(&event.data).unwrap();
            json_patch::merge(&mut view, &patch);
        }
        view
    }
}

#[tokio::test]
async fn the_streams_of_products_stock_and_totals_fold_into_their_snapshots() {
    let s = start().await;
    assert_eq!(
        s.put("/products/p1", json!({"name": "Bolt"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        s.put("/products/p2", json!({"name": "Nut"})).await.status(),
        200
    );
    for (path, quantity) in [
        ("/stock/p1/north", 5),
        ("/stock/p1/south", 3),
        ("/stock/p2/north", 7),
        ("/stock/p1/north", 1),
        ("/stock/p2/north", 0),
    ] {
        let answer = s.put(path, json!({"quantity": quantity})).await;
        assert_eq!(answer.status(), 200, "{path}");
    }
    let (totals, revision) = s.snapshot("/totals").await;
    assert_eq!(totals, json!({"p1": {"total": 4}}));
    assert_eq!(s.fold("/total-events", revision as usize).await, totals);
    let (stock, revision) = s.snapshot("/stock").await;
    assert_eq!(
        stock,
        json!({"p1/north": {"quantity": 1}, "p1/south": {"quantity": 3}})
    );
    assert_eq!(s.fold("/stock-events", revision as usize).await, stock);
    let (products, revision) = s.snapshot("/products").await;
    assert_eq!(revision, 2);
    assert_eq!(s.fold("/product-events", 2).await, products);
    let _ = s.stop.send(());
}

#[tokio::test]
async fn stock_of_an_unknown_product_is_a_404_and_changes_nothing() {
    let s = start().await;
    let answer = s.put("/stock/ghost/north", json!({"quantity": 1})).await;
    assert_eq!(answer.status(), 404);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("ghost"), "{body}");
    let bad = s.put("/products/a%20b", json!({"name": "x"})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(s.snapshot("/stock").await, (json!({}), 0));
    assert_eq!(s.snapshot("/totals").await, (json!({}), 0));
    assert_eq!(s.snapshot("/products").await, (json!({}), 0));
    let _ = s.stop.send(());
}

/// The built `duality-stock` binary: a server made from the engine alone.
const BINARY: &str = env!("CARGO_BIN_EXE_duality-stock");

/// Runs `duality-stock ARGS` in an empty directory until it exits (at most
/// 20 s); returns its exit status, stdout and stderr.
fn run_binary(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BINARY)
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "duality-stock {args:?} still runs after 20 s: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn its_help_lists_the_engines_flags_and_none_of_the_built_in_services() {
    let (status, help, _) = run_binary(&["--help"]);
    assert!(status.success());
    for flag in [
        "--listen",
        "--db",
        "--retention",
        "--cors-origin",
        "--cors-allow-writes",
        "--keep-alive",
        "--write-token",
        "--read-token",
        "--open-writes",
        "--max-connections",
        "--header-timeout",
        "--shutdown-grace",
        "DUALITY_LISTEN",
        "DUALITY_DB",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    for flag in [
        "--services",
        "--customers-url",
        "--incidents-url",
        "--collection",
        "--demo-data",
        "--upstream-token",
    ] {
        assert!(!help.contains(flag), "{flag} in --help:\n{help}");
    }
}

#[test]
fn a_refused_flag_or_start_is_one_error_line_and_a_failed_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["--db", "mysql://x"], "mysql://x"),
        (&["--retention", "soon"], "retention"),
        (&["--lisen", "3000"], "did you mean '--listen'?"),
        (&["--listen", &taken, "--db", ":memory:"], "cannot listen"),
        (
            &["--listen", "0.0.0.0:0", "--db", ":memory:"],
            "--write-token",
        ),
        (
            &["--listen", "127.0.0.1:0", "--db", "no/such/dir/stock.db"],
            "database",
        ),
    ];
    for (args, mentions) in cases {
        let (status, _, stderr) = run_binary(args);
        assert!(!status.success(), "{args:?} was accepted");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        assert!(lines[0].contains(mentions), "{args:?}: {stderr}");
        // Display, not Debug.
        for debug in ["Config(", "Store(", "Io(", "Os {"] {
            assert!(!stderr.contains(debug), "{args:?}: {stderr}");
        }
    }
}

/// `duality-stock` serving on a free port; killed on drop.
struct ServingBinary {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl ServingBinary {
    async fn start() -> ServingBinary {
        let dir = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let listen = format!("127.0.0.1:{port}");
            let mut child = std::process::Command::new(BINARY)
                .args(["--listen", &listen, "--db", ":memory:"])
                .current_dir(dir.path())
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let base = format!("http://{listen}");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                let health = http.get(format!("{base}/healthz")).send().await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    return ServingBinary {
                        child,
                        base,
                        _dir: dir,
                    };
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("duality-stock did not become ready on {listen}");
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("could not start duality-stock on a free port");
    }
}

impl Drop for ServingBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stock views: (snapshot, stream).
const VIEWS: [(&str, &str); 3] = [
    ("/products", "/product-events"),
    ("/stock", "/stock-events"),
    ("/totals", "/total-events"),
];

#[tokio::test]
async fn the_binary_documents_each_views_snapshot_and_stream_in_its_openapi() {
    let server = ServingBinary::start().await;
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for (snapshot, stream) in VIEWS {
        let ok = &paths[snapshot]["get"]["responses"]["200"];
        assert!(ok["headers"].get("Link").is_some(), "{snapshot}: {ok}");
        let events = &paths[stream]["get"]["responses"]["200"]["content"];
        assert!(events.get("text/event-stream").is_some(), "{stream}");
    }
    for path in paths.keys() {
        for builtin in [
            "/person",
            "/location",
            "/customer",
            "/incident",
            "/aggregates",
        ] {
            assert!(!path.starts_with(builtin), "{path} is not served here");
        }
    }
}

#[tokio::test]
async fn the_binarys_snapshots_link_their_streams() {
    let server = ServingBinary::start().await;
    let http = reqwest::Client::new();
    for (snapshot, stream) in VIEWS {
        let link = format!("<{stream}>; rel=\"duality-stream\"");
        let url = format!("{}{snapshot}", server.base);
        let get = http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 200);
        assert_eq!(get.headers()["link"], link.as_str(), "GET {snapshot}");
        let head = http.head(&url).send().await.unwrap();
        assert_eq!(head.headers()["link"], link.as_str(), "HEAD {snapshot}");
        let etag = get.headers()["etag"].clone();
        let unchanged = http
            .get(&url)
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(unchanged.status(), 304);
        assert_eq!(unchanged.headers()["link"], link.as_str(), "304 {snapshot}");
        // The stream it names is served.
        let events = http
            .get(format!("{}{stream}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200, "{stream}");
        assert_eq!(events.headers()["content-type"], "text/event-stream");
    }
}

/// A program on the engine logs like the `duality` command: at `info`
/// with no `RUST_LOG`, so its start is in the log without any set-up.
#[test]
fn the_binary_logs_at_info_without_rust_log() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let serving = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("INFO") && line.contains("serving") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = serving.unwrap_or_else(|| panic!("no INFO serving line in {seen:?}"));
    assert!(line.contains("services=[\"stock\"]"), "{line}");
}
