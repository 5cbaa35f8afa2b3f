//! Several subscriptions over one connection (docs/PROTOCOL.md, "Many
//! views on one connection").
//!
//! A browser opens at most six HTTP/1.1 connections per host, so a page
//! that follows each view with its own `EventSource` stalls past five
//! views. A multiplexed stream carries many subscriptions instead: each is
//! an ordinary [`Subscription`] (the same catch-up, continuity, filter,
//! `caught-up` and `progress`), and this module only merges their
//! [`Item`]s into one SSE body, framing each as an event that names its
//! subscription (`{"sub": "a", …}`). A `snapshot` event is sent in the
//! pieces its subscription yields (shared with every other reader, never
//! copied whole), and nothing else comes between them.
//!
//! Every event's `id` is the list of the positions the consumer has
//! reached, one per subscription that has sent an event with an id
//! (`a=12,b=7`), so the `Last-Event-ID` a browser sends after a dropped
//! connection resumes each subscription exactly where it was; one with no
//! position yet starts as its request says. A subscription that cannot go
//! on sends its own `reset` and leaves the list; the others continue, and
//! the connection ends when none is left. A subscription that ends
//! otherwise (shutdown, the store away) ends the connection, so the
//! consumer reconnects and resumes them all. Keep-alives are sent once per
//! connection, not per subscription.

use std::convert::Infallible;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use duality_core::{Error, Filter, View};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::time::Interval;

use super::{Item, Opened, Subscription, gone_body, position::Request, revision_data};
use crate::app::App;
use duality_core::sse;

/// The most subscriptions one connection may carry.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// The longest subscription id.
pub const MAX_ID: usize = 32;

/// True if `id` may name a subscription: 1 to [`MAX_ID`] ASCII letters,
/// digits, `-` or `_` (so that it never needs escaping in an event id).
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One subscription a multiplexed stream is asked for.
#[derive(Debug)]
pub struct Entry {
    /// The id its events carry (see [`valid_id`]).
    pub id: String,
    /// The view it follows.
    pub view: View,
    /// Where it starts (its epoch is the connection's, checked once).
    pub request: Request,
    /// The part of the view it follows.
    pub filter: Filter,
    /// The position it resumes after (from `Last-Event-ID`), if any.
    pub resumed: Option<u64>,
}

/// Parses a multiplexed stream's `Last-Event-ID` (`a=12,b=7`): each
/// subscription's position, in order. Blank means no position; an `Err`
/// is a `400` message.
pub fn parse_positions(raw: &str) -> Result<Vec<(String, u64)>, String> {
    let raw = raw.trim();
    let mut out: Vec<(String, u64)> = Vec::new();
    if raw.is_empty() {
        return Ok(out);
    }
    for part in raw.split(',') {
        let shown = || part.chars().take(80).collect::<String>();
        let Some((id, revision)) = part.trim().split_once('=') else {
            return Err(format!(
                "Last-Event-ID must be a list of id=revision, such as a=12,b=7; got `{}`",
                shown()
            ));
        };
        if !valid_id(id) {
            return Err(format!(
                "Last-Event-ID: `{}` is not a subscription id",
                shown()
            ));
        }
        let valid = !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit());
        let revision = revision
            .parse::<u64>()
            .ok()
            .filter(|r| valid && *r < u64::MAX)
            .ok_or_else(|| format!("Last-Event-ID: `{}` is not a revision", shown()))?;
        if out.iter().any(|(seen, _)| seen == id) {
            return Err(format!("Last-Event-ID names `{id}` twice"));
        }
        out.push((id.to_string(), revision));
    }
    Ok(out)
}

/// The `id:` of a multiplexed event: every known position, in order.
fn positions_text(slots: &[Slot]) -> String {
    let mut out = String::new();
    for slot in slots {
        if let Some(at) = slot.position {
            if !out.is_empty() {
                out.push(',');
            }
            let _ = write!(out, "{}={at}", slot.id);
        }
    }
    out
}

/// `data` (a JSON object) with `"sub": id` as its first member.
fn with_sub(id: &str, data: &str) -> String {
    let sub = serde_json::Value::from(id).to_string();
    match data.trim().strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"sub\":{sub}}}"),
        Some(rest) => format!("{{\"sub\":{sub},{rest}"),
        None => format!("{{\"sub\":{sub},\"data\":{data}}}"),
    }
}

/// What the connection knows of one subscription.
struct Slot {
    id: String,
    /// The revision of the last event with an id sent for it (or the one
    /// it resumed after): where a reconnection resumes it.
    position: Option<u64>,
    /// Whether it sent `reset` (and so may end without ending the rest).
    reset: bool,
    /// Whether its `snapshot` event is sent in part: nothing else may be
    /// sent until it is closed.
    in_snapshot: bool,
}

