//! Views derived from another view in the same write.
//!
//! A view may carry [`Derive`]s (see [`ViewSpec::derived`]): each keeps
//! other views as a function of the view's documents (counts per group,
//! a top-N). Every write that declares the view also declares those views
//! ([`Write::new`] adds them), and after the write's function ran, each
//! derivation is told the view's document changes and answers the derived
//! documents they change, which go into the same draft: one transaction,
//! one event per view the write changes, whoever wrote the view.
//!
//! To answer in O(log n), a derivation keeps a state ([`Derivation`]) of
//! the whole view: a [`Model`]. The store that runs the writes owns the
//! [`Models`] and keeps each at the revision of its view inside the write's
//! serialisation: it loads it once at start from the view's documents,
//! [`apply`](Models::apply)s each planned write to it before the next write
//! of the batch runs, [`undo`](Models::undo)es a batch that did not commit,
//! and (on PostgreSQL, where other processes write too) first catches it up
//! with the view's events committed since ([`Models::follow`]).
//!
//! A derivation's documents must equal what its [`all`](Derivation::all)
//! answers at every revision; [`rederive`] finds where what is stored
//! differs (at start: the derivation may be new, or changed, since the
//! view was last written) and [`refresh`] writes those documents, a few
//! at a time.
//!
//! Derived views are not derived from in turn: a write's derivations run
//! on the documents its own function changed.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::merge;
use crate::view::View;
use crate::write::{Draft, Plan, Write};

/// One document of the source view as a write changes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change<'a> {
    /// The document's key.
    pub key: &'a str,
    /// The document before the write (`None`: absent).
    pub old: Option<&'a Value>,
    /// The document after the write (`None`: deleted).
    pub new: Option<&'a Value>,
}

/// A document of a derived view that a write changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The derived view.
    pub view: View,
    /// The document's key.
    pub key: String,
    /// The document after the write (`None`: deleted).
    pub doc: Option<Value>,
    /// The document before it, as the derivation's state has it (`None`:
    /// absent). The state is exact, so the write's plan takes it for the
    /// stored document rather than reading that again.
    pub before: Option<Value>,
}

/// Keeps views derived from one view's documents (registered on that
/// view's spec, see [`ViewSpec::derived`](crate::view::ViewSpec::derived)).
pub trait Derive: fmt::Debug + Send + Sync + 'static {
    /// The views it writes; every write of the source view declares them.
    fn views(&self) -> &[View];
    /// Its state over an empty source view.
    fn start(&self) -> Box<dyn Derivation>;
}

/// A derivation's state over the whole source view (see the module docs).
pub trait Derivation: Send + Sync + 'static {
    /// The source document at `key` went from `old` to `new` (committed,
    /// or planned by a write of the batch).
    fn change(&mut self, key: &str, old: Option<&Value>, new: Option<&Value>);
    /// The derived documents that `changes` (made on top of this state, in
    /// one write) change, and only those. Must not change the state.
    fn derive(&self, changes: &[Change<'_>]) -> Result<Vec<Output>, Error>;
    /// Every derived document, by view (each of [`Derive::views`] named).
    fn all(&self) -> Vec<(View, Map<String, Value>)>;
    /// The derived document at `key` of `view` (one of its views), if any.
    fn doc(&self, view: View, key: &str) -> Option<Value>;
}

/// The derivations of one view, at one of its revisions.
pub struct Model {
    revision: u64,
    states: Vec<Box<dyn Derivation>>,
}

impl Model {
    /// The derivations of `view` over no document, at `revision`: add the
    /// view's documents at that revision with [`Model::add`].
    pub fn start(view: View, revision: u64) -> Model {
        Model {
            revision,
            states: view.derives().iter().map(|d| d.start()).collect(),
        }
    }

    /// Adds a document of the view (while loading it).
    pub fn add(&mut self, key: &str, doc: &Value) {
        for state in &mut self.states {
            state.change(key, None, Some(doc));
        }
    }

    /// The revision of the view it reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn change(&mut self, key: &str, old: Option<&Value>, new: Option<&Value>) {
        for state in &mut self.states {
            state.change(key, old, new);
        }
    }
}

