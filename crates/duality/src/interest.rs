//! Which filtered subscribers a change concerns, found without asking
//! every subscriber.
//!
//! Unfiltered subscribers read the hub's broadcast ring, where every frame
//! wakes every reader. A filtered subscriber (docs/PROTOCOL.md, "Filters")
//! instead registers its [`Filter`] here, filed under its
//! [`Anchor`](duality_core::Anchor): its keys, or one member value its
//! `where` requires. Routing a change parses its patch and the documents
//! it replaced once, looks up the filters filed under each changed key and
//! under the anchor members' values before and after the change, restricts
//! the change for each of them, and wakes only those whose subset changed.
//! So delivering a change costs work for the subscribers it concerns, not
//! for every subscriber of the view.
//!
//! Each registration has a bounded [`Mailbox`]. A subscriber that does not
//! empty it in time is told it lagged and reads from the outbox instead,
//! as a ring reader that lags does. Since a subscriber is offered only the
//! revisions that concern it, it learns that the others have passed from
//! [`Interests::routed`]: every revision up to it has been routed, so any
//! change for it up to there is already in its mailbox.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use duality_core::filter::{Anchor, index_text, member};
use duality_core::{Filter, merge};
use serde_json::{Map, Value};
use tokio::sync::Notify;

/// How many undelivered changes a mailbox holds before its subscriber is
/// told it lagged.
pub const MAILBOX: usize = 256;

/// What a filtered subscriber receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A change of its subset: the view's revision and the restricted
    /// merge patch (JSON text).
    Change {
        /// The revision of the view the change belongs to.
        revision: u64,
        /// The change to the subset.
        patch: String,
    },
    /// Changes were lost (a full mailbox, a revision the hub never saw, or
    /// an event without what a `where` needs): read from the outbox.
    Lagged,
}

/// One registration's queue of deliveries.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// Woken after each push; holds a permit when nobody waits.
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    changes: VecDeque<(u64, String)>,
    /// Set when something could not be queued; everything queued before
    /// it was dropped with it.
    lagged: bool,
}

impl Mailbox {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue of plain data.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, revision: u64, patch: String) {
        {
            let mut queue = self.queue();
            if queue.lagged {
                return;
            }
            if queue.changes.len() >= MAILBOX {
                queue.changes.clear();
                queue.lagged = true;
            } else {
                queue.changes.push_back((revision, patch));
            }
        }
        self.ready.notify_one();
    }

    fn lag(&self) {
        {
            let mut queue = self.queue();
            queue.changes.clear();
            queue.lagged = true;
        }
        self.ready.notify_one();
    }

    /// The next delivery, if one is waiting.
    pub fn try_recv(&self) -> Option<Delivery> {
        let mut queue = self.queue();
        if std::mem::take(&mut queue.lagged) {
            return Some(Delivery::Lagged);
        }
        let (revision, patch) = queue.changes.pop_front()?;
        Some(Delivery::Change { revision, patch })
    }

    /// The next delivery, waiting for one.
    pub async fn recv(&self) -> Delivery {
        loop {
            if let Some(delivery) = self.try_recv() {
                return delivery;
            }
            self.ready.notified().await;
        }
    }
}

/// One filter's registration with its mailbox; dropping it unregisters.
pub struct Interest {
    id: u64,
    mailbox: Arc<Mailbox>,
    interests: Arc<Interests>,
}

impl Interest {
    /// Where its deliveries arrive.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Every revision up to this one has been routed (see
    /// [`Interests::routed`]).
    pub fn routed(&self) -> u64 {
        self.interests.routed()
    }

    /// How many filters are registered on this view.
    pub fn registered(&self) -> usize {
        self.interests.len()
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        self.interests.unregister(self.id);
    }
}

/// The filtered subscribers of one view, filed by anchor.
#[derive(Default)]
pub struct Interests {
    index: Mutex<Index>,
    /// The newest revision routed. Stored (release) after its deliveries
    /// are queued, so a subscriber that reads it (acquire) and then empties
    /// its mailbox has seen every change for it up to there.
    routed: AtomicU64,
    /// How many filters are registered (read without the lock).
    count: AtomicUsize,
}

struct Entry {
    filter: Filter,
    mailbox: Arc<Mailbox>,
}

#[derive(Default)]
struct Index {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    /// Registrations by each key they name.
    by_key: HashMap<String, Vec<u64>>,
    /// Registrations by anchor path, then by the anchor value's index text.
    by_member: HashMap<Vec<String>, HashMap<String, Vec<u64>>>,
    /// Registrations with no anchor: offered every change.
    everywhere: Vec<u64>,
}

fn remove(list: &mut Vec<u64>, id: u64) {
    if let Some(at) = list.iter().position(|&x| x == id) {
        list.swap_remove(at);
    }
}

impl Interests {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many filters are registered.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True if no filter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every revision up to this one has been routed: a registration's
    /// changes up to it are in its mailbox (or it is marked lagged).
    pub fn routed(&self) -> u64 {
        self.routed.load(Ordering::Acquire)
    }

