//! duality serves every view twice, in forms that always agree: as an
//! aggregate (a JSON document stamped with a revision) and as a change
//! stream (SSE carrying JSON Merge Patches from any revision on).
//!
//! It is also a library. A [`Service`] registers its own views (a
//! [`ViewSpec`] each) and routes; its writes are pure functions over the
//! current state ([`Write`]). A [`Server`] gathers services and launches
//! them; every registered view then gets its snapshot and stream endpoints,
//! revisions, the outbox, retention, SQLite or PostgreSQL, metrics,
//! `/healthz`, OpenAPI entries and a live panel on the page at `/` (a
//! table of its documents, or the richer one [`Service::panel`] gives),
//! with no further code:
//!
//! ```
//! use axum::extract::{Path, State};
//! use axum::http::StatusCode;
//! use axum::response::Response;
//! use axum::routing::put;
//! use duality::{ApiJson, App, Config, Error, Server, Service, View, ViewSpec, Write, written};
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
//! ) -> Result<Response, Error> {
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
//!     .launch(Config::ephemeral(), listener, async {})
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The tree, from the inside out (docs/ARCHITECTURE.md has the map):
//! - `duality-core`, re-exported as [`domain`]: pure logic: views and
//!   their [`Registry`], merge-patch diffs, the write path, chunks, SSE
//!   framing.
//! - [`store`]: one interface, persisting documents, revisions and the
//!   outbox in one transaction (SQLite with group commit, or PostgreSQL),
//!   announcing commits through its own [`store::Publish`] trait.
//! - [`materialized`]: every view kept in memory as shared chunks of
//!   serialised JSON, advanced by its own events; snapshots and read models.
//! - [`hub`]: implements `Publish`: advances the copies and fans committed
//!   events out.
//! - [`app`]: the core every handler goes through; [`stream`], the one
//!   stream path, and [`poll`] are built on it, and answer a position
//!   older than the retained events with [`catch_up`].
//! - [`http`]: the router (every registered view's snapshot and stream),
//!   errors and extractors; [`settings`] holds the engine's [`Config`].
//! - [`service`]: the public API for services, and [`Server::launch`].

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("duality needs a store: enable its `sqlite` feature (the default) or `postgres`");

pub mod app;
pub mod catch_up;
pub mod client;
pub mod error;
pub mod http;
pub mod hub;
pub mod in_flight;
pub mod interest;
#[cfg(test)]
mod layers;
pub mod materialized;
pub mod net;
pub mod poll;
pub mod retention;
mod run;
pub mod service;
pub mod settings;
pub mod store;
pub mod stream;
pub mod telemetry;

/// The pure core (the `duality-core` crate): views, writes, merge patches.
pub use duality_core as domain;

pub use app::{App, DocAt};
pub use domain::merge;
pub use domain::view::{Registry, View, ViewSchemas, ViewSpec};
pub use domain::write::{Draft, Output, Write};
pub use domain::{Error, Index, MakeIndex};
pub use error::LaunchError;
pub use http::document::Conditions;
pub use http::extract::ApiJson;
pub use http::idempotency::{KeyHeader, create_once};
pub use http::views::written;
pub use service::{Context, Health, Panel, Server, Service, Started};
pub use settings::Config;
pub use store::{Committed, DocCheck, MetaChange, MetaSet};
