//! Customers (README, "The Aggregate Pattern"): the `customers` view and its read models.
//!
//! A customer is `{"name", "city", "country", "scoring"}` keyed by a UUID the
//! server makes. The read endpoints (`count`, `top`, `items`) are pure
//! functions over the view's documents.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::CUSTOMERS;
use super::entity::{self, Item};
use super::ranking::Ranking;
use crate::fields::{self, invalid};
use duality::materialized::Index;
use duality::{Error, View};

/// A stored customer: the document of the `customers` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerDoc {
    /// The customer's name; non-empty, and not unique (the id tells customers
    /// apart).
    pub name: String,
    /// The customer's city; non-empty.
    pub city: String,
    /// The customer's country; non-empty.
    pub country: String,
    /// 0 to 10.
    pub scoring: i64,
}

/// A customer as `GET /customers/items/{id}` shows it. Fields in key
/// order, as the answer has always listed them.
#[derive(Serialize)]
struct CustomerItem<'a> {
    city: &'a str,
    country: &'a str,
    id: &'a str,
    name: &'a str,
    scoring: i64,
}

/// A customer as the lists show it (`items`, `top/{limit}`). Fields in
/// key order, as the answers have always listed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerSummary<S> {
    /// The customer's country.
    pub country: S,
    /// The customer's key in the view.
    pub id: S,
    /// The customer's name.
    pub name: S,
    /// 0 to 10.
    pub scoring: i64,
}

impl Item for CustomerDoc {
    const VIEW: View = CUSTOMERS;
    const NOUN: &'static str = "customer";
    const FIELDS: &'static [&'static str] = &["name", "city", "country", "scoring"];

    fn validate(f: &Map<String, Value>) -> Result<Self, Error> {
        Ok(CustomerDoc {
            name: fields::text("name", f.get("name"))?,
            city: fields::text("city", f.get("city"))?,
            country: fields::text("country", f.get("country"))?,
            scoring: fields::integer("scoring", f.get("scoring"), 0, 10)?,
        })
    }

    fn item(&self, id: &str) -> Value {
        json!(CustomerItem {
            city: &self.city,
            country: &self.country,
            id,
            name: &self.name,
            scoring: self.scoring,
        })
    }
}

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

impl CustomerIndex {
    /// The index of a whole view (for tests and tools).
    pub fn of(view: &Map<String, Value>) -> CustomerIndex {
        let mut index = CustomerIndex::default();
        for (id, doc) in view {
            index.change(id, None, Some(&doc.to_string()));
        }
        index
    }

    /// The document at `id` went from `old` to `new` (stored JSON texts).
    pub fn change(&mut self, id: &str, old: Option<&str>, new: Option<&str>) {
        if let Some(old) = old.and_then(|t| entity::stored::<CustomerDoc>(id, t)) {
            self.ranking.remove(id, &old.name, old.scoring);
            self.by_name.remove(&(old.name.into(), id.into()));
        }
        if let Some(new) = new.and_then(|t| entity::stored::<CustomerDoc>(id, t)) {
            self.ranking.insert(id, &new.name, new.scoring);
            self.by_name.insert(
                (new.name.into(), id.into()),
                (new.country.into(), new.scoring),
            );
        }
    }

    /// `GET /customers/count`: `{"count": n}` from the index, without reading
    /// the view.
    pub fn count(&self) -> Value {
        json!({ "count": self.ranking.len() })
    }

    /// The `limit` best customers: O(limit log n).
    pub fn top(&self, limit: usize) -> Vec<CustomerSummary<Box<str>>> {
        self.ranking
            .top(limit)
            .map(|(id, name, scoring)| {
                let country = self
                    .by_name
                    .get(&(name.into(), id.into()))
                    .map_or("", |(c, _)| &**c);
                CustomerSummary {
                    country: country.into(),
                    id: id.into(),
                    name: name.into(),
                    scoring,
                }
            })
            .collect()
    }

    /// The list by name, shared: answer it as [`Items`] outside locks.
    pub fn list(&self) -> ByName {
        self.by_name.clone()
    }
}

/// `GET /customers/items`: every customer by name, as summaries,
/// serialised straight from the shared list.
pub struct Items(pub ByName);

impl Serialize for Items {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|((name, id), (country, scoring))| CustomerSummary {
                    country: &**country,
                    id: &**id,
                    name: &**name,
                    scoring: *scoring,
                }),
        )
    }
}