    /// Registers `filter`: from now on every routed change that concerns
    /// it is delivered to the registration's mailbox.
    pub fn register(self: &Arc<Self>, filter: Filter) -> Interest {
        let mailbox = Arc::new(Mailbox::default());
        let mut index = self.index();
        let id = index.next_id;
        index.next_id += 1;
        match filter.anchor() {
            Anchor::Keys(keys) => {
                for key in keys {
                    index.by_key.entry(key).or_default().push(id);
                }
            }
            Anchor::Member { path, value } => {
                index
                    .by_member
                    .entry(path)
                    .or_default()
                    .entry(value)
                    .or_default()
                    .push(id);
            }
            Anchor::Everywhere => index.everywhere.push(id),
        }
        index.entries.insert(
            id,
            Entry {
                filter,
                mailbox: Arc::clone(&mailbox),
            },
        );
        self.count.fetch_add(1, Ordering::Relaxed);
        Interest {
            id,
            mailbox,
            interests: Arc::clone(self),
        }
    }

    fn unregister(&self, id: u64) {
        let mut index = self.index();
        let Some(entry) = index.entries.remove(&id) else {
            return;
        };
        self.count.fetch_sub(1, Ordering::Relaxed);
        match entry.filter.anchor() {
            Anchor::Keys(keys) => {
                for key in keys {
                    if let Some(list) = index.by_key.get_mut(&key) {
                        remove(list, id);
                        if list.is_empty() {
                            index.by_key.remove(&key);
                        }
                    }
                }
            }
            Anchor::Member { path, value } => {
                if let Some(values) = index.by_member.get_mut(&path) {
                    if let Some(list) = values.get_mut(&value) {
                        remove(list, id);
                        if list.is_empty() {
                            values.remove(&value);
                        }
                    }
                    if values.is_empty() {
                        index.by_member.remove(&path);
                    }
                }
            }
            Anchor::Everywhere => remove(&mut index.everywhere, id),
        }
    }

    /// Routes the committed event of `revision` (its merge patch and the
    /// documents it replaced, as stored) to the registrations it concerns.
    /// Called once per event, in revision order.
    pub fn route(&self, revision: u64, patch: &str, prior: Option<&str>) {
        let previous = self.routed.load(Ordering::Relaxed);
        if self.is_empty() {
            self.routed.store(revision.max(previous), Ordering::Release);
            return;
        }
        let index = self.index();
        if revision > previous + 1 {
            // Revisions this hub never routed (skipped by a publisher, or
            // committed before the first one it routed): nobody can tell
            // what they held, so every registration reads the outbox.
            for entry in index.entries.values() {
                entry.mailbox.lag();
            }
        }
        self.deliver(&index, revision, patch, prior);
        drop(index);
        self.routed.store(revision.max(previous), Ordering::Release);
    }

