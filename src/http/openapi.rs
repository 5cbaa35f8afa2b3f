//! The OpenAPI 3.1 document at `/openapi.json`, generated from the same list
//! of served views the router uses, so a served route is a documented one.

use serde_json::{Map, Value, json};

use crate::domain::View;

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn snapshot_op(view: View) -> Value {
    json!({"get": {
        "tags": [view.name()],
        "summary": format!("The whole {} view", view.name()),
        "description": "The aggregate, with the revision it reflects. If-None-Match with the ETag answers 304.",
        "parameters": [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        "responses": {
            "200": {
                "description": "The view: an object of documents by key.",
                "headers": {
                    "X-Revision": {"schema": {"type": "integer"}, "description": "The revision this snapshot reflects"},
                    "X-Epoch": {"schema": {"type": "string"}, "description": "The database's history id"},
                    "ETag": {"schema": {"type": "string"}}
                },
                "content": {"application/json": {"schema": {"type": "object"}}}
            },
            "304": {"description": "Not modified since the ETag."}
        }
    }})
}

fn stream_op(view: View) -> Value {
    json!({"get": {
        "tags": [view.name()],
        "summary": format!("The change stream of the {} view", view.name()),
        "description": "Server-Sent Events. Each change: `id: <revision>` and `data: <JSON Merge Patch>` with no event name. Control events: `snapshot`, `reset` (the stream then ends). Start: Last-Event-ID (after r), ?revision= or X-Revision (at or after r), ?snapshot=true, else the oldest retained event.",
        "parameters": [
            {"name": "revision", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "snapshot", "in": "query", "schema": {"type": "boolean"}},
            {"name": "epoch", "in": "query", "schema": {"type": "string"}},
            {"name": "X-Revision", "in": "header", "schema": {"type": "integer", "minimum": 0}},
            {"name": "X-Epoch", "in": "header", "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}}
        ],
        "responses": {
            "200": {"description": "The stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "400": error("A position that is not a non-negative integer."),
            "410": {"description": "The position was deleted by retention, lies beyond the current revision + 1, or belongs to another epoch.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Gone"}}}}
        }
    }})
}

fn persons_paths(paths: &mut Map<String, Value>) {
    let person = json!({"$ref": "#/components/schemas/Person"});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}});
    let revision = json!({"X-Revision": {"schema": {"type": "integer"}, "description": "The persons revision after the write"}});
    paths.insert("/persons".into(), {
        let mut item = snapshot_op(View::Persons);
        item["post"] = json!({
            "tags": ["persons"], "summary": "Create a person",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPerson"}}}},
            "responses": {
                "201": {"description": "Created", "headers": revision.clone(), "content": {"application/json": {"schema": person.clone()}}},
                "400": error("Invalid body"), "413": error("Body over 1 MiB"), "415": error("Not JSON")
            }
        });
        item
    });
    paths.insert("/persons/{id}".into(), json!({
        "get": {"tags": ["persons"], "summary": "One person", "parameters": [id.clone()],
                "responses": {"200": {"description": "The person", "content": {"application/json": {"schema": person.clone()}}},
                              "400": error("Not a valid id"), "404": error("Unknown id")}},
        "patch": {"tags": ["persons"], "summary": "Merge-patch a person ({\"city\": null} removes the city)",
                  "parameters": [id.clone()],
                  "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PersonPatch"}}}},
                  "responses": {"200": {"description": "The person after the patch", "headers": revision.clone(), "content": {"application/json": {"schema": person}}},
                                "400": error("Invalid patch or id"), "404": error("Unknown id")}},
        "delete": {"tags": ["persons"], "summary": "Delete a person", "parameters": [id],
                   "responses": {"204": {"description": "Deleted", "headers": revision}, "400": error("Not a valid id"), "404": error("Unknown id")}}
    }));
    paths.insert("/locations/{city}".into(), json!({
        "get": {"tags": ["locations"], "summary": "One city's total",
                "parameters": [{"name": "city", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "{\"total\": n}"}, "404": error("No person lives there")}}
    }));
}

fn entity_paths(paths: &mut Map<String, Value>, view: View, items: &str, schema: &str, list: &str) {
    let tag = view.name();
    let item = json!({"$ref": format!("#/components/schemas/{schema}")});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let revision = json!({"X-Revision": {"schema": {"type": "integer"}, "description": format!("The {tag} revision after the write")}});
    paths.insert(items.into(), json!({
        "get": {"tags": [tag], "summary": list, "responses": {"200": {"description": "The items"}}},
        "post": {"tags": [tag], "summary": format!("Create an item (the server makes its UUID)"),
                 "requestBody": {"required": true, "content": {"application/json": {"schema": item.clone()}}},
                 "responses": {"201": {"description": "Created; Location names it", "headers": revision.clone()},
                               "400": error("Invalid body"), "413": error("Body over 1 MiB"), "415": error("Not JSON")}}
    }));
    paths.insert(format!("{items}/{{id}}"), json!({
        "get": {"tags": [tag], "summary": "One item with its id", "parameters": [id.clone()],
                "responses": {"200": {"description": "The item"}, "400": error("Not a UUID"), "404": error("Unknown id")}},
        "patch": {"tags": [tag], "summary": "Merge-patch an item (fields cannot be removed)", "parameters": [id.clone()],
                  "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                  "responses": {"200": {"description": "The item after the patch", "headers": revision.clone()},
                                "400": error("Invalid patch or id"), "404": error("Unknown id")}},
        "delete": {"tags": [tag], "summary": "Delete an item", "parameters": [id],
                   "responses": {"204": {"description": "Deleted", "headers": revision}, "400": error("Not a UUID"), "404": error("Unknown id")}}
    }));
}

