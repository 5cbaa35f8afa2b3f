//! The HTTP layer: one `router(state)` that mounts each served view's
//! snapshot and stream through the same two handlers, plus the domain
//! endpoints, the operations endpoints and the shared middleware.

pub mod aggregates;
pub mod entities;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod persons;
pub mod views;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{MethodRouter, get};
use axum::{Router, middleware};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::aggregates::Upstreams;
use crate::app::App;
use crate::domain::View;
use crate::settings::{Service, Services};
use error::AppError;
use extract::{ApiQuery, json_errors};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The router's state.
#[derive(Clone)]
pub struct Served {
    pub app: App,
    /// The views this process serves (for health and the OpenAPI document).
    pub views: Arc<Vec<View>>,
    /// The aggregates service's followers, if it runs here.
    pub upstreams: Option<Arc<Upstreams>>,
}

impl FromRef<Served> for App {
    fn from_ref(served: &Served) -> App {
        served.app.clone()
    }
}

/// The views a set of services serves.
pub fn served_views(services: &Services) -> Vec<View> {
    let mut views = Vec::new();
    for service in &services.0 {
        match service {
            Service::Persons => views.extend([View::Persons, View::Locations]),
            Service::Customers => views.push(View::Customers),
            Service::Incidents => views.push(View::Incidents),
            Service::Aggregates => views.push(View::Dashboard),
        }
    }
    views
}

fn snapshot_route(view: View) -> MethodRouter<Served> {
    get(move |State(app): State<App>, headers: HeaderMap| views::snapshot(app, view, headers))
}

fn stream_route(view: View) -> MethodRouter<Served> {
    get(
        move |State(app): State<App>,
              ApiQuery(query): ApiQuery<views::StreamQuery>,
              headers: HeaderMap| { views::events(app, view, query, headers) },
    )
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

/// The router for `services`, over `app`.
/// Lets pages on `origins` read snapshots and streams, and see the
/// headers that carry revisions.
pub fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(views::X_REVISION),
            HeaderName::from_static(views::X_EPOCH),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            HeaderName::from_static(views::X_REVISION),
            HeaderName::from_static(views::X_EPOCH),
            HeaderName::from_static("x-stale"),
        ]);
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

pub fn router(
    app: App,
    services: &Services,
    upstreams: Option<Arc<Upstreams>>,
    cors_origins: &[String],
) -> Router {
    let views = served_views(services);
    let mut router = Router::new();
    for &view in &views {
        let snapshot = match view {
            View::Dashboard => get(aggregates::dashboard),
            _ => snapshot_route(view),
        };
        router = router
            .route(view.snapshot_path(), snapshot)
            .route(view.stream_path(), stream_route(view));
    }
    let (customer_reads, incident_reads) = entities::read_models();
    for service in &services.0 {
        router = match service {
            Service::Persons => router
                .route("/persons", axum::routing::post(persons::create))
                .route(
                    "/persons/{id}",
                    get(persons::get)
                        .patch(persons::patch)
                        .delete(persons::delete),
                )
                .route("/locations/{city}", get(persons::location)),
            Service::Customers => router
                .merge(entities::routes(&entities::CUSTOMERS))
                .merge(customer_reads.clone()),
            Service::Incidents => router
                .merge(entities::routes(&entities::INCIDENTS))
                .merge(incident_reads.clone()),
            Service::Aggregates => {
                router.route("/aggregates/dashboard/composed", get(aggregates::composed))
            }
        };
    }
    router
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(web::routes())
        .fallback(not_found)
        .layer(middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(cors(cors_origins))
        .layer(TraceLayer::new_for_http())
        .with_state(Served {
            app,
            views: Arc::new(views),
            upstreams,
        })
}
