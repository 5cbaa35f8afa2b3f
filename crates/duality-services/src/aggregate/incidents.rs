//! Incidents (README, "The Aggregate Pattern"): the `incidents` view and its read models.
//!
//! An incident is `{"amount", "customerName", "category"}` keyed by a UUID.
//! It refers to a customer by name only; a name with no customer is kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::INCIDENTS;
use super::entity::{self, Item};
use crate::fields;
use duality::materialized::Index;
use duality::{Error, View};

/// A stored incident: the document of the `incidents` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IncidentDoc {
    /// A finite number ≥ 0.
    pub amount: f64,
    /// The customer it refers to, by name (one may not exist).
    pub customer_name: String,
    /// What kind of incident it is; non-empty.
    pub category: String,
}

/// An incident as `GET /incidents/items/{id}` shows it. Fields in key
/// order, as the answer has always listed them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IncidentItem<'a> {
    amount: f64,
    category: &'a str,
    customer_name: &'a str,
    id: &'a str,
}

/// An incident as the lists show it (`items`, `grouped-by-customer`).
/// Fields in key order, as the answers have always listed them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSummary<'a> {
    /// The incident's amount.
    pub amount: f64,
    /// The customer it refers to, by name.
    pub customer_name: &'a str,
    /// The incident's key in the view.
    pub id: &'a str,
}

impl Item for IncidentDoc {
    const VIEW: View = INCIDENTS;
    const NOUN: &'static str = "incident";
    const FIELDS: &'static [&'static str] = &["amount", "customerName", "category"];

    fn validate(f: &Map<String, Value>) -> Result<Self, Error> {
        Ok(IncidentDoc {
            amount: fields::amount("amount", f.get("amount"))?,
            customer_name: fields::text("customerName", f.get("customerName"))?,
            category: fields::text("category", f.get("category"))?,
        })
    }

    fn item(&self, id: &str) -> Value {
        json!(IncidentItem {
            amount: self.amount,
            category: &self.category,
            customer_name: &self.customer_name,
            id,
        })
    }
}

/// The incidents' read model, kept current from the view's changes: the
/// incidents grouped by customer name, each group in id order. Persistent,
/// so a reader takes it in O(1) and builds its answer outside locks.
#[derive(Default, Clone)]
pub struct IncidentIndex {
    groups: Groups,
}

/// customer name → incident id → amount.
pub type Groups = imbl::OrdMap<Box<str>, imbl::OrdMap<Box<str>, f64>>;

impl IncidentIndex {
    /// The index of a whole view (for tests and tools).
    pub fn of(view: &Map<String, Value>) -> IncidentIndex {
        let mut index = IncidentIndex::default();
        for (id, doc) in view {
            index.change(id, None, Some(&doc.to_string()));
        }
        index
    }

    /// The document at `id` went from `old` to `new` (stored JSON texts).
    pub fn change(&mut self, id: &str, old: Option<&str>, new: Option<&str>) {
        if let Some(old) = old.and_then(|t| entity::stored::<IncidentDoc>(id, t)) {
            let name = old.customer_name.as_str();
            if let Some(group) = self.groups.get_mut(name) {
                group.remove(id);
                if group.is_empty() {
                    self.groups.remove(name);
                }
            }
        }
        if let Some(new) = new.and_then(|t| entity::stored::<IncidentDoc>(id, t)) {
            self.groups
                .entry(new.customer_name.into())
                .or_default()
                .insert(id.into(), new.amount);
        }
    }

    /// The groups, shared: a cheap clone to answer with outside locks.
    pub fn groups(&self) -> Groups {
        self.groups.clone()
    }
}

impl Index for IncidentIndex {
    fn change(&mut self, key: &str, old: Option<&str>, new: Option<&str>) {
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

fn summaries<'a>(
    name: &'a str,
    group: &'a imbl::OrdMap<Box<str>, f64>,
) -> impl Iterator<Item = IncidentSummary<'a>> {
    group.iter().map(move |(id, amount)| IncidentSummary {
        amount: *amount,
        customer_name: name,
        id,
    })
}

