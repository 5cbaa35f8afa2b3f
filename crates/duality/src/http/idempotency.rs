//! `Idempotency-Key` on creating `POST`s (docs/PROTOCOL.md, "Security model"), at the HTTP edge: the
//! header is checked here, a key still being handled in this process is a
//! `409`, and everything else (the stored outcome, `422` for a key reused
//! with another body) happens in the store's transaction through
//! [`Write::once`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use duality_core::Error;
use serde_json::Value;

use crate::app::App;
use crate::store::Committed;
use duality_core::Write;
use duality_core::idempotency::{self, IdempotencyKey};

/// The name of the request header that carries an idempotency key (lower case,
/// as `http` expects).
pub const HEADER: &str = "idempotency-key";

/// The request's `Idempotency-Key`, if it sent one; a key that is not
/// bounded visible ASCII, or sent twice, is a `400`.
pub struct KeyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(KeyHeader(None));
        };
        if values.next().is_some() {
            return Err(Error::Invalid(
                "send one Idempotency-Key header, not several".into(),
            ));
        }
        let key = value.to_str().map_err(|_| {
            Error::Invalid("Idempotency-Key must be visible ASCII (no spaces)".into())
        })?;
        idempotency::check(key).map_err(Error::Invalid)?;
        Ok(KeyHeader(Some(key.to_string())))
    }
}

/// Runs a creating write; under a key, at most once for `route` and `body`.
pub async fn create_once(
    app: &App,
    key: KeyHeader,
    route: &str,
    body: &Value,
    write: Write,
) -> Result<Committed, Error> {
    let Some(key) = key.0 else {
        return Ok(app.write(write).await?);
    };
    let key = IdempotencyKey::new(&key, route, body).map_err(Error::Invalid)?;
    let _claim = app.in_flight().claim(&key.scoped).ok_or_else(|| {
        Error::InFlight(
            "a request with this Idempotency-Key is still being handled; retry later".into(),
        )
    })?;
    Ok(app.write(write.once(key)).await?)
}
