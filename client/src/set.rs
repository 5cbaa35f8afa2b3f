//! A set of followers that share one connection (`GET /streams`,
//! docs/PROTOCOL.md, "Many views on one connection").
//!
//! A [`FollowerSet`] keeps a local copy of each of several views (each
//! maybe filtered) current over a single SSE connection: every member
//! starts from its `snapshot` event, then applies its `change` events, as
//! a [`Follower`](crate::Follower) does with a view's own stream. After a
//! dropped connection it reconnects with the list of every member's
//! position as `Last-Event-ID`, so each resumes exactly. A member away
//! longer than the server keeps events, but within its catch-up horizon,
//! gets one `catch-up` event (docs/PROTOCOL.md, "Catch-up"): a merge patch
//! from its position to the revision it names, folded into that member's
//! copy like a change that skips the revisions between. A member whose
//! position cannot be served at all gets a `reset`: only that member
//! starts over from a snapshot (the set reconnects without its position). A changed
//! epoch (`410` for the whole request) starts every member over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::follower::{Health, Options, ViewCopy, until_idle};
use crate::transport::Transport;

/// One view of a set: the id that names it on the connection, the view's
/// name (as `/healthz` lists it), and the part of it to follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    id: String,
    view: String,
    keys: Vec<String>,
    pattern: Option<Map<String, Value>>,
}

impl Member {
    /// All of `view`, named `id` on the connection (1 to 32 ASCII letters,
    /// digits, `-` or `_`).
    pub fn new(id: &str, view: &str) -> Member {
        Member {
            id: id.to_string(),
            view: view.to_string(),
            keys: Vec::new(),
            pattern: None,
        }
    }

    /// Only the document under `key` (with other keys given, any of them).
    pub fn key(mut self, key: &str) -> Member {
        self.keys.push(key.to_string());
        self
    }

    /// Only the documents that contain `pattern` (see "Filters").
    pub fn matching(mut self, pattern: Map<String, Value>) -> Member {
        self.pattern = Some(pattern);
        self
    }

    fn filtered(&self) -> bool {
        !self.keys.is_empty() || self.pattern.is_some()
    }

    /// Its parameters on `GET /streams`.
    fn query(&self, out: &mut Vec<String>) {
        let id = &self.id;
        out.push(format!("s={}", encode(&format!("{id}:{}", self.view))));
        out.push(format!("{id}.snapshot=true"));
        for key in &self.keys {
            out.push(format!("{id}.key={}", encode(key)));
        }
        if let Some(pattern) = &self.pattern {
            let text = Value::Object(pattern.clone()).to_string();
            out.push(format!("{id}.where={}", encode(&text)));
        }
    }
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Several views followed over one connection.
pub struct FollowerSet {
    copies: BTreeMap<String, watch::Receiver<ViewCopy>>,
    health: watch::Receiver<Health>,
    task: JoinHandle<()>,
}

impl Drop for FollowerSet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FollowerSet {
    /// Starts following `members` over one `GET /streams` connection
    /// through `transport`. Fails only on a set that cannot be asked for
    /// (no member, more than 64, an invalid or repeated id); an
    /// unreachable server is retried, and reported by
    /// [`FollowerSet::health`].
    pub fn spawn(
        transport: Arc<dyn Transport>,
        members: Vec<Member>,
        options: Options,
    ) -> Result<FollowerSet, Error> {
        if members.is_empty() || members.len() > 64 {
            return Err(Error::Url {
                url: "/streams".into(),
                reason: format!("a set has 1 to 64 members, not {}", members.len()),
            });
        }
        let mut senders = Vec::with_capacity(members.len());
        let mut copies = BTreeMap::new();
        for member in &members {
            if !valid_id(&member.id) || copies.contains_key(&member.id) {
                return Err(Error::Url {
                    url: "/streams".into(),
                    reason: format!(
                        "member id `{}` is not 1 to 32 letters, digits, - or _, or is repeated",
                        member.id
                    ),
                });
            }
            let (tx, rx) = watch::channel(ViewCopy::default());
            senders.push(tx);
            copies.insert(member.id.clone(), rx);
        }
        let (health_tx, health) = watch::channel(Health {
            live: false,
            error: Some(Error::Connecting),
            bootstraps: 0,
            caught_up: false,
        });
        let run = Run {
            source: format!("{}/streams", transport.describe()),
            transport,
            options,
            members: members
                .into_iter()
                .zip(senders)
                .map(|(member, copy)| State {
                    member,
                    copy,
                    position: None,
                    caught_up: false,
                })
                .collect(),
            epoch: None,
            health: health_tx,
        };
        let task = tokio::spawn(run.forever());
        Ok(FollowerSet {
            copies,
            health,
            task,
        })
    }

