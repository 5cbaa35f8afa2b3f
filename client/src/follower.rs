//! A follower keeps a local copy of one remote view current.
//!
//! It bootstraps from the snapshot (`X-Revision`, `X-Epoch`), follows the
//! change stream from the next revision, and applies each merge patch. After
//! a dropped connection it reconnects with `Last-Event-ID` and exponential
//! backoff; on `410`, a `reset` event, a changed epoch or a malformed event
//! it starts over from the snapshot. It never gives up; while it cannot
//! follow, it reports itself stale and keeps the last known copy, and its
//! [`Health`] says why with an [`Error`] a consumer can act on (a refused
//! token is worth telling a user about; a dropped connection is not).
//!
//! A follower may follow part of a view: a snapshot URL with `?key=` or
//! `?where=` (docs/PROTOCOL.md, "Filters") answers the subset, and its
//! `Link` names the stream of the same subset. Such a stream sends a change
//! only at the revisions that change the subset, so its ids grow but skip:
//! while the stream followed is filtered (the snapshot path or the linked
//! stream has a `key` or `where` parameter), a change past the copy's
//! revision + 1 is applied, and a `progress` event (or `caught-up`) moves
//! the copy's revision without a change, so that a reconnect resumes after
//! it. An unfiltered stream must continue the copy's revision by exactly
//! one: a gap starts over from the snapshot, and `progress` is ignored.
//! Every stream's `caught-up` sets [`Health::caught_up`].
//!
//! A follower that was away longer than the server keeps events (a laptop
//! asleep over a weekend) reconnects with a position the server no longer
//! has the events for. Within the server's catch-up horizon it answers with
//! one `catch-up` event (docs/PROTOCOL.md, "Catch-up"): a merge patch from
//! the copy's revision to the event's id, which the follower applies like a
//! change that skips revisions, then follows on; only past the horizon does
//! it get `410` and start over from the snapshot.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::transport::{Http, Transport};

/// The largest snapshot a follower reads.
const SNAPSHOT_LIMIT: usize = 256 * 1024 * 1024;

/// The local copy of a view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewCopy {
    /// `false` until the first snapshot arrived.
    pub loaded: bool,
    /// The revision the copy is at.
    pub revision: u64,
    /// The server's history id (`X-Epoch`) the revision belongs to.
    pub epoch: String,
    /// The view itself: documents by id. Empty when
    /// [`Options::keep_copy`] is off.
    pub doc: Map<String, Value>,
}

/// Whether the copy is current.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// True while the stream is connected and applied.
    pub live: bool,
    /// The last reason it was not, if any: [`Error::Connecting`] until it
    /// first connects.
    pub error: Option<Error>,
    /// How many snapshots it has loaded: 1 after the first bootstrap, one
    /// more for every start-over (410, reset, new epoch).
    pub bootstraps: u64,
    /// True once the current connection has delivered everything the
    /// server had when it was opened (its `caught-up` event): the copy is
    /// as current as the server was then. False while connecting, after
    /// every reconnect until the event comes again, and always with a
    /// server that does not send it.
    pub caught_up: bool,
}

/// Told every change a follower applies, in order, before the copy's
/// watchers wake: read models kept beside (or instead of) the copy.
///
/// A follower that keeps no copy ([`Options::keep_copy`] off) never holds
/// a snapshot whole: it calls `loaded` with the first part of the view and
/// `patched` with the rest, part by part, at the same revision. An
/// observer that applies patches as merge patches ends up with the whole
/// view either way.
pub trait Observer: Send + Sync + 'static {
    /// The copy was loaded from a snapshot (first, or starting over) at
    /// `revision` of the history `epoch`.
    fn loaded(&self, view: &Map<String, Value>, revision: u64, epoch: &str);
    /// The merge patch of the next revision, `revision`, was applied. On
    /// a filtered stream the next revision with a change may be past the
    /// previous one + 1.
    fn patched(&self, patch: &Map<String, Value>, revision: u64);
    /// A filtered stream said that nothing of the subset changed up to
    /// `revision` (`progress` or `caught-up`): the copy is now at
    /// `revision`, unchanged. Unfiltered streams never call it.
    fn progressed(&self, revision: u64) {
        let _ = revision;
    }
    /// A `catch-up` was applied: one merge patch from the copy's revision
    /// to `revision`, after an absence longer than the server keeps events
    /// (changed documents whole, deleted ones `null`). By default it is told
    /// as [`Observer::patched`], which folds it the same way.
    fn compacted(&self, patch: &Map<String, Value>, revision: u64) {
        self.patched(patch, revision);
    }
}

