//! The `duality` binary raises its soft file-descriptor limit to the hard
//! one at start: every connection is a descriptor. (The engine's
//! connection limits, the header timeout and `--max-connections`, are
//! tested in crates/duality/tests/it/connection_limits.rs.)

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_raises_its_soft_descriptor_limit_to_the_hard_one() {
    use std::time::{Duration, Instant};

    fn limits(pid: u32) -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_string(), fields[4].to_string())
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The shell lowers its soft limit, then becomes the server (same pid).
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" serve --db :memory: --listen "$1""#)
        .arg(env!("CARGO_BIN_EXE_duality"))
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (soft, hard) = limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(hard, "256", "the hard limit leaves nothing to raise");
    assert_eq!(soft, hard);
}
