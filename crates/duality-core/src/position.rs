//! Where a stream starts: the pure rules of docs/PROTOCOL.md, "Where it starts".
//!
//! Precedence, first match wins: `Last-Event-ID: r` (a browser reconnecting
//! continues after what it saw, also on a URL that carries `?revision=` or
//! `?snapshot=true`), then `?revision=r`, then the `X-Revision: r` header,
//! then `?snapshot=true`, else the oldest retained event.

use std::fmt;

/// What the client asked for, before looking at the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the first event sent starts.
    pub start: Start,
    /// The epoch the client's revisions belong to, if it said.
    pub epoch: Option<String>,
}

/// Where a stream begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first event sent has this revision or a later one.
    From(u64),
    /// Send the whole view as a `snapshot` event, then the changes after it.
    Snapshot,
    /// From the oldest retained event.
    Oldest,
}

/// The raw inputs, as the HTTP layer found them.
#[derive(Debug, Default, Clone)]
pub struct Raw<'a> {
    /// The `Last-Event-ID` header.
    pub last_event_id: Option<&'a str>,
    /// The `?revision=` query parameter.
    pub query_revision: Option<&'a str>,
    /// The `X-Revision` header.
    pub header_revision: Option<&'a str>,
    /// The `?snapshot=` query parameter.
    pub snapshot: Option<&'a str>,
    /// The `?epoch=` query parameter.
    pub query_epoch: Option<&'a str>,
    /// The `X-Epoch` header.
    pub header_epoch: Option<&'a str>,
}

fn revision(what: &str, raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} must be a non-negative integer, got `{raw}`"
        ));
    }
    raw.parse::<u64>()
        .map_err(|_| format!("{what} is out of range: `{raw}`"))
}

/// Validates every position the client sent and picks the one that wins; an
/// `Err` is a 400 message.
pub fn parse(raw: &Raw<'_>) -> Result<Request, String> {
    let snapshot = match raw.snapshot.map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => return Err(format!("snapshot must be true or false, got `{other}`")),
    };
    // Validate every position the client sent, even those that lose.
    let last = raw
        .last_event_id
        .map(|r| revision("Last-Event-ID", r))
        .transpose()?;
    let query = raw
        .query_revision
        .map(|r| revision("revision", r))
        .transpose()?;
    let header = raw
        .header_revision
        .map(|r| revision("X-Revision", r))
        .transpose()?;
    let start = if let Some(last) = last {
        Start::From(
            last.checked_add(1)
                .ok_or_else(|| "Last-Event-ID is out of range".to_string())?,
        )
    } else if let Some(r) = query.or(header) {
        Start::From(r.max(1))
    } else if snapshot {
        Start::Snapshot
    } else {
        Start::Oldest
    };
    let epoch = raw
        .query_epoch
        .or(raw.header_epoch)
        .map(|e| e.trim().to_string());
    Ok(Request { start, epoch })
}

/// Why a position cannot be served: the consumer must start over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// An event it needs was deleted by retention.
    Trimmed,
    /// It is ahead of this history.
    Beyond,
    /// Its revisions belong to another history.
    OtherEpoch,
}

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gone::Trimmed => {
                "events this position needs were deleted by retention; reload the snapshot"
            }
            Gone::Beyond => "this position is beyond the current revision; reload the snapshot",
            Gone::OtherEpoch => "this epoch is not the server's; reload the snapshot",
        })
    }
}

/// The first revision to send for `start`, given the view's bounds.
pub fn first_needed(start: Start, oldest: Option<u64>, current: u64) -> Result<u64, Gone> {
    let next = match start {
        Start::Oldest => return Ok(oldest.unwrap_or(current + 1)),
        Start::Snapshot => current + 1,
        Start::From(r) => r,
    };
    check_next(next, oldest, current)
}

/// Whether the events from `next` to `current` are all still retained.
pub fn check_next(next: u64, oldest: Option<u64>, current: u64) -> Result<u64, Gone> {
    if next > current.saturating_add(1) {
        return Err(Gone::Beyond);
    }
    if next <= current && oldest.is_none_or(|o| next < o) {
        return Err(Gone::Trimmed);
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: Raw<'_>) -> Result<Start, String> {
        parse(&raw).map(|r| r.start)
    }

    #[test]
    fn last_event_id_wins_and_means_after() {
        let raw = Raw {
            last_event_id: Some("4"),
            query_revision: Some("2"),
            header_revision: Some("1"),
            snapshot: Some("true"),
            ..Raw::default()
        };
        assert_eq!(p(raw), Ok(Start::From(5)));
    }

    #[test]
    fn revision_means_at_or_after_and_query_beats_header() {
        let raw = Raw {
            query_revision: Some("3"),
            header_revision: Some("9"),
            ..Raw::default()
        };
        assert_eq!(p(raw), Ok(Start::From(3)));
        let raw = Raw {
            header_revision: Some("9"),
            ..Raw::default()
        };
        assert_eq!(p(raw), Ok(Start::From(9)));
        let raw = Raw {
            query_revision: Some("0"),
            ..Raw::default()
        };
        assert_eq!(p(raw), Ok(Start::From(1)));
    }

    #[test]
    fn nothing_means_oldest_and_snapshot_means_snapshot() {
        assert_eq!(p(Raw::default()), Ok(Start::Oldest));
        let raw = Raw {
            snapshot: Some("true"),
            ..Raw::default()
        };
        assert_eq!(p(raw), Ok(Start::Snapshot));
    }

    #[test]
    fn bad_positions_are_refused() {
        for bad in ["abc", "-3", "1.5", "", "+2", "99999999999999999999999"] {
            let raw = Raw {
                header_revision: Some(bad),
                ..Raw::default()
            };
            assert!(p(raw).is_err(), "{bad}");
        }
        let raw = Raw {
            last_event_id: Some("x"),
            ..Raw::default()
        };
        assert!(p(raw).is_err());
        let raw = Raw {
            last_event_id: Some(&u64::MAX.to_string()),
            ..Raw::default()
        };
        assert!(p(raw).is_err());
        let raw = Raw {
            snapshot: Some("maybe"),
            ..Raw::default()
        };
        assert!(p(raw).is_err());
    }

    #[test]
    fn positions_are_checked_against_retention_and_the_current_revision() {
        // Events 3..=10 retained, current 10.
        assert_eq!(first_needed(Start::From(3), Some(3), 10), Ok(3));
        assert_eq!(
            first_needed(Start::From(2), Some(3), 10),
            Err(Gone::Trimmed)
        );
        assert_eq!(first_needed(Start::From(11), Some(3), 10), Ok(11));
        assert_eq!(
            first_needed(Start::From(12), Some(3), 10),
            Err(Gone::Beyond)
        );
        assert_eq!(first_needed(Start::Oldest, Some(3), 10), Ok(3));
        assert_eq!(first_needed(Start::Snapshot, Some(3), 10), Ok(11));
        // Everything trimmed: only "after the current revision" is servable.
        assert_eq!(first_needed(Start::From(10), None, 10), Err(Gone::Trimmed));
        assert_eq!(first_needed(Start::From(11), None, 10), Ok(11));
        assert_eq!(first_needed(Start::Oldest, None, 10), Ok(11));
        // An empty view.
        assert_eq!(first_needed(Start::From(1), None, 0), Ok(1));
        assert_eq!(first_needed(Start::From(2), None, 0), Err(Gone::Beyond));
    }
}