/// A subscription's next items: its index, itself, the items, and whether
/// it goes on.
type Step = (usize, Box<Subscription>, Vec<Item>, bool);

fn step(
    index: usize,
    mut sub: Box<Subscription>,
    mut items: Vec<Item>,
) -> BoxFuture<'static, Step> {
    Box::pin(async move {
        let alive = sub.next_items(&mut items).await;
        (index, sub, items, alive)
    })
}

/// An open multiplexed stream.
pub struct Multiplex {
    slots: Vec<Slot>,
    /// The `id:` of the next event, kept as positions change.
    id: String,
    /// Every running subscription, each waiting for its next items.
    running: FuturesUnordered<BoxFuture<'static, Step>>,
    /// What to send first: the `reset` of every subscription that could
    /// not be opened.
    first: Option<Bytes>,
    /// The subscription whose `snapshot` event is being sent, piece by
    /// piece: the only one polled until the event is closed.
    snapshotting: Option<(usize, Box<Subscription>, Vec<Item>)>,
    keep_alive: Interval,
}

/// Opens every subscription of `entries` on one connection. A position
/// of another epoch than `epoch` is a `410` for the whole request; one
/// gone for a single subscription is that subscription's `reset`.
pub async fn open(app: &App, entries: Vec<Entry>, epoch: Option<&str>) -> Result<Multiplex, Error> {
    if epoch.is_some_and(|e| e != app.epoch()) {
        let body = serde_json::json!({
            "error": super::position::Gone::OtherEpoch.to_string(),
            "epoch": app.epoch(),
        });
        return Err(Error::Gone(body.to_string()));
    }
    let opened = futures_util::future::try_join_all(entries.iter().map(|entry| {
        let request = Request {
            start: entry.request.start,
            epoch: None,
        };
        super::open(app, entry.view, request, entry.filter.clone())
    }))
    .await?;
    let mut slots = Vec::with_capacity(entries.len());
    let running = FuturesUnordered::new();
    let mut first = BytesMut::new();
    let mut resets = Vec::new();
    for (index, (entry, opened)) in entries.into_iter().zip(opened).enumerate() {
        slots.push(Slot {
            id: entry.id,
            position: entry.resumed,
            reset: false,
            in_snapshot: false,
        });
        match opened {
            Opened::Stream(mut sub) => {
                sub.keep_alive = None;
                running.push(step(index, sub, Vec::new()));
            }
            Opened::Gone {
                why,
                oldest,
                current,
            } => {
                let body = gone_body(entry.view, &why.to_string(), oldest, current, app.epoch());
                resets.push((index, body));
            }
        }
    }
    let mut mux = Multiplex {
        id: positions_text(&slots),
        slots,
        running,
        first: None,
        snapshotting: None,
        keep_alive: super::keep_alive(app),
    };
    for (index, body) in resets {
        mux.put(&mut first, index, Item::Reset(body));
    }
    mux.first = (!first.is_empty()).then(|| first.freeze());
    Ok(mux)
}

impl Multiplex {
    /// The response body: SSE bytes until the stream ends.
    pub fn into_body(self) -> axum::body::Body {
        let chunks = futures_util::stream::unfold(self, |mut mux| async move {
            let chunk = mux.next_chunk().await?;
            Some((Ok::<Bytes, Infallible>(chunk), mux))
        });
        axum::body::Body::from_stream(chunks)
    }

    /// Moves subscription `index` to `position`, and the next id with it.
    fn advance(&mut self, index: usize, position: Option<u64>) {
        if self.slots[index].position != position {
            self.slots[index].position = position;
            self.id = positions_text(&self.slots);
        }
    }

    /// Appends a named event of subscription `index` to `buf`.
    fn event(&self, buf: &mut BytesMut, name: &str, data: &str) {
        sse::put_with_id(buf, name, &self.id, data);
    }

