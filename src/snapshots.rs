//! Snapshots cached by revision.
//!
//! A burst of `GET`s on a view reads and serialises the view once per
//! revision: the cache keeps the newest snapshot of each view, and a reader
//! reuses it while no newer revision is known to the hub. Loads are
//! single-flight per view, so concurrent misses wait for one read.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::domain::View;
use crate::hub::Hub;
use crate::store::{Store, StoreError};

/// A view at one revision, serialised once.
#[derive(Debug)]
pub struct Cached {
    pub revision: u64,
    pub body: Bytes,
    pub docs: Map<String, Value>,
}

impl Cached {
    /// The entity tag of this snapshot: epoch and revision identify it.
    pub fn etag(&self, epoch: &str) -> String {
        format!("\"{epoch}-{}\"", self.revision)
    }
}

pub struct SnapshotCache {
    views: HashMap<View, Mutex<Option<Arc<Cached>>>>,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        SnapshotCache {
            views: View::ALL
                .into_iter()
                .map(|v| (v, Mutex::new(None)))
                .collect(),
        }
    }
}

impl SnapshotCache {
    /// The view at the newest revision the hub knows of (or newer).
    pub async fn get(
        &self,
        store: &dyn Store,
        hub: &Hub,
        view: View,
    ) -> Result<Arc<Cached>, StoreError> {
        let slot = &self.views[&view];
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && c.revision >= hub.latest(view)
        {
            metrics::counter!("duality_snapshot_cache_hits_total").increment(1);
            return Ok(Arc::clone(c));
        }
        let snapshot = store.snapshot(view).await?;
        let body = Bytes::from(
            serde_json::to_vec(&snapshot.docs)
                .map_err(|e| StoreError::Unavailable(format!("cannot serialise the view: {e}")))?,
        );
        let fresh = Arc::new(Cached {
            revision: snapshot.revision,
            body,
            docs: snapshot.docs,
        });
        *cached = Some(Arc::clone(&fresh));
        Ok(fresh)
    }
}
