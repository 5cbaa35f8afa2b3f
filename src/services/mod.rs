//! The built-in services, each written on the public API alone (as a
//! crate of its own would be): persons and locations, and the Aggregate
//! Pattern's customers, incidents and aggregates.

pub mod aggregate;
pub mod collections;
pub mod demo;
pub mod fields;
pub mod openapi;
pub mod persons;

use crate::settings::Settings;
use crate::{Context, LaunchError, Server};

/// The server of the `duality` binary: the four built-in services, the
/// collections that `settings` name (`--collection`), and `--demo-data`.
/// Fails if a collection's schema cannot be read or compiled.
pub fn builtin(settings: &Settings) -> Result<Server, LaunchError> {
    Ok(Server::new()
        .check_with(demo_needs_backends)
        .check_with(collections_need_their_service)
        .on_start(load_demo_data)
        .service(persons::service())
        .service(aggregate::customers_service())
        .service(aggregate::incidents_service())
        .service(aggregate::aggregates_service())
        .service(collections::service(&settings.collections)?))
}

/// `--collection` with `--services` that leave collections out would serve
/// nothing of them: refused.
fn collections_need_their_service(
    settings: &Settings,
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
fn demo_needs_backends(settings: &Settings, running: &[&'static str]) -> Result<(), String> {
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
async fn load_demo_data(cx: Context) -> Result<(), LaunchError> {
    if !cx.settings.demo_data {
        return Ok(());
    }
    let app = &cx.app;
    let empty = app.revision(aggregate::CUSTOMERS) == 0 && app.revision(aggregate::INCIDENTS) == 0;
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
