//! The OpenAPI 3.1 document at `/openapi.json`, generated from the same list
//! of served views the router uses, so a served route is a documented one.
//!
//! The document is exact (SPEC §6): every status code a route can answer is
//! listed, and every bound the server enforces is in a schema (integer
//! ranges, non-blank strings, `additionalProperties: false` where unknown
//! fields are refused, no `null` where the server refuses it), so a request
//! the schemas allow is accepted and one they forbid is refused. CI checks
//! this with a property-based conformance run (`tests/openapi_conformance.rs`).

use serde_json::{Map, Value, json};

use super::view_schemas::{customer_fields, incident_fields};
use crate::domain::View;
use crate::domain::idempotency::MAX_KEY_LEN;

/// A string with at least one character that is not white space, as the
/// server checks it (Rust's `char::is_whitespace`, the Unicode White_Space
/// property, spelled out so every regex dialect reads it the same).
const NON_BLANK: &str =
    r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A UUID in its hyphenated form, the only form ids are accepted in.
pub const UUID: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A reference to a schema of the document's components.
pub fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn text() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": NON_BLANK})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}})
}

fn unavailable() -> Value {
    error(
        "The store (or, for the dashboard baseline, a backend) is unavailable; retrying later may succeed. The body never carries internal details.",
    )
}

fn revision_header(required: bool, what: &str) -> Value {
    json!({"required": required, "description": what,
           "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// The answers every request with a JSON body can get besides its own.
fn body_errors(responses: &mut Value) {
    responses["413"] = error("The body is larger than 1 MiB.");
    responses["415"] = error("The body is not sent as `Content-Type: application/json`.");
}

fn idempotency_key() -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
           "description": "Makes the request at most once: a repeat with the same key and body answers the first outcome (status, body, Location, X-Revision) and writes nothing. Keys are kept as long as events (the retention time).",
           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LEN, "pattern": "^[\\x21-\\x7e]+$"}})
}

/// The answers of a creating `POST`, and its `Idempotency-Key`.
fn create_op(tag: &str, summary: &str, body: Value, created: Value, location: &str) -> Value {
    let mut responses = json!({
        "201": {"description": "Created",
                "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write")),
                            "Location": {"required": true, "description": location, "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": created}}},
        "400": error("The body or the Idempotency-Key is invalid."),
        "409": error("A request with this Idempotency-Key is still being handled."),
        "422": error("This Idempotency-Key was already used with another body."),
        "503": unavailable()
    });
    body_errors(&mut responses);
    json!({"tags": [tag], "summary": summary, "parameters": [idempotency_key()],
           "requestBody": json_body(body), "responses": responses})
}

fn patch_op(tag: &str, summary: &str, id: &Value, body: Value, after: Value) -> Value {
    let mut responses = json!({
        "200": {"description": "After the patch",
                "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write"))},
                "content": {"application/json": {"schema": after}}},
        "400": error("The patch or the id is invalid."),
        "404": error("No such id."),
        "503": unavailable()
    });
    body_errors(&mut responses);
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "requestBody": json_body(body), "responses": responses})
}

fn delete_op(tag: &str, summary: &str, id: &Value) -> Value {
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "responses": {"204": {"description": "Deleted",
                                 "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write"))}},
                         "400": error("Not a valid id."), "404": error("No such id."), "503": unavailable()}})
}

fn get_one(tag: &str, summary: &str, id: &Value, found: Value) -> Value {
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "responses": {"200": {"description": "Found", "content": {"application/json": {"schema": found}}},
                         "400": error("Not a valid id."), "404": error("No such id."), "503": unavailable()}})
}

fn read_op(tag: &str, summary: &str, params: Value, answer: Value, bad_param: bool) -> Value {
    let mut responses = json!({
        "200": {"description": summary, "content": {"application/json": {"schema": answer}}},
        "503": unavailable()
    });
    if bad_param {
        responses["400"] = error("Invalid parameter.");
    }
    json!({"get": {"tags": [tag], "summary": summary, "parameters": params, "responses": responses}})
}

