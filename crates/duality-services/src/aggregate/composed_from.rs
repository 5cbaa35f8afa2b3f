//! What the stored dashboard was composed from, and the rule that it never
//! moves backwards (docs/PROTOCOL.md, "Security model").
//!
//! Several processes on one PostgreSQL database may each run the
//! aggregates service, each composing from its own followers' copies of
//! the backends. A process whose follower lags would otherwise store an
//! older composition over a newer one. So every dashboard write records the
//! position of each backend view it was composed from (its epoch and
//! revision), and a composition from an older position than the recorded
//! one is not written.
//!
//! The record lives in the store's counters, not in the dashboard view: a
//! document there would be served in the view and its stream, which
//! consumers do not want. Counters are read inside the writing transaction
//! (on PostgreSQL under the row lock of the dashboard view and of the
//! counter itself), so the check and the write are atomic, and they are
//! committed together with the dashboard's documents.
//!
//! Revisions of one backend compare only within one history: a backend
//! whose epoch changed (a new database) starts counting again, and a
//! composition from another epoch than the recorded one is written.

use duality::{Draft, Error};

/// Where one backend view was when it was composed: its history and
/// revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// A fingerprint of the backend's epoch (63 bits, so every store can
    /// keep it in a signed 64-bit counter).
    pub epoch: u64,
    /// The revision of the backend's view it was composed at.
    pub revision: u64,
}

impl Position {
    /// The position of a view at `revision` in the history named by `epoch`
    /// (kept as its fingerprint).
    pub fn new(epoch: &str, revision: u64) -> Position {
        Position {
            epoch: fingerprint(epoch),
            revision,
        }
    }

    /// Same history, earlier revision.
    pub fn is_older_than(&self, recorded: &Position) -> bool {
        self.epoch == recorded.epoch && self.revision < recorded.revision
    }
}

/// The backend positions one dashboard was composed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Basis {
    /// Where the customers view was.
    pub customers: Position,
    /// Where the incidents view was.
    pub incidents: Position,
}

impl Basis {
    /// True if writing a composition from `self` over one from `recorded`
    /// would move the dashboard backwards for either backend.
    pub fn is_older_than(&self, recorded: &Basis) -> bool {
        self.customers.is_older_than(&recorded.customers)
            || self.incidents.is_older_than(&recorded.incidents)
    }

    /// The basis recorded with the stored dashboard. A dashboard never
    /// written reads as revision 0 of every backend, which nothing is
    /// older than.
    pub fn recorded(draft: &Draft<'_>) -> Result<Basis, Error> {
        let position = |backend: &str| -> Result<Position, Error> {
            Ok(Position {
                epoch: draft.counter(&counter(backend, "epoch"))?,
                // Counters start at 1: the next revision not yet reflected.
                revision: draft.counter(&counter(backend, "next"))?.saturating_sub(1),
            })
        };
        Ok(Basis {
            customers: position("customers")?,
            incidents: position("incidents")?,
        })
    }

    /// Records `self` with the dashboard this write stores.
    pub fn record(&self, draft: &mut Draft<'_>) {
        for (backend, position) in [("customers", self.customers), ("incidents", self.incidents)] {
            draft.set_counter(&counter(backend, "epoch"), position.epoch);
            draft.set_counter(&counter(backend, "next"), position.revision + 1);
        }
    }
}

fn counter(backend: &str, what: &str) -> String {
    format!("dashboard.from.{backend}.{what}")
}

/// FNV-1a of the epoch text, cut to 63 bits: stable across builds and
/// platforms, unlike the standard library's hasher.
fn fingerprint(epoch: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in epoch.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash & (u64::MAX >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality::domain::write::MemorySource;

    fn basis(c: (&str, u64), i: (&str, u64)) -> Basis {
        Basis {
            customers: Position::new(c.0, c.1),
            incidents: Position::new(i.0, i.1),
        }
    }

    #[test]
    fn a_composition_older_for_either_backend_is_older() {
        let recorded = basis(("e", 5), ("e", 9));
        assert!(basis(("e", 4), ("e", 9)).is_older_than(&recorded));
        assert!(basis(("e", 5), ("e", 8)).is_older_than(&recorded));
        assert!(
            basis(("e", 6), ("e", 8)).is_older_than(&recorded),
            "newer customers do not excuse older incidents"
        );
        assert!(!basis(("e", 5), ("e", 9)).is_older_than(&recorded));
        assert!(!basis(("e", 5), ("e", 10)).is_older_than(&recorded));
        assert!(!basis(("e", 7), ("e", 12)).is_older_than(&recorded));
    }

    #[test]
    fn another_epoch_is_another_history_and_never_older() {
        let recorded = basis(("old", 50), ("e", 9));
        assert!(!basis(("new", 1), ("e", 9)).is_older_than(&recorded));
        assert!(basis(("new", 1), ("e", 3)).is_older_than(&recorded));
    }

    #[test]
    fn the_record_round_trips_through_the_counters_and_starts_at_zero() {
        let mut source = MemorySource::default();
        let draft = Draft::new(&source);
        let never = Basis::recorded(&draft).unwrap();
        assert_eq!((never.customers.revision, never.incidents.revision), (0, 0));
        assert!(!basis(("a", 0), ("b", 0)).is_older_than(&never));

        let b = basis(("a1b2", 7), ("c3d4", 11));
        let write = duality::Write::new(&[], move |d| {
            b.record(d);
            Ok(serde_json::Value::Null)
        });
        source.run(&write).unwrap();
        assert_eq!(Basis::recorded(&Draft::new(&source)).unwrap(), b);
    }

    #[test]
    fn fingerprints_are_stable_distinct_and_fit_a_signed_counter() {
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325 & (u64::MAX >> 1));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert!(fingerprint("0123456789abcdef0123456789abcdef") <= i64::MAX as u64);
    }
}
