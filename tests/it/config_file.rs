//! The configuration file (README, "The configuration file"): the binary
//! started with `--config` or `DUALITY_CONFIG` serves what the file says,
//! flags and environment variables override it, and each mistake in it is
//! refused at start with one line naming the file's line.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::json;

use crate::common::ChildServer;

/// A port nothing listens on right now.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

const SCHEMA: &str = r#"{"type": "object", "required": ["title"],
                         "properties": {"title": {"type": "string"}}}"#;

/// `conf/duality.toml` under `dir`, listening on `addr`, with `db` and the
/// tickets collection whose schema is beside the file; `extra` (top-level
/// settings) before that table.
fn write_config(dir: &Path, addr: SocketAddr, db: &str, extra: &str) -> String {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("tickets.schema.json"), SCHEMA).unwrap();
    let text = format!(
        "listen = \"{addr}\"\ndb = \"{db}\"\n{extra}\n[collections.tickets]\nschema = \"tickets.schema.json\"\n"
    );
    std::fs::write(conf.join("duality.toml"), text).unwrap();
    "conf/duality.toml".into()
}

async fn put(base: &str, path: &str, body: serde_json::Value) -> u16 {
    reqwest::Client::new()
        .put(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status(base: &str, path: &str) -> u16 {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts `duality` in `dir` with the arguments and variables `setup`
/// makes for a free address, which the server is then expected on. Tries
/// five addresses: another test may take a free port first.
async fn start(
    dir: &Path,
    setup: impl Fn(SocketAddr) -> (Vec<String>, Vec<(&'static str, String)>),
) -> (ChildServer, SocketAddr) {
    for _ in 0..5 {
        let addr = free_addr();
        let (args, env) = setup(addr);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(server) = ChildServer::start_exact(addr, &args, &env, dir).await {
            return (server, addr);
        }
    }
    panic!("duality did not start on a free address");
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test]
async fn a_configuration_file_serves_its_settings_and_only_its_collections() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), |addr| {
        let config = write_config(dir.path(), addr, "from-file.db", "");
        (strings(&["serve", "--config", &config]), Vec::new())
    })
    .await;
    let base = server.base();
    // The schema, found beside the file, is applied.
    assert_eq!(
        put(&base, "/collections/tickets/items/t1", json!({"title": 1})).await,
        400
    );
    assert_eq!(
        put(
            &base,
            "/collections/tickets/items/t1",
            json!({"title": "a"})
        )
        .await,
        201
    );
    // Collections configured and no services named: only they are served.
    assert_eq!(status(&base, "/persons").await, 404);
    assert_eq!(status(&base, "/customers").await, 404);
    assert!(dir.path().join("from-file.db").exists());
    drop(server);
}

#[tokio::test]
async fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_addr = free_addr();
    let config = write_config(
        dir.path(),
        file_addr,
        "from-file.db",
        "retention = \"5m\"\n",
    );
    let (server, _) = start(dir.path(), |flag_addr| {
        let args = [
            "--config",
            &config,
            "--listen",
            &flag_addr.to_string(),
            "--db",
            "from-flag.db",
            "--collection",
            "notes",
            "--services",
            "all",
        ];
        (strings(&args), Vec::new())
    })
    .await;
    let base = server.base();
    assert!(dir.path().join("from-flag.db").exists());
    assert!(!dir.path().join("from-file.db").exists());
    assert!(std::net::TcpStream::connect(file_addr).is_err());
    // The flag's collection is added to the file's; `--services all` runs
    // the built-in services beside them.
    assert_eq!(
        put(&base, "/collections/notes/items/n", json!({"a": 1})).await,
        201
    );
    assert_eq!(
        put(&base, "/collections/tickets/items/t", json!({"title": 2})).await,
        400
    );
    assert_eq!(status(&base, "/persons").await, 200);
    drop(server);
}

#[tokio::test]
async fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_addr = free_addr();
    let config = write_config(
        dir.path(),
        file_addr,
        "from-file.db",
        "services = \"persons,collections\"\n",
    );
    let (server, _) = start(dir.path(), |env_addr| {
        let env = vec![
            ("DUALITY_CONFIG", config.clone()),
            ("DUALITY_LISTEN", env_addr.to_string()),
            ("DUALITY_DB", "from-env.db".to_string()),
        ];
        (Vec::new(), env)
    })
    .await;
    let base = server.base();
    assert!(dir.path().join("from-env.db").exists());
    assert!(!dir.path().join("from-file.db").exists());
    assert!(std::net::TcpStream::connect(file_addr).is_err());
    // What the environment leaves alone is the file's: its services.
    assert_eq!(status(&base, "/persons").await, 200);
    assert_eq!(status(&base, "/customers").await, 404);
    assert_eq!(
        put(&base, "/collections/tickets/items/t", json!({"title": "x"})).await,
        201
    );
    drop(server);
}

/// Runs the binary on `toml` (as `bad.toml` in a fresh directory, with
/// a tickets collection) and answers its one line of stderr.
fn refused(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["serve", "--config", "bad.toml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{toml} was not refused");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    // Refused before anything was opened.
    assert!(!dir.path().join("duality.db").exists());
    err
}

