//! Derived views (`[derived.NAME]` in the configuration file, SPEC §15):
//! views computed from a collection's documents, grouped by a JSON
//! Pointer, with counts, sums, minimums and maximums per group.
//! [`spec`] is what the file declares, checked.

pub mod groups;
pub mod number;
pub mod spec;

pub use spec::{DerivedSpec, Pointer, Top};
