//! Schemaless collections (`--collection NAME[=schema.json]`, README, "Your own views"):
//! JSON documents under keys the client chooses or the server makes, for
//! users who do not write Rust. Each collection is one view, served like
//! every other (its snapshot at `/collections/NAME`, its stream at
//! `/collections/NAME/events`), plus `GET`/`PUT`/`PATCH`/`DELETE` on
//! `/collections/NAME/items/{key}` (with `ETag`, `If-Match` and
//! `If-None-Match`), `POST /collections/NAME/items` (a new time-ordered
//! key), `PATCH /collections/NAME` (a merge patch of many documents, all
//! or nothing), and a panel on the page at `/`. Written on the public API
//! alone.

mod handlers;
mod pointer;
mod schema;
pub mod stored_schema;
mod writes;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::derived::{Derived, DerivedSpec};
use crate::openapi;
use crate::panels;
use crate::settings::CollectionArg;
use duality::domain::derive::Derive;
use duality::{Error, Health, LaunchError, Service, Started, View, ViewSchemas, ViewSpec};
pub use schema::Schema;

/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// How many documents one `PATCH /collections/NAME` may change, unless
/// `--collection-batch-limit` says otherwise.
pub const DEFAULT_BATCH_LIMIT: usize = 1000;

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
    /// The most documents one patch of the collection may change.
    pub batch_limit: usize,
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
            .schemas(components)
            .derived(derived),
        );
        Collection {
            name: name.to_string(),
            view,
            schema,
            batch_limit: DEFAULT_BATCH_LIMIT,
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

/// The OpenAPI components every collection shares: a document holds no
/// `null` at any depth, a merge patch of one holds `null` only as a member
/// (to remove it), never in an array.
fn components() -> ViewSchemas {
    let value = openapi::schema("CollectionValue");
    let patch_value = openapi::schema("CollectionPatchValue");
    ViewSchemas {
        name: "CollectionDocuments",
        snapshot: json!({"type": "object", "additionalProperties": openapi::schema("CollectionDocument")}),
        parts: vec![
            (
                "CollectionDocument",
                json!({"type": "object", "additionalProperties": value,
                "description": "A document of a collection: a JSON object with no null anywhere (in a view, null means \"remove\")"}),
            ),
            (
                "CollectionValue",
                json!({"type": ["string", "number", "boolean", "object", "array"],
                "additionalProperties": value, "items": value}),
            ),
            (
                "CollectionPatch",
                json!({"type": "object", "additionalProperties": patch_value,
                "description": "A JSON Merge Patch of a document: a null member removes that member; no null inside an array"}),
            ),
            (
                "CollectionPatchValue",
                json!({"type": ["null", "string", "number", "boolean", "object", "array"],
                "additionalProperties": patch_value, "items": value}),
            ),
        ],
    }
}

/// A key, as the server checks it.
fn key_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": "^[^\\x00]*$"})
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
/// with the views `derived` from them (docs/ARCHITECTURE.md, "Derived views"), each patch of a
/// collection changing at most `batch_limit` documents.
/// At start it makes sure the database holds each collection's schema
/// (see [`stored_schema`]), replacing the stored one of the collections
/// named in `replace_schema`.
pub fn service(
    args: &[CollectionArg],
    derived: &[DerivedSpec],
    replace_schema: &[String],
    batch_limit: usize,
) -> Result<Service, LaunchError> {
    if let Some(unknown) = replace_schema
        .iter()
        .find(|name| !args.iter().any(|a| &a.name == *name))
    {
        return Err(LaunchError::Config(format!(
            "--replace-schema {unknown} names no configured collection"
        )));
    }
    let mut service = Service::new(SERVICE);
    let mut names = Vec::new();
    let mut pins = Vec::new();
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
        let collection = Arc::new(Collection {
            batch_limit,
            ..Collection::with_derived(&arg.name, schema, &derives)
        });
        let items = format!("/collections/{}/items", arg.name);
        let item = format!("{items}/{{key}}");
        let schema_json = collection.schema.as_ref().map(|s| s.json().clone());
        let (name, snapshot) = (arg.name.clone(), collection.view.snapshot_path());
        service = service
            .view(collection.view)
            .panel(collection.view, panels::COLLECTION_JS)
            .route(&item, handlers::item_routes(&collection))
            .route(&items, handlers::create_route(&collection))
            .route(snapshot, handlers::collection_route(&collection))
            .openapi(move |paths| {
                document(paths, &name, snapshot, schema_json.clone(), batch_limit)
            });
        names.push(arg.name.clone());
        pins.push((Arc::clone(&collection), replace_schema.contains(&arg.name)));
    }
    let listed = Arc::new(Listed(names));
    Ok(service.on_start(move |cx| async move {
        for (collection, replace) in &pins {
            stored_schema::pin(&cx.app, collection, *replace).await?;
        }
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

/// The paths of one collection beyond its stream: its snapshot (the
/// documents' schema, and `PATCH`), its items, and `POST …/items`.
fn document(
    paths: &mut Map<String, Value>,
    name: &str,
    snapshot: &str,
    schema: Option<Value>,
    batch_limit: usize,
) {
    let any_doc = openapi::schema("CollectionDocument");
    let doc = match schema {
        Some(schema) => json!({"allOf": [schema, any_doc]}),
        None => any_doc,
    };
    let tag = format!("collection {name}");
    let revision = || openapi::revision_header(true, "The collection's revision after the write");
    let conditions = [openapi::if_match(), openapi::if_none_match()];
    let bad_key = format!("a bad key (empty, over {MAX_KEY_CHARS} characters, or holding U+0000)");
    let bad_conditions = "a malformed If-Match or If-None-Match";
    if let Some(item) = paths.get_mut(snapshot).and_then(Value::as_object_mut) {
        if let Some(get) = item.get_mut("get") {
            get["responses"]["200"]["content"]["application/json"]["schema"] =
                json!({"type": "object", "additionalProperties": doc.clone()});
        }
        item.insert(
            "patch".into(),
            patch_collection_op(&tag, &doc, batch_limit, &conditions),
        );
    }
    let key = json!({"name": "key", "in": "path", "required": true, "schema": key_schema()});
    let mut parameters = vec![key.clone()];
    parameters.extend(conditions.iter().cloned());
    let found = |what: &str| {
        json!({"description": what,
               "headers": {"X-Revision": revision(), "ETag": openapi::etag_header()},
               "content": {"application/json": {"schema": doc}}})
    };
    let failed = openapi::error(
        "If-Match does not hold (the document changed, or does not exist) or If-None-Match does \
         (the document exists, or has that ETag); nothing was changed. The error gives the current ETag.",
    );
    let mut put = json!({
        "200": found("Replaced"), "201": found("Created"),
        "400": openapi::error(&format!("Not an object, a null anywhere (member or array item), {bad_key}, {bad_conditions}, or (with a schema) a document the schema rejects. The error names the failing location as a JSON Pointer (\"\" is the whole document) and does not repeat the values.")),
        "412": failed,
        "503": openapi::unavailable()
    });
    openapi::body_errors(&mut put);
    let mut patch = json!({
        "200": found("After the patch"),
        "400": openapi::error(&format!("Not an object, a null inside an array, {bad_key}, {bad_conditions}, or a result the schema rejects (the error names the failing location as a JSON Pointer).")),
        "404": openapi::error("No such document."),
        "412": failed,
        "503": openapi::unavailable()
    });
    openapi::body_errors(&mut patch);
    let get = json!({"tags": [tag], "summary": "One document, with its ETag (the revision that last changed it)",
        "parameters": parameters,
        "responses": {
            "200": {"description": "Found",
                    "headers": {"ETag": openapi::etag_header(),
                                "X-Revision": openapi::revision_header(true, "The collection's revision the document was read at")},
                    "content": {"application/json": {"schema": doc}}},
            "304": {"description": "Not modified: If-None-Match holds its ETag",
                    "headers": {"ETag": openapi::etag_header()}},
            "400": openapi::error(&format!("{bad_key}, or {bad_conditions}.")),
            "404": openapi::error("No such document."),
            "412": openapi::error("If-Match does not hold: the document has another ETag now."),
            "503": openapi::unavailable()}});
    let delete = json!({"tags": [tag], "summary": "Delete the document (if If-Match holds)",
        "parameters": parameters,
        "responses": {"204": {"description": "Deleted", "headers": {"X-Revision": revision()}},
                      "400": openapi::error(&format!("{bad_key}, or {bad_conditions}.")),
                      "404": openapi::error("No such document."),
                      "412": failed,
                      "503": openapi::unavailable()}});
    paths.insert(format!("/collections/{name}/items/{{key}}"), json!({
        "get": get,
        "put": {"tags": [tag], "summary": "Create (201) or replace (200) the document, if the conditions hold (If-None-Match: * creates only); null is refused anywhere, in arrays too",
                "parameters": parameters, "requestBody": openapi::json_body(doc.clone()), "responses": put},
        "patch": {"tags": [tag], "summary": "Merge-patch the document, if the conditions hold (RFC 7396: a null member removes that member; a null inside an array is refused)",
                  "parameters": parameters, "requestBody": openapi::json_body(openapi::schema("CollectionPatch")), "responses": patch},
        "delete": delete,
    }));
    let created = json!({"type": "object", "required": ["key", "document"], "additionalProperties": false,
                         "properties": {"key": {"type": "string", "format": "uuid",
                                                "description": "A new UUIDv7: keys made later sort later"},
                                        "document": doc}});
    let mut post = openapi::create_op(
        &tag,
        "Create a document under a new key the server makes (a UUIDv7, time-ordered)",
        doc.clone(),
        created,
        "The new document's path",
    );
    post["responses"]["201"]["headers"]["ETag"] = openapi::etag_header();
    post["responses"]["400"] = openapi::error(
        "Not an object, a null anywhere (member or array item), an invalid Idempotency-Key, or (with a schema) a document the schema rejects (the error names the failing location as a JSON Pointer).",
    );
    paths.insert(format!("/collections/{name}/items"), json!({"post": post}));
}

/// `PATCH /collections/NAME`: a merge patch of many documents, all or
/// nothing.
fn patch_collection_op(tag: &str, doc: &Value, batch_limit: usize, conditions: &[Value]) -> Value {
    let after =
        json!({"type": "object", "additionalProperties": {"anyOf": [doc, {"type": "null"}]}});
    let mut responses = json!({
        "200": {"description": "Each key of the patch with its document after the write (null: none). One revision and one event for the whole patch (none if nothing changed).",
                "headers": {"X-Revision": openapi::revision_header(true, "The collection's revision after the write"),
                            "ETag": openapi::etag_header()},
                "content": {"application/json": {"schema": after}}},
        "400": openapi::error(&format!("Not an object; a key that is empty, over {MAX_KEY_CHARS} characters or holds U+0000; a value that is neither an object nor null; a malformed If-Match or If-None-Match; or a resulting document refused (a null in an array, or the schema): the error names the document's key and the failing location as a JSON Pointer. Nothing is changed.")),
        "412": openapi::error("If-Match does not hold (the collection changed since that ETag) or If-None-Match does; nothing was changed."),
        "503": openapi::unavailable()
    });
    openapi::body_errors(&mut responses);
    responses["413"] = openapi::error(&format!(
        "The body is larger than 1 MiB, or names more than {batch_limit} documents (the error says which limit)."
    ));
    let body = json!({"type": "object", "maxProperties": batch_limit,
                      "propertyNames": key_schema(),
                      "additionalProperties": {"anyOf": [{"type": "null"}, openapi::schema("CollectionPatch")]},
                      "description": "A JSON Merge Patch of the collection: each key's value merge-patches its document (creating it if absent), null deletes it."});
    json!({"tags": [tag],
           "summary": format!("Change many documents at once, all or nothing (at most {batch_limit}), if the conditions hold for the collection's ETag"),
           "parameters": conditions, "requestBody": openapi::json_body(body), "responses": responses})
}
