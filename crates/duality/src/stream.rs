//! The one stream path shared by every view.
//!
//! A subscription first subscribes to the view's live ring in the hub, then
//! reads what it needs from the outbox in pages (catch-up), then forwards
//! live frames. Live frames at or below what it already sent are skipped; a
//! gap or a lag sends it back to the outbox. So it holds at most one page in
//! memory, never an unbounded queue, and it sees every revision exactly once
//! and in order. Every event it sends has exactly the revision after the
//! previous one (docs/PROTOCOL.md, "Continuity"): if the outbox lacks the next event
//! (retention deleted it, or a hole for any other reason), it sends a
//! `reset` event and ends instead of skipping ahead.
//!
//! A position older than the retained events, but within the catch-up
//! horizon, is answered by [`open`] with one `catch-up` event first (a
//! merge patch from it to the current revision, [`crate::catch_up`]), and
//! the stream goes on from the revision after; only a position past the
//! horizon (or of another epoch) is `410`.
//!
//! A stream may be narrowed by a [`Filter`] (docs/PROTOCOL.md, "Filters"):
//! each event is then restricted to the subset, and a revision that leaves
//! the subset alone sends nothing. Continuity is still checked on the
//! view's own revisions, and a `progress` event (`id: r`) tells a quiet
//! filtered consumer how far it has got, at most once a second. Every
//! stream sends `caught-up` once, when it has sent all that existed when
//! it was opened.
//!
//! A filtered subscription does not read the ring: it registers its filter
//! with the hub ([`crate::interest`]) and is woken only by the changes of
//! its subset, already restricted. It learns that the other revisions have
//! passed from how far the hub has routed, which it reads only when it is
//! about to tell its consumer (`progress`, keep-alive), so a quiet
//! subscriber costs nothing per change.
//!
//! A subscription yields [`Item`]s, not bytes: the single-view stream
//! frames them as its SSE events ([`encode`]), and [`multiplex`] frames
//! those of several subscriptions as the events of one connection, each
//! naming its subscription. So a subscription behaves the same on either.

pub mod multiplex;

pub use duality_core::position;

use duality_core::Error;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::app::App;
use crate::catch_up;
use crate::hub::Frame;
use crate::interest::{Delivery, Interest};
use crate::materialized::Pieces;
use crate::store::EventsPage;
use duality_core::sse;
use duality_core::{Filter, Restrict, View};
use position::{Gone, Request, Start};

/// Events read from the outbox per round trip.
pub const PAGE: usize = 256;

/// How often a filtered stream may tell a quiet consumer its position.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// About how many `progress` events a view's filtered subscribers send
/// per second, all together: with more subscribers than this, each tells
/// its position less often, so the cost of quiet subscribers stays bounded
/// however many there are.
pub const PROGRESS_PER_SECOND: usize = 1000;

/// How often each of `registered` filtered subscribers of a view may send
/// `progress`: [`PROGRESS_EVERY`], stretched so that together they send
/// about [`PROGRESS_PER_SECOND`].
pub fn progress_period(registered: usize) -> std::time::Duration {
    let share = registered.div_ceil(PROGRESS_PER_SECOND).max(1);
    PROGRESS_EVERY * u32::try_from(share).unwrap_or(u32::MAX)
}

/// What a subscription sends, before it is framed as SSE.
#[derive(Debug)]
pub enum Item {
    /// A change of the whole view, as the hub framed it once for every
    /// subscriber.
    Frame(Arc<Frame>),
    /// A change: its revision and merge patch (compact JSON), read from
    /// the outbox or restricted by a filter.
    Change {
        /// The revision the change took the view to.
        revision: u64,
        /// The merge patch, as JSON text.
        patch: String,
    },
    /// The start of the `snapshot` event of this revision; its body
    /// follows in [`SnapshotPart`](Item::SnapshotPart)s (compact JSON, no
    /// line break), then [`SnapshotEnd`](Item::SnapshotEnd).
    SnapshotHead(u64),
    /// A piece of the snapshot's body, shared with every other reader.
    SnapshotPart(Bytes),
    /// The end of the snapshot event.
    SnapshotEnd,
    /// `catch-up`: the consumer's position was older than the retained
    /// events; one merge patch from it to `revision` (docs/PROTOCOL.md,
    /// "Catch-up"), after which the stream goes on from `revision + 1`.
    CatchUp {
        /// The revision the patch brings the consumer to (its `id`).
        revision: u64,
        /// The merge patch, as compact JSON text.
        patch: String,
    },
    /// `caught-up`: all that existed when the stream was opened is sent;
    /// the revision reached.
    CaughtUp(u64),
    /// `progress`: a filtered stream has seen every revision up to this.
    Progress(u64),
    /// `reset` with this body (a JSON object); the subscription then ends.
    Reset(String),
    /// `stale` with this data (a JSON object).
    Stale(String),
    /// `fresh`.
    Fresh,
    /// A keep-alive comment.
    KeepAlive,
}

