//! One error model from the domain to the edge.
//!
//! Every failure a write, a store, a read model or a handler can report is
//! an [`Error`], and each variant is one answer: a request the server
//! refuses (4xx, its reason for the client), a dependency that is out of
//! reach (503: retrying may work; the cause goes to the log), and a fault
//! of the server itself (500: logged with its cause and source chain; the
//! body says nothing of it). With the `http` feature an `Error` is an axum
//! response, so handlers return it as it is.
//!
//! [`Missing`] is not a failure: it is how a write asks its store to load a
//! read first (the store then runs the write again); one that escapes the
//! store is an internal error.

use std::fmt;
use std::sync::Arc;

use crate::write::Missing;

/// Why something was not done, and so what the client is told.
#[derive(Debug, Clone)]
pub enum Error {
    /// `400`: the request is malformed, or the write invalid for the
    /// current state.
    Invalid(String),
    /// `404`: no such route, view, document or record.
    NotFound(String),
    /// `409`: a request with the same `Idempotency-Key` is still being
    /// handled.
    InFlight(String),
    /// `412`: a condition of the request (`If-Match`, `If-None-Match`)
    /// does not hold for the current state; nothing was done.
    PreconditionFailed(String),
    /// `413`: the body is over a size limit (the message names it).
    TooLarge(String),
    /// `415`: the body is not of a content type the route accepts.
    UnsupportedMediaType(String),
    /// `422`: the `Idempotency-Key` was used before with another request.
    KeyReused(String),
    /// `410 Gone`: a stream position that cannot be served, with its JSON
    /// body (the bounds and the snapshot path), sent as it is.
    Gone(String),
    /// `503`: a dependency is out of reach; nothing was done and a retry
    /// may work. The cause is logged, never sent.
    Unavailable(Unavailable),
    /// `500`: the server's own fault. Logged with its cause and source
    /// chain; the body says only that it happened.
    Internal(Internal),
    /// A read the write's source could not answer yet: the store loads it
    /// and runs the write again (never an answer of its own).
    Missing(Missing),
}

/// What is out of reach, for the `503` body and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// This process's database.
    Store,
    /// A backend service this one composes from.
    Upstream,
}

/// A `503`: which dependency, and why (for the log only).
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// What is out of reach.
    pub what: Dependency,
    /// Why, as the dependency said it; never sent to the client.
    pub cause: String,
}

/// A `500`: what the server was doing, and the error that stopped it.
#[derive(Debug, Clone)]
pub struct Internal {
    /// What failed, in the server's words.
    pub context: String,
    /// The underlying error, whose source chain is logged.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// The body of every `503` caused by the store.
pub const STORE_UNAVAILABLE: &str = "the store is unavailable; try again";
/// The body of every `503` caused by a backend service that did not answer.
pub const UPSTREAM_UNAVAILABLE: &str = "a backend service is unavailable; try again";
/// The body of every `500`.
pub const INTERNAL: &str = "internal server error";

impl Error {
    /// `503` for the store, with the cause for the log.
    pub fn store_unavailable(cause: impl fmt::Display) -> Error {
        Error::Unavailable(Unavailable {
            what: Dependency::Store,
            cause: cause.to_string(),
        })
    }

    /// `503` for a backend service, with the cause for the log.
    pub fn upstream_unavailable(cause: impl fmt::Display) -> Error {
        Error::Unavailable(Unavailable {
            what: Dependency::Upstream,
            cause: cause.to_string(),
        })
    }

    /// `500`: `context` says what failed.
    pub fn internal(context: impl Into<String>) -> Error {
        Error::Internal(Internal {
            context: context.into(),
            source: None,
        })
    }

