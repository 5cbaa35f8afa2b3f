//! Items keyed by a server-made UUID whose fields are all required
//! (customers, incidents): one description per kind, one set of writes.

use serde_json::{Map, Value};

use crate::services::fields;
use crate::{Fault, View, Write};

/// What differs between kinds of items.
pub struct Kind {
    pub view: View,
    /// For messages: "customer", "incident".
    pub noun: &'static str,
    pub fields: &'static [&'static str],
    /// Builds a valid document from fields (all present, right types).
    pub validate: fn(&Map<String, Value>) -> Result<Value, Fault>,
    /// The item as the API shows it, with its id.
    pub item: fn(&str, &Value) -> Value,
}

impl Kind {
    /// A valid document from a `POST` body.
    pub fn parse_new(&self, body: &Value) -> Result<Value, Fault> {
        let f = fields::object(body)?;
        fields::only_known(f, self.fields)?;
        (self.validate)(f)
    }

    fn not_found(&self, id: &str) -> Fault {
        Fault::NotFound(format!("no {} with id {id}", self.noun))
    }

    pub fn create(&'static self, id: String, doc: Value) -> Write {
        Write::new(&[self.view], move |d| {
            d.put(self.view, id.clone(), doc.clone())?;
            Ok((self.item)(&id, &doc))
        })
    }

    /// A merge patch of one item; no field may be removed.
    pub fn patch(&'static self, id: String, patch: Value) -> Write {
        Write::new(&[self.view], move |d| {
            let current = d.get(self.view, &id)?.ok_or_else(|| self.not_found(&id))?;
            let doc = (self.validate)(&fields::patched(&current, &patch, self.fields)?)?;
            d.put(self.view, id.clone(), doc.clone())?;
            Ok((self.item)(&id, &doc))
        })
    }

    pub fn delete(&'static self, id: String) -> Write {
        Write::new(&[self.view], move |d| {
            if d.get(self.view, &id)?.is_none() {
                return Err(self.not_found(&id));
            }
            d.delete(self.view, id.clone());
            Ok(Value::Null)
        })
    }
}
