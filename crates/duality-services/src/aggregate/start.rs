//! The aggregates service's start: follow both backends (through this
//! process's router when they run here, else over HTTP), keep the
//! dashboard composed, and serve the compose-on-request baseline.

use std::sync::Arc;

use axum::Json;
use axum::routing::get;
use serde_json::{Map, Value};

use super::dashboard;
use super::upstreams::Upstreams;
use super::{CUSTOMERS, INCIDENTS, Upstream};
use duality::client::{self, Transport};
use duality::settings::Token;
use duality::{Context, Error, Health, LaunchError, Started};

impl Health for Upstreams {
    fn degraded(&self) -> bool {
        self.stale()
    }

    fn report(&self, health: &mut Map<String, Value>) {
        health.insert("stale".into(), Value::Bool(self.stale()));
        health.insert("upstreams".into(), Upstreams::report(self));
    }
}

/// How the aggregates service reaches a backend: through this process's
/// router when the backend runs here, else over HTTP at its URL.
fn backend(
    cx: &Context,
    service: &str,
    url: &Option<String>,
    token: Option<&Token>,
) -> Result<Arc<dyn Transport>, LaunchError> {
    if cx.runs(service) {
        return Ok(client::InProcess::new(cx.local.clone()));
    }
    let flag = format!("--{service}-url");
    let url = url.as_deref().ok_or_else(|| {
        LaunchError::Config(format!(
            "the aggregates service needs the {service} service: run it here or give {flag}"
        ))
    })?;
    let token = token.map(Token::as_str);
    let http = client::Http::with_token(url, token)
        .map_err(|e| LaunchError::Config(format!("{flag}: {e}")))?;
    Ok(Arc::new(http))
}

/// Starts following both backends; serves the baseline and reports the
/// followers in `/healthz`.
pub async fn start(cx: Context, upstream: Upstream) -> Result<Started, LaunchError> {
    let token = upstream.token.as_ref();
    let customers = backend(&cx, "customers", &upstream.customers_url, token)?;
    let incidents = backend(&cx, "incidents", &upstream.incidents_url, token)?;
    let upstreams = Upstreams::start(
        cx.app.clone(),
        customers,
        incidents,
        client::Options::default(),
    );
    let baseline = Arc::clone(&upstreams);
    Ok(Started {
        routes: vec![(
            "/aggregates/dashboard/composed".into(),
            get(move || composed(Arc::clone(&baseline))),
        )],
        health: Some(upstreams),
    })
}

async fn fetch(transport: &dyn Transport, path: &str) -> Result<Map<String, Value>, Error> {
    let unavailable = |e: client::Error| Error::upstream_unavailable(format!("{path}: {e}"));
    let reply = transport.get(path, &[]).await.map_err(unavailable)?;
    if reply.status != 200 {
        // Its message names the path and status already.
        let refused = reply.into_error(path).await;
        return Err(Error::upstream_unavailable(refused));
    }
    let body = reply.bytes(256 * 1024 * 1024).await.map_err(unavailable)?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::upstream_unavailable(format!("{path}: not a JSON object: {e}")))
}

/// `GET /aggregates/dashboard/composed`: calls both backends and composes on
/// every request. This is how a dashboard is built without a view of its
/// own; it is kept as the baseline for benchmarks and consistency checks.
async fn composed(upstreams: Arc<Upstreams>) -> Result<Json<Value>, Error> {
    let (customers, incidents) = tokio::try_join!(
        fetch(upstreams.customers.transport(), CUSTOMERS.snapshot_path()),
        fetch(upstreams.incidents.transport(), INCIDENTS.snapshot_path()),
    )?;
    Ok(Json(Value::Object(dashboard::compose(
        &customers, &incidents,
    ))))
}
