//! Every view materialized in memory, advanced by its own committed events
//! (README, "Views at any size").
//!
//! A snapshot is the fold of the view's stream: each process reads every
//! view from the store once at start, then applies each event the store
//! publishes to the [`Hub`](crate::hub::Hub), in revision order, to its
//! copy. A new revision therefore never re-reads the view. The copy is kept
//! as [`Chunks`] of pre-serialised JSON, so an event costs what it changes
//! (its keys' chunks), taking a [`Snapshot`] is O(1), and each revision's
//! identity and gzip bodies are produced once and shared by every reader.
//!
//! Read models hang off a view as [`Index`]es: each is told every document
//! change as it is applied, so it stays current in O(log n) per change.
//!
//! If the copy ever misses an event (a process that published past a
//! trimmed outbox, or an event that arrived before the first load), it
//! notices the gap and catches up from the outbox, or reloads the view
//! when the outbox no longer has what it needs.

use duality_core::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use duality_core::body::{self, Pieces, PiecesBody};
pub use duality_core::chunks::{self, Chunks};
pub use duality_core::index::{DocText, Index, MakeIndex};

use crate::store::Store;
use duality_core::merge;
use duality_core::{Filter, View};

/// How long a reader waits for the publisher to apply a revision the hub
/// already announced, before catching up from the outbox itself.
const PUBLISH_WAIT: Duration = Duration::from_millis(250);
/// Events read per round trip when catching up.
const CATCH_UP_PAGE: usize = 1024;
/// Bodies of views larger than this are built on the blocking pool.
const BUILD_INLINE_UP_TO: usize = 256 * 1024;

/// A view at one revision. Cheap to take and to hold: its documents are
/// shared with the live copy and with every other snapshot.
pub struct Snapshot {
    /// The revision the documents reflect.
    pub revision: u64,
    /// The documents in key order, as stored JSON text.
    pub docs: Chunks,
    identity: OnceLock<Arc<Pieces>>,
    gzip: OnceLock<Arc<Pieces>>,
}

impl Snapshot {
    fn new(revision: u64, docs: Chunks) -> Snapshot {
        Snapshot {
            revision,
            docs,
            identity: OnceLock::new(),
            gzip: OnceLock::new(),
        }
    }

    /// The entity tag of this snapshot: epoch and revision identify it.
    pub fn etag(&self, epoch: &str) -> String {
        format!("\"{epoch}-{}\"", self.revision)
    }

    /// This snapshot restricted to the documents `filter` keeps, at the
    /// same revision. By keys it costs O(keys · log n); a `where` alone
    /// looks at every document.
    pub fn filtered(&self, filter: &Filter) -> Result<Snapshot, Error> {
        let keeps = |&(key, text, _): &(&str, &str, u64)| match filter.pattern() {
            None => true,
            Some(_) => {
                serde_json::from_str::<Value>(text).is_ok_and(|doc| filter.matches(key, &doc))
            }
        };
        let docs = match filter.key_set() {
            Some(keys) => Chunks::from_sorted(
                keys.iter()
                    .filter_map(|k| self.docs.get_at(k).map(|(d, r)| (k.as_str(), d, r)))
                    .filter(keeps),
            ),
            None => Chunks::from_sorted(self.docs.entries().filter(keeps)),
        }
        .map_err(|e| Error::internal(format!("filtering the view {}: {e}", self.revision)))?;
        Ok(Snapshot::new(self.revision, docs))
    }

    /// One document, parsed.
    pub fn doc(&self, key: &str) -> Option<Value> {
        self.docs
            .get(key)
            .and_then(|d| serde_json::from_str(d).ok())
    }

    /// One document as stored JSON text, with the revision of the view
    /// that last changed it (what its `ETag` is made of): O(log n).
    pub fn doc_at(&self, key: &str) -> Option<(&str, u64)> {
        self.docs.get_at(key)
    }

    /// The body, identity or gzip, built once per revision; large views
    /// are assembled (and compressed) on the blocking pool.
    pub async fn body(self: &Arc<Self>, gzip: bool) -> Arc<Pieces> {
        let cell = if gzip { &self.gzip } else { &self.identity };
        if let Some(pieces) = cell.get() {
            return Arc::clone(pieces);
        }
        if self.docs.text_bytes() <= BUILD_INLINE_UP_TO {
            return self.build(gzip);
        }
        let this = Arc::clone(self);
        match tokio::task::spawn_blocking(move || this.build(gzip)).await {
            Ok(pieces) => pieces,
            Err(_) => self.build(gzip),
        }
    }