    /// The copy of member `id` now, if the set has that member.
    pub fn current(&self, id: &str) -> Option<ViewCopy> {
        self.copies.get(id).map(|c| c.borrow().clone())
    }

    /// A receiver that wakes on every change of member `id`'s copy.
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<ViewCopy>> {
        self.copies.get(id).cloned()
    }

    /// The connection's health: `caught_up` once every member has caught
    /// up on the current connection; `bootstraps` counts snapshots loaded
    /// over all members.
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// A receiver that wakes on every change of the health.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// Waits until member `id`'s copy has reached `revision`.
    pub async fn wait_for(
        &self,
        id: &str,
        revision: u64,
        timeout: Duration,
    ) -> Result<ViewCopy, Error> {
        let mut copy = self.watch(id).ok_or_else(|| Error::Url {
            url: "/streams".into(),
            reason: format!("the set has no member `{id}`"),
        })?;
        let reached = copy.wait_for(|c| c.loaded && c.revision >= revision);
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(copy)) => Ok(copy.clone()),
            Ok(Err(_)) => Err(Error::Internal("the set stopped".into())),
            Err(_) => Err(Error::Timeout {
                what: format!("member `{id}` did not reach revision {revision}"),
                after: timeout,
            }),
        }
    }
}

/// One member's state on the task.
struct State {
    member: Member,
    copy: watch::Sender<ViewCopy>,
    /// Where a reconnection resumes it: the revision of its last
    /// snapshot, change or progress; `None` to start over.
    position: Option<u64>,
    /// Its `caught-up` came on the current connection.
    caught_up: bool,
}

struct Run {
    source: String,
    transport: Arc<dyn Transport>,
    options: Options,
    members: Vec<State>,
    /// The server's history the positions belong to.
    epoch: Option<String>,
    health: watch::Sender<Health>,
}

/// Why a connection ended.
enum Ended {
    /// Reconnect after a backoff.
    Dropped(Error),
    /// Reconnect at once: a member starts over.
    Again,
}

/// What every event of the connection carries (`sub`), and what some do.
struct Data {
    sub: String,
    revision: Option<u64>,
    view: Option<Map<String, Value>>,
    patch: Option<Map<String, Value>>,
}

