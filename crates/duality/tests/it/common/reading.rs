//! What both test binaries read off the server: SSE streams, folded
//! patches, headers, and the log lines of the binary. Shared by the
//! engine's tests and the `duality` command's (which include this file by
//! its path), so the two harnesses read the protocol alike.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

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

    /// The next change, (revision, patch): it must come before any other
    /// event but `stale` and `fresh`, which say whether a composed view's
    /// upstream is reachable and are skipped here.
    pub async fn change(&mut self) -> (u64, Value) {
        let mut e = self.next().await.expect("stream ended");
        while e.event == "stale" || e.event == "fresh" {
            e = self.next().await.expect("stream ended");
        }
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