#[test]
fn each_configuration_error_is_refused_with_its_line() {
    let tickets = "db = \":memory:\"\n[collections.tickets]\n\n";
    let view = "[derived.by-status]\nfrom = \"tickets\"\ngroup_by = \"/status\"\n";
    assert_eq!(
        refused("db = \":memory:\"\nlisten_address = \"3000\"\n"),
        "error: bad.toml:2: unknown key `listen_address`; the settings are listen, db, retention, catch_up_horizon, \
         cors_origin, keep_alive, cors_allow_writes, write_token, read_token, open_writes, \
         max_connections, header_timeout, shutdown_grace, services, customers_url, \
         incidents_url, replace_schema, collection_batch_limit, demo_data, upstream_token, and the tables \
         [collections.NAME] and [derived.NAME]"
    );
    assert_eq!(
        refused(&format!(
            "{tickets}[derived.by-status]\nfrom = \"tikets\"\ngroup_by = \"/status\"\ncount = \"total\"\n"
        )),
        "error: bad.toml:5: [derived.by-status] from: from = \"tikets\" names no collection; \
         the collections are tickets"
    );
    assert_eq!(
        refused(&format!(
            "{tickets}{view}count = \"total\"\nsum = {{ points = \"estimate\" }}\n"
        )),
        "error: bad.toml:8: [derived.by-status] sum.points: \"estimate\" is not a JSON pointer: \
         it must start with /"
    );
    assert_eq!(
        refused(&format!(
            "{tickets}{view}\navg = {{ points = \"/estimate\" }}\n"
        )),
        "error: bad.toml:8: [derived.by-status] unknown key `avg`; the keys are from, group_by, \
         count, sum, min, max, top (the aggregates are count, sum, min, max)"
    );
    assert_eq!(
        refused("retention = \"forever\"\n"),
        "error: bad.toml:1: retention: `forever` is not a duration like 500ms, 30s, 5m or 2h"
    );
    let missing = refused("[collections.tickets]\nschema = \"nowhere.json\"\n");
    assert!(missing.contains("nowhere.json"), "{missing}");
}

/// The README's example file and schema, as they are written there.
fn readme_example() -> (String, String) {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### The configuration file")
        .nth(1)
        .expect("the README has a section on the configuration file");
    let block = |fence: &str| {
        let start = section.find(fence).expect("the example's block") + fence.len();
        let end = start + section[start..].find("```").expect("its end");
        section[start..end].to_string()
    };
    (block("```toml\n"), block("```json\n"))
}

#[tokio::test]
async fn the_readme_configuration_example_starts_and_serves_its_collections() {
    let (toml, schema) = readme_example();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duality.toml"), &toml).unwrap();
    std::fs::write(dir.path().join("tickets.schema.json"), schema).unwrap();
    // Its own address, so tests can run side by side: a flag overrides it.
    let (server, _) = start(dir.path(), |addr| {
        let args = [
            "serve",
            "--config",
            "duality.toml",
            "--listen",
            &addr.to_string(),
        ];
        (strings(&args), Vec::new())
    })
    .await;
    let base = server.base();
    let ticket = json!({"title": "Login fails", "status": "open"});
    assert_eq!(
        put(&base, "/collections/tickets/items/t1", ticket).await,
        201
    );
    let bad = json!({"title": "Login fails", "status": "lost"});
    assert_eq!(put(&base, "/collections/tickets/items/t2", bad).await, 400);
    assert_eq!(
        put(&base, "/collections/notes/items/n1", json!({"text": "hi"})).await,
        201
    );
    assert!(toml.contains("db = \"tickets.db\""));
    assert!(dir.path().join("tickets.db").exists());
    drop(server);
}

/// The README's "Live aggregates without code": its file, and every
/// request it shows with the answer it shows, run against the binary.
#[tokio::test]
async fn the_readme_live_aggregates_example_answers_what_it_shows() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Live aggregates without code")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README has a section on live aggregates");
    let start_at = section.find("```toml\n").expect("its file") + "```toml\n".len();
    let toml = &section[start_at..start_at + section[start_at..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duality.toml"), toml).unwrap();
    let (server, _) = start(dir.path(), |addr| {
        let args = [
            "serve",
            "--config",
            "duality.toml",
            "--listen",
            &addr.to_string(),
        ];
        (strings(&args), Vec::new())
    })
    .await;
    let base = server.base();
    let lines: Vec<&str> = section.lines().map(str::trim).collect();
    // `curl -X METHOD localhost:3000/PATH ... \` then `-d 'BODY'`.
    let body_after = |i: usize| {
        let line = lines[i + 1];
        let start = line.find("-d '").unwrap() + 4;
        serde_json::from_str::<serde_json::Value>(&line[start..line.rfind('\'').unwrap()]).unwrap()
    };
    let path_of = |line: &str| {
        let at = line.find("localhost:3000").unwrap() + "localhost:3000".len();
        line[at..].split([' ', '\'']).next().unwrap().to_string()
    };
    let client = reqwest::Client::new();
    let mut stream = None;
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("curl -X PUT") {
            let r = client
                .put(format!("{base}{}", path_of(line)))
                .json(&body_after(i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{line}");
        } else if line.starts_with("curl localhost:3000/derived/") {
            let got: serde_json::Value = reqwest::get(format!("{base}{}", path_of(line)))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let want: serde_json::Value = serde_json::from_str(lines[i + 1]).unwrap();
            assert_eq!(got, want, "{line}");
            checked += 1;
        } else if line.starts_with("curl -N") {
            let r = client
                .get(format!("{base}{}", path_of(line)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            stream = Some(r);
        } else if line.starts_with("curl -X PATCH") {
            let r = client
                .patch(format!("{base}{}", path_of(line)))
                .json(&body_after(i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{line}");
        }
    }
    assert_eq!(checked, 2, "both derived views were read");
    // The event the section shows arrives on the stream it opened.
    let shown = lines
        .iter()
        .position(|l| l.starts_with("id: "))
        .expect("the section shows an event");
    let (id, data) = (lines[shown], lines[shown + 1]);
    let mut stream = stream.expect("the section opens a stream");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains(&format!("{id}\n")) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the event the README shows")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let event = text.split(&format!("{id}\n")).nth(1).unwrap();
    assert_eq!(event.lines().next(), Some(data), "{text}");
    drop(server);
}
