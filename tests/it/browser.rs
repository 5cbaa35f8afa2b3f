//! The live web page in a real browser (README, "Consumers"): Debian's Chromium driven
//! by `playwright-core` from the Node scripts in `tests/browser/`.
//!
//! These tests need `node` (18 or later), `npm` and `/usr/bin/chromium` (or
//! `CHROMIUM=<path>`); `.ci/run` installs them. Without them the tests fail
//! and say what is missing: they never skip. `npm ci` runs here when
//! `tests/browser/node_modules` is missing or older than the lock file.
//!
//! The screenshot goes to `$DUALITY_SCREENSHOT` if set, else to Cargo's
//! temporary directory. Refresh `docs/screenshot.png` with
//! `DUALITY_SCREENSHOT=$PWD/docs/screenshot.png cargo test --test browser`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::{ChildServer, spawn, spawn_server};
use duality::Config;
use duality_services::Builtin;
use duality_services::Settings;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn text(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fails with a clear message unless node ≥ 18, npm and Chromium are there;
/// then installs the npm packages if needed.
async fn prepare() {
    crate::common::node::require("the browser tests").await;
    let chromium = chromium();
    assert!(
        chromium.exists(),
        "the browser tests need Chromium at {} (Debian: apt-get install chromium, or set CHROMIUM)",
        chromium.display()
    );
    crate::common::node::npm_ci(&scripts(), "the browser tests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_api_writes_live_without_a_reload_and_logs_no_errors() {
    prepare().await;
    let server = spawn(Settings {
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let screenshot = std::env::var_os("DUALITY_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshot.png"));
    let _ = std::fs::remove_file(&screenshot);

    let run = Command::new("node")
        .arg("check.mjs")
        .arg(server.url(""))
        .arg(&screenshot)
        .current_dir(scripts())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser check did not finish within 120 s")
        .expect("run node check.mjs");
    assert!(
        out.status.success(),
        "the browser check failed ({}):\n{}",
        out.status,
        text(&out)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));

    let png = std::fs::read(&screenshot).expect("the check saved a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_a_token_when_the_server_wants_one() {
    prepare().await;
    let tokens = |list: &[&str]| {
        list.iter()
            .map(|t| duality::settings::parse_token(t).unwrap())
            .collect()
    };
    let write_only = spawn(Settings {
        engine: Config {
            write_token: tokens(&["page-write-token"]),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    })
    .await;
    let guarded = spawn(Settings {
        engine: Config {
            write_token: tokens(&["page-write-token"]),
            read_token: tokens(&["page-read-token"]),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    })
    .await;
    let runs = [
        (&write_only, vec!["write", "page-write-token"]),
        (
            &guarded,
            vec!["read", "page-read-token", "page-write-token"],
        ),
    ];
    for (server, args) in runs {
        let run = Command::new("node")
            .arg("token.mjs")
            .arg(server.url(""))
            .args(&args)
            .current_dir(scripts())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("the browser check did not finish within 120 s")
            .expect("run node token.mjs");
        assert!(
            out.status.success(),
            "the token check ({}) failed ({}):\n{}",
            args[0],
            out.status,
            text(&out)
        );
    }
}

/// Runs `node <script> <args>` to the end; fails with its output unless it
/// exits 0.
async fn node_check(script: &str, args: &[&str]) {
    let run = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(scripts())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("run node {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_lists_every_operation_and_shows_the_answer_to_a_request_sent_from_it() {
    prepare().await;
    let open = spawn(Settings {
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    node_check("docs.mjs", &[&open.url("")]).await;
    let guarded = spawn(Settings {
        engine: Config {
            write_token: vec![duality::settings::parse_token("docs-write-token").unwrap()],
            ..Config::ephemeral()
        },
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    node_check("docs.mjs", &[&guarded.url(""), "docs-write-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_fits_a_420_px_window_and_labels_the_dashboard_in_words_not_field_names() {
    prepare().await;
    let server = spawn(Settings {
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    node_check("narrow.mjs", &[&server.url("")]).await;
}

/// A node script on pipes, spoken to line by line.
struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    seen: String,
}

impl Script {
    fn start(name: &str, args: &[&str]) -> Script {
        let mut child = Command::new("node")
            .arg(name)
            .args(args)
            .current_dir(scripts())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script {
            child,
            stdin,
            lines,
            seen: String::new(),
        }
    }

    async fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err)).await;
        }
        err
    }

    /// Reads stdout until the line `word`; fails with all output otherwise.
    async fn expect(&mut self, word: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line == word {
                        return;
                    }
                }
                outcome => {
                    let _ = self.child.start_kill();
                    let err = self.stderr().await;
                    panic!(
                        "expected {word} from the script ({}):\n--- stdout ---\n{}\n--- stderr ---\n{err}",
                        match outcome {
                            Err(_) => "timed out",
                            _ => "it ended",
                        },
                        self.seen
                    );
                }
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for the script to exit and fails with its output unless 0.
    async fn succeeds(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.seen.push_str(&line);
                self.seen.push('\n');
            }
            self.child.wait().await
        })
        .await
        .expect("the script did not end within 60 s")
        .unwrap();
        let err = self.stderr().await;
        assert!(
            status.success(),
            "the script failed ({status}):\n--- stdout ---\n{}\n--- stderr ---\n{err}",
            self.seen
        );
        println!("{}", self.seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_goes_stale_while_the_server_is_down_and_starts_over_when_it_returns_with_a_new_history()
 {
    prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--db", ":memory:", "--services", "persons"];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let addr = server.addr;
    let client = reqwest::Client::new();
    let mut script = Script::start("restart.mjs", &[&server.base()]);

    script.expect("READY").await;
    server.kill_9();
    script.send("KILLED").await;
    script.expect("STALE").await;

    // The same address, a new in-memory database: a new epoch, revisions
    // from 0 again; Bob gets id 1 and persons revision 1, as Ann had.
    let server = ChildServer::restart_on(addr, &args, dir.path()).await;
    let r = client
        .post(format!("{}/persons", server.base()))
        .json(&serde_json::json!({"name": "Bob", "city": "Oslo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let health: serde_json::Value = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let epoch = health["epoch"].as_str().unwrap().to_string();
    script.send(&format!("RESTARTED {epoch}")).await;
    script.succeeds().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_catches_each_panel_up_with_one_patch_after_an_absence_longer_than_retention() {
    prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--db",
        "page.db",
        "--services",
        "persons",
        "--retention",
        "1s",
    ];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let addr = server.addr;
    let client = reqwest::Client::new();
    let mut script = Script::start("catchup.mjs", &[&server.base()]);
    script.expect("READY").await;
    server.terminate();
    script.send("KILLED").await;
    script.expect("STALE").await;

    // The same database served elsewhere meanwhile: persons 3 to 5, and
    // retention deletes the events after the page's position (2).
    let mut away = ChildServer::start(&args, dir.path()).await;
    let changes = [
        (
            "PATCH",
            "/persons/1",
            Some(serde_json::json!({"name": "Ann B.", "city": "Paris"})),
        ),
        ("DELETE", "/persons/2", None),
        (
            "POST",
            "/persons",
            Some(serde_json::json!({"name": "Cy", "city": "Rome"})),
        ),
    ];
    for (method, path, body) in changes {
        let mut request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", away.base()),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert!(
            request.send().await.unwrap().status().is_success(),
            "{method} {path}"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{}/person-events?mode=poll&after=2&wait=0",
                away.base()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["changes"][0]["compacted"] == serde_json::json!(true) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not trimmed: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    away.terminate();

    let back = ChildServer::restart_on(addr, &args, dir.path()).await;
    script.send("BACK 5").await;
    script.succeeds().await;
    let metrics = client
        .get(format!("{}/metrics", back.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for view in ["persons", "locations"] {
        assert!(
            metrics.contains(&format!("duality_catch_ups_total{{view=\"{view}\"}} 1")),
            "one catch-up of {view}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_panel_shows_a_lost_backend_as_stale_and_live_again_when_it_returns() {
    prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let backend_args = [
        "--db",
        "backends.db",
        "--services",
        "customers,incidents",
        "--demo-data",
    ];
    let mut backend = ChildServer::start(&backend_args, dir.path()).await;
    let addr = backend.addr;
    let base = backend.base();
    let aggregates = ChildServer::start(
        &[
            "--db",
            ":memory:",
            "--services",
            "aggregates",
            "--customers-url",
            &base,
            "--incidents-url",
            &base,
        ],
        dir.path(),
    )
    .await;
    let mut script = Script::start("upstream.mjs", &[&aggregates.base()]);
    script.expect("READY").await;
    backend.kill_9();
    script.send("KILLED").await;
    script.expect("STALE").await;
    drop(backend);
    let backend = ChildServer::restart_on(addr, &backend_args, dir.path()).await;
    script.send("RESTARTED").await;
    script.succeeds().await;
    drop((backend, aggregates));
}

#[tokio::test]
async fn the_page_and_its_assets_come_with_content_types_cache_headers_and_etags() {
    let server = crate::common::spawn_default().await;
    let page = server.get("/").await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let etag = h["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();

    // Every asset the page names carries the version that makes it immutable.
    let mut named = 0;
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let start = html
            .find(&format!("/assets/{file}?v="))
            .unwrap_or_else(|| panic!("the page does not load {file}"));
        let url = &html[start..start + html[start..].find('"').unwrap()];
        let r = server.get(url).await;
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], content_type, "{url}");
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{url}"
        );
        // Without the current version it must be revalidated.
        let r = server.get(&format!("/assets/{file}")).await;
        assert_eq!(r.headers()["cache-control"], "no-cache", "{file}");
        let tag = r.headers()["etag"].to_str().unwrap().to_string();
        let r = server
            .client
            .get(server.url(&format!("/assets/{file}")))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{file}");
        named += 1;
    }
    assert_eq!(named, 3);

    // The services' panels: scripts and style sheets, versioned alike.
    let mut panels = 0;
    for (at, _) in html.match_indices("/assets/panels/") {
        let url = &html[at..at + html[at..].find('"').unwrap()];
        assert!(url.contains("?v="), "{url}");
        let r = server.get(url).await;
        assert_eq!(r.status(), 200, "{url}");
        let content_type = if url.contains(".js?") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.headers()["content-type"], content_type, "{url}");
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{url}"
        );
        panels += 1;
    }
    // persons, locations, the dashboard; the persons and dashboard styles.
    assert_eq!(panels, 5, "{html}");
    let r = server.get("/assets/panels/nope.js").await;
    assert_eq!(r.status(), 404);

    let r = server
        .client
        .get(server.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = server.get("/assets/nope.js").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_gets_a_panel_that_follows_its_stream() {
    prepare().await;
    let server = spawn(Settings {
        builtin: Builtin {
            collections: vec![duality_services::settings::parse_collection("notes").unwrap()],
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let base = server.url("");
    Script::start("collection.mjs", &[&base]).succeeds().await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_the_engine_alone_shows_its_own_views_live_and_nothing_of_the_builtin_ones() {
    prepare().await;
    let server = spawn_server(duality_stock::server()).await;
    node_check("stock.mjs", &[&server.url("")]).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_more_views_than_a_browser_opens_connections_follows_them_all_over_one() {
    prepare().await;
    // The built-in services' five views and nine collections: fourteen
    // panels, more than twice the six connections a browser opens.
    let names: Vec<String> = (1..=9).map(|i| format!("c{i}")).collect();
    let server = spawn(Settings {
        builtin: Builtin {
            collections: names
                .iter()
                .map(|n| duality_services::settings::parse_collection(n).unwrap())
                .collect(),
            // Collections alone would run without the built-in services.
            services: Some(duality_services::settings::Services::all()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let base = server.url("");
    let args: Vec<&str> = std::iter::once(base.as_str())
        .chain(names.iter().map(String::as_str))
        .collect();
    node_check("many.mjs", &args).await;
    server.stop().await.unwrap();
}
