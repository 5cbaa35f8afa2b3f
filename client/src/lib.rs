//! A light client for duality servers: follow any view and keep a local
//! copy current.
//!
//! A [`Follower`] loads the view's snapshot (`X-Revision`, `X-Epoch`),
//! follows its change stream of JSON Merge Patches from the next revision,
//! and applies each patch in order. It reconnects on its own and starts
//! over from the snapshot when the server says its position is gone or its
//! history changed. This crate has no server dependencies; the duality
//! server builds its aggregates service on it too.
//!
//! A [`FollowerSet`] follows several views (each maybe filtered) over one
//! connection, each member resuming exactly after a reconnect.
//!
//! Every fallible call returns [`Error`], whose variants say whether to
//! retry, fix the token or URL, or start over from a snapshot.
#![warn(missing_docs)]

pub mod error;
pub mod follower;
pub mod set;
pub mod transport;

pub use error::Error;
pub use follower::{
    Follower, Health, Observer, Options, STREAM_REL, ViewCopy, split_url, stream_link,
};
pub use set::{FollowerSet, Member};
pub use transport::{Http, Reply, Transport};
