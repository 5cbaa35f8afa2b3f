//! Incidents (SPEC §4): the `incidents` view and its read models.
//!
//! An incident is `{"amount", "customerName", "category"}` keyed by a UUID.
//! It refers to a customer by name only; a name with no customer is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::entity::Kind;
use super::fields;
use super::view::View;
use super::write::Fault;

const FIELDS: &[&str] = &["amount", "customerName", "category"];

/// Incidents as items: parsing and the writes.
pub static KIND: Kind = Kind {
    view: View::Incidents,
    noun: "incident",
    fields: FIELDS,
    validate,
    item,
};

fn validate(f: &Map<String, Value>) -> Result<Value, Fault> {
    Ok(json!({
        "amount": fields::amount("amount", f.get("amount"))?,
        "customerName": fields::text("customerName", f.get("customerName"))?,
        "category": fields::text("category", f.get("category"))?,
    }))
}

pub fn item(id: &str, doc: &Value) -> Value {
    json!({
        "id": id,
        "amount": doc.get("amount"),
        "customerName": doc.get("customerName"),
        "category": doc.get("category"),
    })
}

fn summary(id: &str, doc: &Value) -> Value {
    json!({"id": id, "amount": doc.get("amount"), "customerName": doc.get("customerName")})
}

pub fn customer_name(doc: &Value) -> &str {
    doc.get("customerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn amount(doc: &Value) -> f64 {
    doc.get("amount").and_then(Value::as_f64).unwrap_or(0.0)
}

/// All incidents, by customer name then id.
pub fn items(view: &Map<String, Value>) -> Value {
    let mut all: Vec<_> = view.iter().collect();
    all.sort_by(|a, b| {
        customer_name(a.1)
            .cmp(customer_name(b.1))
            .then_with(|| a.0.cmp(b.0))
    });
    Value::Array(all.into_iter().map(|(id, d)| summary(id, d)).collect())
}

/// `{customerName: [incident summaries by id]}`.
pub fn grouped_by_customer(view: &Map<String, Value>) -> Value {
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (id, doc) in view {
        groups
            .entry(customer_name(doc))
            .or_default()
            .push(summary(id, doc));
    }
    Value::Object(
        groups
            .into_iter()
            .map(|(name, list)| (name.to_string(), Value::Array(list)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_group_by_customer_name_including_unknown_names() {
        let view: Map<String, Value> = [("1", 5.0, "Amy"), ("2", 7.5, "Nobody"), ("3", 1.0, "Amy")]
            .iter()
            .map(|(id, a, n)| {
                (
                    id.to_string(),
                    json!({"amount": a, "customerName": n, "category": "x"}),
                )
            })
            .collect();
        let grouped = grouped_by_customer(&view);
        assert_eq!(grouped["Amy"].as_array().unwrap().len(), 2);
        assert_eq!(
            grouped["Nobody"][0],
            json!({"id":"2","amount":7.5,"customerName":"Nobody"})
        );
        assert_eq!(items(&view)[2]["customerName"], json!("Nobody"));
    }

    #[test]
    fn amounts_must_be_non_negative_numbers() {
        let ok = json!({"amount": 0, "customerName": "A", "category": "c"});
        assert!(KIND.parse_new(&ok).is_ok());
        for bad in [
            json!({"amount": -1, "customerName": "A", "category": "c"}),
            json!({"amount": "5", "customerName": "A", "category": "c"}),
            json!({"customerName": "A", "category": "c"}),
            json!({"amount": 1, "customerName": "", "category": "c"}),
            json!({"amount": 1, "customerName": "A", "category": "c", "x": 1}),
        ] {
            assert!(KIND.parse_new(&bad).is_err(), "{bad}");
        }
    }
}