/// Every derived-from view's [`Model`] that a store keeps (see the module
/// docs).
#[derive(Default)]
pub struct Models {
    models: BTreeMap<View, Model>,
    trusted: bool,
}

static NONE: Models = Models {
    models: BTreeMap::new(),
    trusted: false,
};

impl Models {
    /// No model: for writes of views without derivations.
    pub fn none() -> &'static Models {
        &NONE
    }

    /// Whether `view` has derivations, so a store must keep its model.
    pub fn modeled(view: View) -> bool {
        !view.derives().is_empty()
    }

    /// Says that the stored derived views always equal what the models
    /// answer, so a write's plan may take a derivation's documents before
    /// the write for the stored ones instead of reading them. True where
    /// one process writes the database (a SQLite file: [`rederive`] runs
    /// before it serves); not where processes may disagree for a while
    /// (PostgreSQL during a rolling change of declarations).
    pub fn trust(&mut self, trusted: bool) {
        self.trusted = trusted;
    }

    /// Keeps `model` as the model of `view` (replacing any).
    pub fn insert(&mut self, view: View, model: Model) {
        self.models.insert(view, model);
    }

    /// The model of `view`, if one is kept.
    pub fn get(&self, view: View) -> Option<&Model> {
        self.models.get(&view)
    }

    /// Drops the model of `view` (it must be loaded again).
    pub fn forget(&mut self, view: View) {
        self.models.remove(&view);
    }

    /// The revision the model of `view` reflects, if one is kept.
    pub fn revision(&self, view: View) -> Option<u64> {
        self.models.get(&view).map(Model::revision)
    }

    /// Moves the models by a planned (or committed) write.
    pub fn apply(&mut self, plan: &Plan) {
        for change in &plan.changes {
            let Some(model) = self.models.get_mut(&change.view) else {
                continue;
            };
            for (key, new) in &change.rows {
                model.change(key, change.prior.get(key), new.as_ref());
            }
            model.revision = change.revision;
        }
    }

    /// Takes back a write [`apply`](Models::apply)'d before (the last one
    /// first, when there are several).
    pub fn undo(&mut self, plan: &Plan) {
        for change in plan.changes.iter().rev() {
            let Some(model) = self.models.get_mut(&change.view) else {
                continue;
            };
            for (key, new) in change.rows.iter().rev() {
                model.change(key, new.as_ref(), change.prior.get(key));
            }
            model.revision = change.revision - 1;
        }
    }

    /// Moves the model of `view` by a committed event (its merge patch and
    /// the documents it replaced, as stored), which must be the one after
    /// the model's revision. An error says the model must be loaded again.
    pub fn follow(
        &mut self,
        view: View,
        revision: u64,
        patch: &str,
        prior: Option<&str>,
    ) -> Result<(), String> {
        let Some(model) = self.models.get_mut(&view) else {
            return Err(format!("no model of {view}"));
        };
        if revision != model.revision + 1 {
            return Err(format!(
                "the model of {view} is at {}, the event at {revision}",
                model.revision
            ));
        }
        let prior = prior.ok_or_else(|| format!("the event {revision} of {view} has no prior"))?;
        let patch: Map<String, Value> =
            serde_json::from_str(patch).map_err(|e| format!("the event {revision}: {e}"))?;
        let prior: Map<String, Value> =
            serde_json::from_str(prior).map_err(|e| format!("the event {revision}: {e}"))?;
        for (key, entry) in &patch {
            let old = prior.get(key);
            let new = match entry {
                Value::Null => None,
                entry => {
                    let mut doc = old.cloned().unwrap_or_else(|| Value::Object(Map::new()));
                    merge::apply(&mut doc, entry);
                    Some(doc)
                }
            };
            model.change(key, old, new.as_ref());
        }
        model.revision = revision;
        Ok(())
    }
}

impl fmt::Debug for Models {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.models.iter().map(|(v, m)| (v, m.revision)))
            .finish()
    }
}

