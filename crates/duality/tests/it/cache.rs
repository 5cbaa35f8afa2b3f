//! Long-poll answers through a real cache: nginx (Debian's `nginx-light`,
//! which `.ci/run` installs) started by the test with the repository's
//! `deploy/nginx.conf`, in front of the engine. Clients catching up from
//! scattered positions meet on aligned pages the cache serves, and clients
//! waiting at the head are answered by one origin request per change.
//! Without nginx the tests fail: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{TestServer, spawn_default};

/// nginx on a free port of 127.0.0.1, caching in front of `origin`;
/// stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    prefix: tempfile::TempDir,
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("nginx is not installed (Debian: apt-get install nginx-light; .ci/run does)");
}

impl Nginx {
    fn start(origin: &TestServer) -> Nginx {
        let prefix = tempfile::tempdir().unwrap();
        for dir in ["logs", "cache"] {
            std::fs::create_dir(prefix.path().join(dir)).unwrap();
        }
        // nginx's workers run as an unprivileged user when started as root.
        for dir in ["", "logs", "cache"] {
            let path = prefix.path().join(dir);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shipped = include_str!("../../../../deploy/nginx.conf");
        assert!(shipped.contains("proxy_cache_lock on;"));
        let conf = shipped
            .replace("127.0.0.1:3000", &origin.addr.to_string())
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace(
                "access_log logs/access.log;",
                "log_format origin '$upstream_cache_status $body_bytes_sent $upstream_response_length $request_uri';\n    access_log logs/access.log origin;",
            );
        let conf_path = prefix.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(format!("{}/", prefix.path().display()))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            port,
            prefix,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen on {port}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Bytes sent to clients, bytes taken from the origin, and origin
    /// requests, over the access log's lines for polls.
    fn tally(&self) -> (u64, u64, u64) {
        let log =
            std::fs::read_to_string(self.prefix.path().join("logs/access.log")).unwrap_or_default();
        let (mut sent, mut origin, mut requests) = (0, 0, 0);
        for line in log.lines().filter(|l| l.contains("mode=poll")) {
            let fields: Vec<&str> = line.split(' ').collect();
            sent += fields[1].parse::<u64>().unwrap_or(0);
            if let Ok(bytes) = fields[2].parse::<u64>() {
                origin += bytes;
                requests += 1;
            }
        }
        (sent, origin, requests)
    }
}

impl Drop for Nginx {
    /// A TERM lets the master stop its workers; a kill would leave them.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows `next` from `url` until an empty page; the revisions received.
async fn follow(client: &reqwest::Client, nginx: &Nginx, mut url: String) -> Vec<u64> {
    let mut seen = Vec::new();
    loop {
        let r = client.get(nginx.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let page: Value = r.json().await.unwrap();
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return seen;
        }
        seen.extend(changes.iter().map(|c| c["revision"].as_u64().unwrap()));
        url = page["next"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn clients_catching_up_from_scattered_positions_are_served_mostly_by_the_cache() {
    let server = spawn_default().await;
    const CHANGES: u64 = 3000;
    for i in 0..CHANGES {
        server
            .note(&format!("n{}", i % 50), &format!("text {i}"), None)
            .await;
    }
    let nginx = Nginx::start(&server);
    let client = reqwest::Client::new();
    let mut seed: u64 = 0x00c0_ffee_1234_5678;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let from = seed % CHANGES;
        let (client, url) = (
            client.clone(),
            format!("/note-events?mode=poll&after={from}&wait=0"),
        );
        let nginx_url = nginx.url("");
        clients.spawn(async move {
            let mut seen = Vec::new();
            let mut url = url;
            loop {
                let r = client
                    .get(format!("{nginx_url}{url}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let page: Value = r.json().await.unwrap();
                let changes = page["changes"].as_array().unwrap();
                if changes.is_empty() {
                    break;
                }
                seen.extend(changes.iter().map(|c| c["revision"].as_u64().unwrap()));
                url = page["next"].as_str().unwrap().to_string();
            }
            (from, seen)
        });
    }
    while let Some(done) = clients.join_next().await {
        let (from, seen) = done.unwrap();
        let want: Vec<u64> = (from + 1..=CHANGES).collect();
        assert_eq!(
            seen, want,
            "a client after {from} got every change, in order"
        );
    }
    let (sent, origin, requests) = nginx.tally();
    eprintln!(
        "catching up: clients received {sent} bytes, the origin sent {origin} in {requests} requests"
    );
    assert!(sent > 0 && requests > 0);
    assert!(
        origin * 5 <= sent,
        "the origin sent {origin} bytes of the {sent} clients received ({requests} requests)"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn clients_waiting_at_the_head_cost_the_origin_a_few_requests_per_change() {
    let server = spawn_default().await;
    server.note("start", "here", None).await;
    let nginx = Nginx::start(&server);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    const WRITES: u64 = 50;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let client = client.clone();
        let base = nginx.url("");
        clients.spawn(async move {
            let mut url = "/note-events?mode=poll&after=1&wait=20".to_string();
            let mut seen = Vec::new();
            while seen.len() < WRITES as usize {
                let r = client.get(format!("{base}{url}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let page: Value = r.json().await.unwrap();
                seen.extend(
                    page["changes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["revision"].as_u64().unwrap()),
                );
                url = page["next"].as_str().unwrap().to_string();
            }
            seen
        });
    }
    // Let every client reach the head, then write.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, before) = nginx.tally();
    for i in 0..WRITES {
        server.note(&format!("n{i}"), "x", None).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let want: Vec<u64> = (2..=WRITES + 1).collect();
    while let Some(done) = clients.join_next().await {
        assert_eq!(done.unwrap(), want, "every change, in order");
    }
    // The access log is written as each request ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, _, after) = nginx.tally();
    let requests = after - before;
    eprintln!("at the head: {requests} origin requests for {WRITES} changes and 300 clients");
    assert!(
        requests <= 3 * WRITES,
        "{requests} origin requests for {WRITES} changes and 300 clients"
    );
    let _ = follow(
        &client,
        &nginx,
        "/note-events?mode=poll&after=0&wait=0".into(),
    )
    .await;
    server.stop().await.unwrap();
}
