//! The client's one error type, with variants a consumer can act on.
//!
//! Every fallible call of this crate returns [`Error`], and a follower's
//! [`Health`](crate::Health) says with one why it is not live. The variant
//! tells what to do next: a broken connection, a timeout or a `5xx`/`429`
//! answer is worth trying again as it is ([`Error::is_retryable`]); a
//! refused token ([`Error::Unauthorized`]) is not, however often it is
//! retried; [`Error::Gone`] and [`Error::Reset`] call for a new snapshot;
//! [`Error::Url`] and [`Error::Token`] are mistakes in what the client was
//! given. A plain string could say all of this only to a human.
//!
//! What the underlying libraries said is kept as text, their causes
//! included, so the error is `Clone` and comparable (a [`Health`](crate::Health)
//! is both) and a [`Transport`](crate::Transport) of any kind can build
//! one.

use std::time::Duration;

use serde_json::Value;

/// How much of an unexpected answer's body an [`Error`] keeps: enough for
/// the server's error message, not a whole page.
pub const BODY_EXCERPT: usize = 1024;

/// What went wrong talking to a duality server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A base URL, view URL or request path that does not make a valid
    /// request. Not retryable: the URL must change.
    #[error("invalid URL `{url}`: {reason}")]
    Url {
        /// The URL (or path) as given.
        url: String,
        /// Why it is not valid.
        reason: String,
    },
    /// A bearer token that cannot be sent in a header.
    #[error("the token must be visible ASCII")]
    Token,
    /// The HTTP client could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The request could not be sent (refused, unreachable, reset), or the
    /// connection broke or was closed while the answer was read.
    /// Retryable.
    #[error("{0}")]
    Transport(String),
    /// Nothing arrived in time: `what` did not happen within `after`.
    /// Retryable.
    #[error("{what} within {after:?}")]
    Timeout {
        /// What was waited for, e.g. `no snapshot`.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// `401` or `403`: the token is missing or wrong. Retrying with the
    /// same token does not help.
    #[error(
        "GET {path} answered {status} (the token is missing or wrong){}",
        detail(body)
    )]
    Unauthorized {
        /// The path (and query) asked for.
        path: String,
        /// `401` or `403`.
        status: u16,
        /// The start of the answer's body (at most [`BODY_EXCERPT`] bytes).
        body: String,
    },
    /// `410 Gone`: the position asked for is no longer in the stream's
    /// history (trimmed, or another epoch). A follower starts over from
    /// the snapshot; the same request will not succeed again.
    #[error("GET {path} answered 410 Gone{}", detail(body))]
    Gone {
        /// The path (and query) asked for.
        path: String,
        /// The start of the answer's body (at most [`BODY_EXCERPT`] bytes).
        body: String,
    },
    /// Any other status than the one asked for. Retryable if `5xx`, `429`
    /// or `408`.
    #[error("GET {path} answered {status}{}", detail(body))]
    Status {
        /// The path (and query) asked for.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body (at most [`BODY_EXCERPT`] bytes).
        body: String,
    },
    /// The server sent a `reset` event: the stream's history changed, and
    /// a follower starts over from the snapshot.
    #[error("reset by the server")]
    Reset,
    /// An answer that is not what the protocol says: a snapshot without
    /// `X-Revision` or that is not a JSON object, an event whose id is not
    /// the next revision or whose data is not a JSON object, a stream that
    /// is not server-sent events.
    #[error("{0}")]
    Protocol(String),
    /// A body larger than the limit it was read with.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A follower that has not connected yet (only ever in its
    /// [`Health`](crate::Health)).
    #[error("connecting")]
    Connecting,
    /// The follower's task ended, so nothing will change any more.
    #[error("the follower stopped")]
    Stopped,
    /// A failure inside the client, such as a panic while a snapshot was
    /// parsed or handed to an observer.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The error for an answer with an unexpected `status` to `GET path`:
    /// `401`/`403` are [`Error::Unauthorized`], `410` is [`Error::Gone`],
    /// anything else [`Error::Status`]. `body` is the start of the answer.
    pub fn from_status(path: &str, status: u16, body: String) -> Error {
        let path = path.to_string();
        match status {
            401 | 403 => Error::Unauthorized { path, status, body },
            410 => Error::Gone { path, body },
            _ => Error::Status { path, status, body },
        }
    }

    /// A [`Error::Transport`] from a library's error, with its causes
    /// (which a library's own message often leaves out: "error sending
    /// request" rather than "connection refused").
    pub fn transport(error: &dyn std::error::Error) -> Error {
        Error::Transport(with_causes(error))
    }

    /// True if the same request may well succeed later as it is: the
    /// connection failed, nothing came in time, or the server answered
    /// `5xx`, `429` or `408`. False for what needs something else first:
    /// another URL or token, or (for [`Error::Gone`] and [`Error::Reset`])
    /// a new snapshot.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Timeout { .. } | Error::Connecting => true,
            Error::Status { status, .. } => matches!(status, 500..=599 | 429 | 408),
            _ => false,
        }
    }

    /// The HTTP status of an unexpected answer, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { status, .. } | Error::Status { status, .. } => Some(*status),
            Error::Gone { .. } => Some(410),
            _ => None,
        }
    }
}

