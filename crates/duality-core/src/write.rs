//! The one write path, as pure functions.
//!
//! A write is a function over a [`Draft`]: it reads the current documents of
//! any view through a [`Source`], and records the new documents it wants.
//! [`plan`] then turns the draft into what the store persists in one
//! transaction: per changed view, the minimal merge patch over the touched
//! keys (which equals the diff of the whole view), the next revision, and the
//! rows to upsert or delete. A view whose documents did not change gets no
//! event and keeps its revision.
//!
//! Stores that cannot read synchronously (PostgreSQL) implement [`Source`]
//! over what they have loaded so far and answer [`Missing`] for the rest;
//! they load it and run the write again. Writes are pure, so a re-run is
//! harmless.
//!
//! A write may carry an [`IdempotencyKey`]: it then first reads the key's
//! stored [`Outcome`] through the same [`Source`]; if there is one, the
//! write does not run and answers that outcome (or refuses a key reused
//! with another request), and otherwise its plan carries the outcome for
//! the store to keep with the write.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::derive::{self, Models};
use crate::error::Error;
use crate::idempotency::{IdempotencyKey, Outcome};
use crate::merge;
use crate::view::View;

/// A read that the source could not answer yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Missing {
    /// A document of a view, by key.
    Doc(View, String),
    /// A counter, by name.
    Counter(String),
    /// A view's current revision.
    Revision(View),
    /// The stored outcome of a scoped idempotency key.
    Key(String),
}

/// Read access to committed state, as seen inside the writing transaction.
pub trait Source {
    /// The committed document at `key` in `view`, or `None` if there is none.
    fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing>;
    /// The revision of `view` that last changed the committed document at
    /// `key`, or `None` if there is no document. A source loads it with the
    /// document: what it has not loaded yet is [`Missing::Doc`].
    fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Missing>;
    /// The named counter (1 if never set); an id counter holds the next id
    /// it will hand out.
    fn counter(&self, name: &str) -> Result<u64, Missing>;
    /// The current revision of `view` (0 before its first write).
    fn revision(&self, view: View) -> Result<u64, Missing>;
    /// What the first write under a scoped idempotency key answered.
    fn outcome(&self, scoped_key: &str) -> Result<Option<Outcome>, Missing>;
}

/// What a write function produces for its caller (the HTTP answer body).
pub type Output = Value;