/// How a follower reconnects, times out and keeps its copy.
#[derive(Debug, Clone)]
pub struct Options {
    /// First wait before a reconnect; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between reconnects.
    pub max_backoff: Duration,
    /// A stream that sends nothing (not even a keep-alive) for this long is
    /// treated as dropped.
    pub idle_timeout: Duration,
    /// Time allowed for the snapshot request.
    pub request_timeout: Duration,
    /// Keep the documents in [`ViewCopy::doc`]. A follower whose
    /// [`Observer`] keeps what it needs turns this off and holds only the
    /// revision, however large the view.
    pub keep_copy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            request_timeout: Duration::from_secs(10),
            keep_copy: true,
        }
    }
}

/// The link relation with which a snapshot names its view's stream.
pub const STREAM_REL: &str = "duality-stream";

/// The stream path a snapshot's `Link` header names
/// (`</person-events>; rel="duality-stream"`), if it names one: the first
/// link whose `rel` (quoted or not, one of several space-separated
/// relations) is [`STREAM_REL`] and whose target is a path on the same
/// server.
pub fn stream_link(link: &str) -> Option<String> {
    link.split(',').find_map(|value| {
        let (target, params) = value.trim().strip_prefix('<')?.split_once('>')?;
        let named = params.split(';').any(|param| {
            let Some((key, rel)) = param.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && rel
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(STREAM_REL))
        });
        (named && target.starts_with('/') && !target.starts_with("//")).then(|| target.to_string())
    })
}

