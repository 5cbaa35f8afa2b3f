//! The pure heart of duality: no I/O, no runtime, nothing that knows a
//! service. Everything here is a value or a function over values, unit- and
//! property-tested beside its code.
//!
//! - [`view`]: views and the [`Registry`] of those a process serves.
//! - [`write`]: the one write path ([`Write`] over a [`Draft`], then
//!   `plan`).
//! - [`derive`]: views derived from another view's documents, kept in
//!   the same write, and the models stores keep to derive them.
//! - [`error`]: the one [`Error`] model, from a write to the HTTP answer.
//! - [`merge`]: RFC 7396 merge patches, their minimal diff and apply.
//! - [`idempotency`]: `Idempotency-Key`s, request fingerprints, outcomes.
//! - [`precondition`]: a document's `ETag`, and `If-Match` /
//!   `If-None-Match` checked against it.
//! - [`chunks`] and [`body`]: a view as shared chunks of serialised JSON,
//!   and the identity and gzip bodies assembled from them.
//! - [`index`]: the read-model interface a view's copy keeps current.
//! - [`sse`]: Server-Sent Events framing.
//! - [`position`]: where a stream starts, from what the client sent.
//! - [`filter`]: the subset of a view a consumer subscribes to.
//! - [`catch_up`]: the one patch that catches a long-absent consumer up,
//!   from which keys changed.

#![warn(missing_docs)]

pub mod body;
pub mod catch_up;
pub mod chunks;
pub mod deflate;
pub mod derive;
pub mod error;
pub mod filter;
pub mod idempotency;
pub mod index;
pub mod merge;
pub mod position;
pub mod precondition;
pub mod sse;
pub mod view;
pub mod write;

pub use chunks::Chunks;
pub use error::Error;
pub use filter::{Anchor, Filter, Restrict};
pub use index::{DocText, Index, MakeIndex};
pub use precondition::Preconditions;
pub use view::{Registry, View, ViewSchemas, ViewSpec};
pub use write::{Draft, Missing, Output, Plan, Source, Write};