type WriteFn = dyn Fn(&mut Draft<'_>) -> Result<Output, Error> + Send + Sync;

/// A write ready to be run by a store: the views it may change (stores that
/// lock per view lock exactly these, in this order) and the pure function.
#[derive(Clone)]
pub struct Write {
    views: Vec<View>,
    run: Arc<WriteFn>,
    key: Option<IdempotencyKey>,
    /// Composed from other commits; its own commit need not wait for the
    /// disk before it is published (see [`Write::derived`]).
    derived: bool,
}

impl Write {
    /// A write that may change `views` (sorted and deduplicated here), made by
    /// the pure function `run`. The views derived from them (see
    /// [`derive`](crate::derive)) are declared too.
    pub fn new(
        views: &[View],
        run: impl Fn(&mut Draft<'_>) -> Result<Output, Error> + Send + Sync + 'static,
    ) -> Self {
        let mut views = views.to_vec();
        for view in views.clone() {
            for derive in view.derives() {
                views.extend_from_slice(derive.views());
            }
        }
        views.sort();
        views.dedup();
        Write {
            views,
            run: Arc::new(run),
            key: None,
            derived: false,
        }
    }

    /// The same write, marked as derived: composed from other views'
    /// committed events, and composed again from them if it were lost (the
    /// dashboard). A store may publish such a commit before it reaches the
    /// disk, as long as a consumer can never follow a history that a crash
    /// of the machine changed: SQLite does (see
    /// the engine's SQLite store); PostgreSQL waits for every commit.
    pub fn derived(mut self) -> Self {
        self.derived = true;
        self
    }

    /// Whether the write is derived (see [`Write::derived`]).
    pub fn is_derived(&self) -> bool {
        self.derived
    }

    /// The same write, made at most once under `key`.
    pub fn once(mut self, key: IdempotencyKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The views the write may change, sorted, without duplicates.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// Runs the write against `source` and plans its effects. A write of
    /// a view with derived views needs their models: see
    /// [`Write::execute_with`].
    pub fn execute(&self, source: &dyn Source) -> Result<(Output, Plan), Error> {
        self.execute_with(source, Models::none())
    }

    /// Runs the write against `source`, whose derived-from views' models
    /// (at the revisions `source` has) are `models`, and plans its
    /// effects: the write's own documents and what its derivations answer
    /// for them.
    pub fn execute_with(
        &self,
        source: &dyn Source,
        models: &Models,
    ) -> Result<(Output, Plan), Error> {
        if let Some(key) = &self.key
            && let Some(first) = source.outcome(&key.scoped)?
        {
            if first.fingerprint != key.fingerprint {
                return Err(Error::KeyReused(
                    "this Idempotency-Key was already used with another request".into(),
                ));
            }
            // The same key answers the same request, which declares the
            // same views.
            let revisions = first
                .revisions
                .iter()
                .filter_map(|(name, r)| {
                    let view = self.views.iter().find(|v| v.name() == name)?;
                    Some((*view, *r))
                })
                .collect();
            let plan = Plan {
                revisions,
                replayed: true,
                ..Plan::default()
            };
            return Ok((first.output, plan));
        }
        let mut draft = Draft::with_models(source, models);
        let output = (self.run)(&mut draft)?;
        derive::run(&mut draft)?;
        for (view, _) in draft.docs.keys() {
            if !self.views.contains(view) {
                return Err(Error::internal(format!(
                    "a write touched the view {view}, which it did not declare"
                )));
            }
        }
        let mut plan = plan(draft, &self.views)?;
        if let Some(key) = &self.key {
            let outcome = Outcome {
                fingerprint: key.fingerprint.clone(),
                output: output.clone(),
                revisions: plan
                    .revisions
                    .iter()
                    .map(|(v, r)| (v.name().to_string(), *r))
                    .collect(),
            };
            plan.remember = Some((key.scoped.clone(), outcome));
        }
        Ok((output, plan))
    }
}

/// The state a write builds: reads fall through to the source unless the
/// write already changed that document.
pub struct Draft<'s> {
    source: &'s dyn Source,
    models: &'s Models,
    docs: BTreeMap<(View, String), Option<Value>>,
    counters: BTreeMap<String, u64>,
    /// Committed documents already read from the source: the write, its
    /// derivations and `plan` each read a document it changes, and a
    /// store's read is a query and a parse.
    read: RefCell<HashMap<(View, String), Option<Value>>>,
}

impl<'s> Draft<'s> {
    /// An empty draft over `source`: nothing changed yet.
    pub fn new(source: &'s dyn Source) -> Self {
        Draft::with_models(source, Models::none())
    }

    /// An empty draft over `source`, with the models of its derived-from
    /// views.
    pub fn with_models(source: &'s dyn Source, models: &'s Models) -> Self {
        Draft {
            source,
            models,
            docs: BTreeMap::new(),
            counters: BTreeMap::new(),
            read: RefCell::new(HashMap::new()),
        }
    }

    pub(crate) fn models(&self) -> &'s Models {
        self.models
    }

    /// The views this draft changed (or means to), each once.
    pub(crate) fn changed_views(&self) -> Vec<View> {
        let mut views: Vec<View> = self.docs.keys().map(|(v, _)| *v).collect();
        views.dedup();
        views
    }

    /// The documents of `view` this draft set or deleted, by key.
    pub(crate) fn touched(&self, view: View) -> Vec<(String, Option<Value>)> {
        self.docs
            .iter()
            .filter(|((v, _), _)| *v == view)
            .map(|((_, k), doc)| (k.clone(), doc.clone()))
            .collect()
    }

    /// The committed document, whatever this draft did to it.
    pub(crate) fn committed(&self, view: View, key: &str) -> Result<Option<Value>, Error> {
        let at = (view, key.to_string());
        if let Some(doc) = self.read.borrow().get(&at) {
            return Ok(doc.clone());
        }
        let doc = self.source.doc(view, key)?;
        self.read.borrow_mut().insert(at, doc.clone());
        Ok(doc)
    }

    /// Takes `doc` for the committed document at `key` of `view`, unless
    /// it was read already: what a derivation knows of its own view.
    pub(crate) fn known(&self, view: View, key: &str, doc: Option<Value>) {
        self.read
            .borrow_mut()
            .entry((view, key.to_string()))
            .or_insert(doc);
    }

    /// The committed revision of `view` (this draft does not move it: the
    /// plan does).
    pub fn revision(&self, view: View) -> Result<u64, Error> {
        Ok(self.source.revision(view)?)
    }

    /// A document as this write sees it: its own changes first, else the
    /// committed one.
    pub fn get(&self, view: View, key: &str) -> Result<Option<Value>, Error> {
        match self.docs.get(&(view, key.to_string())) {
            Some(doc) => Ok(doc.clone()),
            None => self.committed(view, key),
        }
    }

    /// The revision of `view` that last changed the document at `key`, as
    /// committed before this write (`None`: no document). What a request's
    /// `If-Match` is checked against, inside the writing transaction; read
    /// it before the write changes that document.
    pub fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Error> {
        Ok(self.source.doc_revision(view, key)?)
    }

    /// A document read as its type `T`. A stored document that is not a
    /// `T` is refused as an internal fault (it was written by other code).
    pub fn read<T: DeserializeOwned>(&self, view: View, key: &str) -> Result<Option<T>, Error> {
        self.get(view, key)?
            .map(|doc| {
                serde_json::from_value(doc).map_err(|e| {
                    Error::internal_from(format!("the {view} document {key} is unreadable"), e)
                })
            })
            .transpose()
    }

    /// Sets a document from its type `T` (see [`Draft::put`]).
    pub fn write<T: Serialize>(
        &mut self,
        view: View,
        key: impl Into<String>,
        doc: &T,
    ) -> Result<(), Error> {
        let doc = serde_json::to_value(doc)
            .map_err(|e| Error::internal_from(format!("a {view} document"), e))?;
        self.put(view, key, doc)
    }

    /// Sets a document. A document must not contain `null` members.
    pub fn put(&mut self, view: View, key: impl Into<String>, doc: Value) -> Result<(), Error> {
        if doc.is_null() || merge::has_null_member(&doc) {
            return Err(Error::Invalid("documents cannot contain null".into()));
        }
        self.docs.insert((view, key.into()), Some(doc));
        Ok(())
    }

    /// Deletes the document at `key` in `view`.
    pub fn delete(&mut self, view: View, key: impl Into<String>) {
        self.docs.insert((view, key.into()), None);
    }

    /// Hands out the next id of a counter; ids are never handed out twice.
    pub fn next_id(&mut self, counter: &str) -> Result<u64, Error> {
        let next = self.counter(counter)?;
        self.counters.insert(counter.to_string(), next + 1);
        Ok(next)
    }

    /// A counter's value as this write sees it (1 if never set).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        match self.counters.get(name) {
            Some(n) => Ok(*n),
            None => Ok(self.source.counter(name)?),
        }
    }

    /// Sets a counter that is not an id counter: a number kept with the
    /// views, committed with the write's documents (see
    /// the dashboard's basis counters). Id counters only move
    /// through [`Draft::next_id`].
    pub fn set_counter(&mut self, name: &str, value: u64) {
        self.counters.insert(name.to_string(), value);
    }
}

