//! The store interface: one trait, a SQLite and a PostgreSQL implementation.
//!
//! A store persists views, their revisions and the outbox of events, and
//! runs writes: it executes the pure [`Write`] inside one transaction, saves
//! the documents, the events and the new revisions together, and after the
//! commit announces the events, in revision order, through [`Publish`]: a
//! trait the store owns and the hub implements, so the store never calls up. Everything else (HTTP, streams, caching) is built on this trait.

use duality_core::Error;
use std::path::PathBuf;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use duality_core::view::Registry;
use duality_core::write::Write;
use duality_core::{Chunks, DocText};
use duality_core::{View, write::Output};

pub use duality_core::catch_up::{Changed, ChangedKeys};

pub mod boot;
pub mod owner;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod trim;

/// Where a SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file at this path.
    File(PathBuf),
    /// A private in-memory database, gone when the process ends.
    Memory,
}

/// A stored event: the merge patch that took the view to `revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The view's revision after this event.
    pub revision: u64,
    /// The patch as JSON text, exactly as it is sent on the stream.
    pub patch: String,
    /// The documents the event replaced or deleted, as they were before
    /// it, as a JSON object by key (created ones are absent). `None` for
    /// an event stored before events kept them: a stream filtered by
    /// `where` cannot pass such an event (it resets instead).
    pub prior: Option<String>,
}

/// A page of the outbox, read in one transaction with the view's bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// Consecutive events from the requested revision on (at most the limit).
    pub events: Vec<Event>,
    /// The oldest retained event of the view, if any is retained.
    pub oldest: Option<u64>,
    /// The view's current revision.
    pub current: u64,
}

/// A whole view and the revision it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The revision the documents reflect.
    pub revision: u64,
    /// Every document of the view, by key.
    pub docs: Map<String, Value>,
}

/// The outcome of a committed write.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// What the write function returned (the HTTP answer body).
    pub output: Output,
    /// Every view the write declared, with its revision after the write.
    pub revisions: Vec<(View, u64)>,
    /// The write did not run: this is the stored outcome of its
    /// idempotency key.
    pub replayed: bool,
}

impl Committed {
    /// The revision of `view` after the write (0 if the write did not declare
    /// it).
    pub fn revision(&self, view: View) -> u64 {
        self.revisions
            .iter()
            .find(|(v, _)| *v == view)
            .map_or(0, |(_, r)| *r)
    }
}

/// Checks one stored document of a view (its key and value) for
/// [`Store::set_view_meta`]; a refusal is the error the change answers.
pub type DocCheck = std::sync::Arc<dyn Fn(&str, &Value) -> Result<(), Error> + Send + Sync>;

/// A change of one piece of a view's metadata (see [`Store::view_meta`]).
#[derive(Clone)]
pub struct MetaChange {
    /// The view the metadata belongs to.
    pub view: View,
    /// The metadata's name, chosen by the service (`schema`).
    pub name: String,
    /// What must be stored now for the change to happen (`None`: nothing).
    pub expected: Option<String>,
    /// What to store.
    pub value: String,
    /// Every document of the view must pass this first, if given.
    pub check: Option<DocCheck>,
}

/// What [`Store::set_view_meta`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaSet {
    /// The value is stored.
    Stored,
    /// Nothing changed: what is stored was not the expected value, but this
    /// (another process changed it meanwhile).
    Changed(Option<String>),
}

/// Where a store announces what it committed, in revision order per view.
/// The engine's hub implements it (advancing each view's in-memory copy and
/// fanning the event out); the store knows nothing above this trait.
pub trait Publish: Send + Sync + 'static {
    /// The views this process serves: the only ones a store keeps an outbox
    /// cursor for and announces.
    fn registry(&self) -> &Registry;
    /// A revision committed without a live event to send (at start-up, or
    /// committed by another process past a hole).
    fn observe(&self, view: View, revision: u64);
    /// A committed event, as its merge patch text and the documents it
    /// replaced (see [`Event::prior`]).
    fn publish(&self, view: View, revision: u64, patch: &str, prior: Option<&str>);
    /// A committed event, with the new stored text of every document it
    /// changed (what the writer already has), so nothing is merged twice.
    fn publish_docs(
        &self,
        view: View,
        revision: u64,
        patch: &str,
        prior: Option<&str>,
        changed: &[DocText],
    );
}

