//! A collection's JSON Schema: read and compiled once at start, then
//! checked against every document a write would store.

use std::path::Path;

use serde_json::{Map, Value};

use crate::Fault;

/// A compiled schema, with the file it came from for messages.
pub struct Schema {
    validator: jsonschema::Validator,
    json: Value,
}

impl Schema {
    /// Reads and compiles the schema at `path`; a missing file, a file
    /// that is not JSON or not a valid schema, or a `$ref` that would have
    /// to be fetched is refused with one line.
    pub fn load(collection: &str, path: &Path) -> Result<Schema, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!("--collection {collection}: cannot read the schema {shown}: {e}")
        })?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| {
            format!("--collection {collection}: the schema {shown} is not JSON: {e}")
        })?;
        Schema::compile(&schema).map_err(|e| {
            format!("--collection {collection}: the schema {shown} is not a usable JSON Schema: {e}")
        })
    }

    /// Compiles a schema given as JSON.
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| one_line(&e.to_string()))?;
        Ok(Schema {
            validator,
            json: schema.clone(),
        })
    }

    /// The schema as it was given.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Checks a document; the error names the first failing location as a
    /// JSON Pointer (`/` for the document itself).
    pub fn check(&self, doc: &Map<String, Value>) -> Result<(), Fault> {
        let doc = Value::Object(doc.clone());
        match self.validator.validate(&doc) {
            Ok(()) => Ok(()),
            Err(error) => {
                let pointer = error.instance_path().as_str();
                let at = if pointer.is_empty() { "/" } else { pointer };
                Err(Fault::Invalid(format!(
                    "the document does not match the collection's schema at {at}: {}",
                    one_line(&error.to_string())
                )))
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failing_document_is_refused_with_the_pointer_of_the_failing_member() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": {"price": {"type": "number"},
                           "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["price"]
        }))
        .unwrap();
        let doc = |v: Value| v.as_object().unwrap().clone();
        assert!(schema.check(&doc(json!({"price": 3}))).is_ok());
        let Err(Fault::Invalid(why)) = schema.check(&doc(json!({"price": 1, "tags": ["a", 2]})))
        else {
            panic!("accepted");
        };
        assert!(why.contains("at /tags/1"), "{why}");
        let Err(Fault::Invalid(why)) = schema.check(&doc(json!({}))) else {
            panic!("accepted");
        };
        assert!(why.contains("at /:"), "{why}");
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused() {
        assert!(Schema::compile(&json!({"type": 12})).is_err());
    }
}
