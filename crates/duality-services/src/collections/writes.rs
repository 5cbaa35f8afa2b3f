//! A collection's writes, as pure functions over the current documents.
//!
//! Every write of a collection is made by [`write`], and every document it
//! stores or deletes goes through [`Docs::set`]: one place that declares
//! what a collection write changes and sees each document change (old and
//! new), for whatever must be kept current with the collection in the same
//! transaction. A request's conditions (`If-Match`, `If-None-Match`) are
//! checked by [`Docs::expect`] inside that transaction, against the
//! revision that last changed the document as committed, so a concurrent
//! writer cannot slip in between the check and the write.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Collection, pointer};
use duality::domain::Preconditions;
use duality::http::document::named;
use duality::{Draft, Error, Write, merge};

/// A document: a JSON object with no `null` anywhere (see
/// [`Collection::check`]).
pub type Doc = Map<String, Value>;

/// A document that passed [`Collection::check`]: the only kind
/// [`Docs::set`] stores.
pub struct Checked(Doc);

impl Checked {
    /// Checks `doc` for `c` (no `null`, the schema).
    pub fn new(c: &Collection, doc: Doc) -> Result<Checked, Error> {
        c.check(&doc)?;
        Ok(Checked(doc))
    }
}

/// A write's answer about one document it saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The document was new.
    pub created: bool,
    /// The document after the write.
    pub document: Doc,
    /// The revision that last changed the document, if this write left it
    /// as it was (its `ETag` is then that revision's, not the write's).
    pub unchanged_since: Option<u64>,
}

/// The answer of `POST …/items`: the new key and its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The key the server made.
    pub key: String,
    /// The document stored under it.
    pub document: Doc,
}

/// The documents of one collection as a write sees them.
pub struct Docs<'w, 's> {
    c: &'w Collection,
    draft: &'w mut Draft<'s>,
}

impl Docs<'_, '_> {
    /// The document at `key`, this write's own changes included.
    pub fn get(&self, key: &str) -> Result<Option<Doc>, Error> {
        match self.draft.get(self.c.view, key)? {
            None => Ok(None),
            Some(Value::Object(doc)) => Ok(Some(doc)),
            Some(_) => Err(Error::internal(format!(
                "the document {key} of the collection {} is not an object",
                self.c.name
            ))),
        }
    }

    /// Checks `conditions` against the document at `key` as committed
    /// (`412` if one does not hold). Call it before changing that document.
    pub fn expect(&self, key: &str, conditions: &Preconditions) -> Result<(), Error> {
        if conditions.is_empty() {
            return Ok(());
        }
        let changed = self.draft.doc_revision(self.c.view, key)?;
        conditions.check(&named(key), changed)
    }

    /// Checks `conditions` against the whole collection, whose `ETag` is
    /// its snapshot's: the revision of its last change (`412` if one does
    /// not hold).
    pub fn expect_collection(&self, conditions: &Preconditions) -> Result<(), Error> {
        if conditions.is_empty() {
            return Ok(());
        }
        let revision = self.draft.revision(self.c.view)?;
        conditions.check(&format!("the collection {}", self.c.name), Some(revision))
    }

    /// The revision that last changed the committed document at `key`.
    pub fn changed_at(&self, key: &str) -> Result<Option<u64>, Error> {
        self.draft.doc_revision(self.c.view, key)
    }

    /// Stores (`Some`) or deletes (`None`) the document at `key`: every
    /// change a collection write makes goes through here. Answers whether
    /// the document changed.
    pub fn set(&mut self, key: &str, doc: Option<Checked>) -> Result<bool, Error> {
        let old = self.draft.get(self.c.view, key)?;
        let new = doc.map(|Checked(doc)| Value::Object(doc));
        if old == new {
            return Ok(false);
        }
        match new {
            Some(doc) => self.draft.put(self.c.view, key, doc)?,
            None => self.draft.delete(self.c.view, key),
        }
        Ok(true)
    }
}

/// A write of the collection `c`, made by `run` over its documents: the
/// one way every collection write is built.
pub fn write(
    c: Arc<Collection>,
    run: impl Fn(&mut Docs<'_, '_>) -> Result<Value, Error> + Send + Sync + 'static,
) -> Write {
    Write::new(&[c.view], move |draft| {
        let mut docs = Docs { c: &c, draft };
        run(&mut docs)
    })
}

fn not_found(c: &Collection, key: &str) -> Error {
    Error::NotFound(format!("no document `{key}` in the collection {}", c.name))
}

fn encode<T: Serialize>(answer: &T) -> Result<Value, Error> {
    serde_json::to_value(answer).map_err(|e| Error::internal_from("a collection answer", e))
}

/// Saves `doc` at `key` and says how (the document did not exist before
/// if `created`).
fn save(docs: &mut Docs<'_, '_>, key: &str, doc: Doc, created: bool) -> Result<Value, Error> {
    let before = docs.changed_at(key)?;
    let changed = docs.set(key, Some(Checked(doc.clone())))?;
    encode(&Saved {
        created,
        document: doc,
        unchanged_since: if changed { None } else { before },
    })
}