/// What one write does to one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewChange {
    /// The view changed.
    pub view: View,
    /// The view's revision after this change (one past the previous one).
    pub revision: u64,
    /// The merge patch from revision - 1 to revision; never empty.
    pub patch: Value,
    /// Rows to write: `None` deletes the key.
    pub rows: Rows,
    /// The documents the change replaced or deleted, by key, as they were
    /// before it (a key the change created is absent): with `patch`, what a
    /// filtered stream needs to tell a document entering or leaving its
    /// subset (see [`Filter::entry`](crate::Filter::entry)).
    pub prior: Map<String, Value>,
}

/// Everything one write persists, in one transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// One change per view the write actually changed.
    pub changes: Vec<ViewChange>,
    /// New values of counters (an id counter: the next id it hands out).
    pub counters: Vec<(String, u64)>,
    /// The revision of every declared view after the write (changed or not).
    pub revisions: Vec<(View, u64)>,
    /// A scoped idempotency key to store with the write, and its outcome.
    pub remember: Option<(String, Outcome)>,
    /// The write did not run: this is the stored outcome of its key.
    pub replayed: bool,
}

impl Plan {
    /// The revision of `view` after the write, if the write declared it.
    pub fn revision(&self, view: View) -> Option<u64> {
        self.revisions
            .iter()
            .find(|(v, _)| *v == view)
            .map(|(_, r)| *r)
    }
}