/// `GET /incidents/items`: by customer name, then id, serialised straight
/// from the shared groups.
pub struct Items(pub Groups);

impl Serialize for Items {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .flat_map(|(name, group)| summaries(name, group)),
        )
    }
}

/// `GET /incidents/grouped-by-customer`: each customer name with its
/// incidents, serialised straight from the shared groups.
pub struct Grouped(pub Groups);

impl Serialize for Grouped {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Group<'a>(&'a str, &'a imbl::OrdMap<Box<str>, f64>);
        impl Serialize for Group<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(summaries(self.0, self.1))
            }
        }
        s.collect_map(
            self.0
                .iter()
                .map(|(name, group)| (&**name, Group(name, group))),
        )
    }
}

/// The answer of `GET /incidents/items`, computed straight from the view's
/// documents instead of the kept index.
pub fn items(view: &Map<String, Value>) -> Value {
    json!(Items(IncidentIndex::of(view).groups))
}

/// The answer of `GET /incidents/grouped-by-customer`, computed straight from
/// the view's documents instead of the kept index.
pub fn grouped_by_customer(view: &Map<String, Value>) -> Value {
    json!(Grouped(IncidentIndex::of(view).groups))
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
    fn answers_list_their_fields_in_the_order_they_always_had() {
        let view: Map<String, Value> = [
            (
                "i2".to_string(),
                json!({"amount": 2.5, "customerName": "Bo", "category": "x"}),
            ),
            (
                "i1".to_string(),
                json!({"amount": 0.0, "customerName": "Al", "category": "y"}),
            ),
        ]
        .into_iter()
        .collect();
        let groups = IncidentIndex::of(&view).groups();
        assert_eq!(
            serde_json::to_string(&Items(groups.clone())).unwrap(),
            r#"[{"amount":0.0,"customerName":"Al","id":"i1"},{"amount":2.5,"customerName":"Bo","id":"i2"}]"#
        );
        assert_eq!(
            serde_json::to_string(&Grouped(groups)).unwrap(),
            r#"{"Al":[{"amount":0.0,"customerName":"Al","id":"i1"}],"Bo":[{"amount":2.5,"customerName":"Bo","id":"i2"}]}"#
        );
        let doc = IncidentDoc::parse_new(&view["i1"]).unwrap();
        assert_eq!(
            doc.item("i1").to_string(),
            r#"{"amount":0.0,"category":"y","customerName":"Al","id":"i1"}"#
        );
    }

    #[test]
    fn a_stored_document_that_is_not_an_incident_is_left_out_not_defaulted() {
        let view: Map<String, Value> = [
            (
                "1".to_string(),
                json!({"amount": 1.0, "customerName": "A", "category": "c"}),
            ),
            (
                "2".to_string(),
                json!({"customerName": "A", "category": "c"}),
            ),
            ("3".to_string(), json!({"amount": 1.0, "category": "c"})),
        ]
        .into_iter()
        .collect();
        let grouped = grouped_by_customer(&view);
        assert_eq!(
            grouped,
            json!({"A": [{"id": "1", "amount": 1.0, "customerName": "A"}]})
        );
    }

    #[test]
    fn amounts_must_be_non_negative_numbers() {
        let ok = json!({"amount": 0, "customerName": "A", "category": "c"});
        assert!(IncidentDoc::parse_new(&ok).is_ok());
        for bad in [
            json!({"amount": -1, "customerName": "A", "category": "c"}),
            json!({"amount": "5", "customerName": "A", "category": "c"}),
            json!({"customerName": "A", "category": "c"}),
            json!({"amount": 1, "customerName": "", "category": "c"}),
            json!({"amount": 1, "customerName": "A", "category": "c", "x": 1}),
        ] {
            assert!(IncidentDoc::parse_new(&bad).is_err(), "{bad}");
        }
    }
}
