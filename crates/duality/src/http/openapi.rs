//! The OpenAPI 3.1 document at `/openapi.json`, generated from the same list
//! of served views the router uses, so a served route is a documented one.
//!
//! The document is exact (docs/PROTOCOL.md, "Errors"): every status code a route can answer is
//! listed, and every bound the server enforces is in a schema (integer
//! ranges, non-blank strings, `additionalProperties: false` where unknown
//! fields are refused, no `null` where the server refuses it), so a request
//! the schemas allow is accepted and one they forbid is refused. CI checks
//! this with a property-based conformance run (`tests/openapi_conformance.rs`).
//!
//! The engine documents what it serves for any view (snapshot, stream, the
//! operations endpoints); each service adds its own paths, and its views
//! their schemas, at registration.

use serde_json::{Map, Value, json};

use duality_core::View;

/// A reference to a schema of the document's components.
pub fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A response with an [`Error`](schema) body.
pub fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}})
}

/// The `503` every operation that reads or writes the store can answer.
pub fn unavailable() -> Value {
    error(
        "The store (or a service this one calls) is unavailable; retrying later may succeed. The body never carries internal details.",
    )
}

/// The `X-Revision` header of an answer.
pub fn revision_header(required: bool, what: &str) -> Value {
    json!({"required": required, "description": what,
           "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}})
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
        "parameters": [
            {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}},
            {"name": "key", "in": "query", "required": false, "style": "form", "explode": true,
             "description": "Only the documents under these keys (repeatable, at most 1000).",
             "schema": {"type": "array", "maxItems": 1000, "items": {}}},
            {"name": "where", "in": "query", "required": false,
             "description": "Only the documents that contain every member of this JSON object (objects compared member by member, arrays and scalars whole).",
             "content": {"application/json": {"schema": {"type": "object"}}}}
        ],
        "responses": {
            "200": {
                "description": "The view: an object of documents by key.",
                "headers": {
                    "X-Revision": revision_header(true, "The revision this snapshot reflects"),
                    "X-Epoch": {"required": true, "schema": {"type": "string"}, "description": "The database's history id"},
                    "ETag": {"required": true, "schema": {"type": "string"}},
                    "Link": {"required": true, "schema": {"type": "string"}, "description": "`<stream path>; rel=\"duality-stream\"`: where this view's change stream is served"}
                },
                "content": {"application/json": {"schema": snapshot_schema(view)}}
            },
            "304": {"description": "Not modified since the ETag."},
            "400": error("A malformed filter, or a query parameter this path does not take (named in the error)."),
            "414": {"description": "The request line is too long for the server (split a long key= list over several requests)."},
            "503": unavailable()
        }
    }})
}