impl Index for CustomerIndex {
    fn change(&mut self, key: &str, old: Option<&str>, new: Option<&str>) {
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

/// `{"count": n}` counted straight over the view's documents: the answer of
/// `GET /customers/count` without the index.
pub fn count(view: &Map<String, Value>) -> Value {
    json!({ "count": view.len() })
}

/// Parses the `{limit}` of `/customers/top/{limit}`.
pub fn parse_limit(raw: &str) -> Result<usize, Error> {
    match fields::path_integer(raw, 1) {
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Err(invalid(format!(
            "limit must be an integer ≥ 1, got `{raw}`"
        ))),
    }
}

/// The `limit` best customers of a whole view.
pub fn top(view: &Map<String, Value>, limit: usize) -> Value {
    json!(CustomerIndex::of(view).top(limit))
}

/// Every customer of a whole view, by name.
pub fn items(view: &Map<String, Value>) -> Value {
    json!(Items(CustomerIndex::of(view).by_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality::domain::write::MemorySource;

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
    fn answers_list_their_fields_in_the_order_they_always_had() {
        let v = view(&[("b", "Zed", 9), ("a", "Amy", 4)]);
        assert_eq!(
            serde_json::to_string(&Items(CustomerIndex::of(&v).list())).unwrap(),
            r#"[{"country":"x","id":"a","name":"Amy","scoring":4},{"country":"x","id":"b","name":"Zed","scoring":9}]"#
        );
        assert_eq!(
            serde_json::to_string(&CustomerIndex::of(&v).top(1)).unwrap(),
            r#"[{"country":"x","id":"b","name":"Zed","scoring":9}]"#
        );
        let doc = CustomerDoc::parse_new(&v["a"]).unwrap();
        assert_eq!(
            doc.item("a").to_string(),
            r#"{"city":"c","country":"x","id":"a","name":"Amy","scoring":4}"#
        );
    }

    #[test]
    fn a_stored_document_that_is_not_a_customer_is_left_out_not_defaulted() {
        let mut v = view(&[("a", "Amy", 4)]);
        v.insert(
            "b".into(),
            json!({"name": "NoScore", "city": "c", "country": "x"}),
        );
        v.insert(
            "c".into(),
            json!({"name": "Extra", "city": "c", "country": "x", "scoring": 1, "vip": true}),
        );
        let index = CustomerIndex::of(&v);
        assert_eq!(index.count(), json!({"count": 1}));
        assert_eq!(index.top(9).len(), 1);
        let mut index = CustomerIndex::default();
        index.change("b", None, Some("{\"name\":\"B\"}"));
        index.change("b", Some("{\"name\":\"B\"}"), None);
        assert_eq!(index.count(), json!({"count": 0}));
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
        assert!(CustomerDoc::parse_new(&ok).is_ok());
        for bad in [
            json!({"name":"A","city":"B","country":"C"}),
            json!({"name":"A","city":"B","country":"C","scoring":11}),
            json!({"name":"A","city":"B","country":"C","scoring":2.5}),
            json!({"name":"A","city":"B","country":"C","scoring":"3"}),
            json!({"name":"","city":"B","country":"C","scoring":3}),
            json!({"name":"A","city":"B","country":"C","scoring":3,"vip":true}),
            json!([]),
        ] {
            assert!(CustomerDoc::parse_new(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_cannot_remove_fields() {
        let mut db = MemorySource::default();
        let doc = CustomerDoc::parse_new(&json!({"name":"A","city":"B","country":"C","scoring":3}))
            .unwrap();
        db.run(&entity::create("k".into(), doc)).unwrap();
        let (out, plan) = db
            .run(&entity::patch::<CustomerDoc>(
                "k".into(),
                json!({"scoring": 7}),
            ))
            .unwrap();
        assert_eq!(out["scoring"], json!(7));
        assert_eq!(plan.changes[0].patch, json!({"k":{"scoring":7}}));
        assert!(
            db.run(&entity::patch::<CustomerDoc>(
                "k".into(),
                json!({"city": null})
            ))
            .is_err()
        );
        assert!(
            db.run(&entity::patch::<CustomerDoc>(
                "k".into(),
                json!({"scoring": 12})
            ))
            .is_err()
        );
        assert!(matches!(
            db.run(&entity::patch::<CustomerDoc>("z".into(), json!({}))),
            Err(Error::NotFound(_))
        ));
    }
}
