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
//!
//! A waiting poll is woken by the view's ring when unfiltered, and answers
//! from the frames it was handed when they go on from its position, with
//! no store read; a filtered one is woken only by a change of its subset
//! (routed by [`crate::interest`]) and then reads the outbox.
//!
//! A position older than the retained events but within the catch-up
//! horizon gets one change marked `"compacted": true` instead of `410`: the
//! merge patch from it to the current revision ([`crate::catch_up`]), with
//! `next` continuing after that revision. Its answer depends on when it is
//! asked, so it is never immutable; it may be kept for a second, like a
//! page that reaches the head (a cached one is a correct catch-up to a
//! revision at most that old, and `next` goes on from there).

use std::sync::Arc;
use std::time::Duration;

use duality_core::position::{self, Gone};
use duality_core::{Error, Filter, Restrict, View};
use serde_json::value::RawValue;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::app::App;
use crate::catch_up;
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
    /// The position is older than the retained events but within the
    /// horizon: one compacted change from it to `revision`.
    CatchUp {
        /// The revision the patch brings the client to (and `next`).
        revision: u64,
        /// The merge patch, as JSON text.
        patch: String,
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
    // Live frames received while waiting (unfiltered polls only: a filtered
    // one is woken by its routed subset, not handed frames); when they go on
    // from `at`, the answer is made of them, without reading the store: a thousand
    // clients waiting at the head cost one read each per wait, not one
    // per change.
    let mut frames: Vec<Arc<Frame>> = Vec::new();
    // A client at the head (the usual request: the `next` of its last
    // answer) has nothing to read yet: it waits for the ring at once. The
    // revision is read after subscribing, so the next commit's frame comes.
    let mut at_head = epoch.is_none_or(|e| e == app.epoch()) && after == app.revision(view)?;
    loop {
        let end = page_end(at);
        let from_live = if std::mem::take(&mut at_head) {
            Some((Vec::new(), at))
        } else {
            from_frames(&frames, at, end, filter)
        };
        let (changes, next) = match from_live {
            Some(answer) => answer,
            None => {
                let page = app
                    .store()
                    .events(view, at + 1, (end - at) as usize)
                    .await?;
                if epoch.is_some_and(|e| e != app.epoch()) {
                    return Ok(gone(Gone::OtherEpoch, &page));
                }
                match position::check_next(at + 1, page.oldest, page.current) {
                    Ok(_) => {}
                    // Only the client's own position can be older than retention.
                    Err(Gone::Trimmed) if at == after => {
                        return Ok(match catch_up::catch_up(app, view, after, filter).await? {
                            Some(caught) => Polled::CatchUp {
                                revision: caught.revision,
                                patch: caught.patch,
                            },
                            None => gone(Gone::Trimmed, &page),
                        });
                    }
                    Err(why) => return Ok(gone(why, &page)),
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
                (changes, next)
            }
        };
        frames.clear();
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
            woken = live.changed(&mut frames) => woken?,
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The changes after `at` up to `end` made of live `frames`, filtered, and
/// the revision they reach; `None` if they do not go on from `at` without
/// a gap (or there are none after it), when the store must answer. The
/// ring hands every subscriber each commit once and in order, so frames
/// that go on from `at` are exactly what the outbox holds after it.
fn from_frames(
    frames: &[Arc<Frame>],
    at: u64,
    end: u64,
    filter: &Filter,
) -> Option<(Vec<(u64, String)>, u64)> {
    let mut changes = Vec::new();
    let mut next = at;
    for frame in frames
        .iter()
        .filter(|f| f.revision > at && f.revision <= end)
    {
        if frame.revision != next + 1 {
            return None;
        }
        match filter.restrict(frame.patch(), frame.prior.as_deref()) {
            Restrict::Kept(patch) => changes.push((frame.revision, patch)),
            Restrict::Nothing => {}
            Restrict::NeedsPrior | Restrict::Malformed => return None,
        }
        next = frame.revision;
    }
    (next > at).then_some((changes, next))
}

/// What wakes a waiting poll: any change of the view, or (filtered) a
/// change of its subset. An unfiltered poll keeps the frames that woke it,
/// so its answer can be made of them ([`from_frames`]); a filtered one, or
/// one whose frames have a gap, then reads the outbox.
enum Wake {
    Ring(broadcast::Receiver<Arc<Frame>>),
    Routed(Interest),
}

impl Wake {
    /// Waits for a change; an unfiltered poll's frames go into `frames`.
    /// Cancel-safe: a frame is received and kept in one step.
    async fn changed(&mut self, frames: &mut Vec<Arc<Frame>>) -> Result<(), Error> {
        match self {
            Wake::Ring(ring) => match ring.recv().await {
                Ok(frame) => {
                    frames.push(frame);
                    // Whatever else is already waiting goes in the same answer.
                    while let Ok(frame) = ring.try_recv() {
                        frames.push(frame);
                    }
                    Ok(())
                }
                // Lapped: the store has what the ring no longer does.
                Err(RecvError::Lagged(_)) => Ok(()),
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
/// with each patch inserted as the text it was stored as; a `compacted`
/// page's changes (one catch-up) say `"compacted": true`.
pub fn page_json(
    epoch: &str,
    changes: &[(u64, String)],
    compacted: bool,
    next_url: &str,
) -> Result<String, Error> {
    #[derive(serde::Serialize)]
    struct Change<'a> {
        revision: u64,
        patch: &'a RawValue,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        compacted: bool,
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
            compacted,
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
    fn live_frames_answer_only_when_they_go_on_from_the_position_without_a_gap() {
        let frame = |r: u64, patch: &str| Arc::new(Frame::change(r, patch, Some("{}")));
        let frames = [
            frame(4, r#"{"a":1}"#),
            frame(5, r#"{"b":2}"#),
            frame(6, r#"{"a":3}"#),
        ];
        let all = Filter::default();
        assert_eq!(
            from_frames(&frames, 4, 256, &all),
            Some((vec![(5, r#"{"b":2}"#.into()), (6, r#"{"a":3}"#.into())], 6)),
            "frames at or before the position are skipped"
        );
        assert_eq!(
            from_frames(&frames, 5, 5, &all),
            None,
            "nothing after the position within its page"
        );
        assert_eq!(
            from_frames(&frames, 2, 256, &all),
            None,
            "a gap: 3 is missing"
        );
        assert_eq!(from_frames(&frames, 6, 256, &all), None);
        let only_a = Filter::keys(["a"]);
        assert_eq!(
            from_frames(&frames[..2], 3, 256, &only_a),
            Some((vec![(4, r#"{"a":1}"#.into())], 5)),
            "a revision that leaves the subset alone still moves the position"
        );
    }

    #[test]
    fn a_page_inserts_each_patch_as_stored() {
        let json = page_json(
            "e1",
            &[(3, r#"{"a":{"b":1}}"#.into())],
            false,
            "/x?mode=poll&after=3",
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{"epoch":"e1","changes":[{"revision":3,"patch":{"a":{"b":1}}}],"next":"/x?mode=poll&after=3"}"#
        );
        let json = page_json("e1", &[(9, r#"{"a":null}"#.into())], true, "/x?after=9").unwrap();
        assert_eq!(
            json,
            r#"{"epoch":"e1","changes":[{"revision":9,"patch":{"a":null},"compacted":true}],"next":"/x?after=9"}"#
        );
    }
}
