//! The follower against a scripted transport: what it asks for and what it
//! makes of the answers, without a server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use duality_client::transport::HeaderMap;
use duality_client::{Error, Follower, Observer, Options, Reply, Transport};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

/// One request: its path and headers.
type Seen = (String, Vec<(String, String)>);

/// Answers the snapshot path (`/things`, with any query) with a fixed view
/// and each stream request with
/// the next scripted reply (then an open, silent stream); records every
/// request's path and headers.
struct Script {
    epoch: String,
    snapshot: Value,
    snapshot_revision: u64,
    streams: Mutex<Vec<(u16, String)>>,
    seen: Mutex<Vec<Seen>>,
    /// After its scripted bytes, a stream sends a keep-alive comment this
    /// often (or nothing at all).
    keep_alive: Option<Duration>,
    /// The snapshot's `Link` header, if it has one.
    link: Option<String>,
}

impl Transport for Script {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>> {
        Box::pin(async move {
            let recorded = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            self.seen.lock().unwrap().push((path.to_string(), recorded));
            let mut out = HeaderMap::new();
            let snapshot = path.split('?').next() == Some("/things");
            let (status, body) = if snapshot {
                out.insert("x-revision", self.snapshot_revision.into());
                out.insert("x-epoch", self.epoch.parse().unwrap());
                if let Some(link) = &self.link {
                    out.insert("link", link.parse().unwrap());
                }
                (200, self.snapshot.to_string())
            } else {
                let mut streams = self.streams.lock().unwrap();
                if streams.is_empty() {
                    (200, String::new())
                } else {
                    streams.remove(0)
                }
            };
            let first = futures_util::stream::iter([Ok(Bytes::from(body))]);
            // A snapshot or an error ends; a stream stays open.
            let body = match (snapshot || status != 200, self.keep_alive) {
                (true, _) => first.boxed(),
                (false, None) => first.chain(futures_util::stream::pending()).boxed(),
                (false, Some(every)) => {
                    let comments = futures_util::stream::unfold((), move |()| async move {
                        tokio::time::sleep(every).await;
                        Some((Ok(Bytes::from_static(b": keep-alive\n\n")), ()))
                    });
                    first.chain(comments).boxed()
                }
            };
            Ok(Reply {
                status,
                headers: out,
                body,
            })
        })
    }

    fn describe(&self) -> String {
        "script".into()
    }
}

fn script(streams: Vec<(u16, &str)>) -> Arc<Script> {
    Arc::new(Script {
        epoch: "e1".into(),
        snapshot: json!({"1": {"name": "Ann"}, "2": {"name": "Bob"}}),
        snapshot_revision: 2,
        streams: Mutex::new(streams.into_iter().map(|(s, b)| (s, b.into())).collect()),
        seen: Mutex::new(Vec::new()),
        keep_alive: None,
        link: None,
    })
}

fn fast() -> Options {
    Options {
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_follower_applies_patches_after_the_snapshot_and_names_its_position_and_epoch() {
    let events = "id: 3\ndata: {\"2\":null,\"3\":{\"name\":\"Cy\"}}\n\n\
                  id: 4\ndata: {\"1\":{\"name\":\"Ann B\"}}\n\n";
    let script = script(vec![(200, events)]);
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", fast());
    let copy = follower.wait_for(4, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        json!({"1": {"name": "Ann B"}, "3": {"name": "Cy"}})
    );
    assert_eq!(copy.epoch, "e1");
    let seen = script.seen.lock().unwrap().clone();
    let (path, headers) = &seen[1];
    assert_eq!(path, "/thing-events");
    assert!(headers.contains(&("last-event-id".into(), "2".into())));
    assert!(headers.contains(&("x-epoch".into(), "e1".into())));
}

#[tokio::test]
async fn a_follower_starts_over_from_the_snapshot_on_410_and_on_a_reset_event() {
    let script = script(vec![(410, "{}"), (200, "event: reset\ndata: {}\n\n")]);
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", fast());
    let mut health = follower.watch_health();
    tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|h| h.bootstraps == 3 && h.live),
    )
    .await
    .unwrap()
    .unwrap();
    let snapshots = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/things")
        .count();
    assert_eq!(snapshots, 3);
}

