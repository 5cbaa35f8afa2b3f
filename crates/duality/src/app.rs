//! The service core that every handler goes through: one write path and one
//! snapshot path for all views, on top of a [`Store`] and the [`Hub`].

use duality_core::Error;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::in_flight::InFlight;
use crate::materialized::{Index, Snapshot};
use crate::store::{Committed, MetaChange, MetaSet, Store};
use duality_core::{View, Write};

/// One document as read by [`App::doc_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocAt {
    /// The document as stored JSON text, and the revision of the view that
    /// last changed it; `None` if there is no document at the key.
    pub doc: Option<(String, u64)>,
    /// The view's revision the document was read at.
    pub revision: u64,
}

/// Shared state of every handler: the store, the hub, and how streams
/// behave. Its parts are the engine's own; services use its methods.
#[derive(Clone)]
pub struct App {
    /// Where writes commit and views are read from.
    store: Arc<dyn Store>,
    /// Fans committed events out to this process's subscribers and knows each
    /// view's newest revision.
    hub: Arc<Hub>,
    /// Flips to `true` when the server shuts down; open streams end on it.
    shutdown: watch::Receiver<bool>,
    /// How often an idle stream sends a keep-alive comment.
    keep_alive: Duration,
    /// Idempotency keys of requests this process is handling (a repeat
    /// meanwhile is a 409).
    in_flight: Arc<InFlight>,
}

impl App {
    /// Bundles a store and a hub; no idempotency key is in flight yet.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        shutdown: watch::Receiver<bool>,
        keep_alive: Duration,
    ) -> Self {
        App {
            store,
            hub,
            shutdown,
            keep_alive,
            in_flight: Arc::default(),
        }
    }

    /// The id of the store's history, which revisions are only meaningful
    /// within.
    pub fn epoch(&self) -> &str {
        self.store.epoch()
    }

    /// The newest revision of `view` committed (or published to this
    /// process); `NotFound` for a view this process does not serve.
    pub fn revision(&self, view: View) -> Result<u64, Error> {
        self.hub.latest(view)
    }

    /// Marks `view` stale (`Some(data)`: streams send a `stale` event with
    /// that data, snapshots answer `X-Stale: true`) or fresh again (`None`).
    pub fn set_stale(&self, view: View, stale: Option<String>) -> Result<(), Error> {
        self.hub.set_stale(view, stale)
    }

    /// Flips to `true` when the server shuts down: a service's background
    /// task ends on it.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// True if other processes may write this database too (PostgreSQL),
    /// false if this process is its only writer (a SQLite file).
    pub fn store_is_shared(&self) -> bool {
        self.store.shared()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    pub(crate) fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    pub(crate) fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }

    /// Runs a write. When this returns, a snapshot read sees its revision;
    /// its events reach subscribers right after (the store answers writers
    /// before it fans out). Write requests are counted by outcome at the
    /// HTTP edge, refused ones included: see `http::metered`. A write that
    /// declares a view this process does not serve is refused (by the
    /// store, so a write sent to `store` directly is refused too).
    pub async fn write(&self, write: Write) -> Result<Committed, Error> {
        self.store.write(write).await
    }

    /// The metadata `name` a service keeps with `view` in the database
    /// (see [`Store::view_meta`]); `NotFound` for a view this process does
    /// not serve.
    pub async fn view_meta(&self, view: View, name: &str) -> Result<Option<String>, Error> {
        self.hub.latest(view)?;
        self.store.view_meta(view, name.to_string()).await
    }

    /// Stores a view's metadata, compare-and-set, after checking every
    /// document of the view if asked (see [`Store::set_view_meta`]).
    pub async fn set_view_meta(&self, change: MetaChange) -> Result<MetaSet, Error> {
        self.hub.latest(change.view)?;
        self.store.set_view_meta(change).await
    }

    /// The view at the newest revision committed (in this process, or
    /// published to it by another): its in-memory copy, not a store read.
    pub async fn snapshot(&self, view: View) -> Result<Arc<Snapshot>, Error> {
        let want = self.hub.latest(view)?;
        self.hub.views().snapshot(view, want, &*self.store).await
    }

    /// One document of a view, from its in-memory copy.
    pub async fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Error> {
        Ok(self.snapshot(view).await?.doc(key))
    }

    /// One document of a view from its in-memory copy, as stored JSON text,
    /// with the revision that last changed it (its `ETag`), and the view's
    /// revision it was read at (`X-Revision`): O(log n), no store read.
    pub async fn doc_at(&self, view: View, key: &str) -> Result<DocAt, Error> {
        let snapshot = self.snapshot(view).await?;
        Ok(DocAt {
            doc: snapshot
                .doc_at(key)
                .map(|(text, changed)| (text.to_string(), changed)),
            revision: snapshot.revision,
        })
    }

    /// One document of a view as its type `T`; `None` if absent. A stored
    /// document that is not a `T` was written by other code: that bug is
    /// logged, and the document answered as absent.
    pub async fn doc_as<T: serde::de::DeserializeOwned>(
        &self,
        view: View,
        key: &str,
    ) -> Result<Option<T>, Error> {
        let snapshot = self.snapshot(view).await?;
        let Some(text) = snapshot.docs.get(key) else {
            return Ok(None);
        };
        match serde_json::from_str(text) {
            Ok(doc) => Ok(Some(doc)),
            Err(e) => {
                tracing::error!(%view, key, error = %e, "a stored document does not have its view's type");
                Ok(None)
            }
        }
    }

    /// Whether the store answers (for readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        self.store.ping().await
    }

    /// Reads the view's read model `I`, current to the newest revision.
    pub async fn read<I: Index, R>(&self, view: View, f: impl FnOnce(&I) -> R) -> Result<R, Error> {
        let want = self.hub.latest(view)?;
        self.hub.views().read(view, want, &*self.store, f).await
    }
}