/// Rows to write for one view: `None` deletes the key.
type Rows = Vec<(String, Option<Value>)>;

fn plan(draft: Draft<'_>, views: &[View]) -> Result<Plan, Error> {
    let Draft {
        source,
        docs,
        counters,
        read,
        ..
    } = draft;
    let mut read = read.into_inner();
    let mut by_view: BTreeMap<View, (Map<String, Value>, Rows, Map<String, Value>)> =
        BTreeMap::new();
    for ((view, key), new) in docs {
        let old = match read.remove(&(view, key.clone())) {
            Some(old) => old,
            None => source.doc(view, &key)?,
        };
        let entry = match (&old, &new) {
            (None, None) => None,
            (Some(_), None) => Some(Value::Null),
            (None, Some(new)) => Some(new.clone()),
            (Some(old), Some(new)) => merge::diff(old, new),
        };
        if let Some(entry) = entry {
            let (patch, rows, prior) = by_view.entry(view).or_default();
            patch.insert(key.clone(), entry);
            if let Some(old) = old {
                prior.insert(key.clone(), old);
            }
            rows.push((key, new));
        }
    }
    let mut plan = Plan {
        counters: counters.into_iter().collect(),
        ..Plan::default()
    };
    for &view in views {
        let current = source.revision(view)?;
        match by_view.remove(&view) {
            Some((patch, rows, prior)) => {
                plan.changes.push(ViewChange {
                    view,
                    revision: current + 1,
                    patch: Value::Object(patch),
                    rows,
                    prior,
                });
                plan.revisions.push((view, current + 1));
            }
            None => plan.revisions.push((view, current)),
        }
    }
    Ok(plan)
}

/// An in-memory [`Source`], for unit tests of writes and for tools.
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    /// Documents by view and key.
    pub docs: BTreeMap<(View, String), Value>,
    /// The revision that last changed each document, by view and key.
    pub doc_revisions: BTreeMap<(View, String), u64>,
    /// Counters by name; one not set reads as 1.
    pub counters: BTreeMap<String, u64>,
    /// Current revision per view; one not set reads as 0.
    pub revisions: BTreeMap<View, u64>,
    /// Stored idempotency outcomes by scoped key.
    pub outcomes: BTreeMap<String, Outcome>,
}

impl MemorySource {
    /// Persists a plan, as a store would.
    pub fn commit(&mut self, plan: &Plan) {
        for change in &plan.changes {
            for (key, doc) in &change.rows {
                let at = (change.view, key.clone());
                match doc {
                    Some(doc) => {
                        self.docs.insert(at.clone(), doc.clone());
                        self.doc_revisions.insert(at, change.revision);
                    }
                    None => {
                        self.docs.remove(&at);
                        self.doc_revisions.remove(&at);
                    }
                };
            }
            self.revisions.insert(change.view, change.revision);
        }
        for (name, next) in &plan.counters {
            self.counters.insert(name.clone(), *next);
        }
        if let Some((key, outcome)) = &plan.remember {
            self.outcomes.insert(key.clone(), outcome.clone());
        }
    }

