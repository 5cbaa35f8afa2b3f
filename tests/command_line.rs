//! SPEC §7: the command line refuses invalid values at start with a
//! one-line error and a non-zero exit.

use std::process::Command;

fn duality(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_duality"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("RUST_LOG");
    cmd.output().expect("run duality")
}

fn assert_refused(out: &std::process::Output, mentions: &str) {
    assert!(!out.status.success(), "should have been refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got: {err}");
    assert!(err.contains(mentions), "{err}");
}

#[test]
fn invalid_flag_values_are_refused_with_one_line() {
    assert_refused(&duality(&["--retention", "soon"], &[]), "retention");
    assert_refused(&duality(&["serve", "--retention", "0s"], &[]), "retention");
    assert_refused(&duality(&["--listen", "nowhere"], &[]), "listen");
    assert_refused(&duality(&["--db", "mysql://x"], &[]), "db");
    assert_refused(&duality(&["--services", "persons,weather"], &[]), "weather");
    assert_refused(&duality(&["--no-such-flag"], &[]), "no-such-flag");
}

#[test]
fn invalid_environment_values_are_refused_too() {
    assert_refused(
        &duality(&[], &[("DUALITY_RETENTION", "1 hour")]),
        "retention",
    );
    assert_refused(&duality(&[], &[("DUALITY_LISTEN", "x:y")]), "listen");
}

#[test]
fn an_address_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = duality(&["--listen", &addr, "--db", ":memory:"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains("cannot listen"), "{err}");
}

#[test]
fn help_lists_every_documented_flag() {
    let out = duality(&["serve", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--db",
        "--retention",
        "--services",
        "--customers-url",
        "--incidents-url",
        "--demo-data",
        "DUALITY_LISTEN",
        "DUALITY_DB",
        "DUALITY_RETENTION",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
}
