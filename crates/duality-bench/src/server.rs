//! The server under test: `duality serve` as a child process on a free port
//! of 127.0.0.1, with a fresh durable SQLite file in its own temporary
//! directory, or on the database given with `--db` (with `--processes N`,
//! N of them on one PostgreSQL database). Dropping it kills the child and
//! removes the directory.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: String,
    dir: PathBuf,
    /// The `--db` it was started with (kept for a restart).
    db: OsString,
}

/// How long a restarted server may take to serve its first snapshot.
const RESTART_LIMIT: Duration = Duration::from_secs(300);

impl Server {
    /// `processes` servers on one database `db` (see [`Server::start_on`]).
    pub async fn start_many(
        label: &str,
        db: Option<&str>,
        processes: u64,
    ) -> Result<Vec<Server>, String> {
        let mut servers = Vec::new();
        for i in 0..processes.max(1) {
            servers.push(Server::start_on(&format!("{label}-{i}"), db).await?);
        }
        Ok(servers)
    }

    /// Starts a server on `db` (a SQLite file or a `postgres://` URL), or
    /// on a fresh SQLite file when `None`, and waits until `GET /healthz`
    /// answers.
    pub async fn start_on(label: &str, db: Option<&str>) -> Result<Server, String> {
        Server::start_with(label, db, &[]).await
    }

    /// [`Server::start_on`] with more `duality serve` flags (`--demo-data`,
    /// `--services ...`).
    pub async fn start_with(
        label: &str,
        db: Option<&str>,
        flags: &[String],
    ) -> Result<Server, String> {
        let dir =
            std::env::temp_dir().join(format!("duality-bench-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let db = db.map_or_else(|| dir.join("bench.db").into_os_string(), Into::into);
        let addr = free_addr()?;
        let child = match spawn(&addr, &db, flags) {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut server = Server {
            pid: child.id().unwrap_or(0),
            child,
            addr,
            dir,
            db,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Kills the server and starts it again on the same database with
    /// `flags`; answers the time from the new process's start until a
    /// `GET first` (a snapshot path) was answered `200` and read to its end.
    pub async fn restart(&mut self, flags: &[String], first: &str) -> Result<Duration, String> {
        self.child
            .kill()
            .await
            .map_err(|e| format!("cannot stop the server: {e}"))?;
        let addr = free_addr()?;
        let started = Instant::now();
        self.child = spawn(&addr, &self.db, flags)?;
        self.pid = self.child.id().unwrap_or(0);
        self.addr = addr;
        let client = super::client(1)?;
        let url = self.url(first);
        while started.elapsed() < RESTART_LIMIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited at start: {status}"));
            }
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status().is_success()
                && response.bytes().await.is_ok()
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!(
            "the restarted server did not serve {first} within {} s",
            RESTART_LIMIT.as_secs()
        ))
    }

    /// The server's own directory (removed when it stops).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = super::client(1)?;
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited at start: {status}"));
            }
            let answer = client
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the server did not answer /healthz within 10 s".into())
    }

    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        self.status_kib("VmRSS:")
    }

    /// A `Vm...:` line of the server's `/proc/<pid>/status`, in KiB
    /// (`VmHWM:` is the peak resident memory).
    pub fn status_kib(&self, name: &str) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("cannot read the server's /proc status: {e}"))?;
        super::status_kib(&status, name).ok_or_else(|| format!("no {name} in /proc status"))
    }

    /// The `/metrics` lines of one metric family.
    pub async fn metric(&self, name: &str) -> Result<Vec<String>, String> {
        let text = super::client(1)?
            .get(self.url("/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GET /metrics: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET /metrics: {e}"))?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name))
            .map(str::to_string)
            .collect())
    }

    /// Group-commit batches so far, from the `duality_commit_batch_writes`
    /// histogram.
    pub async fn batches(&self) -> Result<Batches, String> {
        let lines = self.metric("duality_commit_batch_writes").await?;
        let mut batches = Batches::default();
        for line in &lines {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if name == "duality_commit_batch_writes_count" {
                batches.count = value;
            } else if name == "duality_commit_batch_writes_sum" {
                batches.sum = value;
            } else if let Some(le) = name
                .strip_prefix("duality_commit_batch_writes_bucket{le=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
            {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                batches.buckets.push((le, value));
            }
        }
        Ok(batches)
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) -> Result<(), String> {
        self.child
            .kill()
            .await
            .map_err(|e| format!("cannot stop the server: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `duality serve` on `addr` and `db` with `flags`.
fn spawn(addr: &str, db: &OsStr, flags: &[String]) -> Result<Child, String> {
    let exe = match BINARY.get() {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--listen")
        .arg(addr)
        .arg("--db")
        .arg(db)
        .args(flags);
    // The flags above and the defaults, whatever this shell exports.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DUALITY_") {
            command.env_remove(name);
        }
    }
    command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))
}

/// The binary every server of this run is started from (`--server`).
static BINARY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Starts every server of this run from `exe`.
pub fn use_binary(exe: std::path::PathBuf) {
    let _ = BINARY.set(exe);
}

/// A port of 127.0.0.1 that is free right now.
fn free_addr() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    Ok(addr.to_string())
}

/// Group-commit batches as the server counts them: transactions, writes,
/// and the cumulative histogram buckets `(upper bound, transactions)`.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    pub count: f64,
    pub sum: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl Batches {
    /// What was counted after `before`.
    pub fn since(&self, before: &Batches) -> Batches {
        let earlier = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, n)| *n)
        };
        Batches {
            count: self.count - before.count,
            sum: self.sum - before.sum,
            buckets: self
                .buckets
                .iter()
                .map(|&(le, n)| (le, n - earlier(le)))
                .collect(),
        }
    }

    /// Mean writes per transaction.
    pub fn mean(&self) -> f64 {
        self.sum / self.count.max(1.0)
    }

    /// The smallest bucket bound at or above the `q` quantile.
    pub fn at_most(&self, q: f64) -> f64 {
        self.buckets
            .iter()
            .find(|(_, n)| *n >= q * self.count)
            .map_or(f64::NAN, |(le, _)| *le)
    }

    /// One line for a report.
    pub fn text(&self) -> String {
        format!(
            "group commit: {:.0} transactions, {:.1} writes each on average (median <= {}, max <= {})",
            self.count,
            self.mean(),
            self.at_most(0.5),
            self.at_most(1.0),
        )
    }

    /// The same as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "transactions": self.count,
            "mean": super::writes::round2(self.mean()),
            "median_at_most": self.at_most(0.5),
            "max_at_most": self.at_most(1.0),
        })
    }
}
