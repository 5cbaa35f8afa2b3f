//! The engine end to end, on a test-only service (`common::notes`: two
//! views written together, and routes that fail on purpose) rather than a
//! product: each module starts the engine in process on 127.0.0.1:0 and
//! speaks HTTP and SSE to it (except `stores`, which drives the store
//! interface itself), on SQLite and, with the `postgres` feature, on a
//! throwaway PostgreSQL server (`common::pg`). One test binary, so the
//! engine is linked once for all of them.

mod bad_input;
mod bounded_shutdown;
mod cache;
mod catch_up;
mod common;
mod connection_limits;
mod cors;
mod document_etags;
mod filters;
mod http_metrics;
mod idempotency_keys;
mod metrics_upkeep;
mod multiplexed;
mod openapi;
mod outbox_continuity;
mod poll;
mod server_errors;
mod snapshot_links;
mod stores;
mod stream_protocol;
mod tokens;
mod views_at_any_size;

/// The PostgreSQL variants are built only with the engine's `postgres`
/// feature (on in the workspace's `cargo test`, where the `duality` command
/// enables it); without it, this says so instead of leaving them out
/// silently.
#[cfg(not(feature = "postgres"))]
#[test]
#[ignore = "the PostgreSQL tests need the engine's postgres feature: cargo test -p duality --features postgres --test it"]
fn the_postgresql_tests_are_built_with_the_postgres_feature() {}