    /// Runs a write and commits it; returns its output and plan.
    pub fn run(&mut self, write: &Write) -> Result<(Output, Plan), Error> {
        let (out, plan) = write.execute(self)?;
        self.commit(&plan);
        Ok((out, plan))
    }

    /// Runs a write with the models of its derived-from views, as a store
    /// does: a model not kept yet is loaded from this source's documents;
    /// the committed plan moves them.
    pub fn run_with(
        &mut self,
        write: &Write,
        models: &mut Models,
    ) -> Result<(Output, Plan), Error> {
        for &view in write.views() {
            if Models::modeled(view) && models.get(view).is_none() {
                let revision = self.revisions.get(&view).copied().unwrap_or(0);
                let mut model = crate::derive::Model::start(view, revision);
                for ((v, key), doc) in &self.docs {
                    if *v == view {
                        model.add(key, doc);
                    }
                }
                models.insert(view, model);
            }
        }
        let (out, plan) = write.execute_with(self, models)?;
        self.commit(&plan);
        models.apply(&plan);
        Ok((out, plan))
    }

    /// The whole view as one JSON object.
    pub fn view(&self, view: View) -> Value {
        Value::Object(
            self.docs
                .iter()
                .filter(|((v, _), _)| *v == view)
                .map(|((_, k), d)| (k.clone(), d.clone()))
                .collect(),
        )
    }
}

