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
//! - [`app`], [`snapshots`]: the core every handler goes through.
//! - [`http`]: the router, handlers and errors; [`settings`], [`cli`].

pub mod app;
pub mod bench;
pub mod cli;
pub mod domain;
pub mod http;
pub mod hub;
pub mod retention;
pub mod settings;
pub mod snapshots;
pub mod sse;
pub mod store;
pub mod stream;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use app::App;
use hub::Hub;
use settings::{Database, Service, Settings};
use store::sqlite::SqliteStore;
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

/// Opens the store that the settings name.
pub async fn open_store(settings: &Settings, hub: Arc<Hub>) -> Result<Arc<dyn Store>, LaunchError> {
    match &settings.db {
        Database::Sqlite(location) => {
            let location = location.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&location, hub))
                .await
                .map_err(|e| LaunchError::Config(e.to_string()))??;
            Ok(Arc::new(store))
        }
        Database::Postgres(_) => Err(LaunchError::Config(
            "PostgreSQL is not supported yet: use a SQLite file or :memory:".into(),
        )),
    }
}

/// Serves `settings` on `listener` until `shutdown` completes; open streams
/// end when it does, so the server stops promptly.
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    for service in &settings.services.0 {
        if *service != Service::Persons {
            return Err(LaunchError::Config(format!(
                "the {} service is not available yet",
                service.name()
            )));
        }
    }
    telemetry::prometheus();
    let hub = Arc::new(Hub::new());
    let store = open_store(&settings, Arc::clone(&hub)).await?;
    let (stop, stopped) = watch::channel(false);
    let app = App::new(
        Arc::clone(&store),
        hub,
        stopped.clone(),
        settings.keep_alive,
    );
    let trimmer = retention::spawn(store, settings.retention, stopped);
    let router = http::router(app, &settings.services);
    tracing::info!(addr = %listener.local_addr()?, db = ?settings.db, "serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: ending open streams");
            let _ = stop.send(true);
        })
        .await?;
    let _ = trimmer.await;
    Ok(())
}
