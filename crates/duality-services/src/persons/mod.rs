//! The persons service (README, "What it serves"): persons, and the locations view derived
//! from them in the same writes. Registered through the public API only.

mod handlers;
pub mod openapi;
pub mod rules;

use axum::routing::{get, post};
use duality::{Service, View, ViewSpec};

use crate::panels;

static PERSONS_SPEC: ViewSpec =
    ViewSpec::new("persons", "/persons", "/person-events").schemas(openapi::persons);
static LOCATIONS_SPEC: ViewSpec =
    ViewSpec::new("locations", "/locations", "/location-events").schemas(openapi::locations);

/// Persons by id: `{"name", "city"?}`.
pub const PERSONS: View = View::of(&PERSONS_SPEC);
/// Each city with at least one person: `{"total": n}`.
pub const LOCATIONS: View = View::of(&LOCATIONS_SPEC);

/// The service: both views, the person writes, one city's total, and the
/// panels of both views.
pub fn service() -> Service {
    Service::new("persons")
        .view(PERSONS)
        .view(LOCATIONS)
        .route("/persons", post(handlers::create))
        .route(
            "/persons/{id}",
            get(handlers::get)
                .patch(handlers::patch)
                .delete(handlers::delete),
        )
        .route("/locations/{city}", get(handlers::location))
        .openapi(openapi::paths)
        .panel(PERSONS, panels::PERSONS_JS)
        .panel(LOCATIONS, panels::LOCATIONS_JS)
        .panel_style(panels::PERSONS_CSS)
}
