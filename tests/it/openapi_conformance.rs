//! The OpenAPI document is exact (docs/PROTOCOL.md, "Errors"): a property-based conformance
//! run of schemathesis (from PyPI, with all its checks) against a server
//! with the demo data must find nothing. It generates requests the schemas
//! allow (which must be accepted) and requests they forbid (which must be
//! refused with a 4xx), and checks every answer's status code, content
//! type, headers and body against the document, plus stateful sequences
//! (create, then read, patch and delete what was created).
//!
//! schemathesis is installed by this test into a virtual environment under
//! Cargo's target directory (once; `python3` with `venv` is needed, as
//! `.ci/run` installs). Without it the test fails: it never skips.
//!
//! Bounds: at most `DUALITY_CONFORMANCE_EXAMPLES` (default 100) cases per
//! operation, a fixed seed (`DUALITY_CONFORMANCE_SEED` to try another), so
//! a run takes a minute or two. The change streams (and `/streams`, which
//! carries several) are left out: their `200` answer is an event stream
//! that never ends, so a conformance client would only wait for its
//! timeout; their positions, `400` and `410` answers are tested in
//! `crates/duality/tests/it/stream_protocol.rs` and `multiplexed.rs`. Valid
//! `Idempotency-Key`s are made unique per request (see
//! `tests/conformance/hooks.py`); replays are tested in
//! `crates/duality/tests/it/idempotency_keys.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use duality_services::Settings;

/// The schemathesis release this run was written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Streams: see the module docs.
const EXCLUDED: &str = "-events$|/events$|^/streams$";

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The schemathesis CLI, installed into a virtual environment on first use.
fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let cli = venv.join("bin").join("schemathesis");
    let version = || {
        Command::new(&cli)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !version() {
        eprintln!("installing {SCHEMATHESIS} into {}", venv.display());
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", SCHEMATHESIS]));
        assert!(version(), "schemathesis does not run after installing it");
    }
    cli
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conformance_run_against_the_openapi_document_finds_nothing() {
    let cli = tokio::task::spawn_blocking(schemathesis).await.unwrap();
    let mut settings = Settings::ephemeral();
    settings.builtin.demo_data = true;
    // A collection too: its items, conditional writes, server-made keys
    // and patches of many documents.
    settings.builtin.collections =
        vec![duality_services::settings::parse_collection("notes").unwrap()];
    // Every built-in service beside it (a collection alone serves only
    // collections).
    settings.builtin.services = Some(duality_services::settings::Services::all());
    let server = crate::common::spawn(settings).await;

    // The operations the run must test: all but the streams, and but the
    // document itself (schemathesis does not test where it loaded it from).
    let doc = server.get_json("/openapi.json").await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| {
            !path.ends_with("-events")
                && !path.ends_with("/events")
                && !["/streams", "/openapi.json"].contains(&path.as_str())
        })
        .map(|(_, item)| item.as_object().unwrap().len())
        .sum();

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/hooks.py");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/schemathesis.toml");
    let mut command = Command::new(cli);
    command
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--exclude-path-regex", EXCLUDED])
        .args([
            "--max-examples",
            &setting("DUALITY_CONFORMANCE_EXAMPLES", "100"),
        ])
        .args(["--seed", &setting("DUALITY_CONFORMANCE_SEED", "3")])
        .args(["--request-timeout", "20"])
        .env("SCHEMATHESIS_HOOKS", hooks)
        .env("NO_COLOR", "1")
        // Hypothesis keeps its database in the working directory.
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    let output = tokio::time::timeout(
        Duration::from_secs(20 * 60),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("the conformance run finished within 20 minutes")
    .unwrap()
    .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the conformance run found disagreements between the server and /openapi.json:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "every operation but the streams ({operations}) was tested:\n{report}"
    );
    server.stop().await.unwrap();
}