/// Durable storage of the views, their outbox of events and idempotency
/// outcomes; SQLite and PostgreSQL implement it.
pub trait Store: Send + Sync + 'static {
    /// The id of this database's history (see docs/PROTOCOL.md, "Epochs").
    fn epoch(&self) -> &str;

    /// True if other processes may write this database too (PostgreSQL);
    /// false if this process is its only writer (a SQLite file is claimed
    /// by one process). A derived view's writer may leave out a write that
    /// would store what is stored already only where nobody else writes.
    fn shared(&self) -> bool;

    /// Runs a write in one transaction and publishes its events.
    fn write(&self, write: duality_core::Write) -> BoxFuture<'_, Result<Committed, Error>>;

    /// The whole view and its revision, read in one transaction, with the
    /// documents parsed.
    fn snapshot(&self, view: View) -> BoxFuture<'_, Result<Snapshot, Error>>;

    /// The whole view and its revision, read in one transaction, with the
    /// documents as stored (JSON text, not parsed) in ascending key order:
    /// how each process loads its in-memory copy at start.
    fn scan(&self, view: View) -> BoxFuture<'_, Result<(u64, Chunks), Error>>;

    /// One document of `view` by key, or `None` if there is none.
    fn doc(&self, view: View, key: String) -> BoxFuture<'_, Result<Option<Value>, Error>>;

    /// Events from revision `from` on, at most `limit`, with the bounds.
    fn events(
        &self,
        view: View,
        from: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<EventsPage, Error>>;

    /// The metadata `name` that a service keeps with `view` (for example
    /// the JSON Schema of a collection), or `None` if none was stored. The
    /// engine gives it no meaning; it lives and dies with the database.
    fn view_meta(&self, view: View, name: String) -> BoxFuture<'_, Result<Option<String>, Error>>;

    /// Stores a view's metadata, compare-and-set: only if what is stored is
    /// still `change.expected`, and, with `change.check`, only once every
    /// document of the view passed it (the first refusal is the answer).
    /// One transaction during which no write of the view commits, in any
    /// process, so no document slips past the check. Nothing changes unless
    /// it answers [`MetaSet::Stored`].
    fn set_view_meta(&self, change: MetaChange) -> BoxFuture<'_, Result<MetaSet, Error>>;

    /// Answers `Ok` if the database can be read right now (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Deletes, per view, the events before the oldest one committed at or
    /// after `cutoff` by its writer's clock: a prefix of the view's
    /// revisions, never a hole (see [`trim`](crate::store::trim)); and the
    /// idempotency keys stored before `cutoff`. Answers how many events.
    fn trim(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>>;

    /// Which keys of `view` changed after revision `after`, read in one
    /// transaction with the oldest position those rows answer for
    /// (docs/PROTOCOL.md, "Catch-up"); `None` if `after` is older than that:
    /// the rows it would need went past the horizon. Every write records
    /// the keys it changed in its own transaction.
    fn changed(&self, view: View, after: u64) -> BoxFuture<'_, Result<Option<ChangedKeys>, Error>>;

    /// Deletes, per view, the changed-key rows before the oldest one
    /// written at or after `cutoff` (the catch-up horizon), by the same
    /// prefix rule as [`Store::trim`], and moves the oldest position the
    /// rows answer for to the newest row deleted (a position before it
    /// would miss that key). Answers how many rows.
    fn trim_changes(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>>;

    /// Tells the store this process is done with it (at shutdown): every
    /// commit so far reaches the disk, and writes that still come wait for
    /// theirs. A store that never defers a flush has nothing to do.
    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// Milliseconds since the Unix epoch, as stored with each event.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random epoch id.
pub fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Refuses a write that declares a view outside `registry`: the store has
/// no outbox, channel or copy for it, and would fail on its writer.
pub(crate) fn served(registry: &Registry, write: &Write) -> Result<(), Error> {
    match write.views().iter().find(|v| !registry.contains(**v)) {
        Some(view) => Err(Error::NotFound(format!(
            "the view `{view}` is not served by this process"
        ))),
        None => Ok(()),
    }
}
