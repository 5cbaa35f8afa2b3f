//! Schemaless collections (`--collection NAME[=schema.json]`, README, "Your own views"):
//! JSON documents under keys the client chooses, for users who do not
//! write Rust. Each collection is one view, served like every other (its
//! snapshot at `/collections/NAME`, its stream at
//! `/collections/NAME/events`), plus `GET`/`PUT`/`PATCH`/`DELETE` on
//! `/collections/NAME/items/{key}`, and a panel on the page at `/`.
//! Written on the public API alone.

mod handlers;
mod pointer;
mod schema;
mod writes;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::derived::{Derived, DerivedSpec};
use crate::openapi;
use crate::panels;
use crate::settings::CollectionArg;
use duality::domain::derive::Derive;
use duality::{Error, Health, LaunchError, Service, Started, View, ViewSpec};
pub use schema::Schema;

/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// The name `--services` selects collections by.
pub const SERVICE: &str = "collections";

/// One collection: its name, its view and its schema, if any.
pub struct Collection {
    /// The collection's name, as it appears in its paths.
    pub name: String,
    /// The collection's view, named `collections.NAME`.
    pub view: View,
    /// The JSON Schema every item must satisfy, if one was given.
    pub schema: Option<Schema>,
}

impl Collection {
    /// The collection `name`, validated by `schema` if given.
    pub fn new(name: &str, schema: Option<Schema>) -> Collection {
        Collection::with_derived(name, schema, &[])
    }

    /// The collection `name`, validated by `schema` if given, whose every
    /// write also keeps the views `derived` from it.
    pub fn with_derived(
        name: &str,
        schema: Option<Schema>,
        derived: &[&'static dyn Derive],
    ) -> Collection {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let derived: &'static [&'static dyn Derive] =
            Box::leak(derived.to_vec().into_boxed_slice());
        let view = View::leak(
            ViewSpec::new(
                leak(format!("collections.{name}")),
                leak(format!("/collections/{name}")),
                leak(format!("/collections/{name}/events")),
            )
            .derived(derived),
        );
        Collection {
            name: name.to_string(),
            view,
            schema,
        }
    }

    /// Checks a document about to be stored: no `null` anywhere, as a
    /// member or inside an array (in a view `null` means "remove", so the
    /// stream could not reproduce it), then the schema, if there is one.
    /// After a merge patch, a `null` left is one the patch carried inside
    /// an array; it is named where it would have been in the document.
    pub fn check(&self, doc: &Map<String, Value>) -> Result<(), Error> {
        if let Some(at) = pointer::first_null_member(doc) {
            return Err(Error::Invalid(format!(
                "null at {}: a document holds no null values (leave the member out instead)",
                pointer::quoted(&at)
            )));
        }
        match &self.schema {
            Some(schema) => schema.check(doc),
            None => Ok(()),
        }
    }
}

/// Lists the collections in `/healthz`.
struct Listed(Vec<String>);

impl Health for Listed {
    fn degraded(&self) -> bool {
        false
    }

    fn report(&self, health: &mut Map<String, Value>) {
        health.insert("collections".into(), json!(self.0));
    }
}

/// The collections service for `args` (reads and compiles their schemas),
/// with the views `derived` from them (SPEC §15).
pub fn service(args: &[CollectionArg], derived: &[DerivedSpec]) -> Result<Service, LaunchError> {
    let mut service = Service::new(SERVICE);
    let mut names = Vec::new();
    let derived = derived_views(args, derived)?;
    for d in &derived {
        let schema = d.doc_schema();
        let path = d.view.snapshot_path();
        service = service
            .view(d.view)
            .openapi(move |paths| derived_document(paths, path, schema.clone()));
    }
    for arg in args {
        if names.contains(&arg.name) {
            return Err(LaunchError::Config(format!(
                "--collection {} is given twice",
                arg.name
            )));
        }
        let schema = match &arg.schema {
            Some(path) => Some(Schema::load(&arg.name, path).map_err(LaunchError::Config)?),
            None => None,
        };
        let derives: Vec<&'static dyn Derive> = derived
            .iter()
            .filter(|d| d.spec.from == arg.name)
            .map(|d| d.derive)
            .collect();
        let collection = Arc::new(Collection::with_derived(&arg.name, schema, &derives));
        let items = format!("/collections/{}/items/{{key}}", arg.name);
        let schema_json = collection.schema.as_ref().map(|s| s.json().clone());
        let (name, snapshot) = (arg.name.clone(), collection.view.snapshot_path());
        service = service
            .view(collection.view)
            .panel(collection.view, panels::COLLECTION_JS)
            .route(&items, handlers::routes(&collection))
            .openapi(move |paths| document(paths, &name, snapshot, schema_json.clone()));
        names.push(arg.name.clone());
    }
    let listed = Arc::new(Listed(names));
    Ok(service.on_start(move |_| async move {
        Ok(Started {
            routes: Vec::new(),
            health: Some(listed),
        })
    }))
}

