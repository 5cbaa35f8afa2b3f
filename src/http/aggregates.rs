//! The aggregates service's endpoints: the dashboard view (marked stale when
//! a backend cannot be followed) and a compose-on-request baseline.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{Map, Value};

use super::Served;
use super::error::AppError;
use super::views;
use crate::client::Transport;
use crate::domain::{View, dashboard};

/// `GET /aggregates/dashboard`: the stored view, `X-Stale: true` while a
/// backend cannot be followed.
pub async fn dashboard(
    State(served): State<Served>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let mut response = views::snapshot(served.app.clone(), View::Dashboard, headers).await?;
    let stale = served.upstreams.as_ref().is_some_and(|u| u.stale());
    response.headers_mut().insert(
        "x-stale",
        HeaderValue::from_static(if stale { "true" } else { "false" }),
    );
    Ok(response)
}

async fn fetch(transport: &dyn Transport, path: &str) -> Result<Map<String, Value>, AppError> {
    let unavailable = |e: String| AppError::UpstreamUnavailable(format!("{path}: {e}"));
    let reply = transport.get(path, &[]).await.map_err(unavailable)?;
    if reply.status != 200 {
        return Err(unavailable(format!("answered {}", reply.status)));
    }
    let body = reply.bytes(256 * 1024 * 1024).await.map_err(unavailable)?;
    serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))
}

/// `GET /aggregates/dashboard/composed`: calls both backends and composes on
/// every request. This is how a dashboard is built without a view of its
/// own; it is kept as the baseline for benchmarks and consistency checks.
pub async fn composed(State(served): State<Served>) -> Result<Json<Value>, AppError> {
    let Some(upstreams) = served.upstreams.as_ref() else {
        return Err(AppError::NotFound(
            "the aggregates service is not running".into(),
        ));
    };
    let (customers, incidents) = tokio::try_join!(
        fetch(
            upstreams.customers.transport(),
            View::Customers.snapshot_path()
        ),
        fetch(
            upstreams.incidents.transport(),
            View::Incidents.snapshot_path()
        ),
    )?;
    Ok(Json(Value::Object(dashboard::compose(
        &customers, &incidents,
    ))))
}