/// `{"revision": r}`: the data of `caught-up` and `progress`.
fn revision_data(revision: u64) -> String {
    format!("{{\"revision\":{revision}}}")
}

/// Frames `items` (and empties the list) as the single-view stream's SSE
/// text. A lone live frame or snapshot piece, the common case, is shared
/// with every other subscriber, not copied.
pub fn encode(items: &mut Vec<Item>) -> Bytes {
    if let [one] = &items[..] {
        let shared = match one {
            Item::Frame(frame) => Some(frame.bytes.clone()),
            Item::SnapshotPart(part) => Some(part.clone()),
            _ => None,
        };
        if let Some(bytes) = shared {
            items.clear();
            return bytes;
        }
    }
    let mut buf = BytesMut::new();
    for item in items.drain(..) {
        match item {
            Item::Frame(frame) => buf.extend_from_slice(&frame.bytes),
            Item::Change { revision, patch } => sse::put_change(&mut buf, revision, &patch),
            Item::SnapshotHead(revision) => {
                buf.extend_from_slice(&sse::head("snapshot", revision));
            }
            Item::SnapshotPart(part) => buf.extend_from_slice(&part),
            Item::SnapshotEnd => buf.extend_from_slice(sse::END),
            Item::CatchUp { revision, patch } => {
                sse::put_named(&mut buf, "catch-up", Some(revision), &patch);
            }
            Item::CaughtUp(revision) => {
                sse::put_named(&mut buf, "caught-up", None, &revision_data(revision));
            }
            Item::Progress(revision) => {
                sse::put_named(
                    &mut buf,
                    "progress",
                    Some(revision),
                    &revision_data(revision),
                );
            }
            Item::Reset(body) => sse::put_named(&mut buf, "reset", None, &body),
            Item::Stale(data) => sse::put_named(&mut buf, "stale", None, &data),
            Item::Fresh => sse::put_named(&mut buf, "fresh", None, "{}"),
            Item::KeepAlive => sse::put_comment(&mut buf, "keep-alive"),
        }
    }
    buf.freeze()
}

/// The answer to a stream request.
pub enum Opened {
    /// The stream can be served: events from the requested position on.
    Stream(Box<Subscription>),
    /// The position cannot be served; `410 Gone` with these bounds.
    Gone {
        /// Why the position cannot be served.
        why: Gone,
        /// The oldest retained event of the view, if any.
        oldest: Option<u64>,
        /// The view's current revision.
        current: u64,
    },
}

