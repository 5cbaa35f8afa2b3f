//! Launching a [`Server`]: open the store, load every registered view once,
//! run the services' start hooks, then serve until shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::domain::view::Registry;
use crate::hub::Hub;
use crate::service::{Context, Server};
use crate::settings::Settings;
use crate::{LaunchError, http, net, open_store, retention, telemetry};

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

/// Serves the services of `server` that `settings` selects on `listener`
/// until `shutdown` completes; open streams end when it does, and
/// connections still open `--shutdown-grace` later are closed, so the
/// server stops in bounded time.
pub async fn run(
    server: Server,
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    check_exposure(&settings, listener.local_addr()?)?;
    let selected = server.select(&settings)?;
    let registry = Arc::new(Registry::new(selected.views()).map_err(LaunchError::Config)?);
    telemetry::prometheus();
    let hub = Arc::new(Hub::new(Arc::clone(&registry)));
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
    let mut parts = selected.parts();
    let running = selected.names();
    let context = Context {
        app: app.clone(),
        settings: settings.clone(),
        local: http::router(app.clone(), &parts, &http::Edge::default()),
        running: running.clone(),
    };
    selected.start(context, &mut parts).await?;
    let trimmer = retention::spawn(Arc::clone(&store), settings.retention, stopped);
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
