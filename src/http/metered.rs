//! Request metrics, as a router layer: every answer is counted by method,
//! route template and status, its latency goes into a histogram, and every
//! write request (`POST`, `PUT`, `PATCH`, `DELETE` on a route) is counted
//! once in `duality_writes_total` with its outcome, refused ones included.
//!
//! The route label is the template the router matched (`/persons/{id}`,
//! never `/persons/7`); a request that matches no route is labelled
//! [`UNMATCHED`], so the number of series stays bounded whatever clients
//! send.
//!
//! Latency is the time until the answer's head is ready, for every route.
//! A change stream is counted when it starts, and its latency is the time
//! to open it; how long it then stays open is not a request latency and is
//! never recorded (open streams are the `duality_subscribers` gauge).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Marks a successful write answered from a stored outcome (a repeat with
/// the same `Idempotency-Key`), so it is counted as `replayed`.
#[derive(Debug, Clone, Copy)]
pub struct Replayed;

/// The `outcome` label of a write answered `status`.
pub fn write_outcome(status: StatusCode, replayed: bool) -> &'static str {
    match status.as_u16() {
        200..=299 if replayed => "replayed",
        200..=299 => "committed",
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden_origin",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "in_flight",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "key_reused",
        503 => "unavailable",
        s if (400..500).contains(&s) => "refused_other",
        _ => "failed_other",
    }
}

/// The layer: counts and times the request, then the write if it is one.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status();
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.clone().unwrap_or_else(|| UNMATCHED.into())),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("duality_http_requests_total", &labels).increment(1);
    metrics::histogram!("duality_http_request_duration_seconds", &labels).record(elapsed);
    if route.is_some() && super::auth::is_write(&method) {
        let replayed = response.extensions().get::<Replayed>().is_some();
        metrics::counter!("duality_writes_total", "outcome" => write_outcome(status, replayed))
            .increment(1);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_a_write_can_get_has_its_own_outcome() {
        let refusals = [400, 401, 403, 404, 405, 409, 413, 415, 422, 503];
        let outcomes: std::collections::HashSet<_> = refusals
            .iter()
            .map(|&s| write_outcome(StatusCode::from_u16(s).unwrap(), false))
            .collect();
        assert_eq!(outcomes.len(), refusals.len());
        assert!(!outcomes.contains("committed"));
        assert_eq!(write_outcome(StatusCode::CREATED, false), "committed");
        assert_eq!(write_outcome(StatusCode::NO_CONTENT, false), "committed");
        assert_eq!(write_outcome(StatusCode::CREATED, true), "replayed");
    }
}
