//! Request metrics, as a router layer: every answer is counted by method,
//! route template and status, its latency goes into a histogram, and every
//! write request (`POST`, `PUT`, `PATCH`, `DELETE` on a route) is counted
//! once in `duality_writes_total` with its outcome, refused ones included.
//!
//! The route label is the template the router matched (`/persons/{id}`,
//! never `/persons/7`); a request that matches no route is labelled
//! [`UNMATCHED`], and a method HTTP does not define is labelled `other`,
//! so the number of series stays bounded whatever clients send.
//!
//! Latency is the time until the answer's head is ready, for every route.
//! A change stream is counted when it starts, and its latency is the time
//! to open it; how long it then stays open is not a request latency and is
//! never recorded (open streams are the `duality_subscribers` gauge).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

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

/// The `method` label: one of the methods HTTP defines, or `other`, so
/// that a client inventing methods cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The layer: counts and times every request, then the write if it is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metered;

impl<S> Layer<S> for Metered {
    type Service = MeteredService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeteredService { inner }
    }
}

/// [`Metered`] around one route's service. It calls that service in place
/// rather than cloning it for each request, as an `async fn` middleware
/// would: the route's whole stack of layers sits below it.
#[derive(Debug, Clone)]
pub struct MeteredService<S> {
    inner: S,
}

impl<S> Service<Request> for MeteredService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let write = super::auth::is_write(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            record(started, method, write, route, &response);
            Ok(response)
        })
    }
}

fn record(
    started: Instant,
    method: &'static str,
    write: bool,
    route: Option<String>,
    response: &Response,
) {
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status();
    let matched = route.is_some();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.unwrap_or_else(|| UNMATCHED.into())),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("duality_http_requests_total", &labels).increment(1);
    metrics::histogram!("duality_http_request_duration_seconds", &labels).record(elapsed);
    if matched && write {
        let replayed = response.extensions().get::<Replayed>().is_some();
        metrics::counter!("duality_writes_total", "outcome" => write_outcome(status, replayed))
            .increment(1);
    }
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
