//! Test harness: starts the engine with the test-only service
//! ([`notes`]) on 127.0.0.1:0, in this process, and speaks HTTP and SSE
//! to it.
#![allow(dead_code)]

pub mod notes;
/// A throwaway PostgreSQL server (the root package's tests include this
/// file too).
#[cfg(feature = "postgres")]
pub mod pg;

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use duality::{Config, LaunchError};
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), LaunchError>>,
}

/// Starts the test service with `config` (its `listen` is ignored: port 0).
pub async fn spawn(config: Config) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    logs::capture();
    let handle = tokio::spawn(notes::server().launch(config, listener, async {
        let _ = stopped.await;
    }));
    let server = TestServer {
        addr,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle,
    };
    server.wait_ready().await;
    server
}

/// The test service in memory, with the default configuration.
pub async fn spawn_default() -> TestServer {
    spawn(Config::ephemeral()).await
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

    /// True once `launch` has returned (or its task panicked).
    pub fn has_stopped(&self) -> bool {
        self.handle.is_finished()
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

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> reqwest::Response {
        self.send("PUT", path, Some(body)).await
    }

    /// Saves the note `key` (one notes revision); panics unless it is 200.
    pub async fn note(&self, key: &str, text: &str, tag: Option<&str>) -> reqwest::Response {
        let body = match tag {
            Some(tag) => json!({"text": text, "tag": tag}),
            None => json!({"text": text}),
        };
        let r = self.put(&format!("/notes/{key}"), body).await;
        assert_eq!(r.status(), 200, "PUT /notes/{key}");
        r
    }

    /// `n` untagged notes `n0`, `n1`…: notes revisions 1 to `n`.
    pub async fn notes(&self, n: usize) {
        for i in 0..n {
            self.note(&format!("n{i}"), &format!("text {i}"), None)
                .await;
        }
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

pub fn revision_of(r: &reqwest::Response) -> u64 {
    r.headers()["x-revision"].to_str().unwrap().parse().unwrap()
}

/// A response header as text; panics if it is missing.
pub fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// A parsed SSE stream.
pub struct Sse {
    events: Events,
}

impl Sse {
    /// The stream's events without its position bookkeeping (`caught-up`
    /// and `progress`, which carry no change): what most tests look at.
    pub fn new(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string()))
            .filter(|r| {
                let bookkeeping =
                    matches!(r, Ok(e) if e.event == "caught-up" || e.event == "progress");
                std::future::ready(!bookkeeping)
            });
        Sse {
            events: Box::pin(events),
        }
    }

    /// Every event of the stream, `caught-up` and `progress` included.
    pub fn every_event(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string()));
        Sse {
            events: Box::pin(events),
        }
    }

    /// The next event, or `None` if the stream ended; panics after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        match tokio::time::timeout(wait, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(e))) => panic!("stream error: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no event within {wait:?}"),
        }
    }

    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next change, (revision, patch): it must be the next event.
    pub async fn change(&mut self) -> (u64, Value) {
        let e = self.next().await.expect("stream ended");
        assert_eq!(
            e.event, "message",
            "expected an unnamed change event: {e:?}"
        );
        (
            e.id.parse().unwrap(),
            serde_json::from_str(&e.data).unwrap(),
        )
    }

    /// True if nothing arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.events.next())
            .await
            .is_err()
    }
}

/// Folds merge patches into a document, as a consumer does.
pub fn fold(mut doc: Value, patches: &[Value]) -> Value {
    for p in patches {
        duality::merge::apply(&mut doc, p);
    }
    doc
}

/// The log lines of this test binary, captured for assertions. Every
/// server of the binary starts through [`spawn`], which calls `capture`
/// first, so this is the subscriber the engine finds installed (it
/// installs its own only where there is none). The engine's own lines and
/// its request spans are kept down to `debug`, so a test can check what
/// never reaches the log, even at that level.
pub mod logs {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

    struct Sink;

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(lines) = LINES.get()
                && let Ok(mut lines) = lines.lock()
            {
                lines.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Starts capturing (once per test binary). No caller returns before
    /// the subscriber is installed: a server that another test starts at
    /// the same moment must not install the engine's own first.
    pub fn capture() {
        LINES.get_or_init(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,duality=debug,tower_http=debug")
                .with_ansi(false)
                .with_writer(|| Sink)
                .try_init();
            Mutex::new(Vec::new())
        });
    }

    pub fn text() -> String {
        LINES
            .get()
            .and_then(|l| {
                l.lock()
                    .ok()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
            })
            .unwrap_or_default()
    }

    /// True if one line holds every one of `parts`.
    pub fn contains(parts: &[&str]) -> bool {
        text().lines().any(|l| parts.iter().all(|p| l.contains(p)))
    }
}
