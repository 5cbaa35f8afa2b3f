//! Items keyed by a server-made UUID whose fields are all required
//! (customers, incidents): each kind is a typed document ([`Item`]), with
//! one set of writes over it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::fields;
use duality::{Error, View, Write};

/// A kind of item: its document type, view and validation.
pub trait Item: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The view that holds the documents.
    const VIEW: View;
    /// For messages: "customer", "incident".
    const NOUN: &'static str;
    /// Every field of the document, as named on the wire.
    const FIELDS: &'static [&'static str];

    /// Builds a valid document from fields (all present, right types), or
    /// says which field is wrong.
    fn validate(fields: &Map<String, Value>) -> Result<Self, Error>;

    /// The item as the API shows it, with its id.
    fn item(&self, id: &str) -> Value;

    /// A valid document from a `POST` body: an object of exactly
    /// [`Item::FIELDS`].
    fn parse_new(body: &Value) -> Result<Self, Error> {
        let f = fields::object(body)?;
        fields::only_known(f, Self::FIELDS)?;
        Self::validate(f)
    }
}

fn not_found<D: Item>(id: &str) -> Error {
    Error::NotFound(format!("no {} with id {id}", D::NOUN))
}

/// Stores `doc` under the new `id`; answers the item.
pub fn create<D: Item>(id: String, doc: D) -> Write {
    Write::new(&[D::VIEW], move |d| {
        d.write(D::VIEW, id.clone(), &doc)?;
        Ok(doc.item(&id))
    })
}

/// A merge patch of one item; no field may be removed, and the result must
/// be a valid document. Answers the item after the patch.
pub fn patch<D: Item>(id: String, patch: Value) -> Write {
    Write::new(&[D::VIEW], move |d| {
        let current = d.get(D::VIEW, &id)?.ok_or_else(|| not_found::<D>(&id))?;
        let doc = D::validate(&fields::patched(&current, &patch, D::FIELDS)?)?;
        d.write(D::VIEW, id.clone(), &doc)?;
        Ok(doc.item(&id))
    })
}

/// Removes one item.
pub fn delete<D: Item>(id: String) -> Write {
    Write::new(&[D::VIEW], move |d| {
        if d.get(D::VIEW, &id)?.is_none() {
            return Err(not_found::<D>(&id));
        }
        d.delete(D::VIEW, id.clone());
        Ok(Value::Null)
    })
}

/// A stored document read for a read model. The writes store only valid
/// documents, so one that does not parse is a bug: it is logged and left
/// out, never read as defaults.
pub fn stored<D: Item>(key: &str, text: &str) -> Option<D> {
    match serde_json::from_str(text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::error!(view = %D::VIEW, key, error = %e, "a stored document is not a {}; left out of the read models", D::NOUN);
            None
        }
    }
}
