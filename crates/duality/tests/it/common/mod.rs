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
use std::time::Duration;

#[path = "reading.rs"]
mod reading;
pub use reading::{Sse, fold, header, logs, revision_of};

use duality::{Config, LaunchError};
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
