//! Launching a [`Server`]: open the store, load every registered view once,
//! bring derived views up to date with the views they are derived from,
//! run the services' start hooks, then serve until shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use duality_core::derive::{self, Models};
use duality_core::view::Registry;
use duality_core::{Error, View};

use crate::app::App;
use crate::error::LaunchError;
use crate::hub::Hub;
use crate::service::{Context, Server};
use crate::settings::{Config, Database};
use crate::store::owner::Owner;
use crate::store::{Publish, Store};
use crate::{http, net, retention, telemetry};

/// Refuses open writes on an address other machines can reach, unless the
/// operator said so (docs/PROTOCOL.md, "Security model").
fn check_exposure(settings: &Config, addr: std::net::SocketAddr) -> Result<(), LaunchError> {
    if addr.ip().is_loopback() || !settings.write_token.is_empty() || settings.open_writes {
        return Ok(());
    }
    Err(LaunchError::Config(format!(
        "refusing to serve open writes on {addr}, which is not a loopback address: \
         give --write-token TOKEN, or --open-writes to let anyone who reaches it write"
    )))
}

/// Opens the store that the configuration names, publishing to `hub`. A
/// SQLite file comes with its [`Owner`] lock, to be held while the file is
/// served.
async fn open_store(
    settings: &Config,
    hub: Arc<dyn Publish>,
) -> Result<(Arc<dyn Store>, Option<Owner>), LaunchError> {
    match &settings.db {
        #[cfg(not(feature = "sqlite"))]
        Database::Sqlite(_) => Err(LaunchError::Config(
            "this build has no SQLite store (the engine's `sqlite` feature): give a postgres:// URL".into(),
        )),
        #[cfg(feature = "sqlite")]
        Database::Sqlite(location) => {
            use crate::store::Location;
            use crate::store::owner;
            use crate::store::sqlite::SqliteStore;
            let owner = match location {
                Location::File(path) => Some(owner::claim(path)?),
                Location::Memory => None,
            };
            let location = location.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&location, hub))
                .await
                .map_err(|e| LaunchError::Config(e.to_string()))??;
            Ok((Arc::new(store), owner))
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(_) => Err(LaunchError::Config(
            "this build has no PostgreSQL store: build with the engine's `postgres` feature".into(),
        )),
        #[cfg(feature = "postgres")]
        Database::Postgres(url) => Ok((
            Arc::new(crate::store::postgres::PgStore::open(url, hub).await?),
            None,
        )),
    }
}

/// How often start-up tries to bring a view's derived views up to date
/// while other processes keep writing them.
const REDERIVE_ATTEMPTS: usize = 50;
/// Derived documents written per write when bringing them up to date: an
/// event holds them all, and a very large event slows down every later
/// insert into the outbox next to it (SQLite compares whole rows).
const REFRESH_CHUNK: usize = 256;

/// Writes the derived documents of `view` that differ from what its
/// derivations answer for its documents: none, unless a derivation is new
/// or changed since the view was last written (see [`derive::rederive`]).
/// Compares with this process's copies, then writes the differences
/// [`REFRESH_CHUNK`] at a time.
async fn rederive(app: &App, view: View) -> Result<(), Error> {
    let derived: Vec<View> = view
        .derives()
        .iter()
        .flat_map(|d| d.views().iter().copied())
        .collect();
    for _ in 0..REDERIVE_ATTEMPTS {
        let mut current = Vec::with_capacity(derived.len());
        for &d in &derived {
            let snapshot = app.snapshot(d).await?;
            let mut docs = serde_json::Map::new();
            for (key, text) in snapshot.docs.iter() {
                let doc = serde_json::from_str(text).map_err(|e| {
                    Error::internal_from(format!("the {d} document {key} is unreadable"), e)
                })?;
                docs.insert(key.to_string(), doc);
            }
            current.push((d, snapshot.revision, docs));
        }
        let found = app.write(derive::rederive(view, current)).await?;
        let serde_json::Value::Array(stale) = found.output else {
            // Another process wrote a derived view since this copy was taken.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let stale: Vec<(View, String)> = stale
            .iter()
            .filter_map(|pair| {
                let d = derived.iter().find(|d| pair[0] == d.name())?;
                Some((*d, pair[1].as_str()?.to_string()))
            })
            .collect();
        if !stale.is_empty() {
            tracing::info!(%view, documents = stale.len(), "bringing derived views up to date");
        }
        for chunk in stale.chunks(REFRESH_CHUNK) {
            app.write(derive::refresh(view, chunk.to_vec())).await?;
        }
        return Ok(());
    }
    Err(Error::store_unavailable(format!(
        "the views derived from {view} kept moving while this process started"
    )))
}

impl Server {
    /// Serves every service of this server on `listener` until `shutdown`
    /// completes; open streams end when it does, and connections still
    /// open `--shutdown-grace` later are closed, so the server stops in
    /// bounded time.
    pub async fn launch(
        self,
        settings: Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LaunchError> {
        run(self, settings, listener, shutdown).await
    }
}

async fn run(
    server: Server,
    settings: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    // A library app logs like the `duality` command: `info` unless
    // RUST_LOG says otherwise (nothing, if the app installed its own).
    telemetry::init_tracing();
    settings.check().map_err(LaunchError::Config)?;
    check_exposure(&settings, listener.local_addr()?)?;
    let selected = server;
    let registry = Arc::new(Registry::new(selected.views()).map_err(LaunchError::Config)?);
    telemetry::prometheus();
    telemetry::describe(&selected.metrics());
    let hub = Arc::new(Hub::new(Arc::clone(&registry)));
    // Held until this function returns: no other process serves the file.
    let (store, _owner) = open_store(&settings, hub.clone()).await?;
    // The one read of every view; from here on they advance by events.
    hub.views()
        .load(&*store, |view| hub.latest(view).unwrap_or(0))
        .await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = App::new(
        Arc::clone(&store),
        Arc::clone(&hub),
        stopped.clone(),
        settings.keep_alive,
    );
    for view in registry.views().filter(|v| Models::modeled(*v)) {
        rederive(&app, view).await?;
    }
    let mut parts = selected.parts();
    let running = selected.names();
    let context = Context {
        app: app.clone(),
        config: settings.clone(),
        local: http::router(app.clone(), &parts, &http::Edge::default()),
        running: running.clone(),
    };
    selected.start(context, &mut parts).await?;
    let trimmer = retention::spawn(
        Arc::clone(&store),
        settings.retention,
        settings.catch_up_horizon,
        stopped,
    );
    let edge = http::Edge::from_settings(&settings);
    let router = http::router(app, &parts, &edge);
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
        services = ?running,
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
    let deadline = tokio::time::Instant::now() + settings.shutdown_grace;
    let _ = tokio::time::timeout_at(deadline, trimmer).await;
    // Before the file is released to another process: every commit flushed.
    match tokio::time::timeout_at(deadline, store.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "closing the store failed"),
        Err(_) => tracing::warn!("closing the store took longer than the grace; left as it is"),
    }
    Ok(())
}
