//! The HTTP layer: one `router(state)` that mounts each served view's
//! snapshot and stream through the same two handlers, plus the domain
//! endpoints, the operations endpoints and the shared middleware.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod persons;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, get};
use axum::{Router, middleware};
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::domain::View;
use crate::settings::{Service, Services};
use error::AppError;
use extract::{ApiQuery, json_errors};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The router's state: the app and the views this process serves.
#[derive(Clone)]
pub struct Served {
    pub app: App,
    pub views: Arc<Vec<View>>,
}

impl FromRef<Served> for App {
    fn from_ref(served: &Served) -> App {
        served.app.clone()
    }
}

/// The views a set of services serves.
pub fn served_views(services: &Services) -> Vec<View> {
    let mut views = Vec::new();
    if services.contains(Service::Persons) {
        views.extend([View::Persons, View::Locations]);
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

pub fn router(app: App, services: &Services) -> Router {
    let views = served_views(services);
    let mut router = Router::new();
    for &view in &views {
        router = router
            .route(view.snapshot_path(), snapshot_route(view))
            .route(view.stream_path(), stream_route(view));
    }
    if services.contains(Service::Persons) {
        router = router
            .route("/persons", axum::routing::post(persons::create))
            .route(
                "/persons/{id}",
                get(persons::get)
                    .patch(persons::patch)
                    .delete(persons::delete),
            )
            .route("/locations/{city}", get(persons::location));
    }
    router
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        .layer(middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(Served {
            app,
            views: Arc::new(views),
        })
}