fn stream_op(view: View) -> Value {
    let position = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    json!({"get": {
        "tags": [view.name()],
        "summary": format!("The change stream of the {} view", view.name()),
        "description": "Server-Sent Events. Each change: `id: <revision>` and `data: <JSON Merge Patch>` with no event name. Control events: `snapshot`, `catch-up`, `caught-up`, `progress`, `reset` (the stream then ends), `stale`, `fresh`. Start: Last-Event-ID (after r), ?revision= or X-Revision (at or after r), ?snapshot=true, else the oldest retained event. A position older than the retained events but within --catch-up-horizon first gets one `catch-up` event: `id` the current revision, data the merge patch from the position to it (changed documents whole, deleted ones null), then the changes after it; with mode=poll, one change marked `compacted` (see docs/PROTOCOL.md, \"Catch-up\").",
        "parameters": [
            {"name": "revision", "in": "query", "required": false, "schema": position},
            {"name": "snapshot", "in": "query", "required": false, "schema": {"type": "boolean"}},
            {"name": "epoch", "in": "query", "required": false, "schema": {"type": "string"}},
            {"name": "X-Revision", "in": "header", "required": false, "schema": position},
            {"name": "X-Epoch", "in": "header", "required": false, "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "required": false, "schema": position},
            {"name": "key", "in": "query", "required": false, "style": "form", "explode": true,
             "description": "Only the changes of the documents under these keys (repeatable, at most 1000).",
             "schema": {"type": "array", "maxItems": 1000, "items": {}}},
            {"name": "where", "in": "query", "required": false,
             "description": "Only the changes of the documents that contain this JSON object, before or after: one entering the subset comes whole, one leaving it as null.",
             "content": {"application/json": {"schema": {"type": "object"}}}},
            {"name": "mode", "in": "query", "required": false, "schema": {"type": "string", "enum": ["poll"]},
             "description": "poll: answer one JSON page of the changes after `after` instead of a stream."},
            {"name": "after", "in": "query", "required": false, "schema": position,
             "description": "With mode=poll: the revision the page starts after."},
            {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 60},
             "description": "With mode=poll: seconds to wait for a change when there is none yet (default 20)."}
        ],
        "responses": {
            "200": {"description": "The stream (it does not end by itself); with mode=poll, one JSON page of changes.",
                    "content": {
                        "text/event-stream": {"schema": {"type": "string"}},
                        "application/json": {"schema": closed(json!({
                            "epoch": {"type": "string"},
                            "changes": {"type": "array", "items": {
                                "type": "object",
                                "required": ["revision", "patch"],
                                "additionalProperties": false,
                                "properties": {
                                    "revision": {"type": "integer", "minimum": 1},
                                    "patch": {"type": "object", "description": "A JSON Merge Patch"},
                                    "compacted": {"type": "boolean", "enum": [true],
                                                  "description": "A catch-up: the one merge patch from `after` (older than the retained events) to `revision`, the current one"}}}},
                            "next": {"type": "string", "description": "The relative URL to request next"}}))}}},
            "400": error("A position that is not a non-negative integer, a malformed filter or poll, or a query parameter this path does not take (named in the error)."),
            "410": {"description": "The position is older than the catch-up horizon (--catch-up-horizon), lies beyond the current revision + 1, or belongs to another epoch.",
                    "content": {"application/json": {"schema": schema("Gone")}}},
            "503": unavailable()
        }
    }})
}

