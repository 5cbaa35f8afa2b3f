//! One document of a view over HTTP (docs/PROTOCOL.md, "One document:
//! ETag and conditional writes").
//!
//! A document's `ETag` is `"EPOCH-REVISION"`, the revision of its view
//! that last changed it: the in-memory copy keeps it beside the document,
//! so a read answers it in O(log n) without the store. A request's
//! `If-Match` and `If-None-Match` are parsed here into [`Conditions`]; a
//! read checks them here, a write hands them to its pure function, which
//! checks them inside the writing transaction against the revision it
//! reads there (see `duality_core::precondition`), so no other writer,
//! in this process or another, can change the document in between.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use duality_core::Error;
use duality_core::precondition::{self, Preconditions, Read};

use super::views::{X_EPOCH, X_REVISION};
use crate::app::App;
use duality_core::View;

/// The request's `If-Match` and `If-None-Match`, for this database's
/// epoch; a malformed one is a `400`.
pub struct Conditions(pub Preconditions);

impl<S> FromRequestParts<S> for Conditions
where
    App: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let values = |name: HeaderName| -> Vec<&[u8]> {
            parts
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect()
        };
        let if_match = values(header::IF_MATCH);
        let if_none_match = values(header::IF_NONE_MATCH);
        Preconditions::parse(app.epoch(), &if_match, &if_none_match).map(Conditions)
    }
}

/// The `ETag` header of a document last changed at `revision`.
pub fn etag(app: &App, revision: u64) -> HeaderValue {
    HeaderValue::from_str(&precondition::etag(app.epoch(), revision))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// How a message names the document at `key`.
pub fn named(key: &str) -> String {
    format!("the document {}", serde_json::Value::from(key))
}

/// `GET` the document at `key` of `view`, from the in-memory copy: `200`
/// with the document as stored, its `ETag`, `X-Revision` (the view's
/// revision it was read at) and `X-Epoch`; `304` when `If-None-Match`
/// matches; `412` when `If-Match` does not; `missing()` when there is no
/// such document.
pub async fn get(
    app: &App,
    view: View,
    key: &str,
    conditions: &Preconditions,
    missing: impl FnOnce() -> Error,
) -> Result<Response, Error> {
    let read = app.doc_at(view, key).await?;
    let Some((text, changed)) = read.doc else {
        return Err(missing());
    };
    let mut response = match conditions.read(&named(key), changed)? {
        Read::NotModified => StatusCode::NOT_MODIFIED.into_response(),
        Read::Send => {
            let mut ok = text.into_response();
            ok.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            ok
        }
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag(app, changed));
    h.insert(X_REVISION, HeaderValue::from(read.revision));
    if let Ok(epoch) = HeaderValue::from_str(app.epoch()) {
        h.insert(X_EPOCH, epoch);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
