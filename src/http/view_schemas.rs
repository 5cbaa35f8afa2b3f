//! What each view serves, as OpenAPI schemas: one function per view gives
//! the schema of its documents and of its whole snapshot (a map from key to
//! document for a keyed view), so each can move next to the service that
//! registers its view without touching the rest of the document.
//!
//! The shapes are the documents the domain modules write: a person's
//! `{name, city?}`, a city's `{total}`, a customer's `{name, city, country,
//! scoring}`, an incident's `{amount, customerName, category}`, and the
//! dashboard's one document.

use serde_json::{Value, json};

use super::openapi::{UUID, closed, schema, text};
use crate::domain::View;

/// The components one view contributes: its snapshot schema first (named
/// [`snapshot_name`]), then the schemas it refers to.
pub struct ViewSchemas {
    pub snapshot: Value,
    pub parts: Vec<(&'static str, Value)>,
}

/// The component name of `view`'s snapshot schema.
pub fn snapshot_name(view: View) -> &'static str {
    match view {
        View::Persons => "PersonsView",
        View::Locations => "LocationsView",
        View::Customers => "CustomersView",
        View::Incidents => "IncidentsView",
        View::Dashboard => "Dashboard",
    }
}

/// The schemas of `view`.
pub fn of(view: View) -> ViewSchemas {
    match view {
        View::Persons => persons(),
        View::Locations => locations(),
        View::Customers => customers(),
        View::Incidents => incidents(),
        View::Dashboard => dashboard(),
    }
}

/// A snapshot of documents by key, keys matching `keys` if given.
fn keyed(keys: Option<&str>, item: &str) -> Value {
    let mut map = json!({"type": "object", "additionalProperties": schema(item)});
    if let Some(pattern) = keys {
        map["propertyNames"] = json!({"pattern": pattern});
    }
    map
}

fn persons() -> ViewSchemas {
    ViewSchemas {
        snapshot: keyed(Some("^[1-9][0-9]*$"), "PersonDoc"),
        parts: vec![(
            "PersonDoc",
            json!({"type": "object", "additionalProperties": false, "required": ["name"],
                   "properties": {"name": {"type": "string"}, "city": {"type": "string"}}}),
        )],
    }
}

fn locations() -> ViewSchemas {
    ViewSchemas {
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

fn customers() -> ViewSchemas {
    ViewSchemas {
        snapshot: keyed(Some(UUID), "CustomerDoc"),
        parts: vec![("CustomerDoc", closed(customer_fields()))],
    }
}

fn incidents() -> ViewSchemas {
    ViewSchemas {
        snapshot: keyed(Some(UUID), "IncidentDoc"),
        parts: vec![("IncidentDoc", closed(incident_fields()))],
    }
}

fn dashboard() -> ViewSchemas {
    let ranked = |field: &str, value: Value| {
        json!({"type": "array", "maxItems": 5,
               "items": closed(json!({"customerName": {"type": "string"}, field: value}))})
    };
    ViewSchemas {
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
        for view in View::ALL {
            assert!(names.insert(snapshot_name(view)));
            for (name, _) in of(view).parts {
                assert!(names.insert(name), "{name} twice");
            }
        }
    }
}