impl Data {
    fn parse(text: &str) -> Result<Data, String> {
        let mut object: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Some(Value::String(sub)) = object.remove("sub") else {
            return Err("no `sub`".into());
        };
        let object_member = |v: Option<Value>| match v {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        Ok(Data {
            sub,
            revision: object.get("revision").and_then(Value::as_u64),
            view: object_member(object.remove("view")),
            patch: object_member(object.remove("patch")),
        })
    }
}

impl Run {
    async fn forever(mut self) {
        let mut backoff = self.options.min_backoff;
        loop {
            match self.connect(&mut backoff).await {
                Ended::Again => continue,
                Ended::Dropped(why) => {
                    tracing::debug!(source = %self.source, reason = %why, "reconnecting");
                    self.health.send_modify(|h| {
                        h.live = false;
                        h.caught_up = false;
                        h.error = Some(why);
                    });
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    fn path(&self) -> String {
        let mut params = Vec::new();
        for state in &self.members {
            state.member.query(&mut params);
        }
        if let Some(epoch) = &self.epoch {
            params.push(format!("epoch={}", encode(epoch)));
        }
        format!("/streams?{}", params.join("&"))
    }

    /// The positions to resume from, as `Last-Event-ID` lists them.
    fn positions(&self) -> Option<String> {
        let listed: Vec<String> = self
            .members
            .iter()
            .filter_map(|s| s.position.map(|p| format!("{}={p}", s.member.id)))
            .collect();
        (!listed.is_empty()).then(|| listed.join(","))
    }

    async fn connect(&mut self, backoff: &mut Duration) -> Ended {
        let path = self.path();
        let mut headers = Vec::new();
        if let Some(positions) = self.positions() {
            headers.push(("last-event-id", positions));
        }
        let after = self.options.request_timeout;
        let reply = match tokio::time::timeout(after, self.transport.get(&path, &headers)).await {
            Err(_) => {
                return Ended::Dropped(Error::Timeout {
                    what: "no answer to the stream request".into(),
                    after,
                });
            }
            Ok(Err(e)) => return Ended::Dropped(e),
            Ok(Ok(reply)) => reply,
        };
        if reply.status == 410 {
            // Another history: every position is void.
            tracing::info!(source = %self.source, "the server's epoch changed; starting every member over");
            self.epoch = None;
            for state in &mut self.members {
                state.position = None;
            }
            return Ended::Again;
        }
        if reply.status != 200 {
            return Ended::Dropped(reply.into_error("/streams").await);
        }
        if let Some(epoch) = reply.header("x-epoch") {
            self.epoch = Some(epoch.to_string());
        }
        for state in &mut self.members {
            state.caught_up = false;
        }
        self.health.send_modify(|h| {
            h.live = true;
            h.caught_up = false;
            h.error = None;
        });
        *backoff = self.options.min_backoff;
        let mut events = Box::pin(until_idle(reply.body, self.options.idle_timeout).eventsource());
        loop {
            let event = match events.next().await {
                None => return Ended::Dropped(Error::Transport("the stream ended".into())),
                Some(Err(EventStreamError::Transport(e))) => return Ended::Dropped(e),
                Some(Err(e)) => {
                    return Ended::Dropped(Error::Protocol(format!("stream failed: {e}")));
                }
                Some(Ok(event)) => event,
            };
            let data = match Data::parse(&event.data) {
                Ok(data) => data,
                Err(e) => {
                    return Ended::Dropped(Error::Protocol(format!(
                        "a `{}` event whose data is not as documented: {e}",
                        event.event
                    )));
                }
            };
            let Some(index) = self.members.iter().position(|s| s.member.id == data.sub) else {
                return Ended::Dropped(Error::Protocol(format!(
                    "an event of `{}`, which is no member",
                    data.sub
                )));
            };
            if let Some(ended) = self.apply(index, &event.event, data) {
                return ended;
            }
        }
    }

    /// Applies one event of member `index`; `Some` ends the connection.
    fn apply(&mut self, index: usize, name: &str, data: Data) -> Option<Ended> {
        let epoch = self.epoch.clone().unwrap_or_default();
        let state = &mut self.members[index];
        let missing = |what: &str| {
            Some(Ended::Dropped(Error::Protocol(format!(
                "a `{name}` event of `{}` without {what}",
                state.member.id
            ))))
        };
        match name {
            "snapshot" => {
                let (Some(revision), Some(view)) = (data.revision, data.view) else {
                    return missing("revision and view");
                };
                let keep = self.options.keep_copy;
                state.copy.send_replace(ViewCopy {
                    loaded: true,
                    revision,
                    epoch,
                    doc: if keep { view } else { Map::new() },
                });
                state.position = Some(revision);
                self.health.send_modify(|h| h.bootstraps += 1);
            }
            // A catch-up is one patch from the member's position to its
            // revision, however many revisions that skips.
            "change" | "catch-up" => {
                let (Some(revision), Some(patch)) = (data.revision, data.patch) else {
                    return missing("revision and patch");
                };
                let at = state.copy.borrow().revision;
                if revision <= at {
                    return None;
                }
                let compacted = name == "catch-up";
                if revision != at + 1 && !state.member.filtered() && !compacted {
                    // An unfiltered member must not skip: start it over.
                    tracing::info!(member = %state.member.id, revision, at, "a revision gap; starting the member over");
                    state.position = None;
                    return Some(Ended::Again);
                }
                let keep = self.options.keep_copy;
                state.copy.send_modify(|copy| {
                    if keep {
                        let mut doc = Value::Object(std::mem::take(&mut copy.doc));
                        json_patch::merge(&mut doc, &Value::Object(patch));
                        copy.doc = match doc {
                            Value::Object(map) => map,
                            _ => Map::new(),
                        };
                    }
                    copy.revision = revision;
                });
                state.position = Some(revision);
            }
            "progress" | "caught-up" => {
                let Some(revision) = data.revision else {
                    return missing("revision");
                };
                if state.member.filtered() && revision > state.copy.borrow().revision {
                    state.copy.send_modify(|copy| copy.revision = revision);
                    state.position = Some(revision);
                }
                if name == "caught-up" {
                    state.caught_up = true;
                    let all = self.members.iter().all(|s| s.caught_up);
                    self.health.send_if_modified(|h| {
                        let changed = h.caught_up != all;
                        h.caught_up = all;
                        changed
                    });
                }
            }
            "reset" => {
                tracing::info!(member = %state.member.id, "reset; starting the member over");
                state.position = None;
                return Some(Ended::Again);
            }
            // `stale`, `fresh`, and events of later versions.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_asks_for_its_snapshot_and_filter_under_its_id() {
        let mut params = Vec::new();
        let mut pattern = Map::new();
        pattern.insert("tag".into(), Value::from("red & blue"));
        Member::new("t", "tags")
            .key("a b")
            .matching(pattern)
            .query(&mut params);
        assert_eq!(
            params,
            [
                "s=t%3Atags",
                "t.snapshot=true",
                "t.key=a%20b",
                "t.where=%7B%22tag%22%3A%22red%20%26%20blue%22%7D",
            ]
        );
    }

    #[test]
    fn ids_are_short_plain_words() {
        assert!(valid_id("n") && valid_id("a-1_B"));
        assert!(!valid_id("") && !valid_id("a:b") && !valid_id(&"x".repeat(33)));
    }
}
