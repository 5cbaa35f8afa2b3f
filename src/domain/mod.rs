//! Pure logic: views and their registry, the write path, merge-patch diffs,
//! and the built-in services' domain rules (what each write does, dashboard
//! composition). Nothing here does I/O.

pub mod composed_from;
pub mod customers;
pub mod dashboard;
pub mod demo;
pub mod entity;
pub mod fields;
pub mod idempotency;
pub mod incidents;
pub mod merge;
pub mod persons;
pub mod ranking;
pub mod view;
pub mod write;

pub use view::{Registry, View, ViewSpec};
pub use write::{Draft, Fault, Missing, Plan, Source, Write};