    fn build(&self, gzip: bool) -> Arc<Pieces> {
        let cell = if gzip { &self.gzip } else { &self.identity };
        Arc::clone(cell.get_or_init(|| {
            let started = std::time::Instant::now();
            let pieces = if gzip {
                body::gzip(&self.docs)
            } else {
                body::identity(&self.docs)
            };
            metrics::histogram!("duality_snapshot_build_seconds", "gzip" => gzip.to_string())
                .record(started.elapsed().as_secs_f64());
            Arc::new(pieces)
        }))
    }
}

struct State {
    /// False until the view was read from the store once.
    loaded: bool,
    revision: u64,
    docs: Chunks,
    /// The snapshot at `revision`, made on first demand.
    current: Option<Arc<Snapshot>>,
    indexes: Vec<Box<dyn Index>>,
}

/// One view's in-memory copy.
pub struct Materialized {
    view: View,
    make_indexes: Vec<MakeIndex>,
    state: Mutex<State>,
    /// The revision last applied; readers wait on it for the publisher.
    applied: watch::Sender<u64>,
    /// Held by whoever catches the copy up from the store, so only one
    /// reader per view does it.
    catching_up: tokio::sync::Mutex<()>,
}

impl Materialized {
    fn new(view: View, make_indexes: Vec<MakeIndex>) -> Materialized {
        Materialized {
            view,
            state: Mutex::new(State {
                loaded: false,
                revision: 0,
                docs: Chunks::default(),
                current: None,
                indexes: make_indexes.iter().map(|make| make()).collect(),
            }),
            make_indexes,
            applied: watch::channel(0).0,
            catching_up: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while applying leaves a consistent-enough copy: the
        // revision only moves after the documents did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The copy's position: loaded, and at which revision.
    pub fn position(&self) -> (bool, u64) {
        let s = self.lock();
        (s.loaded, s.revision)
    }

    /// Applies the committed event that took the view to `revision`.
    /// Events at or below the copy's revision are skipped; one that does
    /// not follow it leaves the copy behind, for a reader to catch up.
    pub fn apply(&self, revision: u64, patch: &str) {
        self.advance(revision, |docs, indexes| {
            let patch: serde_json::Map<String, Value> = match serde_json::from_str(patch) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(view = %self.view, revision, error = %e, "an event is not a JSON object; the view will be reloaded");
                    return false;
                }
            };
            for (key, entry) in &patch {
                merge_doc(docs, indexes, key, entry, revision);
            }
            true
        });
    }

    /// Applies the committed event that took the view to `revision`, given
    /// as the new text of each document it changed, as the writer stored
    /// them. The same as [`apply`](Self::apply) with the
    /// event's patch, without parsing, merging and serialising again.
    pub fn apply_docs(&self, revision: u64, changed: &[DocText]) {
        self.advance(revision, |docs, indexes| {
            for (key, new) in changed {
                set_doc(docs, indexes, key, new.as_deref(), revision);
            }
            true
        });
    }

    /// Moves the copy to `revision` by `change`, if that is the next
    /// revision; `change` returns false when it could not apply the event
    /// (the copy then stays behind, for a reader to catch up).
    fn advance(
        &self,
        revision: u64,
        change: impl FnOnce(&mut Chunks, &mut [Box<dyn Index>]) -> bool,
    ) {
        let mut s = self.lock();
        if !s.loaded || revision != s.revision + 1 {
            return;
        }
        let State { docs, indexes, .. } = &mut *s;
        if !change(docs, indexes) {
            return;
        }
        s.revision = revision;
        s.current = None;
        drop(s);
        self.applied.send_replace(revision);
    }

    /// Replaces the copy with the view as read from the store at
    /// `revision`, with `indexes` built from it, unless the copy is
    /// already there.
    fn install(&self, revision: u64, docs: Chunks, indexes: Vec<Box<dyn Index>>) {
        let mut s = self.lock();
        if s.loaded && s.revision >= revision {
            return;
        }
        *s = State {
            loaded: true,
            revision,
            docs,
            current: None,
            indexes,
        };
        drop(s);
        self.applied.send_replace(revision);
    }

    /// The snapshot at the copy's revision, if it reached `want`.
    fn at_least(&self, want: u64) -> Option<Arc<Snapshot>> {
        let mut s = self.lock();
        if !s.loaded || s.revision < want {
            return None;
        }
        let (revision, docs) = (s.revision, s.docs.clone());
        Some(Arc::clone(s.current.get_or_insert_with(|| {
            Arc::new(Snapshot::new(revision, docs))
        })))
    }

    /// Runs `f` on the first index of type `I`, if the view has one.
    fn with_index<I: Index, R>(&self, f: impl FnOnce(&I) -> R) -> Option<R> {
        let s = self.lock();
        s.indexes
            .iter()
            .find_map(|i| i.as_any().downcast_ref::<I>())
            .map(f)
    }

