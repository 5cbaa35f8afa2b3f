//! Incidents (SPEC §4): the `incidents` view and its read models.
//!
//! An incident is `{"amount", "customerName", "category"}` keyed by a UUID.
//! It refers to a customer by name only; a name with no customer is kept.

use serde_json::{Map, Value, json};

use super::entity::Kind;
use crate::services::fields;
use super::INCIDENTS;
use crate::Fault;
use crate::materialized::Index;

const FIELDS: &[&str] = &["amount", "customerName", "category"];

/// Incidents as items: parsing and the writes.
pub static KIND: Kind = Kind {
    view: INCIDENTS,
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

pub fn customer_name(doc: &Value) -> &str {
    doc.get("customerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn amount(doc: &Value) -> f64 {
    doc.get("amount").and_then(Value::as_f64).unwrap_or(0.0)
}

/// All incidents, by customer name then id.
/// The incidents' read model, kept current from the view's changes: the
/// incidents grouped by customer name, each group in id order. Persistent,
/// so a reader takes it in O(1) and builds its answer outside locks.
#[derive(Default, Clone)]
pub struct IncidentIndex {
    groups: Groups,
}

/// customer name → incident id → amount.
pub type Groups = imbl::OrdMap<Box<str>, imbl::OrdMap<Box<str>, Value>>;

impl IncidentIndex {
    pub fn of(view: &Map<String, Value>) -> IncidentIndex {
        let mut index = IncidentIndex::default();
        for (id, doc) in view {
            index.change(id, None, Some(doc));
        }
        index
    }

    pub fn change(&mut self, id: &str, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            let name = customer_name(old);
            if let Some(group) = self.groups.get_mut(name) {
                group.remove(id);
                if group.is_empty() {
                    self.groups.remove(name);
                }
            }
        }
        if let Some(new) = new {
            let amount = new.get("amount").cloned().unwrap_or(Value::Null);
            self.groups
                .entry(customer_name(new).into())
                .or_default()
                .insert(id.into(), amount);
        }
    }

    pub fn groups(&self) -> Groups {
        self.groups.clone()
    }
}

impl Index for IncidentIndex {
    fn change(&mut self, key: &str, old: Option<&Value>, new: Option<&Value>) {
        IncidentIndex::change(self, key, old, new);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Makes the incidents view's index (registered with its view).
pub fn index() -> Box<dyn Index> {
    Box::new(IncidentIndex::default())
}

fn summary_of(name: &str, id: &str, amount: &Value) -> Value {
    json!({"id": id, "amount": amount, "customerName": name})
}

/// `GET /incidents/items`: by customer name, then id.
pub fn items_of(groups: &Groups) -> Value {
    Value::Array(
        groups
            .iter()
            .flat_map(|(name, group)| group.iter().map(move |(id, a)| summary_of(name, id, a)))
            .collect(),
    )
}

/// `GET /incidents/grouped-by-customer`.
pub fn grouped_of(groups: &Groups) -> Value {
    Value::Object(
        groups
            .iter()
            .map(|(name, group)| {
                let list = group
                    .iter()
                    .map(|(id, a)| summary_of(name, id, a))
                    .collect();
                (name.to_string(), Value::Array(list))
            })
            .collect(),
    )
}

pub fn items(view: &Map<String, Value>) -> Value {
    items_of(&IncidentIndex::of(view).groups)
}

pub fn grouped_by_customer(view: &Map<String, Value>) -> Value {
    grouped_of(&IncidentIndex::of(view).groups)
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
