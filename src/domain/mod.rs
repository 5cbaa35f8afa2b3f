//! Pure logic of the engine: views and their registry, the write path,
//! merge-patch diffs, idempotency keys. Nothing here does I/O, and nothing
//! here knows a service.

pub mod idempotency;
pub mod merge;
pub mod view;
pub mod write;

pub use view::{Registry, View, ViewSpec};
pub use write::{Draft, Fault, Missing, Plan, Source, Write};
