//! The workspace's shape, as the compiler and Cargo see it: the engine
//! built for SQLite alone pulls in nothing of PostgreSQL, the built-in
//! services' JSON Schema validator or the load generator's histograms.

use std::process::Command;

/// The crates `duality` (the engine) depends on, as `cargo tree` lists them
/// for `features`.
fn engine_tree(features: &[&str]) -> String {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "duality", "-e", "normal"])
        .args(["--prefix", "none", "--no-default-features"]);
    if !features.is_empty() {
        cargo.args(["--features", &features.join(",")]);
    }
    let out = cargo.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(tree: &str, krate: &str) -> bool {
    tree.lines()
        .any(|l| l.split_whitespace().next() == Some(krate))
}

#[test]
fn the_engine_for_sqlite_alone_builds_nothing_of_postgres_schemas_or_benches() {
    let sqlite = engine_tree(&["sqlite"]);
    assert!(has(&sqlite, "rusqlite"), "{sqlite}");
    for absent in [
        "tokio-postgres",
        "deadpool-postgres",
        "jsonschema",
        "hdrhistogram",
    ] {
        assert!(!has(&sqlite, absent), "{absent} is in:\n{sqlite}");
    }
    let postgres = engine_tree(&["postgres"]);
    assert!(has(&postgres, "tokio-postgres") && has(&postgres, "deadpool-postgres"));
    assert!(!has(&postgres, "rusqlite"), "{postgres}");
}
