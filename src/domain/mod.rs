//! Pure domain logic: what a write does to each view, merge-patch diffs, and
//! dashboard composition. Nothing here does I/O.

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

pub use view::View;
pub use write::{Draft, Fault, Missing, Plan, Source, Write};

/// The read models kept with each view's in-memory copy.
pub fn indexes(view: View) -> Vec<crate::materialized::MakeIndex> {
    match view {
        View::Customers => vec![customers::index],
        View::Incidents => vec![incidents::index],
        _ => Vec::new(),
    }
}
