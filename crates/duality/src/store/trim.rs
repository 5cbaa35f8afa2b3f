//! Retention's deletion rule, shared by both stores (docs/PROTOCOL.md, "Continuity").
//!
//! Each event carries the wall-clock time of the process that committed
//! it. Those times are not ordered like revisions: a clock can be stepped
//! back, and PostgreSQL processes on different machines disagree. Deleting
//! every event stamped before the cutoff could therefore delete revision
//! r+1 and keep r, a hole a consumer cannot see.
//!
//! So a trim deletes only a prefix of each view's revisions: the events
//! before the oldest one stamped at or after the cutoff. An event younger
//! than the retention time by its own stamp is never deleted, nor is
//! anything after it; an old-looking event waits behind a young-looking
//! one. The stores walk each view from its oldest event in bounded batches
//! along the primary key `(view, revision)`, so a trim costs what it
//! deletes (plus one batch read), not a scan of the whole outbox.

/// Events a store reads and deletes per statement while trimming.
pub const BATCH: u64 = 10_000;

/// A view's oldest `BATCH` (or fewer) events from some revision on,
/// summarised by one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The lowest revision among them stamped at or after the cutoff.
    pub young: Option<u64>,
    /// The highest revision among them.
    pub last: Option<u64>,
    /// How many there are.
    pub count: u64,
}

impl Head {
    /// Delete the view's events below this revision (`None`: nothing).
    pub fn delete_below(&self) -> Option<u64> {
        match (self.young, self.last) {
            (Some(young), _) => Some(young),
            (None, Some(last)) => last.checked_add(1),
            (None, None) => None,
        }
    }

    /// Where the next batch starts if the whole batch was old and full
    /// (the next one may be too). Starting there, not at the view's start,
    /// skips what this batch deleted: PostgreSQL's index still holds those
    /// entries until vacuum.
    pub fn next_from(&self, batch: u64) -> Option<u64> {
        if self.young.is_none() && self.count >= batch {
            self.delete_below()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_event_keeps_itself_and_everything_after_it() {
        // Revisions 3..=9 read; 6 is the first stamped after the cutoff.
        let head = Head {
            young: Some(6),
            last: Some(9),
            count: 7,
        };
        assert_eq!(head.delete_below(), Some(6));
        assert_eq!(head.next_from(7), None);
    }

    #[test]
    fn an_all_old_batch_goes_and_a_full_one_asks_for_the_next() {
        let head = Head {
            young: None,
            last: Some(12),
            count: 10,
        };
        assert_eq!(head.delete_below(), Some(13));
        assert_eq!(head.next_from(10), Some(13));
        assert_eq!(
            head.next_from(11),
            None,
            "a short batch was the whole outbox"
        );
    }

    #[test]
    fn an_empty_outbox_deletes_nothing() {
        let head = Head {
            young: None,
            last: None,
            count: 0,
        };
        assert_eq!(head.delete_below(), None);
        assert_eq!(head.next_from(BATCH), None);
    }
}