    /// Brings the copy to at least `want` from the store: the outbox when
    /// it has the events, else a fresh read of the view.
    async fn catch_up(&self, store: &dyn Store, want: u64) -> Result<(), Error> {
        let _only_me = self.catching_up.lock().await;
        // Each round either applies events or reloads; a few rounds always
        // suffice unless writers outrun the reads, and then `want` is met.
        for _ in 0..64 {
            let (loaded, at) = self.position();
            if loaded && at >= want {
                return Ok(());
            }
            if !loaded {
                self.reload(store).await?;
                continue;
            }
            let page = store.events(self.view, at + 1, CATCH_UP_PAGE).await?;
            if page.current <= at {
                return Ok(());
            }
            if page.events.first().map(|e| e.revision) != Some(at + 1) {
                self.reload(store).await?;
                continue;
            }
            for event in &page.events {
                self.apply(event.revision, &event.patch);
            }
        }
        Ok(())
    }

    async fn reload(&self, store: &dyn Store) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let (revision, docs) = store.scan(self.view).await?;
        // Building read models parses every document: seconds for a large
        // view, so not on an async worker (and, at start, in parallel with
        // the other views).
        let make = self.make_indexes.clone();
        let indexes = if make.is_empty() {
            Vec::new()
        } else {
            let docs = docs.clone();
            tokio::task::spawn_blocking(move || build_indexes(&make, &docs))
                .await
                .map_err(|e| Error::internal_from("building read models failed", e))?
        };
        tracing::info!(view = %self.view, revision, docs = docs.len(), ms = started.elapsed().as_millis() as u64, "read the view from the store");
        self.install(revision, docs, indexes);
        Ok(())
    }
}

/// Fresh indexes fed every document of `docs`.
fn build_indexes(make: &[MakeIndex], docs: &Chunks) -> Vec<Box<dyn Index>> {
    let mut indexes: Vec<Box<dyn Index>> = make.iter().map(|m| m()).collect();
    for (key, doc) in docs.iter() {
        for index in &mut indexes {
            index.change(key, None, Some(doc));
        }
    }
    indexes
}