/// An error's message followed by those of its causes that it does not
/// already contain.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let message = e.to_string();
        if !out.contains(&message) {
            out.push_str(": ");
            out.push_str(&message);
        }
        cause = e.source();
    }
    out
}

/// The longest body excerpt a message shows, in characters.
const SHOWN: usize = 200;

/// `": <what the body says>"` for a message, or nothing for an empty body:
/// the `error` field of duality's JSON errors, else the body's start on
/// one line.
fn detail(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let mut line = said.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = line.char_indices().nth(SHOWN) {
        line.truncate(cut);
        line.push('…');
    }
    format!(": {line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_a_consumer_can_act_on() {
        let of = |status| Error::from_status("/persons", status, String::new());
        assert!(matches!(of(401), Error::Unauthorized { status: 401, .. }));
        assert!(matches!(of(403), Error::Unauthorized { status: 403, .. }));
        assert!(matches!(of(410), Error::Gone { .. }));
        assert!(matches!(of(404), Error::Status { status: 404, .. }));
        assert!(matches!(of(503), Error::Status { status: 503, .. }));
        for status in [401, 403, 404, 410, 503] {
            assert_eq!(of(status).status(), Some(status));
        }
    }

    #[test]
    fn outages_are_retryable_and_refusals_are_not() {
        let of = |status| Error::from_status("/persons", status, String::new());
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(of(status).is_retryable(), "{status} is retryable");
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(!of(status).is_retryable(), "{status} is not retryable");
        }
        assert!(Error::Transport("connection refused".into()).is_retryable());
        let timeout = Error::Timeout {
            what: "no snapshot".into(),
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
        assert!(!Error::Reset.is_retryable());
        assert!(!Error::Token.is_retryable());
        assert!(!Error::Protocol("snapshot without a valid X-Revision".into()).is_retryable());
        assert_eq!(Error::Reset.status(), None);
    }

    #[test]
    fn messages_name_the_request_the_status_and_what_the_server_said() {
        let json = r#"{"error": "a read token is required"}"#.to_string();
        assert_eq!(
            Error::from_status("/persons", 401, json).to_string(),
            "GET /persons answered 401 (the token is missing or wrong): a read token is required"
        );
        assert_eq!(
            Error::from_status("/person-events", 410, String::new()).to_string(),
            "GET /person-events answered 410 Gone"
        );
        let page = format!("<html>\n  {}\n</html>", "x".repeat(500));
        let message = Error::from_status("/persons", 500, page).to_string();
        assert!(message.starts_with("GET /persons answered 500: <html> xxx"));
        assert!(message.ends_with('…') && message.chars().count() < 300);
        let timeout = Error::Timeout {
            what: "revision 5 not reached".into(),
            after: Duration::from_secs(10),
        };
        assert_eq!(timeout.to_string(), "revision 5 not reached within 10s");
    }

    #[test]
    fn a_transport_error_keeps_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            Error::transport(&Outer(refused)),
            Error::Transport("error sending request: refused".into())
        );
    }
}
