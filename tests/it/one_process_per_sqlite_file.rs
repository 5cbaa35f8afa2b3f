//! README, "Configuration": one process owns a SQLite file. A second process started on
//! the same file refuses to start with one line naming it, instead of
//! serving streams that never see the first one's writes.

use std::process::{Command, Output};

use crate::common::ChildServer;

fn serve(dir: &std::path::Path, db: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run duality")
}

fn last_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_second_process_on_the_same_file_refuses_to_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ChildServer::start(&["--db", "p.db"], dir.path()).await;

    let second = serve(dir.path(), "p.db");
    assert!(
        !second.status.success(),
        "the second process must not serve"
    );
    let line = last_line(&second);
    assert!(line.contains("another duality process"), "{line}");
    assert!(line.contains("p.db"), "{line}");

    // Another file is fine, and so is the same file once the owner is
    // gone, even after kill -9 (the lock dies with the process).
    first.kill_9();
    let addr = first.addr;
    drop(first);
    let again = ChildServer::restart_on(addr, &["--db", "p.db"], dir.path()).await;
    let r = reqwest::get(format!("{}/persons", again.base()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_database_file_that_cannot_be_created_says_where_and_points_at_db() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), "no/such/dir/p.db");
    assert!(!out.status.success());
    let line = last_line(&out);
    assert!(line.contains("no/such/dir/p.db"), "{line}");
    assert!(line.contains("--db"), "{line}");
}