/// `GET /streams`: the views' change streams over one connection.
fn multiplexed_op(views: &[View]) -> Value {
    use crate::stream::multiplex::{MAX_ID, MAX_SUBSCRIPTIONS};
    let names: Vec<String> = views.iter().map(|v| regex_escaped(v.name())).collect();
    let item = format!("^[A-Za-z0-9_-]{{1,{MAX_ID}}}:({})$", names.join("|"));
    json!({"get": {
        "tags": ["streams"],
        "summary": "Several views' change streams over one connection",
        "description": format!(
            "Server-Sent Events of every subscription named by `s` (a browser opens at most six \
             connections per host; one of these carries up to {MAX_SUBSCRIPTIONS} subscriptions). \
             Each subscription takes the parameters of a view's own stream, prefixed with its id: \
             `<id>.snapshot`, `<id>.revision`, `<id>.key` (repeatable), `<id>.where` (see the \
             views' stream paths). Events are named `snapshot`, `change`, `catch-up`, `caught-up`, \
             `progress`, `reset`, `stale` and `fresh`; each one's data is a JSON object whose `sub` \
             names its subscription (`change` and `catch-up`: `{{\"sub\", \"revision\", \"patch\"}}`; `snapshot`: \
             `{{\"sub\", \"revision\", \"view\"}}`). Every event's id lists the position of each \
             subscription that has one (`a=12,b=7`): send it back as Last-Event-ID to resume \
             every subscription exactly. A subscription whose position cannot be served gets its \
             own `reset` and the others go on. See docs/PROTOCOL.md, \"Many views on one \
             connection\"."
        ),
        "parameters": [
            {"name": "s", "in": "query", "required": true, "style": "form", "explode": true,
             "description": "A subscription: `<id>:<view name>`, the id being 1 to 32 ASCII letters, digits, - or _, distinct within the request.",
             "schema": {"type": "array", "minItems": 1, "maxItems": MAX_SUBSCRIPTIONS, "items": {"type": "string", "pattern": item}}},
            {"name": "epoch", "in": "query", "required": false, "schema": {"type": "string"}},
            {"name": "X-Epoch", "in": "header", "required": false, "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "required": false,
             "description": "The id of the last event received: `<id>=<revision>` for each subscription that has a position, comma-separated.",
             "schema": {"type": "string"}}
        ],
        "responses": {
            "200": {"description": "The stream (it ends only when every subscription was reset).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "400": error("A malformed subscription, position or filter, a view this server does not serve, or a parameter this path does not take (named in the error)."),
            "410": {"description": "The epoch is not the server's: every position belongs to another history.",
                    "content": {"application/json": {"schema": schema("EpochGone")}}},
            "503": unavailable()
        }
    }})
}

/// `text` with the characters a regular expression gives a meaning
/// escaped.
fn regex_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An object whose listed properties are all required and nothing else.
pub fn closed(properties: Value) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map_or(vec![], |p| p.keys().collect());
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

/// The components every document has: the bodies of the engine's errors.
fn schemas() -> Value {
    json!({
        "Error": closed(json!({"error": {"type": "string"}})),
        "Gone": closed(json!({
            "error": {"type": "string"}, "oldestRevision": {"type": ["integer", "null"], "minimum": 1},
            "currentRevision": {"type": "integer", "minimum": 0}, "snapshot": {"type": "string"},
            "epoch": {"type": "string"}})),
        "EpochGone": closed(json!({"error": {"type": "string"}, "epoch": {"type": "string"}}))
    })
}

/// What `/openapi.json` says of a route its service did not describe:
/// its path parameters, and that nothing more is known of it.
pub fn undescribed(service: &str, path: &str) -> Value {
    let parameters: Vec<Value> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let name = name.trim_start_matches('*');
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    json!({
        "summary": format!("A route of the {service} service"),
        "description": format!("The {service} service serves this path but does not describe it; its methods and answers are not documented here."),
        "parameters": parameters,
        "x-duality-undescribed": true
    })
}

/// The document for the running services: every view's snapshot and
/// stream, then each service's own paths (`services`), then every route
/// in `routes` (service, path) that no service described.
pub fn document(
    views: &[View],
    services: &[super::OpenApiPaths],
    routes: &[(&'static str, String)],
) -> Value {
    let mut paths = Map::new();
    for &view in views {
        paths.insert(view.snapshot_path().into(), snapshot_op(view));
        paths.insert(view.stream_path().into(), stream_op(view));
    }
    paths.insert(super::streams::PATH.into(), multiplexed_op(views));
    for add in services {
        add(&mut paths);
    }
    for (service, path) in routes {
        if !paths.contains_key(path) {
            paths.insert(path.clone(), undescribed(service, path));
        }
    }
    paths.insert("/".into(), json!({"get": {"tags": ["web"], "summary": "The live web page: the served views in tables and charts, kept current with EventSource (its scripts and styles are under /assets/)", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/docs".into(), json!({"get": {"tags": ["web"], "summary": "An interactive page of this document: pick an operation, fill its parameters and body, send it from the browser and see the answer",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/healthz".into(), json!({"get": {"tags": ["operations"], "summary": "Liveness: the process answers; epoch, revisions, the served views and upstreams",
        "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status", "epoch", "revisions"],
            "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}, "epoch": {"type": "string"},
                           "revisions": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                           "views": {"type": "array", "description": "The served views, in the order their services register them",
                                     "items": {"type": "object", "required": ["name", "snapshot", "stream"],
                                               "properties": {"name": {"type": "string"}, "snapshot": {"type": "string"}, "stream": {"type": "string"}}}},
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
        let mut snapshot = own.snapshot;
        // A view of fixed members still answers only some of them to a
        // filter (key=, where=): none is required.
        if let Some(members) = snapshot.as_object_mut()
            && members.contains_key("properties")
            && members.remove("required").is_some()
        {
            members.insert(
                "description".into(),
                json!("Every member, or (with key= or where=) those the filter keeps."),
            );
        }
        components[own.name] = snapshot;
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
