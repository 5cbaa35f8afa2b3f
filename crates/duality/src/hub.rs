//! Live fan-out of committed events to stream subscribers.
//!
//! Each view has a bounded broadcast ring of pre-encoded SSE frames. The
//! store publishes into it after a transaction commits, in revision order;
//! subscribers read from the ring. A subscriber that falls behind the ring
//! is told it lagged and reads the missed events from the store instead, so
//! memory per subscriber stays bounded however slowly it reads.
//!
//! Filtered subscribers do not read the ring: each view's [`Interests`]
//! files their filters by key and `where` member, and routing an event
//! wakes only those whose subset it changes.
//!
//! Publishing is also what advances each view's in-memory copy
//! ([`Views`]): the hub sees every committed event once, in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::interest::{Interest, Interests};
use crate::materialized::{DocText, Materialized, Views};
use crate::store::Publish;
use duality_core::sse;
use duality_core::view::Registry;
use duality_core::{Error, Filter, View};

/// How many recent frames each view keeps for live subscribers.
pub const RING: usize = 1024;

/// One committed event, encoded once for every subscriber.
#[derive(Debug)]
pub struct Frame {
    /// The revision the event took its view to.
    pub revision: u64,
    /// The event as SSE text, ready to send.
    pub bytes: Bytes,
    /// Where the patch's JSON text starts in `bytes` (it ends before the
    /// frame's closing blank line).
    patch_at: usize,
    /// The documents the event replaced, as stored with it (see
    /// [`Event::prior`](crate::store::Event::prior)).
    pub prior: Option<Box<str>>,
}

impl Frame {
    /// A change event of `revision` carrying `patch` (compact JSON, as
    /// every store keeps it), with the documents it replaced.
    pub fn change(revision: u64, patch: &str, prior: Option<&str>) -> Frame {
        let bytes = sse::change(revision, patch);
        Frame {
            revision,
            patch_at: bytes.len() - sse::END.len() - patch.len(),
            bytes,
            prior: prior.map(Box::from),
        }
    }

    /// The event's merge patch, as JSON text.
    pub fn patch(&self) -> &str {
        let end = self.bytes.len() - sse::END.len();
        std::str::from_utf8(&self.bytes[self.patch_at..end]).unwrap_or("{}")
    }
}

struct Channel {
    sender: broadcast::Sender<Arc<Frame>>,
    /// `Some(data)` while the view is stale (a composed view whose
    /// upstream is lost): streams send it as a `stale` event, and `fresh`
    /// when it is `None` again.
    stale: watch::Sender<Option<String>>,
    /// The newest revision known to be committed. Written only by the
    /// publisher (after commit), read by snapshot caching and health checks.
    latest: AtomicU64,
    /// The filtered subscribers, offered only the events that concern them.
    interests: Arc<Interests>,
}

/// The channels and in-memory copies of every registered view.
pub struct Hub {
    registry: Arc<Registry>,
    channels: HashMap<View, Channel>,
    /// Every view's in-memory copy, advanced by each published event
    /// before its frame goes out.
    views: Views,
}

impl Hub {
    /// A hub for the views of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let channels = registry
            .views()
            .map(|view| {
                let (sender, _) = broadcast::channel(RING);
                let latest = AtomicU64::new(0);
                let stale = watch::channel(None).0;
                (
                    view,
                    Channel {
                        sender,
                        stale,
                        latest,
                        interests: Arc::default(),
                    },
                )
            })
            .collect();
        let views = Views::new(registry.views().map(|v| (v, v.indexes().to_vec())));
        Hub {
            registry,
            channels,
            views,
        }
    }

    /// Every view's in-memory copy.
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// The views this process serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The view's channel: every registered view has one; asking for
    /// another is a `404` (a service reading a view this process does not
    /// serve), never a panic.
    fn channel(&self, view: View) -> Result<&Channel, Error> {
        self.channels.get(&view).ok_or_else(|| {
            Error::NotFound(format!("this process does not serve the view `{view}`"))
        })
    }

    /// Publishes a committed event: applies it to the view's in-memory copy,
    /// then sends its frame to subscribers. Callers publish each view's
    /// events in revision order.
    pub fn publish(&self, view: View, revision: u64, patch: &str, prior: Option<&str>) {
        self.publish_with(view, revision, patch, prior, |copy| {
            copy.apply(revision, patch)
        });
    }

    /// Publishes a committed event as [`publish`](Self::publish) does,
    /// for a caller that also has the new text of each document the event
    /// changed, exactly as stored: the writer. The copy takes those texts
    /// instead of merging the patch again.
    pub fn publish_docs(
        &self,
        view: View,
        revision: u64,
        patch: &str,
        prior: Option<&str>,
        changed: &[DocText],
    ) {
        self.publish_with(view, revision, patch, prior, |copy| {
            copy.apply_docs(revision, changed)
        });
    }

    /// Marks `revision` committed, advances the view's copy with `apply`,
    /// then sends the event's frame to subscribers.
    fn publish_with(
        &self,
        view: View,
        revision: u64,
        patch: &str,
        prior: Option<&str>,
        apply: impl FnOnce(&Materialized),
    ) {
        // A store announces only the views of its registry, which is ours.
        let Ok(channel) = self.channel(view) else {
            tracing::error!(%view, revision, "a store published a view the hub does not know");
            return;
        };
        channel.latest.fetch_max(revision, Ordering::AcqRel);
        if let Some(copy) = self.views.get(view) {
            apply(copy);
        }
        let frame = Arc::new(Frame::change(revision, patch, prior));
        metrics::counter!("duality_events_total", "view" => view.name()).increment(1);
        // No receivers is fine: nobody is listening right now.
        let _ = channel.sender.send(frame);
        channel.interests.route(revision, patch, prior);
    }

    /// Records a revision committed without a live frame (at start-up, or
    /// when another process committed it).
    pub fn observe(&self, view: View, revision: u64) {
        if let Ok(channel) = self.channel(view) {
            channel.latest.fetch_max(revision, Ordering::AcqRel);
        }
    }

    /// Live frames of `view` from now on; a receiver that lags more than
    /// [`RING`] frames behind loses some and must catch up from the store.
    pub fn subscribe(&self, view: View) -> Result<broadcast::Receiver<Arc<Frame>>, Error> {
        Ok(self.channel(view)?.sender.subscribe())
    }

    /// Registers a filtered subscriber of `view`: from now on the events
    /// that change its subset are delivered to it, restricted to it.
    pub fn watch(&self, view: View, filter: Filter) -> Result<Interest, Error> {
        Ok(self.channel(view)?.interests.register(filter))
    }

    /// Marks `view` stale (`Some(data)`, the data of the `stale` event) or
    /// fresh again (`None`).
    pub fn set_stale(&self, view: View, stale: Option<String>) -> Result<(), Error> {
        self.channel(view)?.stale.send_if_modified(|now| {
            let changed = *now != stale;
            *now = stale;
            changed
        });
        Ok(())
    }

    /// Whether `view` is stale, as a receiver that wakes on every change.
    pub fn stale(&self, view: View) -> Result<watch::Receiver<Option<String>>, Error> {
        Ok(self.channel(view)?.stale.subscribe())
    }

    /// The newest revision of `view` known to be committed (0 if none).
    pub fn latest(&self, view: View) -> Result<u64, Error> {
        Ok(self.channel(view)?.latest.load(Ordering::Acquire))
    }
}

