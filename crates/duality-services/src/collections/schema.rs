//! A collection's JSON Schema: read and compiled once at start, then
//! checked against every document a write would store.

use std::path::Path;

use serde_json::{Map, Value};

use super::pointer;
use duality::Error;

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
            format!(
                "--collection {collection}: the schema {shown} is not a usable JSON Schema: {e}"
            )
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

    /// Checks a document. The error names one failing location as a JSON
    /// Pointer (`""` is the document itself) and says what is wrong there
    /// without repeating the client's value. When several locations fail,
    /// the one named is the same every time: the shallowest, then the
    /// first by pointer, then by the schema keyword's own pointer.
    pub fn check(&self, doc: &Map<String, Value>) -> Result<(), Error> {
        let doc = Value::Object(doc.clone());
        if self.validator.is_valid(&doc) {
            return Ok(());
        }
        let first = self
            .validator
            .iter_errors(&doc)
            .map(|e| Violation::from(&e))
            .min();
        let (at, what) = match first {
            Some(v) => (v.location, v.message),
            None => (String::new(), "the document does not match".into()),
        };
        Err(Error::Invalid(format!(
            "schema violation at {}: {what}",
            pointer::quoted(&at)
        )))
    }
}

/// One error of the crate, in the order [`Schema::check`] picks from.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    depth: usize,
    location: String,
    keyword: String,
    message: String,
}

impl From<&jsonschema::ValidationError<'_>> for Violation {
    fn from(e: &jsonschema::ValidationError<'_>) -> Self {
        Violation {
            depth: e.instance_path().segments().count(),
            location: e.instance_path().as_str().to_string(),
            keyword: e.schema_path().as_str().to_string(),
            message: one_line(&e.masked().to_string()),
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
        let Err(Error::Invalid(why)) = schema.check(&doc(json!({"price": 1, "tags": ["a", 2]})))
        else {
            panic!("accepted");
        };
        assert!(why.contains(r#"at "/tags/1":"#), "{why}");
        let Err(Error::Invalid(why)) = schema.check(&doc(json!({}))) else {
            panic!("accepted");
        };
        assert!(why.contains(r#"at "":"#), "{why}");
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused() {
        assert!(Schema::compile(&json!({"type": 12})).is_err());
    }
}