/// Applies one member of the merge patch of `revision` to the copy and
/// its indexes.
fn merge_doc(
    docs: &mut Chunks,
    indexes: &mut [Box<dyn Index>],
    key: &str,
    entry: &Value,
    revision: u64,
) {
    let new: Option<String> = if entry.is_null() {
        None
    } else {
        let mut doc = match (docs.get(key), entry.is_object()) {
            (Some(t), true) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        merge::apply(&mut doc, entry);
        Some(doc.to_string())
    };
    set_doc(docs, indexes, key, new.as_deref(), revision);
}

/// Sets one document of the copy, as changed by `revision`, and tells its
/// indexes.
fn set_doc(
    docs: &mut Chunks,
    indexes: &mut [Box<dyn Index>],
    key: &str,
    new: Option<&str>,
    revision: u64,
) {
    // The indexes first, while the old text is still the copy's.
    let old = docs.get(key);
    for index in indexes.iter_mut() {
        index.change(key, old, new);
    }
    docs.set(key, new, revision);
}

/// Every view's copy.
pub struct Views {
    views: HashMap<View, Materialized>,
}

impl Views {
    /// Empty copies of `views`, each with its indexes.
    pub fn new(views: impl IntoIterator<Item = (View, Vec<MakeIndex>)>) -> Views {
        Views {
            views: views
                .into_iter()
                .map(|(view, indexes)| (view, Materialized::new(view, indexes)))
                .collect(),
        }
    }

    /// The in-memory copy of `view`, or `None` if this process does not serve
    /// it.
    pub fn get(&self, view: View) -> Option<&Materialized> {
        self.views.get(&view)
    }

    /// Reads every view from the store: once, at start. `latest` is what
    /// the hub knows is committed; events committed (by other processes)
    /// while a view was read are then taken from the outbox.
    pub async fn load(&self, store: &dyn Store, latest: impl Fn(View) -> u64) -> Result<(), Error> {
        // Concurrently: each view is read on its own connection and its
        // indexes built on its own thread, so start-up takes about as long
        // as the largest view, not the sum of them all.
        let latest = &latest;
        let loads = self.views.iter().map(|(view, m)| async move {
            m.reload(store).await?;
            m.catch_up(store, latest(*view)).await
        });
        futures_util::future::try_join_all(loads).await?;
        Ok(())
    }

    fn view(&self, view: View) -> Result<&Materialized, Error> {
        self.views
            .get(&view)
            .ok_or_else(|| Error::internal(format!("no copy of the view {view}")))
    }

    /// The view at revision `want` or newer. The publisher applies an
    /// event right after its commit, so this normally returns at once.
    pub async fn snapshot(
        &self,
        view: View,
        want: u64,
        store: &dyn Store,
    ) -> Result<Arc<Snapshot>, Error> {
        let m = self.view(view)?;
        if let Some(s) = m.at_least(want) {
            return Ok(s);
        }
        let mut applied = m.applied.subscribe();
        let _ = tokio::time::timeout(PUBLISH_WAIT, applied.wait_for(|r| *r >= want)).await;
        if let Some(s) = m.at_least(want) {
            return Ok(s);
        }
        metrics::counter!("duality_view_catch_ups_total", "view" => view.name()).increment(1);
        m.catch_up(store, want).await?;
        m.at_least(0)
            .ok_or_else(|| Error::store_unavailable(format!("the view {view} is not loaded")))
    }

    /// Runs `f` on the view's index of type `I` once the copy reached
    /// `want`.
    pub async fn read<I: Index, R>(
        &self,
        view: View,
        want: u64,
        store: &dyn Store,
        f: impl FnOnce(&I) -> R,
    ) -> Result<R, Error> {
        self.snapshot(view, want, store).await?;
        self.view(view)?
            .with_index(f)
            .ok_or_else(|| Error::internal(format!("the view {view} has no such index")))
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use super::*;
    use duality_core::view::ViewSpec;

    static SPEC: ViewSpec = ViewSpec::new("things", "/things", "/thing-events");

    /// One change an index was told: key, old text, new text.
    type Change = (String, Option<String>, Option<String>);

    /// An index that writes down every change it is told.
    #[derive(Default)]
    struct Told(Vec<Change>);

    impl Index for Told {
        fn change(&mut self, key: &str, old: Option<&str>, new: Option<&str>) {
            self.0
                .push((key.into(), old.map(Into::into), new.map(Into::into)));
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn told() -> Box<dyn Index> {
        Box::new(Told::default())
    }

    fn loaded() -> Materialized {
        let m = Materialized::new(View::of(&SPEC), vec![told as MakeIndex]);
        let docs = Chunks::from_sorted([
            ("a", r#"{"n":1,"tags":{"x":1}}"#, 6),
            ("b", r#"{"n":2}"#, 7),
        ])
        .unwrap();
        m.install(7, docs, vec![told()]);
        m
    }

    /// The copy's revision, its documents with the revision that last
    /// changed each, and what its index was told.
    fn state(m: &Materialized) -> (u64, Vec<(String, String, u64)>, Vec<Change>) {
        let snapshot = m.at_least(0).unwrap();
        let docs = snapshot
            .docs
            .entries()
            .map(|(k, d, r)| (k.to_owned(), d.to_owned(), r))
            .collect();
        let told = m.with_index(|t: &Told| t.0.clone()).unwrap();
        (snapshot.revision, docs, told)
    }

    #[test]
    fn stored_texts_advance_the_copy_as_the_event_patch_does_and_stamp_the_revision() {
        let by_patch = loaded();
        let by_docs = loaded();
        by_patch.apply(
            8,
            r#"{"a":{"n":3,"tags":{"x":null,"y":2}},"b":null,"c":{"n":4}}"#,
        );
        by_docs.apply_docs(
            8,
            &[
                ("a".into(), Some(r#"{"n":3,"tags":{"y":2}}"#.into())),
                ("b".into(), None),
                ("c".into(), Some(r#"{"n":4}"#.into())),
            ],
        );
        let (revision, docs, told) = state(&by_docs);
        assert_eq!(revision, 8);
        assert_eq!(
            docs,
            [
                ("a".to_owned(), r#"{"n":3,"tags":{"y":2}}"#.to_owned(), 8),
                ("c".to_owned(), r#"{"n":4}"#.to_owned(), 8),
            ]
        );
        assert_eq!(told.len(), 3);
        assert_eq!(state(&by_patch), (revision, docs, told));
    }

    #[test]
    fn a_document_an_event_leaves_alone_keeps_the_revision_that_last_changed_it() {
        let m = loaded();
        m.apply(8, r#"{"a":{"n":5}}"#);
        let snapshot = m.at_least(8).unwrap();
        assert_eq!(snapshot.doc_at("a").map(|(_, r)| r), Some(8));
        assert_eq!(snapshot.doc_at("b"), Some((r#"{"n":2}"#, 7)));
        assert_eq!(snapshot.doc_at("zz"), None);
    }

    #[test]
    fn stored_texts_out_of_order_leave_the_copy_where_it_was() {
        let m = loaded();
        m.apply_docs(9, &[("c".into(), Some("{}".into()))]);
        let (revision, docs, told) = state(&m);
        assert_eq!((revision, docs.len(), told.len()), (7, 2, 0));
    }
}
