//! The built-in services, each written on the engine's public API alone:
//! persons and locations; the Aggregate Pattern's customers, incidents and
//! aggregates (the dashboard); and `--collection`s. Each brings its own
//! settings ([`settings::Builtin`]), OpenAPI entries, metrics and panels on
//! the page at `/` ([`panels`]).

pub mod aggregate;
pub mod collections;
pub mod config_file;
pub mod demo;
pub mod derived;
pub mod fields;
pub mod openapi;
pub mod panels;
pub mod persons;
pub mod settings;

use std::future::Future;

use duality::{Context, LaunchError, Server, Service};
use tokio::net::TcpListener;

pub use settings::{Builtin, Settings};

/// The server of the `duality` binary: the built-in services that
/// `--services` selects, the collections that `settings` name
/// (`--collection`), and `--demo-data`. Refuses a service name it does not
/// know, and settings that need a service left out; fails if a
/// collection's schema cannot be read or compiled.
pub fn builtin(settings: &Builtin) -> Result<Server, LaunchError> {
    let all: Vec<Service> = vec![
        persons::service(),
        aggregate::customers_service(),
        aggregate::incidents_service(),
        aggregate::aggregates_service(settings.upstreams()),
        collections::service(
            &settings.collections,
            &settings.derived,
            &settings.replace_schema,
            settings.collection_batch_limit.0,
        )?,
    ];
    let known: Vec<&'static str> = all.iter().map(Service::name).collect();
    let services = settings.selected();
    if let Some(wanted) = services.names()
        && let Some(unknown) = wanted.iter().find(|w| !known.contains(&w.as_str()))
    {
        return Err(LaunchError::Config(format!(
            "unknown service `{unknown}` in --services; this server has {}",
            known.join(", ")
        )));
    }
    let selected: Vec<Service> = all
        .into_iter()
        .filter(|s| services.contains(s.name()))
        .collect();
    let running: Vec<&'static str> = selected.iter().map(Service::name).collect();
    demo_needs_backends(settings, &running).map_err(LaunchError::Config)?;
    collections_need_their_service(settings, &running).map_err(LaunchError::Config)?;
    let demo = settings.demo_data;
    let server = selected
        .into_iter()
        .fold(Server::new(), Server::service)
        .on_start(move |cx| load_demo_data(cx, demo));
    Ok(server)
}

/// Serves the built-in services that `settings` select on `listener` until
/// `shutdown` completes (see [`Server::launch`]).
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    builtin(&settings.builtin)?
        .launch(settings.engine, listener, shutdown)
        .await
}

/// `--collection` with `--services` that leave collections out would serve
/// nothing of them: refused.
fn collections_need_their_service(
    settings: &Builtin,
    running: &[&'static str],
) -> Result<(), String> {
    if !settings.collections.is_empty() && !running.contains(&collections::SERVICE) {
        return Err(format!(
            "--collection needs the {} service: add it to --services",
            collections::SERVICE
        ));
    }
    Ok(())
}

/// `--demo-data` loads customers and incidents: both must run here.
fn demo_needs_backends(settings: &Builtin, running: &[&'static str]) -> Result<(), String> {
    if settings.demo_data && !(running.contains(&"customers") && running.contains(&"incidents")) {
        return Err(
            "--demo-data needs the customers and incidents services in this process".into(),
        );
    }
    Ok(())
}

/// `--demo-data`: the customers and incidents sample into an empty pair of
/// views, and the persons sample when the persons service runs here and
/// no person was ever created. Says what it loaded and what it skipped.
async fn load_demo_data(cx: Context, demo: bool) -> Result<(), LaunchError> {
    if !demo {
        return Ok(());
    }
    let app = &cx.app;
    let empty =
        app.revision(aggregate::CUSTOMERS)? == 0 && app.revision(aggregate::INCIDENTS)? == 0;
    if empty {
        app.write(demo::load()).await?;
        tracing::info!("loaded the demo customers and incidents");
    } else {
        tracing::info!("skipped the demo customers and incidents: the database already holds some");
    }
    if !cx.runs("persons") {
        return Ok(());
    }
    let committed = app.write(demo::load_persons()).await?;
    if committed.output == serde_json::Value::Bool(true) {
        tracing::info!("loaded the demo persons");
    } else {
        tracing::info!("skipped the demo persons: this database has had persons before");
    }
    Ok(())
}
