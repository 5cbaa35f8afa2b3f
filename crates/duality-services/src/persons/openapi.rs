//! The persons service's part of the OpenAPI document: its paths, and the
//! schemas of its views and of the bodies its paths take and answer.

use serde_json::{Map, Value, json};

use crate::openapi::{
    closed, create_op, delete_op, error, get_one, keyed, patch_op, schema, text, unavailable,
};
use duality::ViewSchemas;

/// The persons service's own paths.
pub fn paths(paths: &mut Map<String, Value>) {
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

/// The persons view's schemas, with the bodies of the person endpoints.
pub fn persons() -> ViewSchemas {
    ViewSchemas {
        name: "PersonsView",
        snapshot: keyed(Some("^[1-9][0-9]*$"), "PersonDoc"),
        parts: vec![
            (
                "PersonDoc",
                json!({"type": "object", "additionalProperties": false, "required": ["name"],
                       "properties": {"name": {"type": "string"}, "city": {"type": "string"}}}),
            ),
            (
                "NewPerson",
                json!({"type": "object", "additionalProperties": false, "required": ["name"],
                       "properties": {"name": text(), "city": text()}}),
            ),
            (
                "PersonPatch",
                json!({"type": "object", "additionalProperties": false,
                       "properties": {"name": text(),
                                      "city": {"anyOf": [text(), {"type": "null"}]}}}),
            ),
            (
                "Person",
                json!({"type": "object", "additionalProperties": false, "required": ["id", "name"],
                       "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string"},
                                      "city": {"type": "string"}}}),
            ),
        ],
    }
}

/// The locations view's schemas.
pub fn locations() -> ViewSchemas {
    ViewSchemas {
        name: "LocationsView",
        snapshot: keyed(None, "Location"),
        parts: vec![(
            "Location",
            closed(json!({"total": {"type": "integer", "minimum": 1}})),
        )],
    }
}
