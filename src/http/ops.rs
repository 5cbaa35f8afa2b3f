//! Operations endpoints: health, Prometheus metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Served;
use crate::telemetry;

pub async fn healthz(State(served): State<Served>) -> Json<Value> {
    let app = &served.app;
    let views: Map<String, Value> = served
        .views
        .iter()
        .map(|v| (v.name().to_string(), json!(app.hub.latest(*v))))
        .collect();
    let mut health = json!({
        "status": "ok",
        "epoch": app.epoch(),
        "revisions": views,
    });
    if let Some(upstreams) = &served.upstreams {
        let stale = upstreams.stale();
        health["stale"] = json!(stale);
        health["upstreams"] = upstreams.report();
        if stale {
            health["status"] = json!("degraded");
        }
    }
    Json(health)
}

pub async fn metrics() -> Response {
    let text = telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn openapi(State(served): State<Served>) -> Json<Value> {
    Json(super::openapi::document(&served.views))
}