impl Source for MemorySource {
    fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing> {
        Ok(self.docs.get(&(view, key.to_string())).cloned())
    }
    fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Missing> {
        Ok(self.doc_revisions.get(&(view, key.to_string())).copied())
    }
    fn counter(&self, name: &str) -> Result<u64, Missing> {
        Ok(self.counters.get(name).copied().unwrap_or(1))
    }
    fn revision(&self, view: View) -> Result<u64, Missing> {
        Ok(self.revisions.get(&view).copied().unwrap_or(0))
    }
    fn outcome(&self, scoped_key: &str) -> Result<Option<Outcome>, Missing> {
        Ok(self.outcomes.get(scoped_key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ViewSpec;
    use serde_json::json;

    static PERSONS_SPEC: ViewSpec = ViewSpec::new("persons", "/persons", "/person-events");
    static LOCATIONS_SPEC: ViewSpec = ViewSpec::new("locations", "/locations", "/location-events");
    const PERSONS: View = View::of(&PERSONS_SPEC);
    const LOCATIONS: View = View::of(&LOCATIONS_SPEC);

    #[test]
    fn a_write_that_changes_nothing_plans_no_event_and_keeps_the_revision() {
        let mut src = MemorySource::default();
        let put = Write::new(&[PERSONS], |d| {
            d.put(PERSONS, "1", json!({"name":"Ann"}))?;
            Ok(Value::Null)
        });
        let (_, first) = src.run(&put).unwrap();
        assert_eq!(first.changes.len(), 1);
        let (_, again) = src.run(&put).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(again.revision(PERSONS), Some(1));
    }

    #[test]
    fn deleting_a_missing_key_is_no_change() {
        let mut src = MemorySource::default();
        let del = Write::new(&[PERSONS], |d| {
            d.delete(PERSONS, "9");
            Ok(Value::Null)
        });
        let (_, plan) = src.run(&del).unwrap();
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn a_document_s_revision_is_the_one_that_last_changed_it() {
        let mut src = MemorySource::default();
        let put = |key: &'static str, n: u64| {
            Write::new(&[PERSONS], move |d| {
                let before = d.doc_revision(PERSONS, key)?;
                d.put(PERSONS, key, json!({ "n": n }))?;
                Ok(json!(before))
            })
        };
        assert_eq!(src.run(&put("a", 1)).unwrap().0, json!(null));
        src.run(&put("b", 1)).unwrap();
        assert_eq!(src.run(&put("a", 1)).unwrap().0, json!(1), "unchanged");
        assert_eq!(src.run(&put("a", 2)).unwrap().0, json!(1));
        assert_eq!(src.doc_revision(PERSONS, "a"), Ok(Some(3)));
        assert_eq!(src.doc_revision(PERSONS, "b"), Ok(Some(2)));
        let del = Write::new(&[PERSONS], |d| {
            d.delete(PERSONS, "a");
            Ok(Value::Null)
        });
        src.run(&del).unwrap();
        assert_eq!(src.doc_revision(PERSONS, "a"), Ok(None));
    }

    #[test]
    fn counters_hand_out_consecutive_ids_within_and_across_writes() {
        let mut src = MemorySource::default();
        let two = Write::new(&[PERSONS], |d| {
            Ok(json!([d.next_id("p")?, d.next_id("p")?]))
        });
        assert_eq!(src.run(&two).unwrap().0, json!([1, 2]));
        assert_eq!(src.run(&two).unwrap().0, json!([3, 4]));
    }

    #[test]
    fn touching_an_undeclared_view_is_refused_as_the_service_s_fault() {
        let src = MemorySource::default();
        let bad = Write::new(&[PERSONS], |d| {
            d.put(LOCATIONS, "x", json!(1))?;
            Ok(Value::Null)
        });
        assert!(matches!(bad.execute(&src), Err(Error::Internal(_))));
    }

    #[test]
    fn documents_with_null_members_are_refused() {
        let src = MemorySource::default();
        let bad = Write::new(&[PERSONS], |d| {
            d.put(PERSONS, "1", json!({"a": null}))?;
            Ok(Value::Null)
        });
        assert!(matches!(bad.execute(&src), Err(Error::Invalid(_))));
    }

    fn create_ann() -> Write {
        Write::new(&[PERSONS], |d| {
            let id = d.next_id("p")?.to_string();
            d.put(PERSONS, id.clone(), json!({"name": "Ann"}))?;
            Ok(json!({ "id": id }))
        })
    }

    fn key(body: Value) -> IdempotencyKey {
        IdempotencyKey::new("k1", "/persons", &body).unwrap()
    }

    #[test]
    fn a_keyed_write_runs_once_and_then_answers_its_first_outcome() {
        let mut src = MemorySource::default();
        let (first, plan) = src.run(&create_ann().once(key(json!(1)))).unwrap();
        assert!(!plan.replayed && plan.remember.is_some());
        let (again, replay) = src.run(&create_ann().once(key(json!(1)))).unwrap();
        assert_eq!(again, first);
        assert!(replay.replayed && replay.changes.is_empty() && replay.counters.is_empty());
        assert_eq!(replay.revisions, plan.revisions);
        assert_eq!(src.view(PERSONS).as_object().unwrap().len(), 1);
    }

    #[test]
    fn a_key_reused_with_another_request_is_refused_and_changes_nothing() {
        let mut src = MemorySource::default();
        src.run(&create_ann().once(key(json!(1)))).unwrap();
        let reused = src.run(&create_ann().once(key(json!(2))));
        assert!(matches!(reused, Err(Error::KeyReused(_))));
        assert_eq!(src.view(PERSONS).as_object().unwrap().len(), 1);
    }

    /// A source that has loaded nothing: every read is Missing.
    struct Empty;
    impl Source for Empty {
        fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing> {
            Err(Missing::Doc(view, key.into()))
        }
        fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Missing> {
            Err(Missing::Doc(view, key.into()))
        }
        fn counter(&self, name: &str) -> Result<u64, Missing> {
            Err(Missing::Counter(name.into()))
        }
        fn revision(&self, view: View) -> Result<u64, Missing> {
            Err(Missing::Revision(view))
        }
        fn outcome(&self, scoped_key: &str) -> Result<Option<Outcome>, Missing> {
            Err(Missing::Key(scoped_key.into()))
        }
    }

    #[test]
    fn a_source_that_has_not_loaded_a_document_asks_for_it() {
        let w = Write::new(&[PERSONS], |d| {
            d.put(PERSONS, "1", json!(1))?;
            Ok(Value::Null)
        });
        assert_eq!(
            w.execute(&Empty).err(),
            Some(Error::Missing(Missing::Doc(PERSONS, "1".into())))
        );
    }
}