    /// `500` caused by `source`, whose chain is logged.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Internal(Internal {
            context: context.into(),
            source: Some(Arc::new(source)),
        })
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::NotFound(_) => 404,
            Error::InFlight(_) => 409,
            Error::Gone(_) => 410,
            Error::PreconditionFailed(_) => 412,
            Error::TooLarge(_) => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::KeyReused(_) => 422,
            Error::Internal(_) | Error::Missing(_) => 500,
            Error::Unavailable(_) => 503,
        }
    }

    /// True if the same request may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::InFlight(_))
    }

    /// What the client is told: the reason of a refusal, a fixed sentence
    /// for a 503 or a 500 (their causes are for the log only).
    pub fn public_message(&self) -> &str {
        match self {
            Error::Invalid(m)
            | Error::NotFound(m)
            | Error::InFlight(m)
            | Error::PreconditionFailed(m)
            | Error::TooLarge(m)
            | Error::UnsupportedMediaType(m)
            | Error::KeyReused(m)
            | Error::Gone(m) => m,
            Error::Unavailable(u) => match u.what {
                Dependency::Store => STORE_UNAVAILABLE,
                Dependency::Upstream => UPSTREAM_UNAVAILABLE,
            },
            Error::Internal(_) | Error::Missing(_) => INTERNAL,
        }
    }

    /// The error with its whole source chain, for the log.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        if let Error::Internal(Internal {
            source: Some(source),
            ..
        }) = self
        {
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(e) = next {
                text.push_str(": ");
                text.push_str(&e.to_string());
                next = e.source();
            }
        }
        text
    }
}

impl fmt::Display for Error {
    /// The whole reason, causes included: for logs and for callers in
    /// this process, never a response body (see [`Error::public_message`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(u) => match u.what {
                Dependency::Store => write!(f, "store unavailable: {}", u.cause),
                Dependency::Upstream => write!(f, "backend unavailable: {}", u.cause),
            },
            Error::Internal(i) => write!(f, "internal error: {}", i.context),
            Error::Missing(m) => write!(f, "internal error: unanswered read {m:?}"),
            other => f.write_str(other.public_message()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Internal(Internal {
                source: Some(source),
                ..
            }) => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl PartialEq for Error {
    /// Same variant and same text (an internal error's source is compared
    /// by its text).
    fn eq(&self, other: &Error) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.chain() == other.chain()
    }
}

impl From<Missing> for Error {
    fn from(m: Missing) -> Self {
        Error::Missing(m)
    }
}

#[cfg(feature = "http")]
mod response {
    use axum_core::response::{IntoResponse, Response};
    use http::{HeaderValue, StatusCode, header};

    use super::Error;

    impl IntoResponse for Error {
        /// `{"error": …}` with the status (a `410` sends its own JSON
        /// body). A `503` logs its cause as a warning, a `500` its cause
        /// and source chain as an error.
        fn into_response(self) -> Response {
            match &self {
                Error::Unavailable(_) => {
                    tracing::warn!(error = %self, "answering 503");
                }
                Error::Internal(_) | Error::Missing(_) => {
                    tracing::error!(error = %self.chain(), "answering 500");
                }
                _ => {}
            }
            let status =
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match self {
                Error::Gone(body) => body,
                other => serde_json::json!({ "error": other.public_message() }).to_string(),
            };
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Root;
    impl fmt::Display for Root {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk on fire")
        }
    }
    impl std::error::Error for Root {}

    #[test]
    fn every_variant_answers_its_status() {
        let cases = [
            (Error::Invalid("x".into()), 400),
            (Error::NotFound("x".into()), 404),
            (Error::InFlight("x".into()), 409),
            (Error::Gone("{}".into()), 410),
            (Error::PreconditionFailed("x".into()), 412),
            (Error::TooLarge("x".into()), 413),
            (Error::UnsupportedMediaType("x".into()), 415),
            (Error::KeyReused("x".into()), 422),
            (Error::internal("x"), 500),
            (Error::Missing(Missing::Counter("c".into())), 500),
            (Error::store_unavailable("x"), 503),
            (Error::upstream_unavailable("x"), 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn causes_of_server_errors_never_reach_the_public_message() {
        let down = Error::store_unavailable("connection refused to 10.0.0.7");
        assert_eq!(down.public_message(), STORE_UNAVAILABLE);
        assert!(down.to_string().contains("10.0.0.7"));
        let bug = Error::internal_from("reading a chunk", Root);
        assert_eq!(bug.public_message(), INTERNAL);
        assert_eq!(bug.chain(), "internal error: reading a chunk: disk on fire");
        assert!(bug.is_retryable() == false && down.is_retryable());
    }
}