/// Splits a view's URL into the server (`http://127.0.0.1:3000`, for
/// [`Http`]) and the path with its query (`/persons?key=1&key=2`, for
/// [`Follower::spawn_linked`]). A filter in the query is kept, encoded as
/// a URL; a fragment is dropped.
pub fn split_url(url: &str) -> Result<(String, String), Error> {
    let invalid = |reason: String| Error::Url {
        url: url.to_string(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if parsed.cannot_be_a_base() {
        return Err(invalid("cannot split it into server and path".into()));
    }
    let mut path = parsed.path().to_string();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut base = parsed;
    base.set_fragment(None);
    base.set_query(None);
    base.set_path("");
    Ok((base.as_str().trim_end_matches('/').to_string(), path))
}

/// Whether a request path (with its query) asks for part of a view: a
/// `key` or `where` parameter.
fn is_filtered(path: &str) -> bool {
    let Some((_, query)) = path.split_once('?') else {
        return false;
    };
    let Ok(url) = reqwest::Url::parse(&format!("http://filter.invalid/?{query}")) else {
        return false;
    };
    url.query_pairs()
        .any(|(name, _)| name == "key" || name == "where")
}

/// Keeps a local copy of one remote view current, in a background task
/// that ends when the follower is dropped.
pub struct Follower {
    transport: Arc<dyn Transport>,
    copy: watch::Receiver<ViewCopy>,
    health: watch::Receiver<Health>,
    source: String,
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Starts following `snapshot_path` (and `stream_path`, unless the
    /// snapshot's `Link` names another) through `transport`.
    pub fn spawn(
        transport: Arc<dyn Transport>,
        snapshot_path: &str,
        stream_path: &str,
        options: Options,
    ) -> Follower {
        Follower::start(transport, snapshot_path, Some(stream_path), options, None)
    }

    /// [`Follower::spawn`], telling `observer` every change it applies.
    pub fn spawn_observed(
        transport: Arc<dyn Transport>,
        snapshot_path: &str,
        stream_path: &str,
        options: Options,
        observer: Option<Arc<dyn Observer>>,
    ) -> Follower {
        Follower::start(
            transport,
            snapshot_path,
            Some(stream_path),
            options,
            observer,
        )
    }

    /// Starts following `snapshot_path` through `transport`, at the stream
    /// its snapshot names (`Link: <path>; rel="duality-stream"`), telling
    /// `observer` (if any) every change it applies. A snapshot that names
    /// no stream is a [`Error::Protocol`], retried like any failure.
    pub fn spawn_linked(
        transport: Arc<dyn Transport>,
        snapshot_path: &str,
        options: Options,
        observer: Option<Arc<dyn Observer>>,
    ) -> Follower {
        Follower::start(transport, snapshot_path, None, options, observer)
    }

    fn start(
        transport: Arc<dyn Transport>,
        snapshot_path: &str,
        stream_path: Option<&str>,
        options: Options,
        observer: Option<Arc<dyn Observer>>,
    ) -> Follower {
        let (copy_tx, copy) = watch::channel(ViewCopy::default());
        let (health_tx, health) = watch::channel(Health {
            live: false,
            error: Some(Error::Connecting),
            bootstraps: 0,
            caught_up: false,
        });
        let source = format!("{}{}", transport.describe(), snapshot_path);
        let run = Run {
            source: source.clone(),
            transport: Arc::clone(&transport),
            snapshot_path: snapshot_path.to_string(),
            stream_path: stream_path.map(str::to_string),
            options,
            observer,
            copy: copy_tx,
            health: health_tx,
        };
        let task = tokio::spawn(run.forever());
        Follower {
            transport,
            copy,
            health,
            source,
            task,
        }
    }

    /// Follows a view at a URL such as `http://127.0.0.1:3000/persons`, at
    /// the stream its snapshot names in its `Link` header. A URL with a
    /// filter (`/persons?key=1&key=2`, `?where=…`) follows that part of the
    /// view, at the stream of the same subset. Fails only on a URL (or
    /// token) that cannot be used; an unreachable server is retried, and
    /// reported by [`Follower::health`].
    pub fn connect(url: &str, options: Options) -> Result<Follower, Error> {
        Follower::connect_with_token(url, None, options)
    }

    /// As [`Follower::connect`], with a bearer token for a server that
    /// guards its reads.
    pub fn connect_with_token(
        url: &str,
        token: Option<&str>,
        options: Options,
    ) -> Result<Follower, Error> {
        let (base, path) = split_url(url)?;
        let transport = Arc::new(Http::with_token(&base, token)?);
        Ok(Follower::spawn_linked(transport, &path, options, None))
    }

    /// The current copy (cloned).
    pub fn current(&self) -> ViewCopy {
        self.copy.borrow().clone()
    }

    /// Runs `f` on the current copy without cloning it.
    pub fn with<R>(&self, f: impl FnOnce(&ViewCopy) -> R) -> R {
        f(&self.copy.borrow())
    }

    /// A receiver that wakes on every applied change.
    pub fn watch(&self) -> watch::Receiver<ViewCopy> {
        self.copy.clone()
    }

    /// Whether the copy is current, and why not.
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// A receiver that wakes whenever the health changes.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// How this follower reaches its server (for other requests to it).
    pub fn transport(&self) -> &dyn Transport {
        &*self.transport
    }

    /// Where this follower reads from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Waits until the copy reaches `revision`: [`Error::Timeout`] if
    /// `timeout` passes first. A filtered copy reaches a revision that left
    /// its subset alone when the stream says so (`progress`, within about
    /// a second).
    pub async fn wait_for(&self, revision: u64, timeout: Duration) -> Result<ViewCopy, Error> {
        let mut rx = self.copy.clone();
        let reached =
            tokio::time::timeout(timeout, rx.wait_for(|c| c.loaded && c.revision >= revision))
                .await;
        match reached {
            Ok(Ok(copy)) => Ok(copy.clone()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout {
                what: format!("revision {revision} not reached"),
                after: timeout,
            }),
        }
    }
}

/// Why one connection to the stream ended.
enum Ended {
    /// Reconnect with Last-Event-ID after a backoff.
    Dropped(Error),
    /// Start over from the snapshot.
    Restart(Error),
}

struct Run {
    /// Where it follows from, for the log.
    source: String,
    transport: Arc<dyn Transport>,
    snapshot_path: String,
    /// Where the stream is: given at spawn, or named by the last
    /// snapshot's `Link` (which wins).
    stream_path: Option<String>,
    options: Options,
    observer: Option<Arc<dyn Observer>>,
    copy: watch::Sender<ViewCopy>,
    health: watch::Sender<Health>,
}

impl Run {
    async fn forever(mut self) {
        let mut backoff = self.options.min_backoff;
        let mut bootstrap = true;
        loop {
            if bootstrap {
                match self.bootstrap().await {
                    Ok(()) => bootstrap = false,
                    Err(e) => {
                        self.stale(e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.max_backoff);
                        continue;
                    }
                }
            }
            match self.follow(&mut backoff).await {
                Ended::Dropped(why) => self.stale(why),
                Ended::Restart(why) => {
                    tracing::info!(source = %self.snapshot_path, reason = %why, "starting over from the snapshot");
                    self.health.send_modify(|h| {
                        h.live = false;
                        h.caught_up = false;
                        h.error = Some(why);
                    });
                    bootstrap = true;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    fn stale(&self, why: Error) {
        // One warning when the upstream is lost (or cannot be reached at
        // all yet), then quiet retries until it is regained.
        let first = {
            let h = self.health.borrow();
            h.live || h.error == Some(Error::Connecting)
        };
        if first {
            tracing::warn!(source = %self.source, reason = %why, "lost the upstream; keeping the last known copy and retrying");
        } else {
            tracing::debug!(source = %self.source, reason = %why, "upstream still not reachable");
        }
        self.health.send_modify(|h| {
            h.live = false;
            h.caught_up = false;
            h.error = Some(why);
        });
    }

    /// Moves a filtered copy to `revision` without a change (`progress`,
    /// `caught-up`): what the next `Last-Event-ID` resumes after. A
    /// revision the copy already has changes nothing.
    fn advance(&self, revision: u64) {
        if revision <= self.copy.borrow().revision {
            return;
        }
        if let Some(observer) = &self.observer {
            observer.progressed(revision);
        }
        self.copy.send_modify(|copy| copy.revision = revision);
    }

    async fn bootstrap(&mut self) -> Result<(), Error> {
        let path = &self.snapshot_path;
        let fetch = async {
            let reply = self.transport.get(path, &[]).await?;
            if reply.status != 200 {
                return Err(reply.into_error(path).await);
            }
            let revision = reply
                .header("x-revision")
                .and_then(|r| r.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::Protocol(format!("snapshot {path} without a valid X-Revision"))
                })?;
            let epoch = reply.header("x-epoch").unwrap_or_default().to_string();
            let link = reply.header("link").and_then(stream_link);
            let body = reply.bytes(SNAPSHOT_LIMIT).await?;
            Ok((revision, epoch, link, body))
        };
        let after = self.options.request_timeout;
        let (revision, epoch, link, body) =
            tokio::time::timeout(after, fetch)
                .await
                .map_err(|_| Error::Timeout {
                    what: "no snapshot".into(),
                    after,
                })??;
        // Parsing a large view takes a while: off the async workers, and
        // not under the request timeout (a parse cannot be abandoned).
        let keep = self.options.keep_copy;
        let observer = self.observer.clone();
        let at = epoch.clone();
        let doc = tokio::task::spawn_blocking(move || {
            parse_snapshot(&body, keep, observer.as_deref(), revision, &at)
        })
        .await
        .map_err(|e| Error::Internal(format!("parsing the snapshot failed: {e}")))??;
        match link {
            Some(stream) => self.stream_path = Some(stream),
            None if self.stream_path.is_none() => {
                return Err(Error::Protocol(format!(
                    "the snapshot {} names no stream (Link: <path>; rel=\"{STREAM_REL}\")",
                    self.snapshot_path
                )));
            }
            None => {}
        }
        self.copy.send_replace(ViewCopy {
            loaded: true,
            revision,
            epoch,
            doc,
        });
        self.health.send_modify(|h| h.bootstraps += 1);
        Ok(())
    }

    async fn follow(&self, backoff: &mut Duration) -> Ended {
        let (revision, epoch) = self.copy.borrow().clone_position();
        let headers = [("last-event-id", revision.to_string()), ("x-epoch", epoch)];
        let after = self.options.request_timeout;
        // Set by every successful bootstrap, which comes first.
        let stream_path = self.stream_path.as_deref().unwrap_or_default();
        let filtered = is_filtered(&self.snapshot_path) || is_filtered(stream_path);
        let connect = self.transport.get(stream_path, &headers);
        let reply = match tokio::time::timeout(after, connect).await {
            Err(_) => {
                return Ended::Dropped(Error::Timeout {
                    what: "no answer to the stream request".into(),
                    after,
                });
            }
            Ok(Err(e)) => return Ended::Dropped(e),
            Ok(Ok(reply)) => reply,
        };
        if reply.status != 200 {
            let error = reply.into_error(stream_path).await;
            return match error {
                Error::Gone { .. } => Ended::Restart(error),
                _ => Ended::Dropped(error),
            };
        }
        let regained = self
            .health
            .borrow()
            .error
            .as_ref()
            .is_some_and(|e| *e != Error::Connecting);
        self.health.send_modify(|h| {
            h.live = true;
            h.caught_up = false;
            h.error = None;
        });
        if regained {
            tracing::info!(source = %self.source, "following the upstream again");
        }
        *backoff = self.options.min_backoff;
        let mut events = Box::pin(until_idle(reply.body, self.options.idle_timeout).eventsource());
        loop {
            let next = match events.next().await {
                None => return Ended::Dropped(Error::Transport("the stream ended".into())),
                Some(Err(EventStreamError::Transport(e))) => return Ended::Dropped(e),
                Some(Err(e)) => {
                    return Ended::Dropped(Error::Protocol(format!("stream failed: {e}")));
                }
                Some(Ok(event)) => event,
            };
            let compacted = match next.event.as_str() {
                "message" => false,
                // One patch from the copy's revision to its id, however
                // many revisions that skips (docs/PROTOCOL.md, "Catch-up").
                "catch-up" => true,
                "reset" => return Ended::Restart(Error::Reset),
                "caught-up" => {
                    // No id: the revision reached is in the data. Only a
                    // filtered stream may be past the copy's revision.
                    let reached = serde_json::from_str::<Value>(&next.data)
                        .ok()
                        .and_then(|data| data.get("revision")?.as_u64());
                    if let Some(revision) = reached.filter(|_| filtered) {
                        self.advance(revision);
                    }
                    self.health
                        .send_if_modified(|h| !std::mem::replace(&mut h.caught_up, true));
                    continue;
                }
                "progress" if filtered => {
                    let Ok(revision) = next.id.parse::<u64>() else {
                        return Ended::Restart(Error::Protocol(format!(
                            "progress id `{}` is not a revision",
                            next.id
                        )));
                    };
                    self.advance(revision);
                    continue;
                }
                _ => continue,
            };
            let Ok(revision) = next.id.parse::<u64>() else {
                return Ended::Restart(Error::Protocol(format!(
                    "event id `{}` is not a revision",
                    next.id
                )));
            };
            let patch: Map<String, Value> = match serde_json::from_str(&next.data) {
                Ok(patch) => patch,
                Err(e) => {
                    return Ended::Restart(Error::Protocol(format!(
                        "event {revision} is not a JSON object: {e}"
                    )));
                }
            };
            // Only this task writes the copy, so its revision cannot move
            // between this read and the update below.
            let at = self.copy.borrow().revision;
            if revision <= at {
                continue;
            }
            // A filtered stream skips the revisions that left its subset
            // alone, a catch-up all those it folds; an unfiltered change
            // must not skip any.
            if revision != at + 1 && !filtered && !compacted {
                return Ended::Restart(Error::Protocol(format!(
                    "event {revision} does not follow {at}"
                )));
            }
            if let Some(observer) = &self.observer {
                if compacted {
                    observer.compacted(&patch, revision);
                } else {
                    observer.patched(&patch, revision);
                }
            }
            let keep = self.options.keep_copy;
            self.copy.send_modify(|copy| {
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
        }
    }
}

/// Documents per part when a snapshot is handed to an observer in parts.
const PART: usize = 8192;

/// Parses a snapshot body. With `keep`, the whole view is the copy and the
/// observer gets it at once. Without, the view is never held whole: the
/// observer gets its first part as `loaded` and the rest as `patched`
/// calls at the same revision, each adding documents, so memory stays at
/// one part however large the view.
fn parse_snapshot(
    body: &[u8],
    keep: bool,
    observer: Option<&dyn Observer>,
    revision: u64,
    epoch: &str,
) -> Result<Map<String, Value>, Error> {
    let invalid =
        |e: serde_json::Error| Error::Protocol(format!("snapshot is not a JSON object: {e}"));
    if keep || observer.is_none() {
        let doc: Map<String, Value> = serde_json::from_slice(body).map_err(invalid)?;
        if let Some(observer) = observer {
            observer.loaded(&doc, revision, epoch);
        }
        return Ok(if keep { doc } else { Map::new() });
    }
    let mut first = true;
    let mut hand_over = |part: &Map<String, Value>| {
        if let Some(observer) = observer {
            if std::mem::take(&mut first) {
                observer.loaded(part, revision, epoch);
            } else {
                observer.patched(part, revision);
            }
        }
    };
    let mut parser = serde_json::Deserializer::from_slice(body);
    serde::Deserializer::deserialize_map(
        &mut parser,
        InParts {
            sink: &mut hand_over,
        },
    )
    .map_err(invalid)?;
    parser.end().map_err(invalid)?;
    Ok(Map::new())
}

/// Reads a JSON object entry by entry, handing it over in parts of
/// [`PART`] documents (at least one part, maybe empty).
struct InParts<'a, F: FnMut(&Map<String, Value>)> {
    sink: &'a mut F,
}

impl<'de, F: FnMut(&Map<String, Value>)> serde::de::Visitor<'de> for InParts<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut part = Map::new();
        while let Some((key, doc)) = entries.next_entry::<String, Value>()? {
            part.insert(key, doc);
            if part.len() >= PART {
                (self.sink)(&part);
                part.clear();
            }
        }
        (self.sink)(&part);
        Ok(())
    }
}

impl ViewCopy {
    fn clone_position(&self) -> (u64, String) {
        (self.revision, self.epoch.clone())
    }
}

/// The body's bytes, ended by an error once nothing at all arrives for
/// `idle`. Keep-alive comments count: they are bytes here, while the SSE
/// parser drops them and yields no event, so a timer on events would call
/// a quiet but healthy stream dead.
pub(crate) fn until_idle(
    body: BoxStream<'static, Result<Bytes, Error>>,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Error>> {
    futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => {
                let silent = Error::Timeout {
                    what: "nothing on the stream (not even a keep-alive)".into(),
                    after: idle,
                };
                Some((Err(silent), None))
            }
            Ok(None) => None,
            Ok(Some(chunk)) => Some((chunk, Some(body))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folds what it is told, as a read model would.
    #[derive(Default)]
    struct Folding {
        calls: std::sync::Mutex<(usize, usize, Map<String, Value>)>,
    }

    impl Observer for Folding {
        fn loaded(&self, view: &Map<String, Value>, _: u64, _: &str) {
            let mut c = self.calls.lock().unwrap();
            c.0 += 1;
            c.2 = view.clone();
        }
        fn patched(&self, patch: &Map<String, Value>, _: u64) {
            let mut c = self.calls.lock().unwrap();
            c.1 += 1;
            for (k, v) in patch {
                c.2.insert(k.clone(), v.clone());
            }
        }
    }

    #[test]
    fn a_large_snapshot_reaches_an_observer_in_parts_that_fold_to_the_whole_view() {
        let view: Map<String, Value> = (0..20_000)
            .map(|i| (format!("k{i}"), serde_json::json!({"n": i})))
            .collect();
        let body = serde_json::to_vec(&view).unwrap();
        let folding = Folding::default();
        let kept = parse_snapshot(&body, false, Some(&folding), 7, "e").unwrap();
        assert!(kept.is_empty(), "no copy is kept");
        let (loads, patches, folded) = folding.calls.into_inner().unwrap();
        assert_eq!((loads, patches), (1, 20_000 / PART));
        assert_eq!(folded, view);

        let empty = Folding::default();
        parse_snapshot(b"{}", false, Some(&empty), 1, "e").unwrap();
        assert_eq!(
            empty.calls.into_inner().unwrap().0,
            1,
            "an empty view is loaded too"
        );
        assert!(parse_snapshot(b"{\"a\":1} x", false, Some(&Folding::default()), 1, "e").is_err());
        assert!(parse_snapshot(b"[1]", false, Some(&Folding::default()), 1, "e").is_err());
    }

    #[test]
    fn a_view_url_splits_into_its_server_and_its_path_with_the_filter_kept() {
        let split = |url: &str| split_url(url).unwrap();
        assert_eq!(
            split("http://127.0.0.1:3000/persons"),
            ("http://127.0.0.1:3000".into(), "/persons".into())
        );
        assert_eq!(
            split("http://127.0.0.1:3000/persons?key=1&key=2#top"),
            (
                "http://127.0.0.1:3000".into(),
                "/persons?key=1&key=2".into()
            )
        );
        assert_eq!(
            split(r#"http://h/collections/notes?where={"tag": "a b"}"#),
            (
                "http://h".into(),
                "/collections/notes?where={%22tag%22:%20%22a%20b%22}".into()
            )
        );
        assert_eq!(split("http://h").1, "/");
        for bad in ["not a url", "mailto:ann@example.com"] {
            assert!(matches!(split_url(bad), Err(Error::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn a_path_is_filtered_when_its_query_has_a_key_or_a_where() {
        for filtered in [
            "/persons?key=1",
            "/person-events?key=1&key=2",
            "/persons?where=%7B%22city%22%3A%22Rome%22%7D",
            "/person-events?revision=3&%6Bey=1",
        ] {
            assert!(is_filtered(filtered), "{filtered}");
        }
        for whole in [
            "/persons",
            "/persons?",
            "/person-events?revision=3&epoch=e",
            "/keys?monkey=1",
        ] {
            assert!(!is_filtered(whole), "{whole}");
        }
    }

    #[test]
    fn a_snapshot_names_its_stream_in_its_link_header() {
        let one = |h: &str| stream_link(h);
        assert_eq!(
            one(r#"</person-events>; rel="duality-stream""#),
            Some("/person-events".into())
        );
        assert_eq!(
            one(r#"</docs>; rel="help", </collections/a%20b/events>;rel=duality-stream"#),
            Some("/collections/a%20b/events".into())
        );
        assert_eq!(
            one(r#"</x-events>; title="t"; rel="next duality-stream""#),
            Some("/x-events".into())
        );
        for none in [
            "",
            "</x>; rel=next",
            r#"<http://elsewhere/x>; rel="duality-stream""#,
            r#"<//elsewhere/x>; rel="duality-stream""#,
            r#"/x; rel="duality-stream""#,
        ] {
            assert_eq!(one(none), None, "{none}");
        }
    }
}
