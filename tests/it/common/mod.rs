//! Test harness: starts the real server on 127.0.0.1:0 and speaks HTTP and
//! SSE to it.
#![allow(dead_code)]

pub mod node;
/// The engine's throwaway PostgreSQL server, shared rather than copied.
#[path = "../../../crates/duality/tests/it/common/pg.rs"]
pub mod pg;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../../../crates/duality/tests/it/common/reading.rs"]
mod reading;
pub use reading::{Sse, fold, header, logs, revision_of};

use duality::LaunchError;
use duality_services::Settings;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), LaunchError>>,
}

/// Starts a server with `settings` (its `listen` is ignored: port 0).
pub async fn spawn(settings: Settings) -> TestServer {
    start(|listener, stopped| {
        duality_services::launch(settings, listener, async {
            let _ = stopped.await;
        })
    })
    .await
}

/// Starts `server` (services on the engine's public API alone, such as
/// `examples/stock`) in memory, on port 0.
pub async fn spawn_server(server: duality::Server) -> TestServer {
    start(|listener, stopped| {
        server.launch(duality::Config::ephemeral(), listener, async {
            let _ = stopped.await;
        })
    })
    .await
}

/// Runs `launch` on a listener of 127.0.0.1:0 until the server is stopped
/// (the receiver completes); returns once `/healthz` answers.
async fn start<F, Fut>(launch: F) -> TestServer
where
    F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), LaunchError>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    logs::capture();
    let handle = tokio::spawn(launch(listener, stopped));
    let server = TestServer {
        addr,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle,
    };
    server.wait_ready().await;
    server
}

/// An in-memory server with default settings.
pub async fn spawn_default() -> TestServer {
    spawn(Settings::ephemeral()).await
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not become ready");
    }

    /// Asks the server to shut down and waits until `launch` returns.
    pub async fn stop(mut self) -> Result<(), LaunchError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.handle)
            .await
            .expect("server did not stop within 10 s")
            .expect("server task panicked")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send("POST", path, Some(body)).await
    }

    /// Opens an SSE stream; panics unless it answers 200 text/event-stream.
    pub async fn subscribe(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "subscribe {path}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse::new(r)
    }
}

/// The `duality` binary running as a child process; killed (SIGKILL) and
/// reaped on drop, so a failing test leaves no process behind. Its log is
/// printed if the test panics.
pub struct ChildServer {
    child: std::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ChildServer {
    /// `duality serve ARGS` on a free port; retries if the port was taken.
    pub async fn start(args: &[&str], dir: &Path) -> ChildServer {
        ChildServer::start_with_clock(None, args, dir).await
    }

    /// Like [`ChildServer::start`], with the process's wall clock shifted
    /// by `shift` (for example `-1h`) through Debian's `faketime`; its
    /// monotonic clock is left alone.
    pub async fn start_with_clock(shift: Option<&str>, args: &[&str], dir: &Path) -> ChildServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if let Some(child) = ChildServer::launch(addr, shift, args, dir, "warn").await {
                return child;
            }
        }
        panic!("could not start the server on a free port");
    }

    /// `duality serve --listen ADDR ARGS`; `None` if it exits at start.
    pub async fn start_on(addr: SocketAddr, args: &[&str], dir: &Path) -> Option<ChildServer> {
        ChildServer::launch(addr, None, args, dir, "warn").await
    }

    /// As [`ChildServer::start_on`], logging with `RUST_LOG=rust_log`.
    pub async fn start_logging(
        addr: SocketAddr,
        args: &[&str],
        dir: &Path,
        rust_log: &str,
    ) -> Option<ChildServer> {
        ChildServer::launch(addr, None, args, dir, rust_log).await
    }

    /// `duality ARGS` exactly as given (no `serve --listen`), with the
    /// variables `env`, in `dir`, ready once it answers on `addr` (where
    /// its arguments, variables or configuration file make it listen);
    /// `None` if it exits at start.
    pub async fn start_exact(
        addr: SocketAddr,
        args: &[&str],
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Option<ChildServer> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duality"));
        command.args(args).envs(env.iter().copied());
        ChildServer::ready(command, addr, dir, "warn").await
    }

    async fn launch(
        addr: SocketAddr,
        shift: Option<&str>,
        args: &[&str],
        dir: &Path,
        rust_log: &str,
    ) -> Option<ChildServer> {
        let binary = env!("CARGO_BIN_EXE_duality");
        let mut command = match shift {
            None => Command::new(binary),
            Some(shift) => {
                let mut faketime = Command::new("faketime");
                faketime
                    .args(["-f", shift, binary])
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                faketime
            }
        };
        command
            .args(["serve", "--listen", &addr.to_string()])
            .args(args);
        ChildServer::ready(command, addr, dir, rust_log).await
    }

    /// Spawns `command` in `dir` and waits until it answers `/healthz` on
    /// `addr`; `None` if it exits first.
    async fn ready(
        mut command: Command,
        addr: SocketAddr,
        dir: &Path,
        rust_log: &str,
    ) -> Option<ChildServer> {
        let log = dir.join(format!("server-{}-{}.log", addr.port(), std::process::id()));
        // Its own process group: `faketime` runs the server as its child,
        // and killing `faketime` alone would leave the server running.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .current_dir(dir)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start the duality binary (a shifted clock needs Debian's `faketime`): {e}")
            });
        let mut child = ChildServer { child, addr, log };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&child.log).unwrap_or_default();
                eprintln!("server on {addr} exited at start ({status}): {log}");
                return None;
            }
            let health = client
                .get(format!("{}/healthz", child.base()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Some(child);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server on {addr} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Starts the server again on `addr` (where a killed one listened),
    /// retrying for up to 5 s while the address is not free yet.
    pub async fn restart_on(addr: SocketAddr, args: &[&str], dir: &Path) -> ChildServer {
        for _ in 0..50 {
            if let Some(server) = ChildServer::start_on(addr, args, dir).await {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not restart the server on {addr}");
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no graceful shutdown, no chance to flush anything.
    pub fn kill_9(&mut self) {
        self.kill_group();
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGTERM, as an operator stops it, then waits up to 20 s for the
    /// graceful shutdown to finish; panics unless it exits with success.
    pub fn terminate(&mut self) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits i32");
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                assert!(
                    status.success(),
                    "the server exited with {status}: {}",
                    self.log()
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the child's process group: the server, and `faketime`
    /// when it runs the server.
    fn kill_group(&self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) takes plain integers and touches no memory.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- server log {} ---\n{log}", self.log.display());
        }
    }
}

/// The locations view that a persons view implies: persons counted by city.
pub fn locations_of(persons: &Value) -> Value {
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    for person in persons.as_object().expect("a view is an object").values() {
        if let Some(city) = person.get("city").and_then(Value::as_str) {
            *totals.entry(city.to_string()).or_default() += 1;
        }
    }
    Value::Object(
        totals
            .into_iter()
            .map(|(city, n)| (city, serde_json::json!({ "total": n })))
            .collect(),
    )
}