/// Where a live subscription's changes come from.
enum Live {
    /// Every frame of the view, shared with every unfiltered subscriber.
    Ring(broadcast::Receiver<Arc<Frame>>),
    /// The changes of its subset only, routed to it by the hub.
    Routed(Interest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    CatchUp,
    Live,
    Done,
}

/// One open stream: catches up from the outbox, then follows the hub's live
/// frames, with keep-alives, until shutdown.
pub struct Subscription {
    app: App,
    view: View,
    /// The next revision this subscriber must receive.
    next: u64,
    /// The subset of the view this subscriber receives.
    filter: Filter,
    /// The revision of the last event sent with an id (a change or a
    /// `progress`): what a reconnecting consumer resumes after.
    sent: u64,
    /// The view's revision when the stream was opened, until `caught-up`
    /// is sent for it.
    until: Option<u64>,
    /// When a filtered stream may send `progress` again.
    progress_after: Instant,
    live: Live,
    phase: Phase,
    /// What to send before anything else (snapshot and first page).
    lead: Lead,
    /// When to send a keep-alive; `None` on a multiplexed connection,
    /// which has one of its own.
    keep_alive: Option<Interval>,
    /// Whether the view is stale; a change is sent as `stale` or `fresh`.
    stale: watch::Receiver<Option<String>>,
    /// Flips to `true` on server shutdown: the stream then ends.
    shutdown: tokio::sync::watch::Receiver<bool>,
    _gauge: Gauge,
}

/// What a subscription sends before anything else: a snapshot event whose
/// data is the snapshot's shared body, sent piece by piece, then the
/// first page of the outbox.
#[derive(Default)]
struct Lead {
    /// The snapshot's revision, until its head is sent.
    head: Option<u64>,
    /// The body's pieces and how many were sent.
    body: Option<(Arc<Pieces>, usize)>,
    /// Whether the snapshot event is still to be closed.
    end: bool,
    /// The first page, `caught-up`, `stale`.
    rest: Vec<Item>,
}

impl Lead {
    /// Appends the next part of the lead to `out`; false once it is all
    /// sent.
    fn next(&mut self, out: &mut Vec<Item>) -> bool {
        if let Some(revision) = self.head.take() {
            out.push(Item::SnapshotHead(revision));
            return true;
        }
        if let Some((pieces, sent)) = &mut self.body {
            if let Some(part) = pieces.parts.get(*sent) {
                *sent += 1;
                out.push(Item::SnapshotPart(part.clone()));
                return true;
            }
            self.body = None;
        }
        let end = std::mem::take(&mut self.end);
        if end {
            out.push(Item::SnapshotEnd);
        }
        let rest = !self.rest.is_empty();
        out.append(&mut self.rest);
        end || rest
    }
}

/// Counts open subscriptions per view for `/metrics`.
struct Gauge(View);

impl Gauge {
    fn new(view: View) -> Self {
        metrics::gauge!("duality_subscribers", "view" => view.name()).increment(1.0);
        Gauge(view)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!("duality_subscribers", "view" => self.0.name()).decrement(1.0);
    }
}

/// The JSON that explains a reset or a 410 to the consumer.
pub fn gone_body(view: View, why: &str, oldest: Option<u64>, current: u64, epoch: &str) -> String {
    json!({
        "error": why,
        "oldestRevision": oldest,
        "currentRevision": current,
        "snapshot": view.snapshot_path(),
        "epoch": epoch,
    })
    .to_string()
}

/// Opens a stream of `view` (or of the part `filter` keeps) for
/// `request`, or says why it cannot be served.
pub async fn open(
    app: &App,
    view: View,
    request: Request,
    filter: Filter,
) -> Result<Opened, Error> {
    // Subscribed before the first read of the outbox: nothing committed
    // after that read is missed.
    let live = if filter.is_all() {
        Live::Ring(app.hub().subscribe(view)?)
    } else {
        Live::Routed(app.hub().watch(view, filter.clone())?)
    };
    let mut stale = app.hub().stale(view)?;
    let stale_now = stale.borrow_and_update().clone();
    let mut lead = Lead::default();
    let from = match request.start {
        Start::Snapshot => {
            // The event shares the snapshot's body with every other reader
            // (a filtered one is made for this stream).
            let whole = app.snapshot(view).await?;
            let snapshot = if filter.is_all() {
                whole
            } else {
                Arc::new(whole.filtered(&filter)?)
            };
            lead.head = Some(snapshot.revision);
            lead.body = Some((snapshot.body(false).await, 0));
            lead.end = true;
            snapshot.revision + 1
        }
        Start::From(r) => r,
        Start::Oldest => 0,
    };
    let mut page = app.store().events(view, from, PAGE).await?;
    let gone = |why, page: &EventsPage| Opened::Gone {
        why,
        oldest: page.oldest,
        current: page.current,
    };
    if request.epoch.as_deref().is_some_and(|e| e != app.epoch()) {
        return Ok(gone(Gone::OtherEpoch, &page));
    }
    let next = match request.start {
        Start::Snapshot => from,
        start => match position::first_needed(start, page.oldest, page.current) {
            Ok(next) => next,
            // Older than the retained events (only a position can be):
            // one catch-up patch if the horizon still covers it, then on
            // from the revision it reaches.
            Err(Gone::Trimmed) => {
                let after = from.saturating_sub(1);
                let Some(caught) = catch_up::catch_up(app, view, after, &filter).await? else {
                    return Ok(gone(Gone::Trimmed, &page));
                };
                let next = caught.revision + 1;
                page = app.store().events(view, next, PAGE).await?;
                lead.rest.push(Item::CatchUp {
                    revision: caught.revision,
                    patch: caught.patch,
                });
                next
            }
            Err(why) => return Ok(gone(why, &page)),
        },
    };
    let mut sub = Subscription {
        app: app.clone(),
        view,
        next,
        filter,
        sent: next.saturating_sub(1),
        until: Some(page.current),
        progress_after: Instant::now() + PROGRESS_EVERY,
        live,
        phase: Phase::Live,
        lead: Lead::default(),
        stale,
        keep_alive: Some(keep_alive(app)),
        shutdown: app.shutdown(),
        _gauge: Gauge::new(view),
    };
    sub.take_page(page, &mut lead.rest);
    sub.put_caught_up(&mut lead.rest);
    if let Some(data) = stale_now {
        lead.rest.push(Item::Stale(data));
    }
    sub.lead = lead;
    Ok(Opened::Stream(Box::new(sub)))
}

fn keep_alive(app: &App) -> Interval {
    let period = app.keep_alive();
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next tick of `interval`; never, without one.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Subscription {
    /// The response body: SSE bytes until the stream ends.
    pub fn into_body(self: Box<Self>) -> axum::body::Body {
        let state = (self, Vec::new());
        let chunks = futures_util::stream::unfold(state, |(mut sub, mut items)| async move {
            if !sub.next_items(&mut items).await {
                return None;
            }
            let chunk = encode(&mut items);
            Some((Ok::<Bytes, Infallible>(chunk), (sub, items)))
        });
        axum::body::Body::from_stream(chunks)
    }

    /// Turns an outbox page into items. Every event must have exactly the
    /// revision after the one sent before it; at the first that does not
    /// (retention deleted it, or the outbox has a hole) the events so far
    /// are followed by a `reset` and the stream ends. A short page that
    /// stops below the current revision is a hole at its end.
    fn take_page(&mut self, page: EventsPage, out: &mut Vec<Item>) {
        let full = page.events.len() >= PAGE;
        for event in page.events {
            if event.revision != self.next {
                out.push(self.reset(page.oldest, page.current));
                return;
            }
            self.push_event(
                out,
                event.revision,
                Cow::Owned(event.patch),
                event.prior.as_deref(),
            );
            self.next += 1;
            if self.phase == Phase::Done {
                return;
            }
        }
        if full {
            self.phase = Phase::CatchUp;
        } else if self.next <= page.current {
            out.push(self.reset(page.oldest, page.current));
        } else {
            self.phase = Phase::Live;
        }
        self.put_caught_up(out);
    }

    /// Appends the change of `revision` (restricted to the filter's
    /// subset; nothing if that subset did not change). `prior` holds the
    /// documents the event replaced; a `where` filter cannot pass an event
    /// stored without them, and ends the stream with a `reset` instead.
    fn push_event(
        &mut self,
        out: &mut Vec<Item>,
        revision: u64,
        patch: Cow<'_, str>,
        prior: Option<&str>,
    ) {
        if self.filter.is_all() {
            out.push(Item::Change {
                revision,
                patch: patch.into_owned(),
            });
            self.sent = revision;
            return;
        }
        match self.filter.restrict(&patch, prior) {
            Restrict::Kept(kept) => {
                out.push(Item::Change {
                    revision,
                    patch: kept,
                });
                self.sent = revision;
            }
            Restrict::Nothing => {}
            Restrict::NeedsPrior => {
                let body = gone_body(
                    self.view,
                    "this event was stored without what a where filter needs; reload the snapshot",
                    None,
                    revision,
                    self.app.epoch(),
                );
                self.phase = Phase::Done;
                out.push(Item::Reset(body));
            }
            Restrict::Malformed => {
                tracing::error!(view = %self.view, revision, "a stored event is not JSON objects");
            }
        }
    }

    /// Appends `caught-up` once everything that existed when the stream
    /// was opened has been sent (or skipped by the filter).
    fn put_caught_up(&mut self, out: &mut Vec<Item>) {
        if self.phase == Phase::Done {
            return;
        }
        if let Some(until) = self.until
            && self.next > until
        {
            out.push(Item::CaughtUp(self.next - 1));
            self.until = None;
        }
    }

    /// A `progress` event if a filtered stream has moved past the last id
    /// it sent and has not told the consumer in the last second.
    fn progress(&mut self, now: Instant) -> Option<Item> {
        let at = self.next.saturating_sub(1);
        if self.filter.is_all() || at <= self.sent || now < self.progress_after {
            return None;
        }
        self.sent = at;
        self.progress_after = now + self.progress_period();
        Some(Item::Progress(at))
    }

    /// Appends `first` and any next frames already waiting in the ring:
    /// under load that is one write to the socket instead of many. Each
    /// frame is shared with every other subscriber; the encoder copies
    /// them only to send several as one chunk.
    fn with_ready_frames(&mut self, first: Arc<Frame>, out: &mut Vec<Item>) {
        self.sent = first.revision;
        out.push(Item::Frame(first));
        if let Live::Ring(ring) = &mut self.live {
            while let Ok(frame) = ring.try_recv() {
                if frame.revision < self.next {
                    continue;
                }
                if frame.revision > self.next {
                    // A gap: the store fills it on the next poll.
                    self.phase = Phase::CatchUp;
                    break;
                }
                self.next += 1;
                self.sent = frame.revision;
                out.push(Item::Frame(frame));
            }
        }
        self.put_caught_up(out);
    }

    /// Takes one routed delivery: a change of the subset (the revisions
    /// before it left the subset alone), or word that some were lost.
    fn take_delivery(&mut self, delivery: Delivery, out: &mut Vec<Item>) {
        match delivery {
            Delivery::Lagged => self.phase = Phase::CatchUp,
            Delivery::Change { revision, .. } if revision < self.next => {}
            Delivery::Change { revision, patch } => {
                self.next = revision + 1;
                self.sent = revision;
                out.push(Item::Change { revision, patch });
            }
        }
    }

    /// Takes every routed delivery already waiting, then moves past every
    /// revision the hub has routed: any change of the subset up to there
    /// was among them.
    fn take_routed(&mut self, out: &mut Vec<Item>) {
        let Live::Routed(interest) = &self.live else {
            return;
        };
        let routed = interest.routed();
        let mut ready = Vec::new();
        while let Some(delivery) = interest.mailbox().try_recv() {
            ready.push(delivery);
        }
        for delivery in ready {
            self.take_delivery(delivery, out);
        }
        if self.phase == Phase::Live && routed >= self.next {
            self.next = routed + 1;
        }
        self.put_caught_up(out);
    }

    /// Ends the stream with a `reset`: revision `next` cannot be sent.
    fn reset(&mut self, oldest: Option<u64>, current: u64) -> Item {
        self.phase = Phase::Done;
        metrics::counter!("duality_stream_resets_total", "view" => self.view.name()).increment(1);
        let why = if oldest.is_none_or(|o| self.next < o) {
            "this subscriber fell behind retention; reload the snapshot"
        } else {
            tracing::warn!(view = %self.view, revision = self.next, "the outbox lacks a revision; resetting the stream");
            "the outbox lacks the next revision; reload the snapshot"
        };
        Item::Reset(gone_body(self.view, why, oldest, current, self.app.epoch()))
    }

    /// How often this stream may send `progress` (see [`progress_period`]).
    fn progress_period(&self) -> std::time::Duration {
        match &self.live {
            Live::Routed(interest) => progress_period(interest.registered()),
            Live::Ring(_) => PROGRESS_EVERY,
        }
    }

    /// Sends `stale` or `fresh` for a change of the view's staleness.
    async fn stale_changed(
        &mut self,
        changed: Result<(), watch::error::RecvError>,
        out: &mut Vec<Item>,
    ) {
        if changed.is_err() {
            // The hub is gone: nothing more will change.
            std::future::pending::<()>().await;
        }
        let now = self.stale.borrow_and_update().clone();
        out.push(match now {
            Some(data) => Item::Stale(data),
            None => Item::Fresh,
        });
    }

    /// Waits for the next frame of the ring (an unfiltered stream): true
    /// to send what it appended, false to end the stream, `None` to look
    /// again.
    async fn from_ring(&mut self, out: &mut Vec<Item>) -> Option<bool> {
        let Live::Ring(ring) = &mut self.live else {
            return None;
        };
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => Some(false),
            received = ring.recv() => match received {
                Ok(frame) if frame.revision < self.next => None,
                Ok(frame) if frame.revision == self.next => {
                    self.next += 1;
                    self.with_ready_frames(frame, out);
                    Some(true)
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    self.phase = Phase::CatchUp;
                    None
                }
                Err(RecvError::Closed) => Some(false),
            },
            _ = tick(&mut self.keep_alive) => {
                out.push(Item::KeepAlive);
                Some(true)
            }
            changed = self.stale.changed() => {
                self.stale_changed(changed, out).await;
                Some(true)
            }
        }
    }

    /// Waits for the next change routed to a filtered stream, or the time
    /// to tell its consumer its position: as [`from_ring`](Self::from_ring).
    async fn from_mailbox(&mut self, out: &mut Vec<Item>) -> Option<bool> {
        let before = out.len();
        let Live::Routed(interest) = &self.live else {
            return None;
        };
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => return Some(false),
            delivery = interest.mailbox().recv() => {
                self.take_delivery(delivery, out);
                self.take_routed(out);
            }
            _ = tokio::time::sleep_until(self.progress_after) => {
                self.take_routed(out);
                let now = Instant::now();
                match self.progress(now) {
                    Some(progress) => out.push(progress),
                    None => self.progress_after = now + self.progress_period(),
                }
            }
            _ = tick(&mut self.keep_alive) => {
                self.take_routed(out);
                // Where a position is owed, it goes first.
                out.push(self.progress(Instant::now()).unwrap_or(Item::KeepAlive));
            }
            changed = self.stale.changed() => self.stale_changed(changed, out).await,
        }
        (out.len() > before).then_some(true)
    }

