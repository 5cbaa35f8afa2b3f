//! A throwaway PostgreSQL server for the tests.
//!
//! `DUALITY_TEST_PG` (a `postgres://` URL of a server where the tests may
//! create databases) is used if set. Otherwise the tests start their own
//! server from Debian's binaries (`/usr/lib/postgresql/*/bin`): a fresh data
//! directory, trust authentication, 127.0.0.1 on a free port and a socket in
//! the temporary directory; as the `postgres` user when the tests run as
//! root (PostgreSQL refuses to run as root). One server is shared by all the
//! tests of a test binary ([`shared`]); each test gets its own database
//! ([`PgServer::database`]). A watchdog shell stops the server and removes
//! its directory when the test process exits, however it exits (statics are
//! never dropped).
//!
//! Without PostgreSQL the tests fail with a message that says what to
//! install: they never skip silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How a test reaches its PostgreSQL server.
pub struct PgServer {
    /// `postgres://user@host:port/` without a database name.
    base: String,
    /// Set when this process started the server (so it can stop it).
    own: Option<Owned>,
}

struct Owned {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

const HOW_TO_GET_POSTGRES: &str = "these tests need PostgreSQL: install Debian's `postgresql` \
     package (`apt-get install postgresql`, which provides /usr/lib/postgresql/*/bin/initdb) \
     or set DUALITY_TEST_PG=postgres://user@host:port/db to a server where the tests may \
     CREATE DATABASE";

/// The server shared by every test of this test binary.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DUALITY_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => PgServer::external(url.trim()),
        _ => PgServer::start(),
    })
}

/// The newest `initdb` of Debian's PostgreSQL packages, or one on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    fn external(url: &str) -> PgServer {
        // Keep scheme, credentials, host and port; drop database and options.
        let (scheme, rest) = url
            .split_once("://")
            .unwrap_or_else(|| panic!("DUALITY_TEST_PG must be a postgres:// URL, got {url}"));
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        PgServer {
            base: format!("{scheme}://{authority}/"),
            own: None,
        }
    }

    /// Starts a new server of our own (also when `DUALITY_TEST_PG` is set).
    /// Panics with what to install if there is no PostgreSQL.
    pub fn start() -> PgServer {
        let bin = find_bin().unwrap_or_else(|| panic!("{HOW_TO_GET_POSTGRES}"));
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("duality-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .expect("chown the PostgreSQL directory");
            assert!(
                chown.success(),
                "cannot give {} to the `postgres` user (it must exist to run PostgreSQL as root): {HOW_TO_GET_POSTGRES}",
                dir.display()
            );
        }
        let owned = Owned {
            bin,
            dir,
            data,
            port: free_port(),
            as_postgres,
        };
        let out = owned
            .command("initdb")
            .arg("-D")
            .arg(&owned.data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        owned.launch();
        owned.watchdog();
        PgServer {
            base: format!("postgres://postgres@127.0.0.1:{}/", owned.port),
            own: Some(owned),
        }
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    /// Creates a fresh, empty database and answers its URL.
    pub async fn database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.sql(&format!("CREATE DATABASE {name}")).await;
        self.url(&name)
    }

    /// Runs `sql` on the `postgres` database.
    pub async fn sql(&self, sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
        let url = self.url("postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let (client, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                let driver = tokio::spawn(connection);
                let result = client.simple_query(sql).await;
                drop(client);
                let _ = driver.await;
                result
            };
            match tokio::time::timeout(Duration::from_secs(20), attempt).await {
                Ok(Ok(rows)) => return rows,
                Ok(Err(e)) if Instant::now() < deadline => {
                    eprintln!("retrying `{sql}`: {e:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(Err(e)) => panic!("`{sql}` on {url} failed: {e:?}"),
                Err(_) => panic!("`{sql}` on {url} did not answer"),
            }
        }
    }

    /// True if this process started the server (so it can stop it).
    pub fn owned(&self) -> bool {
        self.own.is_some()
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let own = self
            .own
            .as_ref()
            .expect("only a server the tests started can be stopped");
        own.stop();
    }

    /// Starts a stopped server again, on the same port and data.
    pub fn restart(&self) {
        let own = self
            .own
            .as_ref()
            .expect("only a server the tests started can be restarted");
        own.launch();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            own.stop();
        }
    }
}

impl Owned {
    /// A command from PostgreSQL's `bin`, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.data.join("postmaster.pid")
    }

    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.pid_file()).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Starts `postgres` in the background and waits until it accepts
    /// connections.
    fn launch(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap();
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=500",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=64MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "postgres exited at start ({status}); log:\n{}",
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                );
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready && self.pid().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Reap it when it exits so no zombie is left.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }

    fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && self.pid_file().exists() {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server and removes its directory once this test process
    /// has exited.
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {test} 2>/dev/null; do sleep 1; done; \
             pid=$(head -n 1 '{pidfile}' 2>/dev/null); \
             if [ -n \"$pid\" ]; then kill -INT \"$pid\" 2>/dev/null; \
               for _ in $(seq 100); do kill -0 \"$pid\" 2>/dev/null || break; sleep 0.1; done; \
               kill -KILL \"$pid\" 2>/dev/null; fi; \
             rm -rf '{dir}'",
            test = std::process::id(),
            pidfile = self.pid_file().display(),
            dir = self.dir.display(),
        );
        let mut watchdog = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
        // It outlives this process; reap it if it ever ends before.
        std::thread::spawn(move || watchdog.wait());
    }
}
