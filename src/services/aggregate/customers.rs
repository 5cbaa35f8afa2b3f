//! Customers (SPEC §4): the `customers` view and its read models.
//!
//! A customer is `{"name", "city", "country", "scoring"}` keyed by a UUID the
//! server makes. The read endpoints (`count`, `top`, `items`) are pure
//! functions over the view's documents.

use serde_json::{Map, Value, json};

use super::entity::Kind;
use crate::services::fields::{self, invalid};
use super::ranking::Ranking;
use super::CUSTOMERS;
use crate::Fault;
use crate::materialized::Index;

const FIELDS: &[&str] = &["name", "city", "country", "scoring"];

/// Customers as items: parsing and the writes.
pub static KIND: Kind = Kind {
    view: CUSTOMERS,
    noun: "customer",
    fields: FIELDS,
    validate,
    item,
};

fn validate(f: &Map<String, Value>) -> Result<Value, Fault> {
    Ok(json!({
        "name": fields::text("name", f.get("name"))?,
        "city": fields::text("city", f.get("city"))?,
        "country": fields::text("country", f.get("country"))?,
        "scoring": fields::integer("scoring", f.get("scoring"), 0, 10)?,
    }))
}

fn with_id(id: &str, doc: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    for k in keys {
        if let Some(v) = doc.get(*k) {
            out.insert((*k).into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The full shape of `GET /customers/items/{id}`.
pub fn item(id: &str, doc: &Value) -> Value {
    with_id(id, doc, FIELDS)
}

pub(crate) fn name(doc: &Value) -> &str {
    doc.get("name").and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn scoring(doc: &Value) -> i64 {
    doc.get("scoring").and_then(Value::as_i64).unwrap_or(0)
}

/// Best first: scoring descending, then name ascending, then id.
/// Customers by `(name, id)`, with `(country, scoring)`.
pub type ByName = imbl::OrdMap<(Box<str>, Box<str>), (Box<str>, i64)>;

/// The customers' read models, kept current from the view's changes:
/// the ranking behind `top/{n}` and the count, and the list by name.
#[derive(Default, Clone)]
pub struct CustomerIndex {
    ranking: Ranking,
    /// `(name, id)` → `(country, scoring)`: `/customers/items` in order.
    /// Persistent, so a reader takes it in O(1) and builds outside locks.
    by_name: ByName,
}

fn country(doc: &Value) -> &str {
    doc.get("country")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl CustomerIndex {
    /// The index of a whole view (for tests and tools).
    pub fn of(view: &Map<String, Value>) -> CustomerIndex {
        let mut index = CustomerIndex::default();
        for (id, doc) in view {
            index.change(id, None, Some(doc));
        }
        index
    }

    pub fn change(&mut self, id: &str, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            self.ranking.remove(id, name(old), scoring(old));
            self.by_name.remove(&(name(old).into(), id.into()));
        }
        if let Some(new) = new {
            self.ranking.insert(id, name(new), scoring(new));
            self.by_name.insert(
                (name(new).into(), id.into()),
                (country(new).into(), scoring(new)),
            );
        }
    }

    pub fn count(&self) -> Value {
        json!({ "count": self.ranking.len() })
    }

    /// The `limit` best customers: O(limit log n).
    pub fn top(&self, limit: usize) -> Value {
        Value::Array(
            self.ranking
                .top(limit)
                .map(|(id, name, scoring)| {
                    let country = self
                        .by_name
                        .get(&(name.into(), id.into()))
                        .map_or("", |(c, _)| &**c);
                    json!({"id": id, "name": name, "country": country, "scoring": scoring})
                })
                .collect(),
        )
    }

    /// The list by name, shared: build it with [`items_of`] outside locks.
    pub fn list(&self) -> ByName {
        self.by_name.clone()
    }
}

/// `GET /customers/items`: every customer by name, as summaries.
pub fn items_of(list: &ByName) -> Value {
    Value::Array(
        list.iter()
            .map(|((name, id), (country, scoring))| {
                json!({"id": &**id, "name": &**name, "country": &**country, "scoring": scoring})
            })
            .collect(),
    )
}

impl Index for CustomerIndex {
    fn change(&mut self, key: &str, old: Option<&Value>, new: Option<&Value>) {
        CustomerIndex::change(self, key, old, new);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Makes the customers view's index (registered with its view).
pub fn index() -> Box<dyn Index> {
    Box::new(CustomerIndex::default())
}

pub fn count(view: &Map<String, Value>) -> Value {
    json!({ "count": view.len() })
}

/// Parses the `{limit}` of `/customers/top/{limit}`.
pub fn parse_limit(raw: &str) -> Result<usize, Fault> {
    match fields::path_integer(raw, 1) {
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Err(invalid(format!(
            "limit must be an integer ≥ 1, got `{raw}`"
        ))),
    }
}

/// The `limit` best customers of a whole view.
pub fn top(view: &Map<String, Value>, limit: usize) -> Value {
    CustomerIndex::of(view).top(limit)
}

/// Every customer of a whole view, by name.
pub fn items(view: &Map<String, Value>) -> Value {
    items_of(&CustomerIndex::of(view).by_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::write::MemorySource;

    fn view(entries: &[(&str, &str, i64)]) -> Map<String, Value> {
        entries
            .iter()
            .map(|(id, name, s)| {
                (
                    id.to_string(),
                    json!({"name": name, "city": "c", "country": "x", "scoring": s}),
                )
            })
            .collect()
    }

    #[test]
    fn top_orders_by_scoring_then_name_and_respects_the_limit() {
        let v = view(&[
            ("a", "Zed", 9),
            ("b", "Amy", 9),
            ("c", "Bob", 10),
            ("d", "Cy", 1),
        ]);
        let names: Vec<_> = top(&v, 3)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["Bob", "Amy", "Zed"]);
        assert_eq!(
            top(&v, 1)[0],
            json!({"id":"c","name":"Bob","country":"x","scoring":10})
        );
        assert_eq!(top(&v, 99).as_array().unwrap().len(), 4);
    }

    #[test]
    fn items_are_sorted_by_name_and_count_counts() {
        let v = view(&[("a", "Zed", 9), ("b", "Amy", 9)]);
        assert_eq!(items(&v)[0]["name"], json!("Amy"));
        assert_eq!(count(&v), json!({"count": 2}));
    }

    #[test]
    fn limits_must_be_integers_of_at_least_one() {
        assert_eq!(parse_limit("5"), Ok(5));
        for bad in ["0", "-1", "x", "1.5", ""] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_need_every_field_with_the_right_type() {
        let ok = json!({"name":"A","city":"B","country":"C","scoring":3});
        assert!(KIND.parse_new(&ok).is_ok());
        for bad in [
            json!({"name":"A","city":"B","country":"C"}),
            json!({"name":"A","city":"B","country":"C","scoring":11}),
            json!({"name":"A","city":"B","country":"C","scoring":2.5}),
            json!({"name":"A","city":"B","country":"C","scoring":"3"}),
            json!({"name":"","city":"B","country":"C","scoring":3}),
            json!({"name":"A","city":"B","country":"C","scoring":3,"vip":true}),
            json!([]),
        ] {
            assert!(KIND.parse_new(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_cannot_remove_fields() {
        let mut db = MemorySource::default();
        let doc = KIND
            .parse_new(&json!({"name":"A","city":"B","country":"C","scoring":3}))
            .unwrap();
        db.run(&KIND.create("k".into(), doc)).unwrap();
        let (out, plan) = db
            .run(&KIND.patch("k".into(), json!({"scoring": 7})))
            .unwrap();
        assert_eq!(out["scoring"], json!(7));
        assert_eq!(plan.changes[0].patch, json!({"k":{"scoring":7}}));
        assert!(
            db.run(&KIND.patch("k".into(), json!({"city": null})))
                .is_err()
        );
        assert!(
            db.run(&KIND.patch("k".into(), json!({"scoring": 12})))
                .is_err()
        );
        assert!(matches!(
            db.run(&KIND.patch("z".into(), json!({}))),
            Err(Fault::NotFound(_))
        ));
    }
}