/// The schema of a view's snapshot: the component its service named, or
/// any object of documents by key.
fn snapshot_schema(view: View) -> Value {
    match view.schemas() {
        Some(own) => schema(own.name),
        None => json!({"type": "object", "description": "Documents by key"}),
    }
}

fn snapshot_op(view: View) -> Value {
    json!({"get": {
        "tags": [view.name()],
        "summary": format!("The whole {} view", view.name()),
        "description": "The aggregate, with the revision it reflects. If-None-Match with the ETag answers 304.",
        "parameters": [{"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}],
        "responses": {
            "200": {
                "description": "The view: an object of documents by key.",
                "headers": {
                    "X-Revision": revision_header(true, "The revision this snapshot reflects"),
                    "X-Epoch": {"required": true, "schema": {"type": "string"}, "description": "The database's history id"},
                    "ETag": {"required": true, "schema": {"type": "string"}}
                },
                "content": {"application/json": {"schema": snapshot_schema(view)}}
            },
            "304": {"description": "Not modified since the ETag."},
            "503": unavailable()
        }
    }})
}

fn stream_op(view: View) -> Value {
    let position = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    json!({"get": {
        "tags": [view.name()],
        "summary": format!("The change stream of the {} view", view.name()),
        "description": "Server-Sent Events. Each change: `id: <revision>` and `data: <JSON Merge Patch>` with no event name. Control events: `snapshot`, `reset` (the stream then ends). Start: Last-Event-ID (after r), ?revision= or X-Revision (at or after r), ?snapshot=true, else the oldest retained event.",
        "parameters": [
            {"name": "revision", "in": "query", "required": false, "schema": position},
            {"name": "snapshot", "in": "query", "required": false, "schema": {"type": "boolean"}},
            {"name": "epoch", "in": "query", "required": false, "schema": {"type": "string"}},
            {"name": "X-Revision", "in": "header", "required": false, "schema": position},
            {"name": "X-Epoch", "in": "header", "required": false, "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "required": false, "schema": position}
        ],
        "responses": {
            "200": {"description": "The stream (it does not end by itself).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "400": error("A position that is not a non-negative integer."),
            "410": {"description": "The position was deleted by retention, lies beyond the current revision + 1, or belongs to another epoch.",
                    "content": {"application/json": {"schema": schema("Gone")}}},
            "503": unavailable()
        }
    }})
}

/// The persons service's own paths.
pub fn persons_paths(paths: &mut Map<String, Value>) {
    let id = json!({"name": "id", "in": "path", "required": true,
                    "schema": {"type": "integer", "minimum": 1, "maximum": u64::MAX}});
    let mut item = paths.remove("/persons").unwrap_or_else(|| json!({}));
    item["post"] = create_op(
        "persons",
        "Create a person",
        schema("NewPerson"),
        schema("Person"),
        "/persons/{id}",
    );
    paths.insert("/persons".into(), item);
    paths.insert(
        "/persons/{id}".into(),
        json!({
            "get": get_one("persons", "One person", &id, schema("Person")),
            "patch": patch_op("persons", "Merge-patch a person ({\"city\": null} removes the city)",
                              &id, schema("PersonPatch"), schema("Person")),
            "delete": delete_op("persons", "Delete a person", &id),
        }),
    );
    paths.insert("/locations/{city}".into(), json!({
        "get": {"tags": ["locations"], "summary": "One city's total",
                "parameters": [{"name": "city", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The city's total", "content": {"application/json": {"schema": schema("Location")}}},
                              "404": error("No person lives there."), "503": unavailable()}}
    }));
}

/// What differs between the customers' and the incidents' paths.
struct Items {
    tag: &'static str,
    path: &'static str,
    noun: &'static str,
    list: &'static str,
}

fn entity_paths(paths: &mut Map<String, Value>, items: &Items) {
    let tag = items.tag;
    let noun = items.noun;
    let id = json!({"name": "id", "in": "path", "required": true,
                    "schema": {"type": "string", "format": "uuid", "pattern": UUID}});
    let item = schema(noun);
    paths.insert(items.path.into(), json!({
        "get": read_op(tag, items.list, json!([]),
                       json!({"type": "array", "items": schema(&format!("{noun}Summary"))}), false)["get"],
        "post": create_op(tag, &format!("Create a {tag} item (the server makes its UUID)"),
                          schema(&format!("New{noun}")), item.clone(), &format!("{}/{{id}}", items.path)),
    }));
    paths.insert(
        format!("{}/{{id}}", items.path),
        json!({
            "get": get_one(tag, "One item with its id", &id, item.clone()),
            "patch": patch_op(tag, "Merge-patch an item (fields cannot be removed)", &id,
                              schema(&format!("{noun}Patch")), item),
            "delete": delete_op(tag, "Delete an item", &id),
        }),
    );
}

/// An object whose listed properties are all required and nothing else.
pub(super) fn closed(properties: Value) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map_or(vec![], |p| p.keys().collect());
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

/// A merge patch of an item whose fields are all required: any subset of
/// them, none `null`.
fn patch_of(properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

fn schemas() -> Value {
    let uuid = json!({"type": "string", "format": "uuid", "pattern": UUID});
    let scoring = json!({"type": "integer", "minimum": 0, "maximum": 10});
    let amount = json!({"type": "number", "minimum": 0});
    let count = json!({"type": "integer", "minimum": 0});
    let customer = customer_fields();
    let incident = incident_fields();
    let with_id = |id: &Value, fields: &Value| {
        let mut all = json!({"id": id});
        if let (Some(out), Some(fields)) = (all.as_object_mut(), fields.as_object()) {
            out.extend(fields.clone());
        }
        closed(all)
    };
    json!({
        "Error": closed(json!({"error": {"type": "string"}})),
        "Gone": closed(json!({
            "error": {"type": "string"}, "oldestRevision": {"type": ["integer", "null"], "minimum": 1},
            "currentRevision": {"type": "integer", "minimum": 0}, "snapshot": {"type": "string"},
            "epoch": {"type": "string"}})),
        "NewPerson": {"type": "object", "additionalProperties": false, "required": ["name"],
                      "properties": {"name": text(), "city": text()}},
        "PersonPatch": {"type": "object", "additionalProperties": false,
                        "properties": {"name": text(),
                                       "city": {"anyOf": [text(), {"type": "null"}]}}},
        "Person": {"type": "object", "additionalProperties": false, "required": ["id", "name"],
                   "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string"},
                                  "city": {"type": "string"}}},
        "NewCustomer": closed(customer.clone()),
        "CustomerPatch": patch_of(customer.clone()),
        "Customer": with_id(&uuid, &customer),
        "CustomerSummary": closed(json!({"id": uuid, "name": {"type": "string"},
                                         "country": {"type": "string"}, "scoring": scoring})),
        "Count": closed(json!({"count": count})),
        "NewIncident": closed(incident.clone()),
        "IncidentPatch": patch_of(incident.clone()),
        "Incident": with_id(&uuid, &incident),
        "IncidentSummary": closed(json!({"id": uuid, "amount": amount, "customerName": {"type": "string"}})),
        "IncidentsByCustomer": {"type": "object", "additionalProperties":
                                {"type": "array", "minItems": 1, "items": schema("IncidentSummary")}}
    })
}

/// The customers service's own paths.
pub fn customers_paths(paths: &mut Map<String, Value>) {
    entity_paths(
        paths,
        &Items {
            tag: "customers",
            path: "/customers/items",
            noun: "Customer",
            list: "All customers by name: [{id, name, country, scoring}]",
        },
    );
    paths.insert(
        "/customers/count".into(),
        read_op(
            "customers",
            "The number of customers",
            json!([]),
            schema("Count"),
            false,
        ),
    );
    paths.insert("/customers/top/{limit}".into(), read_op("customers",
        "The best customers by scoring (desc), then name (asc): [{id, name, country, scoring}]",
        json!([{"name": "limit", "in": "path", "required": true,
                "schema": {"type": "integer", "minimum": 1, "maximum": u64::MAX}}]),
        json!({"type": "array", "items": schema("CustomerSummary")}), true));
}

/// The incidents service's own paths.
pub fn incidents_paths(paths: &mut Map<String, Value>) {
    entity_paths(
        paths,
        &Items {
            tag: "incidents",
            path: "/incidents/items",
            noun: "Incident",
            list: "All incidents by customer name: [{id, amount, customerName}]",
        },
    );
    paths.insert(
        "/incidents/grouped-by-customer".into(),
        read_op(
            "incidents",
            "{customerName: [{id, amount, customerName}]}",
            json!([]),
            schema("IncidentsByCustomer"),
            false,
        ),
    );
}

/// The aggregates service's own paths.
pub fn aggregates_paths(paths: &mut Map<String, Value>) {
    let item = paths
        .get_mut("/aggregates/dashboard")
        .and_then(|i| i.get_mut("get"));
    if let Some(op) = item {
        op["description"] = json!(
            "The dashboard composed from the customers and incidents services, kept live by following their streams. X-Stale: true while a backend cannot be followed (the last known state is served)."
        );
        op["responses"]["200"]["headers"]["X-Stale"] = json!({"required": true,
            "schema": {"type": "string", "enum": ["true", "false"]}});
    }
    paths.insert("/aggregates/dashboard/composed".into(), read_op("dashboard",
        "The dashboard composed on this request by calling both backends (a baseline; not a view: no revision, no stream)",
        json!([]), schema("Dashboard"), false));
}

/// The document for the running services: every view's snapshot and
/// stream, then each service's own paths (`services`).
pub fn document(views: &[View], services: &[crate::service::OpenApiPaths]) -> Value {
    let mut paths = Map::new();
    for &view in views {
        paths.insert(view.snapshot_path().into(), snapshot_op(view));
        paths.insert(view.stream_path().into(), stream_op(view));
    }
    for add in services {
        add(&mut paths);
    }
    paths.insert("/".into(), json!({"get": {"tags": ["web"], "summary": "The live web page: the served views in tables and charts, kept current with EventSource (its scripts and styles are under /assets/)", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/docs".into(), json!({"get": {"tags": ["web"], "summary": "An interactive page of this document: pick an operation, fill its parameters and body, send it from the browser and see the answer",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/healthz".into(), json!({"get": {"tags": ["operations"], "summary": "Liveness: the process answers; epoch, revisions and upstreams",
        "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status", "epoch", "revisions"],
            "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}, "epoch": {"type": "string"},
                           "revisions": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                           "stale": {"type": "boolean"}, "upstreams": {"type": "object"}}}}}}}}}));
    paths.insert("/readyz".into(), json!({"get": {"tags": ["operations"], "summary": "Readiness: the store answers too",
        "responses": {
            "200": {"description": "Ready", "content": {"application/json": {"schema":
                closed(json!({"status": {"const": "ready"}}))}}},
            "503": {"description": "The store is unreachable (the detail is in the log)",
                    "content": {"application/json": {"schema":
                        closed(json!({"status": {"const": "unavailable"}, "error": {"type": "string"}}))}}}}}}));
    paths.insert("/metrics".into(), json!({"get": {"tags": ["operations"], "summary": "Prometheus metrics",
        "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"tags": ["operations"], "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    let mut components = schemas();
    for own in views.iter().filter_map(|v| v.schemas()) {
        components[own.name] = own.snapshot;
        for (name, part) in own.parts {
            components[name] = part;
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "duality", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Every view served twice: as an aggregate (GET, with X-Revision) and as a change stream of JSON Merge Patches (SSE)."},
        // Relative: the server that served this document, under whatever
        // host name, port or proxy it was reached (the listen address may
        // be 0.0.0.0, which no client can call).
        "servers": [{"url": "/", "description": "The server that serves this document"}],
        "paths": paths,
        "components": {"schemas": components}
    })
}