    /// Frames one item of subscription `index` into `buf`.
    fn put(&mut self, buf: &mut BytesMut, index: usize, item: Item) {
        let sub = serde_json::Value::from(self.slots[index].id.as_str()).to_string();
        let change = |revision: u64, patch: &str| {
            format!("{{\"sub\":{sub},\"revision\":{revision},\"patch\":{patch}}}")
        };
        match item {
            Item::Frame(frame) => {
                self.advance(index, Some(frame.revision));
                self.event(buf, "change", &change(frame.revision, frame.patch()));
            }
            Item::Change { revision, patch } => {
                self.advance(index, Some(revision));
                self.event(buf, "change", &change(revision, &patch));
            }
            Item::SnapshotHead(revision) => {
                self.slots[index].in_snapshot = true;
                self.advance(index, Some(revision));
                sse::put_head_with_id(buf, "snapshot", &self.id);
                let _ = write!(
                    Writer(buf),
                    "{{\"sub\":{sub},\"revision\":{revision},\"view\":"
                );
            }
            Item::SnapshotPart(part) => buf.extend_from_slice(&part),
            Item::SnapshotEnd => {
                self.slots[index].in_snapshot = false;
                buf.extend_from_slice(b"}");
                buf.extend_from_slice(sse::END);
            }
            Item::CatchUp { revision, patch } => {
                self.advance(index, Some(revision));
                self.event(buf, "catch-up", &change(revision, &patch));
            }
            Item::CaughtUp(revision) => {
                let data = with_sub(&self.slots[index].id, &revision_data(revision));
                self.event(buf, "caught-up", &data);
            }
            Item::Progress(revision) => {
                self.advance(index, Some(revision));
                let data = with_sub(&self.slots[index].id, &revision_data(revision));
                self.event(buf, "progress", &data);
            }
            Item::Reset(body) => {
                // Gone for good on this connection: a reconnection starts
                // it as its request says.
                self.slots[index].reset = true;
                self.advance(index, None);
                let data = with_sub(&self.slots[index].id, &body);
                self.event(buf, "reset", &data);
            }
            Item::Stale(data) => {
                let data = with_sub(&self.slots[index].id, &data);
                self.event(buf, "stale", &data);
            }
            Item::Fresh => {
                let data = with_sub(&self.slots[index].id, "{}");
                self.event(buf, "fresh", &data);
            }
            // The connection sends its own.
            Item::KeepAlive => {}
        }
    }

    /// Frames the items of subscription `index` (and empties the list).
    /// A lone piece of a snapshot is shared with every other reader.
    fn encode(&mut self, index: usize, items: &mut Vec<Item>) -> Bytes {
        if let [Item::SnapshotPart(part)] = &items[..] {
            let part = part.clone();
            items.clear();
            return part;
        }
        let mut buf = BytesMut::new();
        for item in items.drain(..) {
            self.put(&mut buf, index, item);
        }
        buf.freeze()
    }

    /// Lets subscription `index` run again: alone while its snapshot
    /// event is open, else beside the others.
    fn again(&mut self, index: usize, sub: Box<Subscription>, items: Vec<Item>) {
        if self.slots[index].in_snapshot {
            self.snapshotting = Some((index, sub, items));
        } else {
            self.running.push(step(index, sub, items));
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if let Some((index, mut sub, mut items)) = self.snapshotting.take() {
            // The rest of a snapshot event, which its lead has ready:
            // nothing else, not even a keep-alive, goes between its pieces.
            if !sub.next_items(&mut items).await {
                return None;
            }
            let chunk = self.encode(index, &mut items);
            self.again(index, sub, items);
            return Some(chunk);
        }
        loop {
            if self.running.is_empty() {
                // Every subscription was reset.
                return None;
            }
            tokio::select! {
                done = self.running.next() => {
                    let (index, sub, mut items, alive) = done?;
                    if !alive {
                        if self.slots[index].reset {
                            continue;
                        }
                        // Shutdown, or the store is away: the consumer
                        // reconnects and resumes every subscription.
                        return None;
                    }
                    let chunk = self.encode(index, &mut items);
                    self.again(index, sub, items);
                    if !chunk.is_empty() {
                        return Some(chunk);
                    }
                }
                _ = self.keep_alive.tick() => return Some(sse::comment("keep-alive")),
            }
        }
    }
}

/// `fmt::Write` into a `BytesMut`.
struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_a_list_of_id_equals_revision() {
        assert_eq!(
            parse_positions("a=12,b-2=7"),
            Ok(vec![("a".into(), 12), ("b-2".into(), 7)])
        );
        assert_eq!(parse_positions(" "), Ok(vec![]));
        for bad in [
            "a",
            "a=",
            "a=x",
            "a=-1",
            "a=1,",
            "=3",
            "a.b=3",
            "a=1,a=2",
            "a=+1",
            "a=18446744073709551615",
            "a=99999999999999999999999",
        ] {
            assert!(parse_positions(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_short_plain_words() {
        assert!(valid_id("a") && valid_id("notes_2-x"));
        assert!(!valid_id("") && !valid_id("a:b") && !valid_id("a=b") && !valid_id("a,b"));
        assert!(!valid_id(&"x".repeat(MAX_ID + 1)));
    }

    #[test]
    fn the_subscription_goes_first_in_every_object() {
        assert_eq!(with_sub("a", "{}"), r#"{"sub":"a"}"#);
        assert_eq!(with_sub("a", r#"{"x":1}"#), r#"{"sub":"a","x":1}"#);
        assert_eq!(with_sub("a", "[1]"), r#"{"sub":"a","data":[1]}"#);
    }
}
