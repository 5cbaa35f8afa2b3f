//! The listening side of the server: our own accept loop over hyper, so
//! that a connection can be bounded in ways `axum::serve` cannot (a
//! header-read timeout, a connection cap answered with `503`, a shutdown
//! that gives up on connections after a grace period), and the process's
//! file-descriptor limit that sizes the cap.

pub mod fds;
pub mod serve;

pub use serve::{Limits, serve};
