//! `AppError`: every failure a handler can answer, as a JSON `{"error"}`.
//!
//! A client error's message says what is wrong with the request. A server
//! error's body never carries internals (SQL, database error text, file
//! paths): it says what is unavailable and that a retry may work, and the
//! detail goes to the log only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;
use duality_core::Fault;

/// The body of every 503 caused by the store.
pub const STORE_UNAVAILABLE: &str = "the store is unavailable; try again";
/// The body of every 503 caused by a backend service that did not answer.
pub const UPSTREAM_UNAVAILABLE: &str = "a backend service is unavailable; try again";

/// Why a request failed; each variant answers with its HTTP status and a JSON
/// `{"error": …}` body (`Gone` sends its body as is).
#[derive(Debug)]
pub enum AppError {
    /// `400`: the request is malformed or invalid.
    BadRequest(String),
    /// `404`: no such route, view or record.
    NotFound(String),
    /// The same `Idempotency-Key` is still being handled.
    Conflict(String),
    /// `415`: the body is not of a content type the route accepts.
    UnsupportedMediaType(String),
    /// `413`: the body is over the size limit.
    PayloadTooLarge(String),
    /// The same `Idempotency-Key` came with another request body.
    Unprocessable(String),
    /// `410 Gone` with a body that names the bounds and the snapshot path.
    Gone(String),
    /// The store failed; the text is for the log only.
    Unavailable(String),
    /// A backend service failed; the text is for the log only.
    UpstreamUnavailable(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::Gone(body) => {
                return (
                    StatusCode::GONE,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
            }
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            AppError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            AppError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            AppError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "answering 503: the store is unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE.into())
            }
            AppError::UpstreamUnavailable(detail) => {
                tracing::warn!(error = %detail, "answering 503: a backend is unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, UPSTREAM_UNAVAILABLE.into())
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => AppError::BadRequest(m),
            StoreError::NotFound(m) => AppError::NotFound(m),
            StoreError::KeyReused(m) => AppError::Unprocessable(m),
            StoreError::Unavailable(m) => AppError::Unavailable(m),
        }
    }
}

impl From<Fault> for AppError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Invalid(m) => AppError::BadRequest(m),
            Fault::NotFound(m) => AppError::NotFound(m),
            Fault::KeyReused(m) => AppError::Unprocessable(m),
            Fault::Missing(m) => AppError::Unavailable(format!("unanswered read {m:?}")),
        }
    }
}