fn read_model(tag: &str, summary: &str, params: Value) -> Value {
    json!({"get": {"tags": [tag], "summary": summary, "parameters": params,
                   "responses": {"200": {"description": summary}, "400": error("Invalid parameter")}}})
}

pub fn document(views: &[View]) -> Value {
    let mut paths = Map::new();
    for &view in views {
        paths.insert(view.snapshot_path().into(), snapshot_op(view));
        paths.insert(view.stream_path().into(), stream_op(view));
    }
    if views.contains(&View::Persons) {
        persons_paths(&mut paths);
    }
    if views.contains(&View::Customers) {
        entity_paths(
            &mut paths,
            View::Customers,
            "/customers/items",
            "Customer",
            "All customers by name: [{id, name, country, scoring}]",
        );
        paths.insert(
            "/customers/count".into(),
            read_model("customers", "{\"count\": n}", json!([])),
        );
        paths.insert("/customers/top/{limit}".into(), read_model("customers",
            "The best customers by scoring (desc), then name (asc): [{id, name, country, scoring}]",
            json!([{"name": "limit", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}])));
    }
    if views.contains(&View::Incidents) {
        entity_paths(
            &mut paths,
            View::Incidents,
            "/incidents/items",
            "Incident",
            "All incidents by customer name: [{id, amount, customerName}]",
        );
        paths.insert(
            "/incidents/grouped-by-customer".into(),
            read_model(
                "incidents",
                "{customerName: [{id, amount, customerName}]}",
                json!([]),
            ),
        );
    }
    if views.contains(&View::Dashboard) {
        let item = paths
            .get_mut(View::Dashboard.snapshot_path())
            .and_then(|i| i.get_mut("get"));
        if let Some(op) = item {
            op["description"] = json!(
                "The dashboard composed from the customers and incidents services, kept live by following their streams. X-Stale: true while a backend cannot be followed (the last known state is served)."
            );
        }
        paths.insert("/aggregates/dashboard/composed".into(), read_model("dashboard",
            "The dashboard composed on this request by calling both backends (a baseline; not a view: no revision, no stream)",
            json!([])));
    }
    paths.insert("/".into(), json!({"get": {"tags": ["web"], "summary": "The live web page: the served views in tables and charts, kept current with EventSource (its scripts and styles are under /assets/)", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/healthz".into(), json!({"get": {"tags": ["operations"], "summary": "Liveness: the process answers; epoch, revisions and upstreams", "responses": {"200": {"description": "alive"}}}}));
    paths.insert("/readyz".into(), json!({"get": {"tags": ["operations"], "summary": "Readiness: the store answers too", "responses": {"200": {"description": "ready"}, "503": {"description": "the store is unreachable", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}, "error": {"type": "string"}}}}}}}}}));
    paths.insert("/metrics".into(), json!({"get": {"tags": ["operations"], "summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format"}}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"tags": ["operations"], "summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "duality", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Every view served twice: as an aggregate (GET, with X-Revision) and as a change stream of JSON Merge Patches (SSE)."},
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Gone": {"type": "object", "properties": {
                "error": {"type": "string"}, "oldestRevision": {"type": ["integer", "null"]},
                "currentRevision": {"type": "integer"}, "snapshot": {"type": "string"}, "epoch": {"type": "string"}}},
            "NewPerson": {"type": "object", "additionalProperties": false, "required": ["name"],
                          "properties": {"name": {"type": "string", "minLength": 1}, "city": {"type": "string", "minLength": 1}}},
            "PersonPatch": {"type": "object", "additionalProperties": false,
                            "properties": {"name": {"type": "string", "minLength": 1}, "city": {"type": ["string", "null"], "minLength": 1}}},
            "Customer": {"type": "object", "additionalProperties": false, "required": ["name", "city", "country", "scoring"],
                         "properties": {"name": {"type": "string", "minLength": 1}, "city": {"type": "string", "minLength": 1},
                                        "country": {"type": "string", "minLength": 1}, "scoring": {"type": "integer", "minimum": 0, "maximum": 10}}},
            "Incident": {"type": "object", "additionalProperties": false, "required": ["amount", "customerName", "category"],
                         "properties": {"amount": {"type": "number", "minimum": 0}, "customerName": {"type": "string", "minLength": 1},
                                        "category": {"type": "string", "minLength": 1}}},
            "Person": {"type": "object", "required": ["id", "name"],
                       "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "city": {"type": "string"}}}
        }}
    })
}