/// The derived views of `specs`, each over one of the collections `args`
/// and named once.
fn derived_views(
    args: &[CollectionArg],
    specs: &[DerivedSpec],
) -> Result<Vec<Derived>, LaunchError> {
    let mut views: Vec<Derived> = Vec::new();
    for spec in specs {
        if !args.iter().any(|a| a.name == spec.from) {
            return Err(LaunchError::Config(format!(
                "the derived view {} is from the collection {}, which is not served",
                spec.name, spec.from
            )));
        }
        if views.iter().any(|d| d.spec.name == spec.name) {
            return Err(LaunchError::Config(format!(
                "the derived view {} is declared twice",
                spec.name
            )));
        }
        views.push(Derived::new(spec));
    }
    Ok(views)
}

/// A derived view's documents' schema on its snapshot.
fn derived_document(paths: &mut Map<String, Value>, snapshot: &str, doc: Value) {
    if let Some(get) = paths.get_mut(snapshot).and_then(|p| p.get_mut("get")) {
        get["responses"]["200"]["content"]["application/json"]["schema"] =
            json!({"type": "object", "additionalProperties": doc});
    }
}

/// The item paths of one collection, and its documents' schema on its
/// snapshot.
fn document(paths: &mut Map<String, Value>, name: &str, snapshot: &str, schema: Option<Value>) {
    let doc = schema.unwrap_or_else(|| json!({"type": "object"}));
    if let Some(get) = paths.get_mut(snapshot).and_then(|p| p.get_mut("get")) {
        get["responses"]["200"]["content"]["application/json"]["schema"] =
            json!({"type": "object", "additionalProperties": doc.clone()});
    }
    let key = json!({"name": "key", "in": "path", "required": true,
                     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}});
    let revision = || openapi::revision_header(true, "The collection's revision after the write");
    let found = json!({"description": "The document", "headers": {"X-Revision": revision()},
                       "content": {"application/json": {"schema": doc}}});
    let tag = format!("collection {name}");
    let mut put = json!({
        "200": found, "201": found,
        "400": openapi::error(&format!("Not an object, a null anywhere (member or array item), a bad key (empty, over {MAX_KEY_CHARS} characters, or holding U+0000), or (with a schema) a document the schema rejects. The error names the failing location as a JSON Pointer (\"\" is the whole document) and does not repeat the values.")),
        "503": openapi::unavailable()
    });
    openapi::body_errors(&mut put);
    let mut patch = json!({
        "200": found,
        "400": openapi::error("Not an object, a null inside an array, a bad key, or a result the schema rejects (the error names the failing location as a JSON Pointer)."),
        "404": openapi::error("No such document."),
        "503": openapi::unavailable()
    });
    openapi::body_errors(&mut patch);
    paths.insert(format!("/collections/{name}/items/{{key}}"), json!({
        "get": openapi::get_one(&tag, "One document", &key, doc.clone()),
        "put": {"tags": [tag], "summary": "Create (201) or replace (200) the document; null is refused anywhere, in arrays too",
                "parameters": [key], "requestBody": openapi::json_body(doc), "responses": put},
        "patch": {"tags": [tag], "summary": "Merge-patch the document (RFC 7396: a null member removes that member; a null inside an array is refused)",
                  "parameters": [key], "requestBody": openapi::json_body(json!({"type": "object"})), "responses": patch},
        "delete": openapi::delete_op(&tag, "Delete the document", &key),
    }));
}
