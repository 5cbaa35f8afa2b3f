//! The service core that every handler goes through: one write path and one
//! snapshot path for all views, on top of a [`Store`] and the [`Hub`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::{View, Write};
use crate::hub::Hub;
use crate::snapshots::{Cached, SnapshotCache};
use crate::store::{Committed, Store, StoreError};

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub snapshots: Arc<SnapshotCache>,
    /// Flips to `true` when the server shuts down; open streams end on it.
    pub shutdown: watch::Receiver<bool>,
    /// How often an idle stream sends a keep-alive comment.
    pub keep_alive: Duration,
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        shutdown: watch::Receiver<bool>,
        keep_alive: Duration,
    ) -> Self {
        App {
            store,
            hub,
            snapshots: Arc::new(SnapshotCache::default()),
            shutdown,
            keep_alive,
        }
    }

    pub fn epoch(&self) -> &str {
        self.store.epoch()
    }

    /// Runs a write; its events are live for subscribers when this returns.
    pub async fn write(&self, write: Write) -> Result<Committed, StoreError> {
        let result = self.store.write(write).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StoreError::Invalid(_)) => "invalid",
            Err(StoreError::NotFound(_)) => "not_found",
            Err(StoreError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!("duality_writes_total", "outcome" => outcome).increment(1);
        result
    }

    pub async fn snapshot(&self, view: View) -> Result<Arc<Cached>, StoreError> {
        self.snapshots.get(&*self.store, &self.hub, view).await
    }
}
