//! A collection's writes, as pure functions over the current document.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Collection;
use duality::{Error, Write, merge};

/// A document: a JSON object with no `null` anywhere (see
/// [`Collection::check`]).
pub type Doc = Map<String, Value>;

/// The write's answer: the document after it, and whether it was new.
pub fn outcome(created: bool, doc: &Doc) -> Value {
    json!({"created": created, "document": doc})
}

fn not_found(c: &Collection, key: &str) -> Error {
    Error::NotFound(format!("no document `{key}` in the collection {}", c.name))
}

/// Creates or replaces the document at `key`. The document is checked
/// here, once: it does not depend on what is stored, so the check stays
/// out of the writing transaction (which a store may run more than once).
pub fn put(c: &Collection, key: String, doc: Doc) -> Result<Write, Error> {
    c.check(&doc)?;
    let view = c.view;
    Ok(Write::new(&[view], move |d| {
        let created = d.get(view, &key)?.is_none();
        d.put(view, key.clone(), Value::Object(doc.clone()))?;
        Ok(outcome(created, &doc))
    }))
}

/// Applies a merge patch to the document at `key` (a `null` member
/// removes that member).
pub fn patch(c: Arc<Collection>, key: String, patch: Doc) -> Write {
    let view = c.view;
    Write::new(&[view], move |d| {
        let mut doc = d.get(view, &key)?.ok_or_else(|| not_found(&c, &key))?;
        merge::apply(&mut doc, &Value::Object(patch.clone()));
        let Value::Object(doc) = doc else {
            return Err(Error::Invalid("a document must be a JSON object".into()));
        };
        c.check(&doc)?;
        d.put(view, key.clone(), Value::Object(doc.clone()))?;
        Ok(outcome(false, &doc))
    })
}

/// Deletes the document at `key`.
pub fn delete(c: Arc<Collection>, key: String) -> Write {
    let view = c.view;
    Write::new(&[view], move |d| {
        if d.get(view, &key)?.is_none() {
            return Err(not_found(&c, &key));
        }
        d.delete(view, key.clone());
        Ok(Value::Null)
    })
}