    /// Appends the next items to send to `out`, waiting for them; false
    /// when the stream has ended (after a `reset`, on shutdown, or when the
    /// store is away: the consumer then reconnects).
    pub async fn next_items(&mut self, out: &mut Vec<Item>) -> bool {
        if self.lead.next(out) {
            return true;
        }
        let before = out.len();
        loop {
            if *self.shutdown.borrow() {
                return false;
            }
            match self.phase {
                Phase::Done => return false,
                Phase::CatchUp => {
                    let page = match self.app.store().events(self.view, self.next, PAGE).await {
                        Ok(page) => page,
                        Err(e) => {
                            // The client reconnects with Last-Event-ID.
                            tracing::warn!(view = %self.view, error = %e, "ending stream");
                            return false;
                        }
                    };
                    self.take_page(page, out);
                    if out.len() > before {
                        return true;
                    }
                }
                Phase::Live => {
                    let step = match self.live {
                        Live::Ring(_) => self.from_ring(out).await,
                        Live::Routed(_) => self.from_mailbox(out).await,
                    };
                    if let Some(alive) = step {
                        return alive;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_filtered_subscribers_share_a_budget_of_progress_events() {
        assert_eq!(progress_period(0), PROGRESS_EVERY);
        assert_eq!(progress_period(1), PROGRESS_EVERY);
        assert_eq!(progress_period(PROGRESS_PER_SECOND), PROGRESS_EVERY);
        assert_eq!(progress_period(PROGRESS_PER_SECOND + 1), PROGRESS_EVERY * 2);
        assert_eq!(progress_period(10_000), PROGRESS_EVERY * 10);
    }
}
