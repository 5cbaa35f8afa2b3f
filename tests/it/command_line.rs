//! README, "Configuration": the command line refuses invalid values at start with a
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
    assert_refused(
        &duality(&["--catch-up-horizon", "soon"], &[]),
        "catch-up-horizon",
    );
    let shorter = ["--retention", "2h", "--catch-up-horizon", "90m"];
    let out = duality(&shorter, &[]);
    assert_refused(
        &out,
        "--catch-up-horizon (90m) must be at least --retention (2h)",
    );
    let env = [("DUALITY_RETENTION", "8d")];
    assert_refused(&duality(&[], &env), "--catch-up-horizon (7d)");
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
        "--catch-up-horizon",
        "--services",
        "--customers-url",
        "--incidents-url",
        "--demo-data",
        "DUALITY_LISTEN",
        "DUALITY_DB",
        "DUALITY_RETENTION",
        "DUALITY_CATCH_UP_HORIZON",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
}

#[test]
fn a_mistyped_flag_gets_a_suggestion_on_the_same_line() {
    let out = duality(&["--lisen", "3000"], &[]);
    assert_refused(&out, "did you mean '--listen'?");
    let out = duality(&["watch", "http://127.0.0.1:1/persons", "--onse"], &[]);
    assert_refused(&out, "did you mean '--once'?");
    let out = duality(&["wacth"], &[]);
    assert_refused(&out, "'watch'");
}

/// The address `--listen` resolved to shows in the error for a port in use.
fn listen_on_a_taken_port(listen: impl Fn(u16) -> String) -> String {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = duality(&["--listen", &listen(port), "--db", ":memory:"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    err
}

#[test]
fn listen_takes_localhost_and_a_bare_port_as_127_0_0_1() {
    listen_on_a_taken_port(|port| format!("localhost:{port}"));
    listen_on_a_taken_port(|port| port.to_string());
    assert_refused(&duality(&["--listen", "localhost"], &[]), "listen");
    assert_refused(&duality(&["--listen", "70000"], &[]), "listen");
}

#[test]
fn boolean_environment_variables_take_the_usual_spellings() {
    // `--demo-data` without the backends is refused after parsing: proof
    // the value was read as true.
    for yes in ["1", "true", "YES", "on"] {
        let out = duality(
            &["--services", "persons", "--db", ":memory:"],
            &[("DUALITY_DEMO_DATA", yes)],
        );
        assert_refused(&out, "--demo-data needs");
    }
    // A false `DUALITY_OPEN_WRITES` leaves a public address refused.
    for no in ["0", "false", "No", "OFF"] {
        let out = duality(
            &["--listen", "0.0.0.0:0", "--db", ":memory:"],
            &[("DUALITY_OPEN_WRITES", no)],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refusing to serve open writes"), "{no}: {err}");
    }
    assert_refused(
        &duality(&[], &[("DUALITY_CORS_ALLOW_WRITES", "maybe")]),
        "maybe",
    );
}
