//! README, "Consumers": the Rust client bootstraps, follows (a whole view or
//! a filtered one), applies patches, reconnects with Last-Event-ID after a
//! dropped connection, catches up with one patch after an absence longer
//! than retention, and starts over from the snapshot on 410 or a changed
//! epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{ChildServer, spawn, spawn_default};
use duality::Config;
use duality::client::transport::{Http, Reply, Transport};
use duality::client::{Error, Follower, FollowerSet, Member, Options};
use duality_services::Settings;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn fast() -> Options {
    Options {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..Options::default()
    }
}

async fn post(client: &reqwest::Client, base: &str, body: Value) -> u64 {
    let r = client
        .post(format!("{base}/persons"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["x-revision"].to_str().unwrap().parse().unwrap()
}

async fn snapshot(base: &str, path: &str) -> (u64, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let rev = r.headers()["x-revision"].to_str().unwrap().parse().unwrap();
    (rev, r.json().await.unwrap())
}

#[tokio::test]
async fn a_follower_bootstraps_then_applies_every_patch_in_order() {
    let server = spawn_default().await;
    let base = server.url("");
    post(
        &server.client,
        &base,
        json!({"name": "Ann", "city": "Rome"}),
    )
    .await;
    let follower = Follower::connect(&server.url("/locations"), fast()).unwrap();
    let copy = follower.wait_for(1, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), json!({"Rome": {"total": 1}}));
    let mut changes = follower.watch();
    let mut seen = Vec::new();
    let mut last = 0;
    for i in 0..30 {
        last = post(
            &server.client,
            &base,
            json!({"name": format!("p{i}"), "city": if i % 2 == 0 { "Oslo" } else { "Rome" }}),
        )
        .await;
    }
    let (loc_rev, loc) = snapshot(&base, "/locations").await;
    while changes.borrow().revision < loc_rev {
        changes.changed().await.unwrap();
        seen.push(changes.borrow_and_update().revision);
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "revisions only grow: {seen:?}"
    );
    let copy = follower.wait_for(loc_rev, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), loc);
    assert!(follower.health().live);
    assert!(last >= 31);
}

#[tokio::test]
async fn a_follower_survives_a_server_restart_and_resumes_with_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let args = ["--db", db.to_str().unwrap(), "--services", "persons"];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let base = server.base();
    let client = reqwest::Client::new();
    post(&client, &base, json!({"name": "Ann"})).await;
    let follower = Follower::connect(&format!("{base}/persons"), fast()).unwrap();
    follower.wait_for(1, WAIT).await.unwrap();
    let epoch = follower.current().epoch;

    server.kill_9();
    let mut health = follower.watch_health();
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live))
        .await
        .unwrap()
        .unwrap();
    let addr = server.addr;
    drop(server);
    let server = ChildServer::restart_on(addr, &args, dir.path()).await;
    tokio::time::timeout(WAIT, health.wait_for(|h| h.live))
        .await
        .unwrap()
        .unwrap();
    let rev = post(&client, &server.base(), json!({"name": "Bob"})).await;
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(copy.epoch, epoch, "same history: no re-bootstrap needed");
    assert_eq!(
        Value::Object(copy.doc),
        snapshot(&server.base(), "/persons").await.1
    );
    assert_eq!(follower.health().bootstraps, 1, "resumed, not restarted");
}

#[tokio::test]
async fn a_follower_starts_over_when_the_server_has_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--db", ":memory:", "--services", "persons"];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let client = reqwest::Client::new();
    post(&client, &server.base(), json!({"name": "Ann"})).await;
    post(&client, &server.base(), json!({"name": "Bob"})).await;
    let follower = Follower::connect(&format!("{}/persons", server.base()), fast()).unwrap();
    let old = follower.wait_for(2, WAIT).await.unwrap();

    server.kill_9();
    let addr = server.addr;
    drop(server);
    let server = ChildServer::restart_on(addr, &args, dir.path()).await;
    post(&client, &server.base(), json!({"name": "Cy"})).await;
    let mut copies = follower.watch();
    let copy = tokio::time::timeout(WAIT, copies.wait_for(|c| c.epoch != old.epoch))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(copy.revision, 1);
    assert_eq!(Value::Object(copy.doc), json!({"1": {"name": "Cy"}}));
    assert_eq!(follower.health().bootstraps, 2);
}

/// A transport that can be cut off: requests fail and open streams end.
struct Gate {
    inner: Http,
    open: Arc<AtomicBool>,
}

