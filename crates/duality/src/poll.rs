//! Long-polling: a view's changes as JSON pages, for clients that cannot
//! hold a stream open (docs/PROTOCOL.md, "Long-polling").
//!
//! `GET <stream path>?mode=poll&after=R` answers the changes after `R`,
//! filtered like a stream, up to the end of `R`'s aligned page (revisions
//! are cut into pages of [`PAGE`]), waiting up to `wait` seconds when there
//! is nothing yet. The answer's `next` asks for what follows, so clients at
//! different positions meet on the same page boundaries, and clients at the
//! head send the same request: a page that lies wholly in the past never
//! changes and may be cached for good, one that reaches the head only for
//! a second, and an empty one not at all.

use std::time::Duration;

use duality_core::position::{self, Gone};
use duality_core::{Error, Filter, Restrict, View};
use serde_json::value::RawValue;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::app::App;
use crate::hub::Frame;
use crate::interest::Interest;

/// Revisions per aligned page.
pub const PAGE: u64 = 256;
/// How long a poll waits when the client does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
/// The longest wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How long an answer may be kept by a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A whole page in the past: it never changes.
    Forever,
    /// A page up to the head: more may be added to it.
    Briefly,
    /// Nothing to send: not to be kept at all.
    Never,
}

/// One poll's answer.
#[derive(Debug)]
pub enum Polled {
    /// The changes after the position, and where to ask next.
    Page {
        /// `(revision, patch as JSON text)`, in order.
        changes: Vec<(u64, String)>,
        /// The position the next request starts after.
        next: u64,
        /// How long the answer may be cached.
        keep: Keep,
    },
    /// The position cannot be served.
    Gone {
        /// Why.
        why: Gone,
        /// The oldest retained event, if any.
        oldest: Option<u64>,
        /// The view's current revision.
        current: u64,
    },
}

/// The end of the aligned page that follows position `after`.
pub fn page_end(after: u64) -> u64 {
    (after / PAGE + 1) * PAGE
}

/// Answers a poll of `view` after revision `after` (filtered by `filter`),
/// waiting up to `wait` for a change when there is none yet.
pub async fn poll(
    app: &App,
    view: View,
    after: u64,
    epoch: Option<&str>,
    filter: &Filter,
    wait: Duration,
) -> Result<Polled, Error> {
    // Subscribed before the first read: a commit after it wakes the wait.
    // A filtered poll is woken only by a change of its subset.
    let mut live = if filter.is_all() {
        Wake::Ring(app.hub().subscribe(view)?)
    } else {
        Wake::Routed(app.hub().watch(view, filter.clone())?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = app.shutdown();
    let mut at = after;
    loop {
        let end = page_end(at);
        let page = app
            .store()
            .events(view, at + 1, (end - at) as usize)
            .await?;
        if epoch.is_some_and(|e| e != app.epoch()) {
            return Ok(gone(Gone::OtherEpoch, &page));
        }
        if let Err(why) = position::check_next(at + 1, page.oldest, page.current) {
            return Ok(gone(why, &page));
        }
        let mut changes = Vec::new();
        let mut next = at;
        for event in page.events.iter().take_while(|e| e.revision <= end) {
            if event.revision != next + 1 {
                // A hole in the outbox: the client starts over.
                return Ok(gone(Gone::Trimmed, &page));
            }
            match filter.restrict(&event.patch, event.prior.as_deref()) {
                Restrict::Kept(patch) => changes.push((event.revision, patch)),
                Restrict::Nothing => {}
                Restrict::NeedsPrior | Restrict::Malformed => {
                    return Ok(gone(Gone::Trimmed, &page));
                }
            }
            next = event.revision;
        }
        if next < page.current.min(end) {
            return Ok(gone(Gone::Trimmed, &page));
        }
        let done = !changes.is_empty() || next == end;
        if done || tokio::time::Instant::now() >= deadline {
            let keep = match (next == end, changes.is_empty()) {
                (true, _) => Keep::Forever,
                (false, false) => Keep::Briefly,
                (false, true) => Keep::Never,
            };
            return Ok(Polled::Page {
                changes,
                next,
                keep,
            });
        }
        // Nothing for this client yet: past what it has seen, wait for more.
        at = next;
        tokio::select! {
            woken = live.changed() => woken?,
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// What wakes a waiting poll: any change of the view, or (filtered) a
/// change of its subset. Either way the poll then reads the outbox.
enum Wake {
    Ring(broadcast::Receiver<Arc<Frame>>),
    Routed(Interest),
}

impl Wake {
    async fn changed(&mut self) -> Result<(), Error> {
        match self {
            Wake::Ring(ring) => match ring.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => Err(Error::store_unavailable("the hub closed")),
            },
            Wake::Routed(interest) => {
                interest.mailbox().recv().await;
                Ok(())
            }
        }
    }
}

fn gone(why: Gone, page: &crate::store::EventsPage) -> Polled {
    Polled::Gone {
        why,
        oldest: page.oldest,
        current: page.current,
    }
}

/// The JSON of a page: `{"epoch", "changes": [{"revision", "patch"}], "next"}`,
/// with each patch inserted as the text it was stored as.
pub fn page_json(epoch: &str, changes: &[(u64, String)], next_url: &str) -> Result<String, Error> {
    #[derive(serde::Serialize)]
    struct Change<'a> {
        revision: u64,
        patch: &'a RawValue,
    }
    #[derive(serde::Serialize)]
    struct Page<'a> {
        epoch: &'a str,
        changes: Vec<Change<'a>>,
        next: &'a str,
    }
    let mut out = Vec::with_capacity(changes.len());
    for (revision, patch) in changes {
        let patch: &RawValue = serde_json::from_str(patch)
            .map_err(|e| Error::internal_from(format!("the patch of revision {revision}"), e))?;
        out.push(Change {
            revision: *revision,
            patch,
        });
    }
    serde_json::to_string(&Page {
        epoch,
        changes: out,
        next: next_url,
    })
    .map_err(|e| Error::internal_from("a poll answer", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_on_aligned_boundaries_so_positions_converge() {
        assert_eq!(page_end(0), PAGE);
        assert_eq!(page_end(PAGE - 1), PAGE);
        assert_eq!(page_end(PAGE), 2 * PAGE);
        assert_eq!(page_end(3 * PAGE + 7), 4 * PAGE);
    }

    #[test]
    fn a_page_inserts_each_patch_as_stored() {
        let json = page_json(
            "e1",
            &[(3, r#"{"a":{"b":1}}"#.into())],
            "/x?mode=poll&after=3",
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{"epoch":"e1","changes":[{"revision":3,"patch":{"a":{"b":1}}}],"next":"/x?mode=poll&after=3"}"#
        );
    }
}
