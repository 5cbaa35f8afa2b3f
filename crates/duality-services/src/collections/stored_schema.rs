//! One schema per database (README, "Your own views"): a collection's
//! JSON Schema, or its absence, is stored with the collection (in the
//! engine's per-view metadata, under [`META`]) by the first process that
//! serves it. A process started with another one refuses to start, naming
//! the collection, unless told to replace it (`--replace-schema NAME`);
//! replacing, like the first record, checks every stored document against
//! the new schema in the same transaction, and the first one it rejects
//! refuses the start, naming its key and the failing pointer.
//!
//! Schemas are compared as JSON values, so re-indenting the file or
//! reordering its members is not a change.

use std::sync::Arc;

use serde_json::Value;

use super::Collection;
use duality::{App, DocCheck, Error, LaunchError, MetaChange, MetaSet};

/// The name of the metadata that holds a collection's schema.
pub const META: &str = "schema";

/// How often a start tries again when another process records a schema
/// between its read and its write.
const ATTEMPTS: usize = 3;

/// What is stored for `schema`: its JSON text, or `null` for none.
pub fn record(schema: Option<&Value>) -> String {
    schema.unwrap_or(&Value::Null).to_string()
}

/// Whether a stored record holds the same schema (or the same absence) as
/// `wanted`, compared as JSON.
pub fn same(stored: &str, wanted: &str) -> bool {
    match (
        serde_json::from_str::<Value>(stored),
        serde_json::from_str::<Value>(wanted),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => stored == wanted,
    }
}

/// A record, for a message: `no schema` or `a schema`.
fn described(record: &str) -> &'static str {
    if same(record, "null") {
        "no schema"
    } else {
        "a schema"
    }
}

/// Why a start with `wanted` is refused while `stored` is recorded.
pub fn mismatch(name: &str, stored: &str, wanted: &str) -> String {
    format!(
        "collection `{name}`: the database holds {} for it and this process was started with {} \
         of its own; start it with the stored schema, or with --replace-schema {name} to check \
         every stored document against this one and replace it",
        described(stored),
        if same(wanted, "null") {
            "none"
        } else {
            "another"
        },
    )
}

/// Makes sure the database holds this collection's schema: records it if
/// none is recorded, leaves an equal one alone, and replaces another only
/// if `replace`; recording and replacing first check every stored document.
pub async fn pin(
    app: &App,
    collection: &Arc<Collection>,
    replace: bool,
) -> Result<(), LaunchError> {
    let name = &collection.name;
    let wanted = record(collection.schema.as_ref().map(|s| s.json()));
    let mut stored = app.view_meta(collection.view, META).await?;
    for _ in 0..ATTEMPTS {
        match &stored {
            Some(s) if same(s, &wanted) => return Ok(()),
            Some(s) if !replace => return Err(LaunchError::Config(mismatch(name, s, &wanted))),
            _ => {}
        }
        let change = MetaChange {
            view: collection.view,
            name: META.into(),
            expected: stored.clone(),
            value: wanted.clone(),
            check: Some(check(collection)),
        };
        match app.set_view_meta(change).await {
            Ok(MetaSet::Stored) => {
                if stored.is_some() {
                    tracing::warn!(collection = %name, "replaced the collection's schema: every stored document matches the new one");
                }
                return Ok(());
            }
            Ok(MetaSet::Changed(now)) => stored = now,
            Err(Error::Invalid(why)) => {
                let doing = if stored.is_some() {
                    "cannot replace its schema"
                } else {
                    "cannot record its schema"
                };
                return Err(LaunchError::Config(format!(
                    "collection `{name}`: {doing}: {why}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LaunchError::Config(format!(
        "collection `{name}`: other processes keep changing its stored schema; start again"
    )))
}

/// Checks one stored document as a write would: the key and the failing
/// pointer in the refusal.
fn check(collection: &Arc<Collection>) -> DocCheck {
    let collection = Arc::clone(collection);
    Arc::new(move |key: &str, doc: &Value| {
        let key_text = Value::String(key.to_string());
        let refused =
            |why: String| Error::Invalid(format!("the document {key_text} fails it: {why}"));
        match doc.as_object() {
            Some(members) => collection
                .check(members)
                .map_err(|e| refused(e.to_string())),
            None => Err(refused("it is not an object".into())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_compare_as_json_and_none_is_null() {
        let schema = json!({"type": "object", "required": ["a"]});
        let stored = record(Some(&schema));
        assert!(same(&stored, r#"{ "required": ["a"],  "type": "object" }"#));
        assert!(!same(&stored, &record(None)));
        assert!(same(&record(None), "null"));
        assert!(!same(&stored, r#"{"type": "object"}"#));
    }

    #[test]
    fn a_mismatch_names_the_collection_and_the_way_out() {
        let line = mismatch("tickets", "null", r#"{"type":"object"}"#);
        assert!(
            line.starts_with("collection `tickets`: the database holds no schema"),
            "{line}"
        );
        assert!(line.contains("--replace-schema tickets"), "{line}");
        let line = mismatch("t", r#"{"type":"object"}"#, "null");
        assert!(
            line.contains("holds a schema for it and this process was started with none"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
