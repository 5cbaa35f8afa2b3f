//! The HTTP layer: one `router(state)` that mounts each served view's
//! snapshot and stream through the same two handlers, plus the domain
//! endpoints, the operations endpoints and the shared middleware.

pub mod auth;
pub mod cors;
pub mod document;
pub mod edge_doc;
pub mod extract;
pub mod idempotency;
pub mod metered;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod streams;
pub mod views;
pub mod web;

use duality_core::Error;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, get};
use axum::{Router, middleware};
use serde_json::{Map, Value};
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::app::App;
use duality_core::View;
use extract::json_errors;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A running service's contribution to `/healthz`.
pub trait Health: Send + Sync + 'static {
    /// True while the service cannot do its job fully (the status then
    /// reads `degraded`).
    fn degraded(&self) -> bool;
    /// Adds the service's fields to the `/healthz` body.
    fn report(&self, health: &mut Map<String, Value>);
}

/// Adds a service's paths to the OpenAPI document (the engine documents
/// each view's snapshot and stream by itself).
pub type OpenApiPaths = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

/// What the router serves for the running services (gathered by
/// [`Server`](crate::Server) from its services and their start hooks).
#[derive(Clone, Default)]
pub struct Parts {
    /// Every registered view: its snapshot and stream are served.
    pub views: Vec<View>,
    /// The services' own routes.
    pub routes: Vec<Router<App>>,
    /// The path of every route a service added, with the service's name.
    pub paths: Vec<(&'static str, String)>,
    /// The services' own OpenAPI paths.
    pub openapi: Vec<OpenApiPaths>,
    /// The services' health reports.
    pub health: Vec<Arc<dyn Health>>,
    /// The panels the services give their views on the page at `/`.
    pub panels: Vec<Panel>,
    /// The style sheets of those panels.
    pub styles: Vec<&'static str>,
}

/// A richer panel a service gives one of its views on the page at `/`
/// (see [`Service::panel`](crate::Service::panel)).
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// The view the panel shows.
    pub view: View,
    /// The script that draws it (JavaScript, run in the page).
    pub script: &'static str,
}

/// The router's state.
#[derive(Clone)]
pub struct Served {
    /// The shared application state (store, hub, stream settings); handlers
    /// also reach it as `State<App>`.
    pub app: App,
    /// The views, documentation and health reports of the running
    /// services.
    pub parts: Arc<Parts>,
    /// Which requests need a token (shown in `/healthz` for the page).
    pub tokens: auth::Needs,
}

impl FromRef<Served> for App {
    fn from_ref(served: &Served) -> App {
        served.app.clone()
    }
}

fn snapshot_route(view: View) -> MethodRouter<Served> {
    get(
        move |State(app): State<App>, RawQuery(query): RawQuery, headers: HeaderMap| {
            views::snapshot(app, view, query, headers)
        },
    )
}

fn stream_route(view: View) -> MethodRouter<Served> {
    get(
        move |State(app): State<App>, RawQuery(query): RawQuery, headers: HeaderMap| {
            views::events(app, view, query, headers)
        },
    )
}

fn multiplexed_route() -> MethodRouter<Served> {
    get(
        |State(served): State<Served>, RawQuery(query): RawQuery, headers: HeaderMap| async move {
            streams::events(served.app.clone(), &served.parts.views, query, headers).await
        },
    )
}

async fn not_found() -> Error {
    Error::NotFound("no such route".into())
}

/// What the router checks before any handler: tokens and origins.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// Which tokens writes and reads need.
    pub tokens: auth::Tokens,
    /// Which origins may call from a browser, and whether they may write.
    pub cors: cors::Cors,
}

impl Edge {
    /// Takes the tokens and CORS origins from the server's settings.
    pub fn from_settings(settings: &crate::settings::Config) -> Self {
        Edge {
            tokens: auth::Tokens {
                write: settings.write_token.clone(),
                read: settings.read_token.clone(),
            },
            cors: cors::Cors {
                origins: settings.cors_origin.clone(),
                allow_writes: settings.cors_allow_writes,
            },
        }
    }
}

/// The span of one request in the logs, with any token in the query
/// redacted.
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %auth::redacted(request.uri()),
        version = ?request.version(),
    )
}

/// Every path whose `GET` is a change stream: each view's, and the
/// multiplexed one.
pub fn stream_paths(parts: &Parts) -> Vec<&'static str> {
    parts
        .views
        .iter()
        .map(|v| v.stream_path())
        .chain([streams::PATH])
        .collect()
}

/// The router for the running services' `parts`, over `app`, behind
/// `edge`: every view's snapshot and stream, then each service's routes.
// The request checks answer a refusal as the response itself.
#[allow(clippy::result_large_err)]
pub fn router(app: App, parts: &Parts, edge: &Edge) -> Router {
    let guard = Arc::new(auth::Guard {
        tokens: edge.tokens.clone(),
        streams: stream_paths(parts),
    });
    let foreign = Arc::new(edge.cors.clone());
    let mut router = Router::new();
    for &view in &parts.views {
        router = router
            .route(view.snapshot_path(), snapshot_route(view))
            .route(view.stream_path(), stream_route(view));
    }
    // Several views on one connection (the page follows them all so).
    router = router.route(streams::PATH, multiplexed_route());
    // Every other route takes no query parameter (the page's assets take
    // their version): one it does not know is refused, not ignored, by the
    // handler's method only (`query::strict`, as services' routes are when
    // added): a method a path does not take is its `405`, whatever the
    // query.
    let mut own = Router::new();
    for routes in &parts.routes {
        own = own.merge(routes.clone().with_state::<Served>(app.clone()));
    }
    let own = own
        .route("/healthz", query::strict(get(ops::healthz)))
        .route("/readyz", query::strict(get(ops::readyz)))
        .route("/metrics", query::strict(get(ops::metrics)))
        .route("/openapi.json", query::strict(get(ops::openapi)));
    let pages = web::routes(parts).layer(middleware::from_fn(query::version_only));
    router
        .merge(own)
        .merge(pages)
        .fallback(not_found)
        .layer(middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(ValidateRequestHeaderLayer::custom(
            move |r: &mut Request| guard.check(r),
        ))
        .layer(ValidateRequestHeaderLayer::custom(
            move |r: &mut Request| foreign.refuse_foreign_writes(r),
        ))
        .layer(cors::layer(&edge.cors))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(metered::Metered)
        .with_state(Served {
            app,
            parts: Arc::new(parts.clone()),
            tokens: edge.tokens.needs(),
        })
}
