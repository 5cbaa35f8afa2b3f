//! The engine end to end, on a test-only service (`common::notes`: two
//! views written together, and routes that fail on purpose) rather than a
//! product: each module starts the engine in process on 127.0.0.1:0 and
//! speaks HTTP and SSE to it. One test binary, so the engine is linked
//! once for all of them.

mod bad_input;
mod bounded_shutdown;
mod common;
mod connection_limits;
mod cors;
mod filters;
mod openapi;
mod outbox_continuity;
mod server_errors;
mod snapshot_links;
mod stream_protocol;
mod tokens;