/// Runs the derivations of the views `draft`'s write changed, and puts
/// what they answer into the same draft.
pub(crate) fn run(draft: &mut Draft<'_>) -> Result<(), Error> {
    let models = draft.models();
    let mut outputs = Vec::new();
    for view in draft.changed_views() {
        if !Models::modeled(view) {
            continue;
        }
        let touched: Vec<(String, Option<Value>)> = draft.touched(view);
        let mut olds = Vec::with_capacity(touched.len());
        for (key, _) in &touched {
            olds.push(draft.committed(view, key)?);
        }
        let changes: Vec<Change<'_>> = touched
            .iter()
            .zip(&olds)
            .filter(|((_, new), old)| new != *old)
            .map(|((key, new), old)| Change {
                key,
                old: old.as_ref(),
                new: new.as_ref(),
            })
            .collect();
        if changes.is_empty() {
            continue;
        }
        let model = models.get(view).ok_or_else(|| {
            Error::internal(format!(
                "the view {view} has derived views, and the store keeps no model of it"
            ))
        })?;
        for state in &model.states {
            outputs.extend(state.derive(&changes)?);
        }
    }
    for Output {
        view,
        key,
        doc,
        before,
    } in outputs
    {
        if models.trusted {
            draft.known(view, &key, before);
        }
        match doc {
            Some(doc) => draft.put(view, key, doc)?,
            None => draft.delete(view, key),
        }
    }
    Ok(())
}

/// A write that finds the documents of the views derived from `view` that
/// differ from what its derivations answer, given what they hold now:
/// `current` has, for each of them, its revision and documents (from this
/// process's copy). It changes nothing and answers them as `[[view, key],
/// …]`, for [`refresh`] to write a few at a time (one event of every
/// stale document could be as large as the view). If a derived view moved
/// past the revision given, it answers `false`: take a newer copy.
pub fn rederive(view: View, current: Vec<(View, u64, Map<String, Value>)>) -> Write {
    Write::new(&[view], move |d| {
        for (derived, revision, _) in &current {
            if d.revision(*derived)? != *revision {
                return Ok(Value::Bool(false));
            }
        }
        let model = d.models().get(view).ok_or_else(|| no_model(view))?;
        let mut wanted: BTreeMap<View, Map<String, Value>> = BTreeMap::new();
        for state in &model.states {
            for (derived, docs) in state.all() {
                wanted.entry(derived).or_default().extend(docs);
            }
        }
        let mut stale = Vec::new();
        for (derived, _, stored) in &current {
            let want = wanted.remove(derived).unwrap_or_default();
            let gone = stored.keys().filter(|k| !want.contains_key(*k));
            let changed = want
                .iter()
                .filter(|(k, doc)| stored.get(*k) != Some(*doc))
                .map(|(k, _)| k);
            for key in gone.chain(changed) {
                stale.push(Value::from(vec![derived.name(), key.as_str()]));
            }
        }
        Ok(Value::Array(stale))
    })
}

/// A write that sets each of `keys` (a view derived from `view`, and a
/// key) to what the derivations answer now: the document, or none.
pub fn refresh(view: View, keys: Vec<(View, String)>) -> Write {
    Write::new(&[view], move |d| {
        let model = d.models().get(view).ok_or_else(|| no_model(view))?;
        for (derived, key) in &keys {
            let doc = model.states.iter().find_map(|s| s.doc(*derived, key));
            match doc {
                Some(doc) => d.put(*derived, key.clone(), doc)?,
                None => d.delete(*derived, key.clone()),
            }
        }
        Ok(Value::Null)
    })
}

