//! duality serves every view twice, in forms that always agree: as an
//! aggregate (a JSON document stamped with a revision) and as a change
//! stream (SSE carrying JSON Merge Patches from any revision on).
//!
//! The tree, from the inside out:
//! - [`domain`]: pure logic: views, merge-patch diffs, what each write does.
//! - [`store`]: one interface, persisting documents, revisions and the outbox
//!   in one transaction (SQLite with group commit).
//! - [`hub`] and [`stream`]: live fan-out and the one stream path; [`sse`]
//!   is its pure codec.
//! - [`materialized`]: every view kept in memory as shared chunks of
//!   serialised JSON, advanced by its own events; snapshots and read models.
//! - [`app`]: the core every handler goes through.
//! - [`http`]: the router, handlers and errors; [`settings`], [`cli`].

pub mod aggregates;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod domain;
pub mod http;
pub mod hub;
pub mod materialized;
pub mod net;
pub mod printable;
pub mod retention;
pub mod settings;
pub mod sse;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use app::App;
use domain::View;
use hub::Hub;
use settings::{Database, Service, Services, Settings};
use store::owner::Owner;
use store::sqlite::{Location, SqliteStore};
use store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Config(String),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store that the settings name. A SQLite file comes with its
/// [`Owner`] lock, to be held while the file is served.
pub async fn open_store(
    settings: &Settings,
    hub: Arc<Hub>,
) -> Result<(Arc<dyn Store>, Option<Owner>), LaunchError> {
    match &settings.db {
        Database::Sqlite(location) => {
            let owner = match location {
                Location::File(path) => Some(store::owner::claim(path)?),
                Location::Memory => None,
            };
            let location = location.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&location, hub))
                .await
                .map_err(|e| LaunchError::Config(e.to_string()))??;
            Ok((Arc::new(store), owner))
        }
        Database::Postgres(url) => Ok((
            Arc::new(store::postgres::PgStore::open(url, hub).await?),
            None,
        )),
    }
}

/// How the aggregates service reaches a backend: through this process's
/// router when the backend runs here, else over HTTP at its URL.
fn backend(
    settings: &Settings,
    service: Service,
    url: &Option<String>,
    local: &axum::Router,
) -> Result<Arc<dyn client::Transport>, LaunchError> {
    if settings.services.contains(service) {
        return Ok(client::InProcess::new(local.clone()));
    }
    let flag = format!("--{}-url", service.name());
    let url = url.as_deref().ok_or_else(|| {
        LaunchError::Config(format!(
            "the aggregates service needs the {} service: run it here or give {flag}",
            service.name()
        ))
    })?;
    let token = settings
        .upstream_token
        .as_ref()
        .map(settings::Token::as_str);
    let http = client::Http::with_token(url, token)
        .map_err(|e| LaunchError::Config(format!("{flag}: {e}")))?;
    Ok(Arc::new(http))
}

/// Refuses open writes on an address other machines can reach, unless the
/// operator said so (SPEC §9).
fn check_exposure(settings: &Settings, addr: std::net::SocketAddr) -> Result<(), LaunchError> {
    if addr.ip().is_loopback() || !settings.write_token.is_empty() || settings.open_writes {
        return Ok(());
    }
    Err(LaunchError::Config(format!(
        "refusing to serve open writes on {addr}, which is not a loopback address: \
         give --write-token TOKEN, or --open-writes to let anyone who reaches it write"
    )))
}

/// `--demo-data`: the customers and incidents sample into an empty pair of
/// views, and the persons sample when the persons service runs here and
/// no person was ever created. Says what it loaded and what it skipped.
async fn load_demo_data(app: &App, hub: &Hub, services: &Services) -> Result<(), LaunchError> {
    if hub.latest(View::Customers) == 0 && hub.latest(View::Incidents) == 0 {
        app.write(domain::demo::load()).await?;
        tracing::info!("loaded the demo customers and incidents");
    } else {
        tracing::info!("skipped the demo customers and incidents: the database already holds some");
    }
    if !services.contains(Service::Persons) {
        return Ok(());
    }
    let committed = app.write(domain::demo::load_persons()).await?;
    if committed.output == serde_json::Value::Bool(true) {
        tracing::info!("loaded the demo persons");
    } else {
        tracing::info!("skipped the demo persons: this database has had persons before");
    }
    Ok(())
}

/// Serves `settings` on `listener` until `shutdown` completes; open streams
/// end when it does, and connections still open `--shutdown-grace` later
/// are closed, so the server stops in bounded time.
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    check_exposure(&settings, listener.local_addr()?)?;
    let services = &settings.services;
    let owns_backends =
        services.contains(Service::Customers) && services.contains(Service::Incidents);
    if settings.demo_data && !owns_backends {
        return Err(LaunchError::Config(
            "--demo-data needs the customers and incidents services in this process".into(),
        ));
    }
    telemetry::prometheus();
    let hub = Arc::new(Hub::new());
    // Held until this function returns: no other process serves the file.
    let (store, _owner) = open_store(&settings, Arc::clone(&hub)).await?;
    // The one read of every view; from here on they advance by events.
    hub.views.load(&*store, |view| hub.latest(view)).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = App::new(
        Arc::clone(&store),
        Arc::clone(&hub),
        stopped.clone(),
        settings.keep_alive,
    );
    if settings.demo_data {
        load_demo_data(&app, &hub, services).await?;
    }
    let upstreams = if services.contains(Service::Aggregates) {
        let mut local_services = services.clone();
        local_services.0.retain(|s| *s != Service::Aggregates);
        let local = http::router(app.clone(), &local_services, None, &http::Edge::default());
        let customers = backend(
            &settings,
            Service::Customers,
            &settings.customers_url,
            &local,
        )?;
        let incidents = backend(
            &settings,
            Service::Incidents,
            &settings.incidents_url,
            &local,
        )?;
        let options = client::Options::default();
        Some(aggregates::Upstreams::start(
            app.clone(),
            customers,
            incidents,
            options,
        ))
    } else {
        None
    };
    let trimmer = retention::spawn(store, settings.retention, stopped);
    let edge = http::Edge::from_settings(&settings);
    let router = http::router(app, services, upstreams, &edge);
    let limits = net::Limits {
        max_connections: settings
            .max_connections
            .unwrap_or_else(|| net::fds::default_max_connections(net::fds::current_limit())),
        header_timeout: settings.header_timeout,
        grace: settings.shutdown_grace,
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        db = %settings.db,
        services = ?services.0,
        max_connections = limits.max_connections,
        writes = if settings.write_token.is_empty() { "open" } else { "token" },
        reads = if settings.read_token.is_empty() { "open" } else { "token" },
        "serving"
    );
    net::serve(listener, router, limits, async move {
        shutdown.await;
        tracing::info!("shutting down: ending open streams");
        let _ = stop.send(true);
    })
    .await?;
    // The trimmer stops with the streams; a store that hangs cannot hold
    // the process past the grace either.
    let _ = tokio::time::timeout(settings.shutdown_grace, trimmer).await;
    Ok(())
}