    fn deliver(&self, index: &Index, revision: u64, patch: &str, prior: Option<&str>) {
        let object = |text: &str| match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        let Some(patch) = object(patch) else {
            tracing::error!(
                revision,
                "routing an event whose patch is not a JSON object"
            );
            return;
        };
        let needs_docs = !index.by_member.is_empty() || !index.everywhere.is_empty();
        let prior = match prior {
            Some(text) if needs_docs => object(text),
            Some(_) => Some(Map::new()),
            None => None,
        };
        let mut candidates: Vec<u64> = Vec::new();
        if prior.is_none() {
            // Without the replaced documents nobody can tell whom a `where`
            // concerns: every filter anchored by a member is offered it
            // (and, needing them, lags).
            candidates.extend(index.by_member.values().flat_map(|v| v.values().flatten()));
        }
        for (key, entry) in &patch {
            if let Some(ids) = index.by_key.get(key) {
                candidates.extend(ids);
            }
            if index.by_member.is_empty() {
                continue;
            }
            let Some(prior) = &prior else {
                continue;
            };
            let before = prior.get(key);
            let after = match (before, entry) {
                (_, Value::Null) => None,
                (None, created) => Some(created.clone()),
                (Some(old), change) => {
                    let mut doc = old.clone();
                    merge::apply(&mut doc, change);
                    Some(doc)
                }
            };
            for (path, values) in &index.by_member {
                for doc in [before, after.as_ref()].into_iter().flatten() {
                    if let Some(ids) = member(doc, path)
                        .and_then(index_text)
                        .and_then(|text| values.get(&text))
                    {
                        candidates.extend(ids);
                    }
                }
            }
        }
        candidates.extend(&index.everywhere);
        candidates.sort_unstable();
        candidates.dedup();
        let empty = Map::new();
        for id in candidates {
            let Some(entry) = index.entries.get(&id) else {
                continue;
            };
            let prior = match (&prior, entry.filter.pattern()) {
                (Some(prior), _) => prior,
                (None, None) => &empty,
                (None, Some(_)) => {
                    // A `where` needs the replaced documents; the outbox
                    // path tells this subscriber so.
                    entry.mailbox.lag();
                    continue;
                }
            };
            if let Some(kept) = entry.filter.event(&patch, prior) {
                entry
                    .mailbox
                    .push(revision, Value::Object(kept).to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interests() -> Arc<Interests> {
        Arc::new(Interests::default())
    }

    fn pattern(v: Value) -> Filter {
        match v {
            Value::Object(m) => Filter::matching(m),
            _ => unreachable!(),
        }
    }

    fn change(revision: u64, patch: Value) -> Option<Delivery> {
        Some(Delivery::Change {
            revision,
            patch: patch.to_string(),
        })
    }

    #[test]
    fn a_change_reaches_only_the_filters_it_concerns() {
        let all = interests();
        let a = all.register(Filter::keys(["a"]));
        let b = all.register(Filter::keys(["b"]));
        let red = all.register(pattern(json!({"tag": "red"})));
        all.route(1, r#"{"a":{"tag":"blue"}}"#, Some("{}"));
        assert_eq!(
            a.mailbox().try_recv(),
            change(1, json!({"a": {"tag": "blue"}}))
        );
        assert_eq!(b.mailbox().try_recv(), None);
        assert_eq!(red.mailbox().try_recv(), None);
        // `a` turns red: the red filter gets it whole.
        all.route(2, r#"{"a":{"tag":"red"}}"#, Some(r#"{"a":{"tag":"blue"}}"#));
        assert_eq!(
            red.mailbox().try_recv(),
            change(2, json!({"a": {"tag": "red"}}))
        );
        // And leaves it again: null, found by its value before the change.
        all.route(3, r#"{"a":null}"#, Some(r#"{"a":{"tag":"red"}}"#));
        assert_eq!(red.mailbox().try_recv(), change(3, json!({"a": null})));
        assert_eq!(all.routed(), 3);
    }

    #[test]
    fn an_anchored_filter_that_does_not_match_whole_is_not_woken() {
        let all = interests();
        let red_open = all.register(pattern(json!({"tag": "red", "open": true})));
        all.route(1, r#"{"a":{"tag":"red","open":false}}"#, Some("{}"));
        assert_eq!(red_open.mailbox().try_recv(), None);
    }

    #[test]
    fn an_unindexable_filter_is_offered_every_change() {
        let all = interests();
        let fraction = all.register(pattern(json!({"n": 1.5})));
        all.route(1, r#"{"a":{"n":1.5},"b":{"n":2}}"#, Some("{}"));
        assert_eq!(
            fraction.mailbox().try_recv(),
            change(1, json!({"a": {"n": 1.5}}))
        );
    }

    #[test]
    fn a_hole_in_the_routed_revisions_or_a_missing_prior_lags_the_subscriber() {
        let all = interests();
        let a = all.register(Filter::keys(["a"]));
        let red = all.register(pattern(json!({"tag": "red"})));
        all.route(1, r#"{"x":{}}"#, Some("{}"));
        all.route(3, r#"{"x":{}}"#, Some("{}"));
        assert_eq!(a.mailbox().try_recv(), Some(Delivery::Lagged));
        assert_eq!(a.mailbox().try_recv(), None);
        assert_eq!(red.mailbox().try_recv(), Some(Delivery::Lagged));
        // A key filter needs no prior; a where filter does.
        all.route(4, r#"{"a":{"tag":"red"}}"#, None);
        assert_eq!(
            a.mailbox().try_recv(),
            change(4, json!({"a": {"tag": "red"}}))
        );
        assert_eq!(red.mailbox().try_recv(), Some(Delivery::Lagged));
    }

    #[test]
    fn a_full_mailbox_lags_instead_of_growing() {
        let all = interests();
        let a = all.register(Filter::keys(["a"]));
        for r in 1..=(MAILBOX as u64 + 1) {
            all.route(r, &format!(r#"{{"a":{{"n":{r}}}}}"#), Some("{}"));
        }
        assert_eq!(a.mailbox().try_recv(), Some(Delivery::Lagged));
        assert_eq!(a.mailbox().try_recv(), None);
    }

    #[test]
    fn dropping_an_interest_unregisters_it() {
        let all = interests();
        let a = all.register(Filter::keys(["a", "b"]));
        let red = all.register(pattern(json!({"tag": "red"})));
        let any = all.register(pattern(json!({"n": 1.5})));
        assert_eq!(all.len(), 3);
        drop((a, red, any));
        assert_eq!(all.len(), 0);
        let index = all.index();
        assert!(index.by_key.is_empty() && index.by_member.is_empty());
        assert!(index.everywhere.is_empty() && index.entries.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_for_its_change() {
        let all = interests();
        let a = all.register(Filter::keys(["a"]));
        let waiting = tokio::spawn(async move { a.mailbox().recv().await });
        tokio::task::yield_now().await;
        all.route(1, r#"{"a":1}"#, Some("{}"));
        assert_eq!(
            waiting.await.unwrap(),
            Delivery::Change {
                revision: 1,
                patch: r#"{"a":1}"#.into()
            }
        );
    }
}
