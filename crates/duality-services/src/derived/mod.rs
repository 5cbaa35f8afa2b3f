//! Derived views (`[derived.NAME]` in the configuration file, docs/ARCHITECTURE.md, "Derived views"):
//! views computed from a collection's documents, grouped by a JSON
//! Pointer, with counts, sums, minimums and maximums per group, and
//! optionally only the largest groups (`top`). [`spec`] is what the file
//! declares, checked; [`groups`] the pure state and what a write changes
//! in it; [`number`] how numbers are ordered and summed.
//!
//! Each derived view is an ordinary view (`derived.NAME`, served at
//! `/derived/NAME` and `/derived/NAME/events` with the protocol every view
//! has), registered by the collections service, and a
//! [`Derive`](duality::domain::derive::Derive) on its collection's view:
//! every write of the collection, whichever route made it, changes the
//! derived view in the same transaction (see the engine's
//! `duality_core::derive`). The store keeps each derived view's
//! [`Groups`](groups::Groups) at the collection's revision, loaded once
//! when the process starts.

pub mod groups;
pub mod number;
pub mod spec;

use serde_json::{Map, Value, json};

use duality::domain::derive::{Change, Derivation, Derive, Output};
use duality::{Error, View, ViewSpec};
use groups::{Groups, Shape};
pub use spec::{DerivedSpec, Pointer, Top};

/// One declared derived view: its spec and its view.
#[derive(Debug, Clone)]
pub struct Derived {
    /// What it declares.
    pub spec: DerivedSpec,
    /// Its view, `derived.NAME`.
    pub view: View,
    /// The derivation to register on its collection's view.
    pub derive: &'static dyn Derive,
}

impl Derived {
    /// The view and derivation of `spec` (leaked: registered once per
    /// process, for its life).
    pub fn new(spec: &DerivedSpec) -> Derived {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let view = View::leak(ViewSpec::new(
            leak(spec.view_name()),
            leak(spec.path()),
            leak(spec.events_path()),
        ));
        let derive: &'static dyn Derive = Box::leak(Box::new(ByGroup {
            shape: Shape::new(spec),
            views: [view],
        }));
        Derived {
            spec: spec.clone(),
            view,
            derive,
        }
    }

    /// The schema of one of its documents, for the OpenAPI document.
    pub fn doc_schema(&self) -> Value {
        let mut properties = Map::new();
        let number = |what: String| json!({"type": "number", "description": what});
        if let Some(count) = &self.spec.count {
            properties.insert(
                count.clone(),
                json!({"type": "integer", "minimum": 1, "description": "How many documents the group has"}),
            );
        }
        for (member, pointer) in &self.spec.sum {
            properties.insert(
                member.clone(),
                number(format!("The sum of the numbers at {pointer} (0 when none is a number; an integer while every one is)")),
            );
        }
        for (member, pointer) in &self.spec.min {
            properties.insert(
                member.clone(),
                number(format!(
                    "The smallest number at {pointer} (absent when none is a number)"
                )),
            );
        }
        for (member, pointer) in &self.spec.max {
            properties.insert(
                member.clone(),
                number(format!(
                    "The largest number at {pointer} (absent when none is a number)"
                )),
            );
        }
        if let Some(top) = &self.spec.top {
            properties.insert(
                spec::RANK.into(),
                json!({"type": "integer", "minimum": 1, "maximum": top.limit,
                       "description": format!("The group's place by {} (largest first, ties by key)", top.by)}),
            );
        }
        json!({"type": "object", "properties": properties, "additionalProperties": false})
    }
}

/// The derivation of one derived view.
#[derive(Debug)]
struct ByGroup {
    shape: Shape,
    views: [View; 1],
}

impl Derive for ByGroup {
    fn views(&self) -> &[View] {
        &self.views
    }

    fn start(&self) -> Box<dyn Derivation> {
        Box::new(State {
            groups: Groups::new(self.shape.clone()),
            view: self.views[0],
        })
    }
}

struct State {
    groups: Groups,
    view: View,
}

impl Derivation for State {
    fn change(&mut self, _key: &str, old: Option<&Value>, new: Option<&Value>) {
        self.groups.change(old, new);
    }

    fn derive(&self, changes: &[Change<'_>]) -> Result<Vec<Output>, Error> {
        let out = self.groups.derive(changes.iter().map(|c| (c.old, c.new)));
        Ok(out
            .into_iter()
            .map(|(key, doc, before)| Output {
                view: self.view,
                key,
                doc,
                before,
            })
            .collect())
    }

    fn all(&self) -> Vec<(View, Map<String, Value>)> {
        vec![(self.view, self.groups.all())]
    }

    fn doc(&self, view: View, key: &str) -> Option<Value> {
        (view == self.view)
            .then(|| self.groups.doc_of(key))
            .flatten()
    }
}
