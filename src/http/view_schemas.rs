//! What each built-in view serves, as OpenAPI schemas: one function per
//! view gives the schema of its documents and of its whole snapshot (a map
//! from key to document for a keyed view); each service hands its own to
//! its `ViewSpec`, so the engine names none.
//!
//! The shapes are the documents the domain modules write: a person's
//! `{name, city?}`, a city's `{total}`, a customer's `{name, city, country,
//! scoring}`, an incident's `{amount, customerName, category}`, and the
//! dashboard's one document.

use serde_json::{Value, json};

use super::openapi::{UUID, closed, schema, text};
pub use crate::domain::view::ViewSchemas;

/// A snapshot of documents by key, keys matching `keys` if given.
fn keyed(keys: Option<&str>, item: &str) -> Value {
    let mut map = json!({"type": "object", "additionalProperties": schema(item)});
    if let Some(pattern) = keys {
        map["propertyNames"] = json!({"pattern": pattern});
    }
    map
}

/// The persons view's schemas.
pub fn persons() -> ViewSchemas {
    ViewSchemas {
        name: "PersonsView",
        snapshot: keyed(Some("^[1-9][0-9]*$"), "PersonDoc"),
        parts: vec![(
            "PersonDoc",
            json!({"type": "object", "additionalProperties": false, "required": ["name"],
                   "properties": {"name": {"type": "string"}, "city": {"type": "string"}}}),
        )],
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

/// A customer's fields, as written and as served.
pub fn customer_fields() -> Value {
    json!({"name": text(), "city": text(), "country": text(),
           "scoring": {"type": "integer", "minimum": 0, "maximum": 10}})
}

/// An incident's fields, as written and as served.
pub fn incident_fields() -> Value {
    json!({"amount": {"type": "number", "minimum": 0}, "customerName": text(), "category": text()})
}

/// The customers view's schemas.
pub fn customers() -> ViewSchemas {
    ViewSchemas {
        name: "CustomersView",
        snapshot: keyed(Some(UUID), "CustomerDoc"),
        parts: vec![("CustomerDoc", closed(customer_fields()))],
    }
}

/// The incidents view's schemas.
pub fn incidents() -> ViewSchemas {
    ViewSchemas {
        name: "IncidentsView",
        snapshot: keyed(Some(UUID), "IncidentDoc"),
        parts: vec![("IncidentDoc", closed(incident_fields()))],
    }
}

/// The dashboard view's schemas.
pub fn dashboard() -> ViewSchemas {
    let ranked = |field: &str, value: Value| {
        json!({"type": "array", "maxItems": 5,
               "items": closed(json!({"customerName": {"type": "string"}, field: value}))})
    };
    ViewSchemas {
        name: "Dashboard",
        snapshot: closed(json!({
            "customerCount": {"type": "integer", "minimum": 0},
            "topCustomers": ranked("scoring", json!({"type": "integer", "minimum": 0, "maximum": 10})),
            "customersWithMostIncidents": ranked("numberOfIncidents", json!({"type": "integer", "minimum": 1})),
            "customersWithHighestIncidentVolume": ranked("incidentVolume", json!({"type": "number", "minimum": 0}))})),
        parts: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_names_its_snapshot_schema_and_no_name_is_used_twice() {
        let mut names = std::collections::HashSet::new();
        for own in [persons(), locations(), customers(), incidents(), dashboard()] {
            assert!(names.insert(own.name));
            for (name, _) in own.parts {
                assert!(names.insert(name), "{name} twice");
            }
        }
    }
}
