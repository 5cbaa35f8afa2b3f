//! Views, as registered at start.
//!
//! A view is a keyed JSON map `{key: document}` with its own revision
//! counter. The engine knows no view by name: each service describes its
//! views with a [`ViewSpec`] (name, where its snapshot and stream are
//! served, its read models, its OpenAPI schema) and hands them to the
//! [`Registry`] when the process starts. The write path, the store, the
//! in-memory copies and the stream path serve every registered view alike.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::derive::Derive;
use crate::index::MakeIndex;

/// What the engine needs to know about one view. Built in a `static` (all
/// of its constructors are `const`), or at run time and leaked once with
/// [`View::leak`].
#[derive(Debug)]
pub struct ViewSpec {
    name: &'static str,
    snapshot_path: &'static str,
    stream_path: &'static str,
    indexes: &'static [MakeIndex],
    schemas: Option<fn() -> ViewSchemas>,
    composed: bool,
    derives: &'static [&'static dyn Derive],
}

/// A view's OpenAPI schemas: its snapshot's (a component named `name`),
/// and other components: those it refers to, and those its service's
/// paths use (they are in the document whenever the view is served).
#[derive(Debug, Clone)]
pub struct ViewSchemas {
    /// The component name of the snapshot schema.
    pub name: &'static str,
    /// The schema of the whole view.
    pub snapshot: Value,
    /// Other components, by name.
    pub parts: Vec<(&'static str, Value)>,
}

impl ViewSpec {
    /// A view named `name` (the name used in the store, in metrics and in
    /// `/healthz`), served whole at `snapshot_path` and as a change stream
    /// at `stream_path`.
    pub const fn new(
        name: &'static str,
        snapshot_path: &'static str,
        stream_path: &'static str,
    ) -> ViewSpec {
        ViewSpec {
            name,
            snapshot_path,
            stream_path,
            indexes: &[],
            schemas: None,
            composed: false,
            derives: &[],
        }
    }

    /// Read models kept current with the view's in-memory copy (see
    /// [`Index`](crate::index::Index)).
    pub const fn indexes(mut self, indexes: &'static [MakeIndex]) -> ViewSpec {
        self.indexes = indexes;
        self
    }

    /// Views derived from this one's documents, kept in the same write as
    /// every change of it (see [`derive`](crate::derive)).
    pub const fn derived(mut self, derives: &'static [&'static dyn Derive]) -> ViewSpec {
        self.derives = derives;
        self
    }

    /// The view's schemas, for the OpenAPI document.
    pub const fn schemas(mut self, schemas: fn() -> ViewSchemas) -> ViewSpec {
        self.schemas = Some(schemas);
        self
    }

    /// Marks a view composed from other services: its snapshot answers
    /// `X-Stale` (whether an upstream is lost, see
    /// the engine's hub).
    pub const fn composed(mut self) -> ViewSpec {
        self.composed = true;
        self
    }
}

/// A cheap handle on a registered view. Equal, hashed and ordered by name.
#[derive(Clone, Copy)]
pub struct View(&'static ViewSpec);

impl View {
    /// The handle of a view described in a `static`.
    pub const fn of(spec: &'static ViewSpec) -> View {
        View(spec)
    }

    /// The handle of a view described at run time; the description is
    /// kept for the life of the process (register each once).
    pub fn leak(spec: ViewSpec) -> View {
        View(Box::leak(Box::new(spec)))
    }

    /// The name used in the store, in metrics and in `/healthz`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Where the whole view is served (`GET`).
    pub fn snapshot_path(self) -> &'static str {
        self.0.snapshot_path
    }

    /// Where the view's change stream is served.
    pub fn stream_path(self) -> &'static str {
        self.0.stream_path
    }

    /// The makers of the view's read models.
    pub fn indexes(self) -> &'static [MakeIndex] {
        self.0.indexes
    }

    /// The view's OpenAPI schemas, if its service gave them.
    pub fn schemas(self) -> Option<ViewSchemas> {
        self.0.schemas.map(|make| make())
    }

    /// The derivations kept from this view's documents (see
    /// [`ViewSpec::derived`]).
    pub fn derives(self) -> &'static [&'static dyn Derive] {
        self.0.derives
    }

    /// Whether the view is composed from other services (see
    /// [`ViewSpec::composed`]).
    pub fn is_composed(self) -> bool {
        self.0.composed
    }
}

impl PartialEq for View {
    fn eq(&self, other: &View) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for View {}

impl Hash for View {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for View {
    fn partial_cmp(&self, other: &View) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for View {
    fn cmp(&self, other: &View) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "View({})", self.0.name)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The views one process serves, registered at start. Names and paths
/// are unique.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    views: BTreeMap<&'static str, View>,
}

impl Registry {
    /// A registry of `views`; refuses a name or a path used twice, and a
    /// name that is not plain (ASCII letters, digits, `-`, `_`, `.`; 1 to
    /// 128 characters), as names are stored and sent as they are.
    pub fn new(views: impl IntoIterator<Item = View>) -> Result<Registry, String> {
        let mut registry = Registry::default();
        let mut paths = std::collections::HashSet::new();
        for view in views {
            if !plain_name(view.name()) {
                return Err(format!(
                    "`{view}` is not a view name: use 1 to 128 ASCII letters, digits, -, _ or ."
                ));
            }
            if registry.views.insert(view.name(), view).is_some() {
                return Err(format!("the view `{view}` is registered twice"));
            }
            for path in [view.snapshot_path(), view.stream_path()] {
                if !paths.insert(path) {
                    return Err(format!("the path `{path}` is used by two views"));
                }
            }
        }
        Ok(registry)
    }

    /// Every registered view, by name.
    pub fn views(&self) -> impl Iterator<Item = View> + '_ {
        self.views.values().copied()
    }

    /// The view registered under `name`.
    pub fn get(&self, name: &str) -> Option<View> {
        self.views.get(name).copied()
    }

    /// Whether `view` is registered.
    pub fn contains(&self, view: View) -> bool {
        self.views.contains_key(view.name())
    }
}

fn plain_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: ViewSpec = ViewSpec::new("a", "/a", "/a-events");
    static B: ViewSpec = ViewSpec::new("b", "/b", "/b-events");

    #[test]
    fn views_are_found_by_name_and_compare_by_name() {
        let registry = Registry::new([View::of(&A), View::of(&B)]).unwrap();
        assert_eq!(registry.get("a"), Some(View::of(&A)));
        assert_eq!(registry.get("nope"), None);
        let again = View::leak(ViewSpec::new("a", "/x", "/y"));
        assert_eq!(again, View::of(&A));
        assert!(View::of(&A) < View::of(&B));
    }

    #[test]
    fn a_name_or_a_path_used_twice_is_refused() {
        let twin = View::leak(ViewSpec::new("a", "/c", "/c-events"));
        assert!(Registry::new([View::of(&A), twin]).is_err());
        let clash = View::leak(ViewSpec::new("c", "/a", "/c-events"));
        assert!(Registry::new([View::of(&A), clash]).is_err());
    }
}
