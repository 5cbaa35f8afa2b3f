//! Bearer tokens (docs/PROTOCOL.md, "Security model") as the `duality`
//! binary and the built-in services use them: the binary refuses open
//! writes on a non-loopback address unless told otherwise, and the
//! aggregates service and `duality watch` read a guarded server with their
//! tokens. (What tokens guard, on any service, is tested in
//! crates/duality/tests/it/tokens.rs.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::spawn;
use duality::Config;
use duality::settings::parse_token;
use duality_services::Builtin;
use duality_services::settings::Settings;
use serde_json::{Value, json};

/// Runs `duality serve ARGS` until it exits or `wait` passes; returns its
/// exit status (`None` if still running, then killed) and stderr.
fn run_serve(args: &[&str], wait: Duration) -> (Option<std::process::ExitStatus>, String) {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_duality"))
        .arg("serve")
        .args(args)
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(stderr).unwrap())
}

#[test]
fn on_a_non_loopback_address_open_writes_must_be_asked_for() {
    let (status, stderr) = run_serve(
        &["--listen", "0.0.0.0:0", "--db", ":memory:"],
        Duration::from_secs(10),
    );
    let status = status.expect("the server refuses to start");
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--write-token") && stderr.contains("--open-writes"));

    // With either flag it serves (still running after a moment).
    for flag in [&["--open-writes"][..], &["--write-token", "a-token"]] {
        let mut args = vec!["--listen", "0.0.0.0:0", "--db", ":memory:"];
        args.extend(flag);
        let (status, stderr) = run_serve(&args, Duration::from_secs(2));
        assert!(status.is_none(), "{flag:?} exited: {stderr}");
    }
    // A loopback address needs neither.
    let (status, stderr) = run_serve(
        &["--listen", "127.0.0.1:0", "--db", ":memory:"],
        Duration::from_secs(2),
    );
    assert!(status.is_none(), "{stderr}");
}

fn with_tokens(write: &[&str], read: &[&str]) -> Settings {
    let tokens = |list: &[&str]| list.iter().map(|t| parse_token(t).unwrap()).collect();
    Settings {
        engine: Config {
            write_token: tokens(write),
            read_token: tokens(read),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    }
}

#[tokio::test]
async fn the_aggregates_service_and_watch_read_a_guarded_server_with_their_tokens() {
    let backends = spawn({
        let base = with_tokens(&["w-token"], &["r-token"]);
        Settings {
            engine: base.engine,
            builtin: Builtin {
                services: Some(
                    duality_services::settings::parse_services("customers,incidents").unwrap(),
                ),
                ..base.builtin
            },
        }
    })
    .await;
    let customer = json!({"name": "Amy", "city": "Oslo", "country": "Norway", "scoring": 7});
    let created = backends
        .client
        .post(backends.url("/customers/items"))
        .bearer_auth("w-token")
        .json(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let aggregates = spawn(Settings {
        builtin: Builtin {
            services: Some(duality_services::settings::parse_services("aggregates").unwrap()),
            customers_url: Some(backends.url("")),
            incidents_url: Some(backends.url("")),
            upstream_token: Some(parse_token("r-token").unwrap()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dashboard: Value = aggregates.get_json("/aggregates/dashboard").await;
        if dashboard["customerCount"] == json!(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard never composed: {dashboard}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = backends.url("/customers");
    let watch = move |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duality"));
        command
            .args(["watch", &url])
            .args(extra)
            .env("RUST_LOG", "warn");
        command.stdin(Stdio::null());
        command
    };
    let output = |mut command: Command| async move {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };
    let refused = output(watch(&["--once"])).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let once = output(watch(&["--once", "--token", "r-token"])).await;
    assert!(once.status.success());
    assert!(String::from_utf8_lossy(&once.stdout).contains("Amy"));
    // Live mode follows the stream with the token too (DUALITY_TOKEN).
    let mut live = watch(&["--until", "1"]);
    live.env("DUALITY_TOKEN", "r-token").stdout(Stdio::null());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = live.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "watch --until: {status:?}"
    );
}
