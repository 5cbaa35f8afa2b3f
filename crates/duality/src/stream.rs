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
//! A stream may be narrowed by a [`Filter`] (docs/PROTOCOL.md, "Filters"):
//! each event is then restricted to the subset, and a revision that leaves
//! the subset alone sends nothing. Continuity is still checked on the
//! view's own revisions, and a `progress` event (`id: r`) tells a quiet
//! filtered consumer how far it has got, at most once a second. Every
//! stream sends `caught-up` once, when it has sent all that existed when
//! it was opened.

pub use duality_core::position;

use duality_core::Error;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::app::App;
use crate::hub::Frame;
use crate::materialized::Pieces;
use crate::store::EventsPage;
use duality_core::sse;
use duality_core::{Filter, Restrict, View};
use position::{Gone, Request, Start};

/// Events read from the outbox per round trip.
pub const PAGE: usize = 256;

/// How often a filtered stream may tell a quiet consumer its position.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
    live: broadcast::Receiver<Arc<Frame>>,
    phase: Phase,
    /// What to send before anything else (snapshot and first page).
    lead: Lead,
    keep_alive: Interval,
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
    head: Option<Bytes>,
    /// The body's pieces and how many were sent.
    body: Option<(Arc<Pieces>, usize)>,
    rest: Option<Bytes>,
}

