//! Read models: what a view's in-memory copy tells about each document
//! change, so that an index stays current in O(log n) per change.

use std::any::Any;

/// A read model kept current from a view's document changes.
///
/// It is given each document as its stored JSON text, so it parses it
/// straight into its own typed document (no `Value` in between).
pub trait Index: Send + Sync + 'static {
    /// The document at `key` went from `old` to `new` (`None`: absent),
    /// each given as its JSON text.
    fn change(&mut self, key: &str, old: Option<&str>, new: Option<&str>);
    /// The index itself, so that a handler can downcast it to its concrete
    /// type.
    fn as_any(&self) -> &dyn Any;
}

/// A document's key and its new stored JSON text (`None`: deleted).
pub type DocText = (String, Option<String>);

/// Makes an empty index (one per view and process).
pub type MakeIndex = fn() -> Box<dyn Index>;