/// Creates or replaces the document at `key`, if `conditions` hold. The
/// document is checked here, once: it does not depend on what is stored,
/// so the check stays out of the writing transaction (which a store may
/// run more than once).
pub fn put(
    c: Arc<Collection>,
    key: String,
    doc: Doc,
    conditions: Preconditions,
) -> Result<Write, Error> {
    let Checked(doc) = Checked::new(&c, doc)?;
    Ok(write(c, move |docs| {
        docs.expect(&key, &conditions)?; // ok: Docs::expect checks If-Match and answers a Result, not a panic
        let created = docs.get(&key)?.is_none();
        save(docs, &key, doc.clone(), created)
    }))
}

/// Applies a merge patch to the document at `key` (a `null` member
/// removes that member), if `conditions` hold.
pub fn patch(c: Arc<Collection>, key: String, patch: Doc, conditions: Preconditions) -> Write {
    let patch = Value::Object(patch);
    write(Arc::clone(&c), move |docs| {
        let doc = docs.get(&key)?.ok_or_else(|| not_found(&c, &key))?;
        docs.expect(&key, &conditions)?; // ok: Docs::expect checks If-Match and answers a Result, not a panic
        let Checked(doc) = merged(&c, Some(doc), &patch)?;
        save(docs, &key, doc, false)
    })
}

/// Deletes the document at `key`, if `conditions` hold.
pub fn delete(c: Arc<Collection>, key: String, conditions: Preconditions) -> Write {
    write(Arc::clone(&c), move |docs| {
        if docs.get(&key)?.is_none() {
            return Err(not_found(&c, &key));
        }
        docs.expect(&key, &conditions)?; // ok: Docs::expect checks If-Match and answers a Result, not a panic
        docs.set(&key, None)?;
        Ok(Value::Null)
    })
}

/// Creates `doc` under `key`, a new key the server made.
pub fn create(c: Arc<Collection>, key: String, doc: Doc) -> Result<Write, Error> {
    let Checked(doc) = Checked::new(&c, doc)?;
    Ok(write(c, move |docs| {
        if docs.get(&key)?.is_some() {
            // A time-ordered random key is never made twice.
            return Err(Error::internal(format!("the new key {key} is taken")));
        }
        docs.set(&key, Some(Checked(doc.clone())))?;
        encode(&Created {
            key: key.clone(),
            document: doc.clone(),
        })
    }))
}

/// `doc` (absent: `None`) with `patch` applied, checked.
fn merged(c: &Collection, doc: Option<Doc>, patch: &Value) -> Result<Checked, Error> {
    let mut doc = doc.map_or(Value::Null, Value::Object);
    merge::apply(&mut doc, patch);
    let Value::Object(doc) = doc else {
        return Err(Error::Invalid("a document must be a JSON object".into()));
    };
    Checked::new(c, doc)
}

/// One member of a merge patch of a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// `null`: delete the document (nothing if there is none).
    Delete,
    /// An object: merge it into the document, or create the document from
    /// it (its `null` members left out).
    Merge(Value),
}

/// A merge patch of a whole collection (`{"k1": {...}, "k2": null}`),
/// checked at the edge: at most the collection's limit of keys, each a
/// valid key, each value an object or `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPatch(Vec<(String, Entry)>);

impl CollectionPatch {
    /// Reads `body`; a key or value it cannot take is a `400` naming the
    /// key, more keys than `limit` a `413` naming the limit.
    pub fn parse(
        body: Map<String, Value>,
        limit: usize,
        key_of: impl Fn(String) -> Result<String, Error>,
    ) -> Result<CollectionPatch, Error> {
        if body.len() > limit {
            return Err(Error::TooLarge(format!(
                "a patch of a collection changes at most {limit} documents; this one names {}",
                body.len()
            )));
        }
        let mut entries = Vec::with_capacity(body.len());
        for (key, value) in body {
            let key = key_of(key.clone()).map_err(|e| about(&key, e))?;
            let entry = match value {
                Value::Null => Entry::Delete,
                Value::Object(patch) => {
                    refuse_null_in_array(&patch).map_err(|e| about(&key, e))?;
                    Entry::Merge(Value::Object(patch))
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: a document must be a JSON object, or null to delete it",
                        named(&key)
                    )));
                }
            };
            entries.push((key, entry));
        }
        Ok(CollectionPatch(entries))
    }
}

/// Refuses a merge patch of a document holding a `null` inside an array,
/// which no document could hold, naming where: known from the patch alone,
/// so refused before the write (and its conditions) runs.
pub fn refuse_null_in_array(patch: &Doc) -> Result<(), Error> {
    match pointer::first_null_in_array(patch) {
        Some(at) => Err(Error::Invalid(format!(
            "null at {}: a document holds no null values in arrays",
            pointer::quoted(&at)
        ))),
        None => Ok(()),
    }
}

/// `error`, as a refusal about the document at `key`.
fn about(key: &str, error: Error) -> Error {
    match error {
        Error::Invalid(why) => Error::Invalid(format!("{}: {why}", named(key))),
        other => other,
    }
}

