//! The Aggregate Pattern's part of the OpenAPI document: the paths of the
//! customers, incidents and aggregates services, and the schemas of their
//! views and of the bodies their paths take and answer.

use serde_json::{Map, Value, json};

use crate::openapi::{
    UUID, closed, create_op, delete_op, get_one, keyed, patch_of, patch_op, read_op, schema, text,
};
use duality::ViewSchemas;

/// A customer's fields, as written and as served.
fn customer_fields() -> Value {
    json!({"name": text(), "city": text(), "country": text(),
           "scoring": {"type": "integer", "minimum": 0, "maximum": 10}})
}

/// An incident's fields, as written and as served.
fn incident_fields() -> Value {
    json!({"amount": {"type": "number", "minimum": 0}, "customerName": text(), "category": text()})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid", "pattern": UUID})
}

/// An item as answered: its id and all its fields.
fn with_id(fields: &Value) -> Value {
    let mut all = json!({"id": uuid()});
    if let (Some(out), Some(fields)) = (all.as_object_mut(), fields.as_object()) {
        out.extend(fields.clone());
    }
    closed(all)
}

/// The customers view's schemas, with the bodies of the customer endpoints.
pub fn customers() -> ViewSchemas {
    let customer = customer_fields();
    let scoring = customer["scoring"].clone();
    ViewSchemas {
        name: "CustomersView",
        snapshot: keyed(Some(UUID), "CustomerDoc"),
        parts: vec![
            ("CustomerDoc", closed(customer.clone())),
            ("NewCustomer", closed(customer.clone())),
            ("CustomerPatch", patch_of(customer.clone())),
            ("Customer", with_id(&customer)),
            (
                "CustomerSummary",
                closed(json!({"id": uuid(), "name": {"type": "string"},
                              "country": {"type": "string"}, "scoring": scoring})),
            ),
            (
                "Count",
                closed(json!({"count": {"type": "integer", "minimum": 0}})),
            ),
        ],
    }
}

/// The incidents view's schemas, with the bodies of the incident endpoints.
pub fn incidents() -> ViewSchemas {
    let incident = incident_fields();
    let amount = incident["amount"].clone();
    ViewSchemas {
        name: "IncidentsView",
        snapshot: keyed(Some(UUID), "IncidentDoc"),
        parts: vec![
            ("IncidentDoc", closed(incident.clone())),
            ("NewIncident", closed(incident.clone())),
            ("IncidentPatch", patch_of(incident.clone())),
            ("Incident", with_id(&incident)),
            (
                "IncidentSummary",
                closed(json!({"id": uuid(), "amount": amount, "customerName": {"type": "string"}})),
            ),
            (
                "IncidentsByCustomer",
                json!({"type": "object", "additionalProperties":
                       {"type": "array", "minItems": 1, "items": schema("IncidentSummary")}}),
            ),
        ],
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
    let id = json!({"name": "id", "in": "path", "required": true, "schema": uuid()});
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
    paths.insert(
        "/customers/top/{limit}".into(),
        read_op(
            "customers",
            "The best customers by scoring (desc), then name (asc): [{id, name, country, scoring}]",
            json!([{"name": "limit", "in": "path", "required": true,
                "schema": {"type": "integer", "minimum": 1, "maximum": u64::MAX}}]),
            json!({"type": "array", "items": schema("CustomerSummary")}),
            true,
        ),
    );
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
