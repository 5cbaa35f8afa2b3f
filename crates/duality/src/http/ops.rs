//! Operations endpoints: liveness (`/healthz`: the process answers),
//! readiness (`/readyz`: the store answers too), Prometheus metrics, the
//! OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Served;
use crate::telemetry;

/// `GET /healthz`: the epoch, each view's latest revision, the served views
/// with their snapshot and stream paths (in the order the services register
/// them: the page at `/` draws a panel for each), which requests need a
/// token, and the services' health reports; `status` is `degraded` when any
/// report says so.
pub async fn healthz(State(served): State<Served>) -> Json<Value> {
    let app = &served.app;
    let views: Map<String, Value> = served
        .parts
        .views
        .iter()
        .map(|v| {
            (
                v.name().to_string(),
                json!(app.hub().latest(*v).unwrap_or(0)),
            )
        })
        .collect();
    let served_views: Vec<Value> = served
        .parts
        .views
        .iter()
        .map(
            |v| json!({"name": v.name(), "snapshot": v.snapshot_path(), "stream": v.stream_path()}),
        )
        .collect();
    let mut health = json!({
        "status": "ok",
        "epoch": app.epoch(),
        "revisions": views,
        "views": served_views,
        "tokens": served.tokens,
    });
    let mut degraded = false;
    if let Value::Object(fields) = &mut health {
        for report in &served.parts.health {
            degraded |= report.degraded();
            report.report(fields);
        }
    }
    if degraded {
        health["status"] = json!("degraded");
    }
    Json(health)
}

/// `GET /readyz`: 200 while the store answers, else 503 with the reason
/// (the detail goes to the log).
pub async fn readyz(State(served): State<Served>) -> Response {
    match served.app.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "the store is unreachable"})),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus metrics in text format (empty when the
/// recorder could not be installed).
pub async fn metrics() -> Response {
    let text = telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /openapi.json`: the OpenAPI document of the running views and services,
/// annotated with what the edge (tokens, streams) requires.
pub async fn openapi(State(served): State<Served>) -> Json<Value> {
    let parts = &served.parts;
    let mut doc = super::openapi::document(&parts.views, &parts.openapi, &parts.paths);
    super::edge_doc::annotate(&mut doc, served.tokens, &super::stream_paths(parts));
    Json(doc)
}