impl Transport for Gate {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>> {
        Box::pin(async move {
            if !self.open.load(Ordering::SeqCst) {
                return Err(Error::Transport("gate closed".into()));
            }
            let mut reply = self.inner.get(path, headers).await?;
            let open = self.open.clone();
            reply.body = reply
                .body
                .take_while(move |_| std::future::ready(open.load(Ordering::SeqCst)))
                .boxed();
            Ok(reply)
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A follower of `snapshot_path` (and the stream its `Link` names), cut
/// off (its transport gated) while persons change and retention deletes
/// the events it needs; `horizon` is the server's `--catch-up-horizon`.
/// Answers the follower and the server, with the gate open again once a
/// position from before the changes is trimmed.
async fn away_longer_than_retention(
    horizon: Duration,
    snapshot_path: &str,
) -> (Follower, crate::common::TestServer) {
    let settings = Settings {
        engine: Config {
            retention: Duration::from_secs(1),
            catch_up_horizon: horizon,
            keep_alive: Duration::from_millis(100),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    let base = server.url("");
    post(&server.client, &base, json!({"name": "Ann"})).await;
    post(&server.client, &base, json!({"name": "Bob"})).await;
    let open = Arc::new(AtomicBool::new(true));
    let gate = Gate {
        inner: Http::new(&base).unwrap(),
        open: open.clone(),
    };
    let follower = Follower::spawn_linked(Arc::new(gate), snapshot_path, fast(), None);
    follower.wait_for(2, WAIT).await.unwrap();

    open.store(false, Ordering::SeqCst);
    let mut health = follower.watch_health();
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live))
        .await
        .unwrap()
        .unwrap();
    let r = server
        .client
        .patch(format!("{base}/persons/1"))
        .json(&json!({"name": "Ann B."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .client
        .delete(format!("{base}/persons/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    post(&server.client, &base, json!({"name": "Cy"})).await;
    // Wait until the events after its position (2) are gone: a poll from
    // it is then a catch-up, or, past the horizon, 410.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = server.get("/person-events?mode=poll&after=2&wait=0").await;
        if r.status() == 410 {
            break;
        }
        let page: Value = r.json().await.unwrap();
        if page["changes"][0]["compacted"] == json!(true) && horizon > Duration::from_secs(1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.store(true, Ordering::SeqCst);
    (follower, server)
}

#[tokio::test]
async fn a_follower_away_longer_than_retention_catches_up_with_one_patch_without_reloading() {
    let (follower, server) =
        away_longer_than_retention(Duration::from_secs(3600), "/persons").await;
    let (rev, view) = snapshot(&server.url(""), "/persons").await;
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), view);
    assert_eq!(
        follower.health().bootstraps,
        1,
        "caught up, not started over"
    );
    // And it follows on live.
    let next = post(&server.client, &server.url(""), json!({"name": "Dee"})).await;
    let copy = follower.wait_for(next, WAIT).await.unwrap();
    assert_eq!(copy.revision, next);
    assert_eq!(
        Value::Object(copy.doc),
        snapshot(&server.url(""), "/persons").await.1
    );
    assert_eq!(follower.health().bootstraps, 1);
}

#[tokio::test]
async fn a_filtered_follower_away_longer_than_retention_catches_up_its_subset() {
    let (follower, server) =
        away_longer_than_retention(Duration::from_secs(3600), "/persons?key=1&key=2").await;
    let (rev, _) = snapshot(&server.url(""), "/persons").await;
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        json!({"1": {"name": "Ann B."}}),
        "2 deleted, 3 (Cy) outside the subset"
    );
    assert_eq!(follower.health().bootstraps, 1);
}

#[tokio::test]
async fn a_follower_whose_position_is_past_the_catch_up_horizon_gets_410_and_starts_over() {
    let (follower, server) = away_longer_than_retention(Duration::from_secs(1), "/persons").await;
    let (rev, view) = snapshot(&server.url(""), "/persons").await;
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), view);
    assert_eq!(follower.health().bootstraps, 2, "410 made it start over");
    let mut health = follower.watch_health();
    tokio::time::timeout(WAIT, health.wait_for(|h| h.live))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn connecting_to_an_invalid_url_is_an_error() {
    let refused = Follower::connect("not a url", Options::default()).err();
    assert!(matches!(refused, Some(Error::Url { .. })), "{refused:?}");
}

#[tokio::test]
async fn a_follower_starts_over_after_a_restart_with_a_new_history_that_is_already_further_along() {
    // The new history passes the follower's old revision before it
    // reconnects, so Last-Event-ID alone would look valid: only the epoch
    // it sends tells the server this is another history.
    let dir = tempfile::tempdir().unwrap();
    let args = ["--db", ":memory:", "--services", "persons"];
    let mut server = ChildServer::start(&args, dir.path()).await;
    let client = reqwest::Client::new();
    post(&client, &server.base(), json!({"name": "Ann"})).await;
    post(&client, &server.base(), json!({"name": "Bob"})).await;
    let open = Arc::new(AtomicBool::new(true));
    let gate = Gate {
        inner: Http::new(&server.base()).unwrap(),
        open: open.clone(),
    };
    let follower = Follower::spawn(Arc::new(gate), "/persons", "/person-events", fast());
    let old = follower.wait_for(2, WAIT).await.unwrap();

    open.store(false, Ordering::SeqCst);
    server.kill_9();
    let addr = server.addr;
    drop(server);
    let server = ChildServer::restart_on(addr, &args, dir.path()).await;
    for name in ["Cy", "Dee", "Eve"] {
        post(&client, &server.base(), json!({"name": name})).await;
    }
    open.store(true, Ordering::SeqCst);

    let mut copies = follower.watch();
    let copy = tokio::time::timeout(WAIT, copies.wait_for(|c| c.epoch != old.epoch))
        .await
        .expect("the follower never noticed the new history")
        .unwrap()
        .clone();
    let (revision, view) = snapshot(&server.base(), "/persons").await;
    assert_eq!(copy.revision, revision);
    assert_eq!(Value::Object(copy.doc), view);
    assert_eq!(follower.health().bootstraps, 2, "started over, not resumed");
}

#[tokio::test]
async fn a_follower_connected_to_a_filtered_url_keeps_the_documents_that_match() {
    let server = spawn_default().await;
    let base = server.url("");
    post(
        &server.client,
        &base,
        json!({"name": "Ann", "city": "Rome"}),
    )
    .await;
    post(
        &server.client,
        &base,
        json!({"name": "Bob", "city": "Oslo"}),
    )
    .await;
    let path = "/persons?where=%7B%22city%22%3A%22Rome%22%7D";
    let follower = Follower::connect(&server.url(path), fast()).unwrap();
    let copy = follower.wait_for(2, WAIT).await.unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        json!({"1": {"name": "Ann", "city": "Rome"}})
    );
    // Bob moves in, Ann moves out.
    server
        .send("PATCH", "/persons/2", Some(json!({"city": "Rome"})))
        .await;
    let moved = server
        .send("PATCH", "/persons/1", Some(json!({"city": "Oslo"})))
        .await;
    let rev: u64 = moved.headers()["x-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        json!({"2": {"name": "Bob", "city": "Rome"}})
    );
    assert_eq!(
        server.get_json(path).await,
        json!({"2": {"name": "Bob", "city": "Rome"}})
    );
    assert_eq!(follower.health().bootstraps, 1);
}

/// The stream requests a transport was asked for: path and Last-Event-ID.
type Asked = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A [`Gate`] that records its stream requests.
struct Recorded {
    gate: Gate,
    asked: Asked,
}

impl Transport for Recorded {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>> {
        if let Some((_, last)) = headers.iter().find(|(n, _)| *n == "last-event-id") {
            self.asked
                .lock()
                .unwrap()
                .push((path.to_string(), last.clone()));
        }
        self.gate.get(path, headers)
    }

    fn describe(&self) -> String {
        self.gate.describe()
    }
}

#[tokio::test]
async fn a_filtered_follower_reaches_revisions_that_left_its_keys_alone_and_resumes_after_them() {
    let server = spawn_default().await;
    let base = server.url("");
    post(&server.client, &base, json!({"name": "Ann"})).await;
    post(&server.client, &base, json!({"name": "Bob"})).await;
    let open = Arc::new(AtomicBool::new(true));
    let asked = Asked::default();
    let transport = Recorded {
        gate: Gate {
            inner: Http::new(&base).unwrap(),
            open: open.clone(),
        },
        asked: asked.clone(),
    };
    let follower = Follower::spawn_linked(Arc::new(transport), "/persons?key=1", fast(), None);
    let copy = follower.wait_for(2, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), json!({"1": {"name": "Ann"}}));

    // Revision 3 leaves person 1 alone: the stream's progress says so.
    let rev = post(&server.client, &base, json!({"name": "Cy"})).await;
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(Value::Object(copy.doc), json!({"1": {"name": "Ann"}}));
    let mut health = follower.watch_health();
    tokio::time::timeout(WAIT, health.wait_for(|h| h.live && h.caught_up))
        .await
        .unwrap()
        .unwrap();

    // Cut off; the next thing on the stream (4's progress) ends it.
    open.store(false, Ordering::SeqCst);
    post(&server.client, &base, json!({"name": "Dee"})).await;
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live && !h.caught_up))
        .await
        .unwrap()
        .unwrap();
    open.store(true, Ordering::SeqCst);
    let patched = server
        .send("PATCH", "/persons/1", Some(json!({"city": "Rome"})))
        .await;
    let rev: u64 = patched.headers()["x-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let copy = follower.wait_for(rev, WAIT).await.unwrap();
    assert_eq!(
        Value::Object(copy.doc),
        server.get_json("/persons?key=1").await
    );
    assert_eq!(follower.health().bootstraps, 1, "resumed, not restarted");
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.iter().all(|(path, _)| path == "/person-events?key=1"),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|(_, last)| last == "3"),
        "it resumed after 3, reached without a change: {asked:?}"
    );
}

fn recorded(base: &str, open: &Arc<AtomicBool>, asked: &Asked) -> Arc<Recorded> {
    Arc::new(Recorded {
        gate: Gate {
            inner: Http::new(base).unwrap(),
            open: open.clone(),
        },
        asked: asked.clone(),
    })
}

/// Every member of `set` equals the server's answer at `path`, at the
/// revision of that answer.
async fn set_matches(
    server: &crate::common::TestServer,
    set: &FollowerSet,
    members: &[(&str, &str)],
) {
    for (id, path) in members {
        let r = server.get(path).await;
        let rev: u64 = r.headers()["x-revision"].to_str().unwrap().parse().unwrap();
        let want: Value = r.json().await.unwrap();
        let copy = set.wait_for(id, rev, WAIT).await.unwrap();
        assert_eq!(Value::Object(copy.doc), want, "member {id} ({path})");
    }
}

#[tokio::test]
async fn a_follower_set_keeps_several_views_over_one_connection_and_resumes_each_after_a_drop() {
    let server = spawn_default().await;
    let base = server.url("");
    post(
        &server.client,
        &base,
        json!({"name": "Ann", "city": "Rome"}),
    )
    .await;
    post(
        &server.client,
        &base,
        json!({"name": "Bob", "city": "Oslo"}),
    )
    .await;
    let open = Arc::new(AtomicBool::new(true));
    let asked = Asked::default();
    let members = [
        ("p", "/persons"),
        ("one", "/persons?key=1"),
        ("loc", "/locations"),
    ];
    let set = FollowerSet::spawn(
        recorded(&base, &open, &asked),
        vec![
            Member::new("p", "persons"),
            Member::new("one", "persons").key("1"),
            Member::new("loc", "locations"),
        ],
        fast(),
    )
    .unwrap();
    set_matches(&server, &set, &members).await;
    let mut health = set.watch_health();
    tokio::time::timeout(WAIT, health.wait_for(|h| h.live && h.caught_up))
        .await
        .unwrap()
        .unwrap();

    // Cut off while the views move; each member resumes where it was.
    open.store(false, Ordering::SeqCst);
    post(&server.client, &base, json!({"name": "Cy", "city": "Rome"})).await;
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live))
        .await
        .unwrap()
        .unwrap();
    server
        .send("PATCH", "/persons/1", Some(json!({"city": "Oslo"})))
        .await;
    post(&server.client, &base, json!({"name": "Dee"})).await;
    open.store(true, Ordering::SeqCst);
    set_matches(&server, &set, &members).await;
    assert_eq!(
        set.health().bootstraps,
        3,
        "one snapshot per member, none again"
    );
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.is_empty(), "it reconnected with Last-Event-ID");
    for (path, last) in &asked {
        assert!(path.starts_with("/streams?s=p%3Apersons"), "{path}");
        let listed: Vec<&str> = last
            .split(',')
            .map(|p| p.split('=').next().unwrap())
            .collect();
        assert_eq!(
            listed,
            ["p", "one", "loc"],
            "every member's position: {last}"
        );
    }
}

