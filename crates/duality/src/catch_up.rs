//! Catch-up instead of `410` (docs/PROTOCOL.md, "Catch-up"): a consumer
//! whose position is older than the retained events, but within the
//! catch-up horizon, gets one merge patch from its revision to the current
//! one instead of reloading the whole view.
//!
//! The patch is built from the store's changed-key rows (which keys changed
//! after the position, and which were deleted: see
//! [`Store::changed`](crate::store::Store::changed)) and the documents of
//! one snapshot of the view's in-memory copy. The snapshot is taken first
//! and the rows read after it, so they include every change up to the
//! snapshot's revision; a key changed again since is sent as the snapshot
//! has it, which keeps the patch exact for that one revision
//! ([`duality_core::catch_up`]). The stream then goes on from the next
//! revision, and a poll from that revision on.

use std::sync::Arc;

use duality_core::{Error, Filter, View};

use crate::app::App;
use crate::materialized::Snapshot;

/// Changed keys past which the patch is built on the blocking pool.
const BUILD_INLINE_UP_TO: usize = 4096;

/// One catch-up: the revision it brings the consumer to, and the merge
/// patch from the consumer's revision to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// The view's revision the patch takes the consumer to.
    pub revision: u64,
    /// The merge patch, as compact JSON text (restricted to the filter).
    pub patch: String,
}

/// The catch-up of a consumer at revision `after` (restricted to the part
/// of the view `filter` keeps), or `None` if `after` is past the horizon:
/// the rows it needs were deleted, and only a `410` is left.
pub async fn catch_up(
    app: &App,
    view: View,
    after: u64,
    filter: &Filter,
) -> Result<Option<CatchUp>, Error> {
    // The documents first, the rows after: see the module's documentation.
    let snapshot = app.snapshot(view).await?;
    let Some(changed) = app.store().changed(view, after).await? else {
        return Ok(None);
    };
    if snapshot.revision < after {
        // The copy is behind the consumer: nothing to catch up with here.
        return Ok(None);
    }
    let at = snapshot.revision;
    let few = changed.keys.len() <= BUILD_INLINE_UP_TO;
    let build = move |snapshot: &Snapshot, filter: &Filter| {
        duality_core::catch_up::patch(
            &changed.keys,
            after,
            at,
            |key| snapshot.docs.get(key),
            filter,
        )
    };
    let patch = if few {
        build(&snapshot, filter)?
    } else {
        let filter = filter.clone();
        let snapshot = Arc::clone(&snapshot);
        tokio::task::spawn_blocking(move || build(&snapshot, &filter))
            .await
            .map_err(|e| Error::internal(format!("building a catch-up failed: {e}")))??
    };
    metrics::counter!("duality_catch_ups_total", "view" => view.name()).increment(1);
    Ok(Some(CatchUp {
        revision: at,
        patch,
    }))
}
