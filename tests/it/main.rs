//! The `duality` command and its built-in services, end to end: each module
//! starts real servers on 127.0.0.1:0 (in process, or the binary as a child)
//! and speaks HTTP and SSE to them. One test binary, so the workspace links
//! the server once for all of them. The engine's own protocol (stream
//! positions, retention, tokens, CORS, limits, errors) is tested on a
//! test-only service in crates/duality/tests/it.

mod aggregate_pattern;
mod bad_input;
mod browser;
mod collections;
mod command_line;
mod common;
mod config_file;
mod connection_limits;
mod dashboard_flushes;
mod derived_views;
mod durability;
mod idempotency_keys;
mod node_consumer;
mod one_process_per_sqlite_file;
mod openapi_conformance;
mod openapi_schemas;
mod operations;
mod persons_and_locations;
mod postgres_outage;
mod postgres_processes;
mod readme_commands;
mod rust_client;
mod safe_collection_writes;
mod stored_schemas;
mod tokens;
mod watch_command;
mod workspace;
