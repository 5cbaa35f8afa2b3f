//! Test harness: starts the real server on 127.0.0.1:0 and speaks HTTP and
//! SSE to it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use duality::LaunchError;
use duality::settings::Settings;
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(duality::launch(settings, listener, async {
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
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
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

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// A parsed SSE stream.
pub struct Sse {
    events: Events,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Self {
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

    /// The next event, which must be a change: (revision, patch).
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
        json_patch::merge(&mut doc, p);
    }
    doc
}
