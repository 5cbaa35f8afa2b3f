//! The Aggregate Pattern (README, "The Aggregate Pattern"): the customers and incidents services
//! own their data; the aggregates service owns none and composes the
//! dashboard from theirs by service chaining. Registered through the
//! public API only.

pub mod composed_from;
pub mod customers;
pub mod dashboard;
pub mod entity;
pub mod incidents;
mod items;
pub mod leaders;
pub mod metrics;
pub mod openapi;
pub mod ranking;
mod start;
pub mod upstreams;

use axum::routing::get;

use crate::panels;
use customers::CustomerDoc;
use duality::{MakeIndex, Service, View, ViewSpec};
use incidents::IncidentDoc;

static CUSTOMER_INDEXES: [MakeIndex; 1] = [customers::index];
static INCIDENT_INDEXES: [MakeIndex; 1] = [incidents::index];

static CUSTOMERS_SPEC: ViewSpec = ViewSpec::new("customers", "/customers", "/customer-events")
    .indexes(&CUSTOMER_INDEXES)
    .schemas(openapi::customers);
static INCIDENTS_SPEC: ViewSpec = ViewSpec::new("incidents", "/incidents", "/incident-events")
    .indexes(&INCIDENT_INDEXES)
    .schemas(openapi::incidents);
static DASHBOARD_SPEC: ViewSpec = ViewSpec::new(
    "dashboard",
    "/aggregates/dashboard",
    "/aggregates/dashboard-events",
)
.schemas(openapi::dashboard)
.composed();

/// Customers by UUID.
pub const CUSTOMERS: View = View::of(&CUSTOMERS_SPEC);
/// Incidents by UUID.
pub const INCIDENTS: View = View::of(&INCIDENTS_SPEC);
/// The dashboard composed from both.
pub const DASHBOARD: View = View::of(&DASHBOARD_SPEC);

/// The customers service: items, count and top list.
pub fn customers_service() -> Service {
    let routes = items::routes::<CustomerDoc>("/customers/items", get(items::list_customers))
        .into_iter()
        .chain(items::customer_reads());
    routes
        .fold(Service::new("customers").view(CUSTOMERS), |s, (path, r)| {
            s.route(&path, r)
        })
        .openapi(openapi::customers_paths)
}

/// The incidents service: items and the grouping by customer.
pub fn incidents_service() -> Service {
    let routes = items::routes::<IncidentDoc>("/incidents/items", get(items::list_incidents))
        .into_iter()
        .chain(items::incident_reads());
    routes
        .fold(Service::new("incidents").view(INCIDENTS), |s, (path, r)| {
            s.route(&path, r)
        })
        .openapi(openapi::incidents_paths)
}

/// Where the aggregates service finds a backend that does not run in its
/// process (`--customers-url`, `--incidents-url`), and the token it sends.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// The customers service's base URL.
    pub customers_url: Option<String>,
    /// The incidents service's base URL.
    pub incidents_url: Option<String>,
    /// A read token of those servers (`--upstream-token`).
    pub token: Option<duality::settings::Token>,
}

/// The aggregates service: the dashboard view, kept composed at start,
/// and its panel.
pub fn aggregates_service(upstream: Upstream) -> Service {
    Service::new("aggregates")
        .view(DASHBOARD)
        .panel(DASHBOARD, panels::DASHBOARD_JS)
        .panel_style(panels::DASHBOARD_CSS)
        .on_start(move |cx| start::start(cx, upstream))
        .metrics(metrics::METRICS)
        .openapi(openapi::aggregates_paths)
}