#[tokio::test]
async fn a_member_of_a_set_whose_position_is_gone_starts_over_alone() {
    let settings = Settings {
        engine: Config {
            retention: Duration::from_secs(1),
            // No catch-up past retention: `p`'s position becomes 410.
            catch_up_horizon: Duration::from_secs(1),
            keep_alive: Duration::from_millis(100),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    let base = server.url("");
    post(
        &server.client,
        &base,
        json!({"name": "Ann", "city": "Rome"}),
    )
    .await;
    let open = Arc::new(AtomicBool::new(true));
    let asked = Asked::default();
    let members = [("p", "/persons"), ("loc", "/locations")];
    let set = FollowerSet::spawn(
        recorded(&base, &open, &asked),
        vec![Member::new("p", "persons"), Member::new("loc", "locations")],
        fast(),
    )
    .unwrap();
    set_matches(&server, &set, &members).await;
    let mut health = set.watch_health();
    open.store(false, Ordering::SeqCst);
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live))
        .await
        .unwrap()
        .unwrap();
    // Persons move on (no city: locations stay at 1) until retention
    // has deleted what `p` needs next; `loc` needs nothing deleted.
    post(&server.client, &base, json!({"name": "Bob"})).await;
    post(&server.client, &base, json!({"name": "Cy"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.get("/person-events?revision=2").await.status() != 410 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.store(true, Ordering::SeqCst);
    set_matches(&server, &set, &members).await;
    assert_eq!(
        set.health().bootstraps,
        3,
        "p started over from a snapshot, loc resumed"
    );
}

#[tokio::test]
async fn members_of_a_set_away_longer_than_retention_each_catch_up_with_one_patch_without_reloading()
 {
    let settings = Settings {
        engine: Config {
            retention: Duration::from_secs(1),
            catch_up_horizon: Duration::from_secs(3600),
            keep_alive: Duration::from_millis(100),
            ..Config::ephemeral()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    let base = server.url("");
    post(
        &server.client,
        &base,
        json!({"name": "Ann", "city": "Rome"}),
    )
    .await;
    post(
        &server.client,
        &base,
        json!({"name": "Bob", "city": "Oslo"}),
    )
    .await;
    let open = Arc::new(AtomicBool::new(true));
    let asked = Asked::default();
    let members = [
        ("p", "/persons"),
        ("one", "/persons?key=1"),
        ("loc", "/locations"),
    ];
    let set = FollowerSet::spawn(
        recorded(&base, &open, &asked),
        vec![
            Member::new("p", "persons"),
            Member::new("one", "persons").key("1"),
            Member::new("loc", "locations"),
        ],
        fast(),
    )
    .unwrap();
    set_matches(&server, &set, &members).await;
    let mut health = set.watch_health();
    open.store(false, Ordering::SeqCst);
    tokio::time::timeout(WAIT, health.wait_for(|h| !h.live))
        .await
        .unwrap()
        .unwrap();
    // Changed, deleted and created while the set is away, until retention
    // has deleted every event after its positions (2).
    server
        .send("PATCH", "/persons/1", Some(json!({"city": "Oslo"})))
        .await;
    let r = server.send("DELETE", "/persons/2", None).await;
    assert_eq!(r.status(), 204);
    post(&server.client, &base, json!({"name": "Cy", "city": "Lima"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page: Value = server
            .get("/person-events?mode=poll&after=2&wait=0")
            .await
            .json()
            .await
            .unwrap();
        if page["changes"][0]["compacted"] == json!(true) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.store(true, Ordering::SeqCst);
    set_matches(&server, &set, &members).await;
    let one = set.current("one").unwrap();
    assert_eq!(
        Value::Object(one.doc),
        json!({"1": {"name": "Ann", "city": "Oslo"}})
    );
    assert_eq!(
        set.health().bootstraps,
        3,
        "each member caught up from its position, none started over"
    );
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.iter().any(|(_, last)| last.contains("p=2")),
        "it resumed from 2, a position whose events are gone: {asked:?}"
    );
    // And every member follows on live from the catch-up's revision.
    post(
        &server.client,
        &base,
        json!({"name": "Dee", "city": "Rome"}),
    )
    .await;
    server
        .send("PATCH", "/persons/1", Some(json!({"name": "Ann B."})))
        .await;
    set_matches(&server, &set, &members).await;
    assert_eq!(set.health().bootstraps, 3);
}