/// Applies a merge patch to the collection, all or nothing, if
/// `conditions` hold for the collection: one revision, one event. Each
/// resulting document is checked; the first one refused refuses the whole
/// write, naming its key. Answers each key's document after the write
/// (`null`: none).
pub fn patch_collection(
    c: Arc<Collection>,
    patch: CollectionPatch,
    conditions: Preconditions,
) -> Write {
    write(Arc::clone(&c), move |docs| {
        docs.expect_collection(&conditions)?;
        // Every read first: a store that loads what a write reads runs it
        // again until all are loaded, and the checks then run once.
        let mut current = Vec::with_capacity(patch.0.len());
        for (key, _) in &patch.0 {
            current.push(docs.get(key)?);
        }
        let mut after = Map::new();
        for ((key, entry), doc) in patch.0.iter().zip(current) {
            let new = match entry {
                Entry::Delete => None,
                Entry::Merge(patch) => Some(merged(&c, doc, patch).map_err(|e| about(key, e))?),
            };
            after.insert(
                key.clone(),
                new.as_ref()
                    .map_or(Value::Null, |Checked(d)| Value::Object(d.clone())),
            );
            docs.set(key, new)?;
        }
        Ok(Value::Object(after))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality::domain::write::MemorySource;
    use serde_json::json;

    fn notes() -> Arc<Collection> {
        Arc::new(Collection::new("writes-test-notes", None))
    }

    fn doc(v: Value) -> Doc {
        v.as_object().unwrap().clone()
    }

    fn key_of(key: String) -> Result<String, Error> {
        if key.is_empty() {
            Err(Error::Invalid("a key is 1 to 256 characters, got 0".into()))
        } else {
            Ok(key)
        }
    }

    fn none() -> Preconditions {
        Preconditions::none("e")
    }

    fn tag(revision: u64) -> Preconditions {
        let value = format!("\"e-{revision}\"");
        Preconditions::parse("e", &[value.as_bytes()], &[]).unwrap()
    }

    #[test]
    fn a_put_whose_if_match_is_stale_changes_nothing() {
        let c = notes();
        let mut src = MemorySource::default();
        src.run(&put(c.clone(), "a".into(), doc(json!({"n": 1})), none()).unwrap())
            .unwrap();
        src.run(&put(c.clone(), "a".into(), doc(json!({"n": 2})), tag(1)).unwrap())
            .unwrap();
        let stale = src.run(&put(c.clone(), "a".into(), doc(json!({"n": 3})), tag(1)).unwrap());
        assert!(matches!(stale, Err(Error::PreconditionFailed(_))));
        assert_eq!(src.view(c.view), json!({"a": {"n": 2}}));
    }

    #[test]
    fn saving_the_same_document_answers_the_revision_it_was_last_changed_at() {
        let c = notes();
        let mut src = MemorySource::default();
        let first = put(c.clone(), "a".into(), doc(json!({"n": 1})), none()).unwrap();
        let (out, _) = src.run(&first).unwrap();
        let saved: Saved = serde_json::from_value(out).unwrap();
        assert!(saved.created && saved.unchanged_since.is_none());
        let (out, plan) = src.run(&first).unwrap();
        let saved: Saved = serde_json::from_value(out).unwrap();
        assert_eq!((saved.created, saved.unchanged_since), (false, Some(1)));
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn a_collection_patch_creates_merges_and_deletes_in_one_change() {
        let c = notes();
        let mut src = MemorySource::default();
        src.run(&put(c.clone(), "a".into(), doc(json!({"n": 1, "x": 1})), none()).unwrap())
            .unwrap();
        src.run(&put(c.clone(), "b".into(), doc(json!({"n": 2})), none()).unwrap())
            .unwrap();
        let body =
            doc(json!({"a": {"x": null, "y": 2}, "b": null, "c": {"n": 3, "z": null}, "d": null}));
        let patch = CollectionPatch::parse(body, 10, key_of).unwrap();
        let (out, plan) = src
            .run(&patch_collection(c.clone(), patch, none()))
            .unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].revision, 3);
        assert_eq!(
            out,
            json!({"a": {"n": 1, "y": 2}, "b": null, "c": {"n": 3}, "d": null})
        );
        assert_eq!(
            src.view(c.view),
            json!({"a": {"n": 1, "y": 2}, "c": {"n": 3}})
        );
    }

    #[test]
    fn a_collection_patch_over_the_limit_or_with_a_bad_entry_is_refused_naming_it() {
        let two = doc(json!({"a": {}, "b": {}}));
        let Err(Error::TooLarge(why)) = CollectionPatch::parse(two, 1, key_of) else {
            panic!("accepted");
        };
        assert!(
            why.contains("at most 1") && why.contains("names 2"),
            "{why}"
        );
        let Err(Error::Invalid(why)) = CollectionPatch::parse(doc(json!({"k": [1]})), 9, key_of)
        else {
            panic!("accepted");
        };
        assert!(why.contains("\"k\""), "{why}");
        let Err(Error::Invalid(why)) = CollectionPatch::parse(doc(json!({"": {}})), 9, key_of)
        else {
            panic!("accepted");
        };
        assert!(why.starts_with("the document \"\""), "{why}");
    }
}