impl Lead {
    fn next(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        if let Some((pieces, sent)) = &mut self.body {
            if let Some(part) = pieces.parts.get(*sent) {
                *sent += 1;
                return Some(part.clone());
            }
            self.body = None;
        }
        self.rest.take()
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
    let live = app.hub().subscribe(view)?;
    let mut stale = app.hub().stale(view)?;
    let stale_now = stale.borrow_and_update().clone();
    let mut lead = Lead::default();
    let mut first = BytesMut::new();
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
            lead.head = Some(sse::head("snapshot", snapshot.revision));
            lead.body = Some((snapshot.body(false).await, 0));
            first.extend_from_slice(sse::END);
            snapshot.revision + 1
        }
        Start::From(r) => r,
        Start::Oldest => 0,
    };
    let page = app.store().events(view, from, PAGE).await?;
    let gone = |why| Opened::Gone {
        why,
        oldest: page.oldest,
        current: page.current,
    };
    if request.epoch.as_deref().is_some_and(|e| e != app.epoch()) {
        return Ok(gone(Gone::OtherEpoch));
    }
    let next = match request.start {
        Start::Snapshot => from,
        start => match position::first_needed(start, page.oldest, page.current) {
            Ok(next) => next,
            Err(why) => return Ok(gone(why)),
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
        keep_alive: keep_alive(app),
        shutdown: app.shutdown(),
        _gauge: Gauge::new(view),
    };
    if let Some(chunk) = sub.take_page(page) {
        first.extend_from_slice(&chunk);
    }
    sub.put_caught_up(&mut first);
    if let Some(data) = &stale_now {
        first.extend_from_slice(&sse::named("stale", None, data));
    }
    if !first.is_empty() {
        lead.rest = Some(first.freeze());
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

impl Subscription {
    /// The response body: SSE bytes until the stream ends.
    pub fn into_body(self: Box<Self>) -> axum::body::Body {
        let chunks = futures_util::stream::unfold(self, |mut sub| async move {
            let chunk = sub.next_chunk().await?;
            Some((Ok::<Bytes, Infallible>(chunk), sub))
        });
        axum::body::Body::from_stream(chunks)
    }

    /// Turns an outbox page into frames. Every event must have exactly the
    /// revision after the one sent before it; at the first that does not
    /// (retention deleted it, or the outbox has a hole) the frames so far
    /// are followed by a `reset` and the stream ends. A short page that
    /// stops below the current revision is a hole at its end.
    fn take_page(&mut self, page: EventsPage) -> Option<Bytes> {
        let mut buf = BytesMut::new();
        for event in &page.events {
            if event.revision != self.next {
                let reset = self.reset(page.oldest, page.current);
                buf.extend_from_slice(&reset);
                return Some(buf.freeze());
            }
            self.put_event(
                &mut buf,
                event.revision,
                &event.patch,
                event.prior.as_deref(),
            );
            self.next += 1;
            if self.phase == Phase::Done {
                return Some(buf.freeze());
            }
        }
        if page.events.len() >= PAGE {
            self.phase = Phase::CatchUp;
        } else if self.next <= page.current {
            let reset = self.reset(page.oldest, page.current);
            buf.extend_from_slice(&reset);
        } else {
            self.phase = Phase::Live;
        }
        self.put_caught_up(&mut buf);
        (!buf.is_empty()).then(|| buf.freeze())
    }

    /// Appends the change event of `revision` (restricted to the filter's
    /// subset; nothing if that subset did not change). `prior` holds the
    /// documents the event replaced; a `where` filter cannot pass an event
    /// stored without them, and ends the stream with a `reset` instead.
    fn put_event(&mut self, buf: &mut BytesMut, revision: u64, patch: &str, prior: Option<&str>) {
        if self.filter.is_all() {
            sse::put_change(buf, revision, patch);
            self.sent = revision;
            return;
        }
        match self.filter.restrict(patch, prior) {
            Restrict::Kept(kept) => {
                sse::put_change(buf, revision, &kept);
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
                buf.extend_from_slice(&sse::named("reset", None, &body));
            }
            Restrict::Malformed => {
                tracing::error!(view = %self.view, revision, "a stored event is not JSON objects");
            }
        }
    }

    /// Appends `caught-up` once everything that existed when the stream
    /// was opened has been sent (or skipped by the filter).
    fn put_caught_up(&mut self, buf: &mut BytesMut) {
        if self.phase == Phase::Done {
            return;
        }
        if let Some(until) = self.until
            && self.next > until
        {
            let data = json!({ "revision": self.next - 1 }).to_string();
            buf.extend_from_slice(&sse::named("caught-up", None, &data));
            self.until = None;
        }
    }

    /// A `progress` event if a filtered stream has moved past the last id
    /// it sent and has not told the consumer in the last second.
    fn progress(&mut self, now: Instant) -> Option<Bytes> {
        let at = self.next.saturating_sub(1);
        if self.filter.is_all() || at <= self.sent || now < self.progress_after {
            return None;
        }
        self.sent = at;
        self.progress_after = now + PROGRESS_EVERY;
        let data = json!({ "revision": at }).to_string();
        Some(sse::named("progress", Some(at), &data))
    }

    /// `first` and any next frames already waiting in the ring, as one
    /// chunk: under load that is one write to the socket instead of many.
    /// `None` if a filter left nothing of them to send.
    fn with_ready_frames(&mut self, first: Arc<Frame>) -> Option<Bytes> {
        if self.filter.is_all() {
            let mut batch: Option<BytesMut> = None;
            while let Ok(frame) = self.live.try_recv() {
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
                batch
                    .get_or_insert_with(|| BytesMut::from(&first.bytes[..]))
                    .extend_from_slice(&frame.bytes);
            }
            self.sent = self.sent.max(first.revision);
            // The common case shares the frame's bytes with every other
            // subscriber; only a batch or a due `caught-up` copies them.
            if batch.is_none() && self.until.is_none_or(|until| self.next <= until) {
                return Some(first.bytes.clone());
            }
            let mut out = batch.unwrap_or_else(|| BytesMut::from(&first.bytes[..]));
            self.put_caught_up(&mut out);
            return Some(out.freeze());
        }
        let mut out = BytesMut::new();
        self.put_event(
            &mut out,
            first.revision,
            first.patch(),
            first.prior.as_deref(),
        );
        while self.phase != Phase::Done
            && let Ok(frame) = self.live.try_recv()
        {
            if frame.revision < self.next {
                continue;
            }
            if frame.revision > self.next {
                self.phase = Phase::CatchUp;
                break;
            }
            self.next += 1;
            self.put_event(
                &mut out,
                frame.revision,
                frame.patch(),
                frame.prior.as_deref(),
            );
        }
        self.put_caught_up(&mut out);
        (!out.is_empty()).then(|| out.freeze())
    }

    /// Ends the stream with a `reset`: revision `next` cannot be sent.
    fn reset(&mut self, oldest: Option<u64>, current: u64) -> Bytes {
        self.phase = Phase::Done;
        metrics::counter!("duality_stream_resets_total", "view" => self.view.name()).increment(1);
        let why = if oldest.is_none_or(|o| self.next < o) {
            "this subscriber fell behind retention; reload the snapshot"
        } else {
            tracing::warn!(view = %self.view, revision = self.next, "the outbox lacks a revision; resetting the stream");
            "the outbox lacks the next revision; reload the snapshot"
        };
        let body = gone_body(self.view, why, oldest, current, self.app.epoch());
        sse::named("reset", None, &body)
    }

    /// True if a filtered stream has a position to tell its consumer.
    fn progress_pending(&self) -> bool {
        !self.filter.is_all() && self.next.saturating_sub(1) > self.sent
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.lead.next() {
            return Some(chunk);
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            match self.phase {
                Phase::Done => return None,
                Phase::CatchUp => {
                    let page = match self.app.store().events(self.view, self.next, PAGE).await {
                        Ok(page) => page,
                        Err(e) => {
                            // The client reconnects with Last-Event-ID.
                            tracing::warn!(view = %self.view, error = %e, "ending stream");
                            return None;
                        }
                    };
                    if let Some(chunk) = self.take_page(page) {
                        return Some(chunk);
                    }
                }
                Phase::Live => {
                    tokio::select! {
                        biased;
                        _ = self.shutdown.changed() => return None,
                        received = self.live.recv() => match received {
                            Ok(frame) if frame.revision < self.next => {}
                            Ok(frame) if frame.revision == self.next => {
                                self.next += 1;
                                if let Some(chunk) = self.with_ready_frames(frame) {
                                    return Some(chunk);
                                }
                            }
                            Ok(_) | Err(RecvError::Lagged(_)) => self.phase = Phase::CatchUp,
                            Err(RecvError::Closed) => return None,
                        },
                        _ = tokio::time::sleep_until(self.progress_after), if self.progress_pending() => {
                            if let Some(progress) = self.progress(Instant::now()) {
                                return Some(progress);
                            }
                        }
                        _ = self.keep_alive.tick() => {
                            // Where a position is owed, it goes first.
                            return Some(self.progress(Instant::now())
                                .unwrap_or_else(|| sse::comment("keep-alive")));
                        }
                        changed = self.stale.changed() => {
                            if changed.is_err() {
                                // The hub is gone: nothing more will change.
                                std::future::pending::<()>().await;
                            }
                            let now = self.stale.borrow_and_update().clone();
                            return Some(match now {
                                Some(data) => sse::named("stale", None, &data),
                                None => sse::named("fresh", None, "{}"),
                            });
                        }
                    }
                }
            }
        }
    }
}