impl Publish for Hub {
    fn registry(&self) -> &Registry {
        Hub::registry(self)
    }

    fn observe(&self, view: View, revision: u64) {
        Hub::observe(self, view, revision)
    }

    fn publish(&self, view: View, revision: u64, patch: &str, prior: Option<&str>) {
        Hub::publish(self, view, revision, patch, prior)
    }

    fn publish_docs(
        &self,
        view: View,
        revision: u64,
        patch: &str,
        prior: Option<&str>,
        changed: &[DocText],
    ) {
        Hub::publish_docs(self, view, revision, patch, prior, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality_core::view::ViewSpec;

    static PERSONS_SPEC: ViewSpec = ViewSpec::new("persons", "/persons", "/person-events");
    static LOCATIONS_SPEC: ViewSpec = ViewSpec::new("locations", "/locations", "/location-events");
    const PERSONS: View = View::of(&PERSONS_SPEC);
    const LOCATIONS: View = View::of(&LOCATIONS_SPEC);

    fn hub() -> Hub {
        Hub::new(Arc::new(Registry::new([PERSONS, LOCATIONS]).unwrap()))
    }

    #[test]
    fn a_frame_knows_its_patch() {
        let frame = Frame::change(7, r#"{"a":{"b":"c\nd"}}"#, None);
        assert_eq!(frame.patch(), r#"{"a":{"b":"c\nd"}}"#);
        assert!(frame.bytes.starts_with(b"id: 7\n"));
    }

    #[tokio::test]
    async fn subscribers_receive_frames_in_order_and_latest_moves() {
        let hub = hub();
        let mut rx = hub.subscribe(PERSONS).unwrap();
        hub.publish(PERSONS, 1, "{}", None);
        hub.publish(PERSONS, 2, "{}", None);
        assert_eq!(rx.recv().await.unwrap().revision, 1);
        assert_eq!(rx.recv().await.unwrap().revision, 2);
        assert_eq!(hub.latest(PERSONS), Ok(2));
        assert_eq!(hub.latest(LOCATIONS), Ok(0));
    }

    #[test]
    fn a_view_the_hub_does_not_serve_is_not_found_not_a_panic() {
        static ELSEWHERE_SPEC: ViewSpec = ViewSpec::new("elsewhere", "/e", "/e-events");
        let elsewhere = View::of(&ELSEWHERE_SPEC);
        let hub = hub();
        assert!(matches!(hub.latest(elsewhere), Err(Error::NotFound(_))));
        assert!(matches!(hub.subscribe(elsewhere), Err(Error::NotFound(_))));
        assert!(matches!(
            hub.set_stale(elsewhere, None),
            Err(Error::NotFound(_))
        ));
        hub.publish(elsewhere, 1, "{}", None);
        hub.observe(elsewhere, 1);
        assert_eq!(hub.latest(PERSONS), Ok(0));
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_buffering() {
        let hub = hub();
        let mut rx = hub.subscribe(PERSONS).unwrap();
        for r in 1..=(RING as u64 + 10) {
            hub.publish(PERSONS, r, "{}", None);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
