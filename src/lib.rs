//! duality serves every view twice, in forms that always agree: as an
//! aggregate (a JSON document stamped with a revision) and as a change
//! stream (SSE carrying JSON Merge Patches from any revision on).
//!
//! It is also a library. A [`Service`] registers its own views (a
//! [`ViewSpec`] each) and routes; its writes are pure functions over the
//! current state ([`Write`]). A [`Server`] gathers services and launches
//! them; every registered view then gets its snapshot and stream endpoints,
//! revisions, the outbox, retention, SQLite or PostgreSQL, metrics,
//! `/healthz` and OpenAPI entries, with no further code:
//!
//! ```
//! use axum::extract::{Path, State};
//! use axum::http::StatusCode;
//! use axum::response::Response;
//! use axum::routing::put;
//! use duality::settings::Settings;
//! use duality::{ApiJson, App, AppError, Server, Service, View, ViewSpec, Write, written};
//! use serde_json::{Value, json};
//!
//! static NOTES_SPEC: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
//! /// Notes by key: `{"text": …}`.
//! const NOTES: View = View::of(&NOTES_SPEC);
//!
//! /// The write: a pure function of the current state.
//! fn save(key: String, text: String) -> Write {
//!     Write::new(&[NOTES], move |draft| {
//!         draft.put(NOTES, key.clone(), json!({ "text": text }))?;
//!         Ok(Value::Null)
//!     })
//! }
//!
//! async fn put_note(
//!     State(app): State<App>,
//!     Path(key): Path<String>,
//!     ApiJson(text): ApiJson<String>,
//! ) -> Result<Response, AppError> {
//!     let done = app.write(save(key, text)).await?;
//!     Ok(written(StatusCode::NO_CONTENT, done, NOTES))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let notes = Service::new("notes")
//!     .view(NOTES)
//!     .route("/notes/{key}", put(put_note));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // Serves GET /notes, GET /note-events and PUT /notes/{key} until the
//! // shutdown future completes (here: at once).
//! Server::new()
//!     .service(notes)
//!     .launch(Settings::ephemeral(), listener, async {})
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The tree, from the inside out:
//! - [`domain`]: pure logic: views and their [`Registry`], merge-patch
//!   diffs, the write path.
//! - [`store`]: one interface, persisting documents, revisions and the outbox
//!   in one transaction (SQLite with group commit, or PostgreSQL).
//! - [`hub`] and [`stream`]: live fan-out and the one stream path; [`sse`]
//!   is its pure codec.
//! - [`materialized`]: every view kept in memory as shared chunks of
//!   serialised JSON, advanced by its own events; snapshots and read models.
//! - [`app`]: the core every handler goes through.
//! - [`http`]: the router (every registered view's snapshot and stream),
//!   errors and extractors; [`settings`], [`cli`].
//! - [`service`]: the public API for services; [`services`]: the built-in
//!   ones, written on it.

#![warn(missing_docs)]

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
mod run;
pub mod service;
pub mod services;
pub mod settings;
pub mod sse;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use hub::Hub;
use settings::{Database, Settings};
use store::owner::Owner;
use store::sqlite::{Location, SqliteStore};
use store::{Store, StoreError};

pub use app::App;
pub use domain::merge;
pub use domain::view::{Registry, View, ViewSchemas, ViewSpec};
pub use domain::write::{Draft, Fault, Output, Write};
pub use http::error::AppError;
pub use http::extract::ApiJson;
pub use http::idempotency::{KeyHeader, create_once};
pub use http::views::written;
pub use materialized::{Index, MakeIndex};
pub use service::{Context, Health, Server, Service, Started};
pub use store::Committed;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The settings are unusable: a flag given twice, a missing companion
    /// flag or service, a schema file that does not load.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or prepared.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// Binding the listener or serving failed.
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

/// Serves the built-in services (persons, customers, incidents,
/// aggregates, and the `--collection`s) that `settings` selects on `listener` until `shutdown`
/// completes; see [`Server::launch`].
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LaunchError> {
    services::builtin(&settings)?
        .launch(settings, listener, shutdown)
        .await
}