#[tokio::test]
async fn a_follower_reports_a_refused_token_and_an_outage_as_errors_it_can_tell_apart() {
    let refused = r#"{"error": "a read token is required"}"#;
    let script = script(vec![(401, refused), (503, "")]);
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", fast());
    let mut health = follower.watch_health();
    let wait = Duration::from_secs(10);
    let unauthorized = tokio::time::timeout(
        wait,
        health.wait_for(|h| matches!(h.error, Some(Error::Unauthorized { .. }))),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let error = unauthorized.error.unwrap();
    assert!(!error.is_retryable());
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("a read token is required"),
        "{error}"
    );
    let outage = tokio::time::timeout(
        wait,
        health.wait_for(|h| matches!(h.error, Some(Error::Status { status: 503, .. }))),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert!(outage.error.unwrap().is_retryable());
    tokio::time::timeout(wait, health.wait_for(|h| h.live && h.error.is_none()))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn waiting_for_a_revision_that_never_comes_is_a_timeout() {
    let follower = Follower::spawn(script(vec![]), "/things", "/thing-events", fast());
    let error = follower
        .wait_for(99, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(error.to_string(), "revision 99 not reached within 200ms");
}

#[tokio::test]
async fn an_unusable_url_or_token_is_refused_before_anything_is_sent() {
    let bad_url = Follower::connect("not a url", fast()).err().unwrap();
    assert!(matches!(bad_url, Error::Url { .. }), "{bad_url:?}");
    let bad_token = Follower::connect_with_token("http://127.0.0.1:1/things", Some("a\nb"), fast())
        .err()
        .unwrap();
    assert_eq!(bad_token, Error::Token);
}

#[tokio::test]
async fn a_gap_in_the_revisions_makes_a_follower_start_over_rather_than_skip() {
    let script = script(vec![(200, "id: 5\ndata: {\"9\":{}}\n\n")]);
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", fast());
    let mut health = follower.watch_health();
    tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|h| h.bootstraps == 2 && h.live),
    )
    .await
    .unwrap()
    .unwrap();
    let copy = follower.current();
    assert_eq!(copy.revision, 2);
    assert!(!copy.doc.contains_key("9"));
}

#[tokio::test]
async fn keep_alive_comments_keep_a_quiet_stream_followed_past_the_idle_timeout() {
    let mut quiet = Arc::into_inner(script(vec![])).unwrap();
    quiet.keep_alive = Some(Duration::from_millis(100));
    let script = Arc::new(quiet);
    // Ten keep-alive periods per timeout: a loaded machine may delay a
    // comment, not by a whole second.
    let options = Options {
        idle_timeout: Duration::from_millis(1000),
        ..fast()
    };
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", options);
    follower.wait_for(2, Duration::from_secs(10)).await.unwrap();
    // Three idle timeouts with nothing but comments on the stream.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let streams = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/thing-events")
        .count();
    assert_eq!(
        streams, 1,
        "the follower reconnected a stream that was alive"
    );
    assert!(follower.health().live);
}

#[tokio::test]
async fn a_stream_that_sends_nothing_at_all_is_dropped_after_the_idle_timeout() {
    let script = script(vec![]);
    let options = Options {
        idle_timeout: Duration::from_millis(200),
        ..fast()
    };
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", options);
    follower.wait_for(2, Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let streams = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/thing-events")
        .count();
    assert!(
        streams >= 2,
        "a silent stream was never dropped ({streams})"
    );
}

#[tokio::test]
async fn a_follower_follows_the_stream_its_snapshot_links_to() {
    let events = "id: 3\ndata: {\"3\":{\"name\":\"Cy\"}}\n\n";
    let script = Arc::new(Script {
        link: Some(r#"</things/linked-events>; rel="duality-stream""#.into()),
        ..Arc::into_inner(script(vec![(200, events)])).unwrap()
    });
    let follower = Follower::spawn_linked(script.clone(), "/things", fast(), None);
    follower.wait_for(3, Duration::from_secs(5)).await.unwrap();
    let paths: Vec<String> = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        paths[..2],
        ["/things", "/things/linked-events"],
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_linked_follower_refuses_a_snapshot_that_names_no_stream() {
    let script = script(vec![]);
    let follower = Follower::spawn_linked(script.clone(), "/things", fast(), None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = follower.health();
    assert!(!health.live);
    assert!(
        matches!(&health.error, Some(Error::Protocol(m)) if m.contains("names no stream")),
        "{:?}",
        health.error
    );
    let paths: Vec<String> = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        paths.iter().all(|p| p == "/things"),
        "no stream was guessed: {paths:?}"
    );
}

/// The stream paths asked for, and the `Last-Event-ID` each was asked with.
fn streams_seen(script: &Script) -> Vec<(String, String)> {
    script
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| !p.starts_with("/things"))
        .map(|(p, headers)| {
            let last = headers
                .iter()
                .find(|(n, _)| n == "last-event-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (p.clone(), last)
        })
        .collect()
}

#[tokio::test]
async fn a_filtered_follower_applies_changes_whose_revisions_skip() {
    let events = "id: 5\ndata: {\"2\":null}\n\n\
                  id: 9\ndata: {\"1\":{\"name\":\"Ann B\"}}\n\n";
    let script = script(vec![(200, events)]);
    let follower = Follower::spawn(
        script.clone(),
        "/things?key=1&key=2",
        "/thing-events?key=1&key=2",
        fast(),
    );
    let copy = follower.wait_for(9, Duration::from_secs(10)).await.unwrap();
    assert_eq!(Value::Object(copy.doc), json!({"1": {"name": "Ann B"}}));
    assert_eq!(follower.health().bootstraps, 1, "no start-over");
    assert_eq!(
        streams_seen(&script)[0],
        ("/thing-events?key=1&key=2".to_string(), "2".to_string())
    );
}

/// Records what a follower tells its observer.
#[derive(Default)]
struct Told(Mutex<Vec<String>>);

impl Observer for Told {
    fn loaded(&self, _: &Map<String, Value>, revision: u64, _: &str) {
        self.0.lock().unwrap().push(format!("loaded {revision}"));
    }
    fn patched(&self, _: &Map<String, Value>, revision: u64) {
        self.0.lock().unwrap().push(format!("patched {revision}"));
    }
    fn progressed(&self, revision: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("progressed {revision}"));
    }
}

#[tokio::test]
async fn progress_moves_a_filtered_copy_and_a_reconnect_resumes_after_it() {
    // Filtered by the stream its snapshot links to, not by the URL given.
    let events = "id: 4\ndata: {\"1\":{\"name\":\"Ann B\"}}\n\n\
                  event: progress\nid: 7\ndata: {\"revision\":7}\n\n";
    let script = Arc::new(Script {
        link: Some(r#"</thing-events?key=1>; rel="duality-stream""#.into()),
        ..Arc::into_inner(script(vec![(200, events)])).unwrap()
    });
    // The stream then falls silent, is dropped, and is asked for again.
    let options = Options {
        idle_timeout: Duration::from_millis(300),
        ..fast()
    };
    let told = Arc::new(Told::default());
    let follower = Follower::spawn_linked(script.clone(), "/things", options, Some(told.clone()));
    let copy = follower.wait_for(7, Duration::from_secs(10)).await.unwrap();
    assert_eq!(copy.doc["1"], json!({"name": "Ann B"}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while streams_seen(&script).len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streams = streams_seen(&script);
    assert_eq!(
        streams[..2],
        [
            ("/thing-events?key=1".to_string(), "2".to_string()),
            ("/thing-events?key=1".to_string(), "7".to_string()),
        ],
        "{streams:?}"
    );
    assert_eq!(follower.health().bootstraps, 1, "no start-over");
    assert_eq!(
        told.0.lock().unwrap()[..3],
        ["loaded 2", "patched 4", "progressed 7"]
    );
}

#[tokio::test]
async fn caught_up_marks_the_connection_current_and_moves_a_filtered_copy_to_its_revision() {
    let events = "id: 3\ndata: {\"1\":{\"name\":\"Ann B\"}}\n\n\
                  event: caught-up\ndata: {\"revision\":6}\n\n";
    let script = script(vec![(200, events)]);
    let follower = Follower::spawn(
        script.clone(),
        "/things?where=%7B%22name%22%3A%22Ann%22%7D",
        "/thing-events?where=%7B%22name%22%3A%22Ann%22%7D",
        fast(),
    );
    assert!(!follower.health().caught_up);
    let mut health = follower.watch_health();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.caught_up))
        .await
        .unwrap()
        .unwrap();
    let copy = follower.current();
    assert_eq!(copy.revision, 6);
    assert_eq!(copy.doc["1"], json!({"name": "Ann B"}));
}

#[tokio::test]
async fn an_unfiltered_follower_moves_only_with_its_changes_and_ignores_progress() {
    let events = "event: progress\nid: 7\ndata: {\"revision\":7}\n\n\
                  event: caught-up\ndata: {\"revision\":7}\n\n\
                  event: something-new\ndata: {}\n\n\
                  id: 3\ndata: {\"3\":{\"name\":\"Cy\"}}\n\n";
    let script = script(vec![(200, events)]);
    let follower = Follower::spawn(script.clone(), "/things", "/thing-events", fast());
    let copy = follower.wait_for(3, Duration::from_secs(10)).await.unwrap();
    assert_eq!(copy.revision, 3, "progress did not move it to 7");
    assert_eq!(copy.doc["3"], json!({"name": "Cy"}));
    let health = follower.health();
    assert!(health.caught_up && health.live, "{health:?}");
    assert_eq!(health.bootstraps, 1);
}

/// Records what an observer is told, patches included.
#[derive(Default)]
struct Patches(Mutex<Vec<(&'static str, u64, Value)>>);

impl Observer for Patches {
    fn loaded(&self, view: &Map<String, Value>, revision: u64, _: &str) {
        let told = ("loaded", revision, Value::Object(view.clone()));
        self.0.lock().unwrap().push(told);
    }
    fn patched(&self, patch: &Map<String, Value>, revision: u64) {
        let told = ("patched", revision, Value::Object(patch.clone()));
        self.0.lock().unwrap().push(told);
    }
    fn compacted(&self, patch: &Map<String, Value>, revision: u64) {
        let told = ("compacted", revision, Value::Object(patch.clone()));
        self.0.lock().unwrap().push(told);
    }
}

#[tokio::test]
async fn a_catch_up_skips_revisions_in_one_patch_and_the_follower_goes_on_after_it() {
    let events = "event: catch-up\nid: 40\ndata: {\"2\":null,\"3\":{\"name\":\"Cy\"}}\n\n\
                  event: caught-up\ndata: {\"revision\":40}\n\n\
                  id: 41\ndata: {\"1\":{\"name\":\"Ann B\"}}\n\n";
    let script = script(vec![(200, events)]);
    let told = Arc::new(Patches::default());
    let follower = Follower::spawn_observed(
        script.clone(),
        "/things",
        "/thing-events",
        fast(),
        Some(told.clone()),
    );
    let copy = follower
        .wait_for(41, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        json!({"1": {"name": "Ann B"}, "3": {"name": "Cy"}})
    );
    assert_eq!(
        follower.health().bootstraps,
        1,
        "no start-over for the skip"
    );
    let told = told.0.lock().unwrap().clone();
    assert_eq!(
        told[1..],
        [
            ("compacted", 40, json!({"2": null, "3": {"name": "Cy"}})),
            ("patched", 41, json!({"1": {"name": "Ann B"}})),
        ]
    );
    assert_eq!(
        streams_seen(&script),
        [("/thing-events".into(), "2".into())]
    );
}