fn no_model(view: View) -> Error {
    Error::internal(format!(
        "the view {view} has derived views, and the store keeps no model of it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ViewSpec;
    use crate::write::MemorySource;
    use serde_json::json;

    /// Counts the source's documents per value of `kind`: `{kind: {"n": n}}`.
    #[derive(Debug)]
    struct ByKind;

    static COUNTS_SPEC: ViewSpec = ViewSpec::new("counts", "/counts", "/counts-events");
    const COUNTS: View = View::of(&COUNTS_SPEC);
    static BY_KIND: ByKind = ByKind;
    static ITEMS_SPEC: ViewSpec =
        ViewSpec::new("items", "/items", "/items-events").derived(&[&BY_KIND]);
    const ITEMS: View = View::of(&ITEMS_SPEC);
    static PLAIN_SPEC: ViewSpec = ViewSpec::new("plain", "/plain", "/plain-events");
    const PLAIN: View = View::of(&PLAIN_SPEC);

    #[derive(Default)]
    struct Counts(BTreeMap<String, u64>);

    fn kind(doc: Option<&Value>) -> Option<String> {
        doc?.get("kind")?.as_str().map(String::from)
    }

    impl Derive for ByKind {
        fn views(&self) -> &[View] {
            &[COUNTS]
        }
        fn start(&self) -> Box<dyn Derivation> {
            Box::new(Counts::default())
        }
    }

    impl Derivation for Counts {
        fn change(&mut self, _: &str, old: Option<&Value>, new: Option<&Value>) {
            if let Some(k) = kind(old) {
                let n = self.0.entry(k.clone()).or_default();
                *n -= 1;
                if *n == 0 {
                    self.0.remove(&k);
                }
            }
            if let Some(k) = kind(new) {
                *self.0.entry(k).or_default() += 1;
            }
        }
        fn derive(&self, changes: &[Change<'_>]) -> Result<Vec<Output>, Error> {
            let mut after = self.0.clone();
            let mut touched = Vec::new();
            for c in changes {
                for (doc, step) in [(c.old, -1i64), (c.new, 1)] {
                    if let Some(k) = kind(doc) {
                        let n = after.entry(k.clone()).or_default();
                        *n = n.saturating_add_signed(step);
                        touched.push(k);
                    }
                }
            }
            Ok(touched
                .into_iter()
                .map(|k| {
                    let count = |m: &BTreeMap<String, u64>| {
                        m.get(&k).filter(|n| **n > 0).map(|n| json!({"n": n}))
                    };
                    Output {
                        view: COUNTS,
                        doc: count(&after),
                        before: count(&self.0),
                        key: k,
                    }
                })
                .collect())
        }
        fn all(&self) -> Vec<(View, Map<String, Value>)> {
            let docs = self.0.iter().map(|(k, n)| (k.clone(), json!({"n": n})));
            vec![(COUNTS, docs.collect())]
        }
        fn doc(&self, _: View, key: &str) -> Option<Value> {
            self.0.get(key).map(|n| json!({"n": n}))
        }
    }

    fn put(key: &'static str, doc: Value) -> Write {
        Write::new(&[ITEMS], move |d| {
            d.put(ITEMS, key, doc.clone())?;
            Ok(Value::Null)
        })
    }

    fn delete(key: &'static str) -> Write {
        Write::new(&[ITEMS], move |d| {
            d.delete(ITEMS, key);
            Ok(Value::Null)
        })
    }

    fn event(plan: &Plan, view: View) -> Option<Value> {
        plan.changes
            .iter()
            .find(|c| c.view == view)
            .map(|c| c.patch.clone())
    }

    #[test]
    fn a_write_of_the_source_declares_and_changes_its_derived_views_in_the_same_plan() {
        assert_eq!(put("a", json!({})).views(), &[COUNTS, ITEMS]);
        let mut db = MemorySource::default();
        let mut models = Models::default();
        let (_, plan) = db
            .run_with(&put("a", json!({"kind": "x"})), &mut models)
            .unwrap();
        assert_eq!(event(&plan, COUNTS), Some(json!({"x": {"n": 1}})));
        let (_, plan) = db
            .run_with(&put("b", json!({"kind": "x"})), &mut models)
            .unwrap();
        assert_eq!(event(&plan, COUNTS), Some(json!({"x": {"n": 2}})));
        let (_, plan) = db
            .run_with(&put("a", json!({"kind": "y", "t": 1})), &mut models)
            .unwrap();
        assert_eq!(
            event(&plan, COUNTS),
            Some(json!({"x": {"n": 1}, "y": {"n": 1}}))
        );
        let (_, plan) = db
            .run_with(&put("a", json!({"kind": "y", "t": 2})), &mut models)
            .unwrap();
        assert_eq!(event(&plan, COUNTS), None, "the group did not change");
        assert_eq!(plan.revision(COUNTS), Some(3));
        let (_, plan) = db.run_with(&delete("b"), &mut models).unwrap();
        assert_eq!(event(&plan, COUNTS), Some(json!({"x": null})));
        assert_eq!(models.revision(ITEMS), Some(5));
    }

    #[test]
    fn a_model_loaded_from_the_documents_equals_one_kept_write_by_write() {
        let mut db = MemorySource::default();
        let mut kept = Models::default();
        for (k, kind) in [("a", "x"), ("b", "y"), ("c", "x")] {
            db.run_with(&put(k, json!({ "kind": kind })), &mut kept)
                .unwrap();
        }
        db.run_with(&delete("b"), &mut kept).unwrap();
        let mut loaded = Models::default();
        let mut loading = MemorySource::default();
        loading.docs = db.docs.clone();
        loading.docs.retain(|(v, _), _| *v == ITEMS);
        loading.revisions.insert(ITEMS, db.revisions[&ITEMS]);
        let stored = Map::from_iter([("z".to_string(), json!({"n": 9}))]);
        let (stale, plan) = loading
            .run_with(&rederive(ITEMS, vec![(COUNTS, 0, stored)]), &mut loaded)
            .unwrap();
        assert!(plan.changes.is_empty(), "finding them writes nothing");
        assert_eq!(stale, json!([["counts", "z"], ["counts", "x"]]));
        let keys = vec![(COUNTS, "z".to_string()), (COUNTS, "x".to_string())];
        let (_, plan) = loading
            .run_with(&refresh(ITEMS, keys), &mut loaded)
            .unwrap();
        assert_eq!(event(&plan, COUNTS), Some(json!({"x": {"n": 2}})));
        assert_eq!(loading.view(COUNTS), db.view(COUNTS));
        let current = db.view(COUNTS).as_object().cloned().unwrap();
        let at = db.revisions[&COUNTS];
        let (stale, _) = db
            .run_with(&rederive(ITEMS, vec![(COUNTS, at, current)]), &mut kept)
            .unwrap();
        assert_eq!(stale, json!([]), "nothing to fix");
        let (stale, _) = db
            .run_with(
                &rederive(ITEMS, vec![(COUNTS, at - 1, Map::new())]),
                &mut kept,
            )
            .unwrap();
        assert_eq!(stale, json!(false), "an old copy is refused");
    }

    #[test]
    fn undo_takes_a_write_back_and_follow_replays_its_event() {
        let mut db = MemorySource::default();
        let mut models = Models::default();
        db.run_with(&put("a", json!({"kind": "x"})), &mut models)
            .unwrap();
        let moved = put("a", json!({"kind": "y"}));
        let (_, plan) = moved.execute_with(&db, &models).unwrap();
        models.apply(&plan);
        models.undo(&plan);
        assert_eq!(models.revision(ITEMS), Some(1));
        let (_, again) = moved.execute_with(&db, &models).unwrap();
        assert_eq!(again, plan, "the undone model plans the same write again");
        let change = plan.changes.iter().find(|c| c.view == ITEMS).unwrap();
        let prior = serde_json::to_string(&change.prior).unwrap();
        models
            .follow(ITEMS, 2, &change.patch.to_string(), Some(&prior))
            .unwrap();
        assert_eq!(models.revision(ITEMS), Some(2));
        assert!(models.follow(ITEMS, 4, "{}", Some("{}")).is_err(), "a gap");
        assert!(models.follow(ITEMS, 3, "{}", None).is_err(), "no prior");
    }

    #[test]
    fn a_write_without_a_model_of_a_derived_from_view_is_refused_as_a_fault() {
        let db = MemorySource::default();
        let plain = Write::new(&[PLAIN], |d| {
            d.put(PLAIN, "k", json!(1))?;
            Ok(Value::Null)
        });
        assert!(plain.execute(&db).is_ok());
        assert!(matches!(
            put("a", json!({"kind": "x"})).execute(&db),
            Err(Error::Internal(_))
        ));
    }
}
