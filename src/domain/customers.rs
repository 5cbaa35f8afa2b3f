//! Customers (SPEC §4): the `customers` view and its read models.
//!
//! A customer is `{"name", "city", "country", "scoring"}` keyed by a UUID the
//! server makes. The read endpoints (`count`, `top`, `items`) are pure
//! functions over the view's documents.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::entity::Kind;
use super::fields::{self, invalid};
use super::view::View;
use super::write::Fault;

const FIELDS: &[&str] = &["name", "city", "country", "scoring"];

/// Customers as items: parsing and the writes.
pub static KIND: Kind = Kind {
    view: View::Customers,
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

/// The list shape: `{"id","name","country","scoring"}`.
fn summary(id: &str, doc: &Value) -> Value {
    with_id(id, doc, &["name", "country", "scoring"])
}

fn name(doc: &Value) -> &str {
    doc.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn scoring(doc: &Value) -> i64 {
    doc.get("scoring").and_then(Value::as_i64).unwrap_or(0)
}

/// Best first: scoring descending, then name ascending, then id.
pub fn by_rank(a: (&String, &Value), b: (&String, &Value)) -> Ordering {
    scoring(b.1)
        .cmp(&scoring(a.1))
        .then_with(|| name(a.1).cmp(name(b.1)))
        .then_with(|| a.0.cmp(b.0))
}

pub fn count(view: &Map<String, Value>) -> Value {
    json!({ "count": view.len() })
}

pub fn parse_limit(raw: &str) -> Result<usize, Fault> {
    match raw.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(invalid(format!(
            "limit must be an integer ≥ 1, got `{raw}`"
        ))),
    }
}

pub fn top(view: &Map<String, Value>, limit: usize) -> Value {
    let mut all: Vec<_> = view.iter().collect();
    all.sort_by(|a, b| by_rank(*a, *b));
    Value::Array(
        all.into_iter()
            .take(limit)
            .map(|(id, d)| summary(id, d))
            .collect(),
    )
}

/// All customers by name (then id).
pub fn items(view: &Map<String, Value>) -> Value {
    let mut all: Vec<_> = view.iter().collect();
    all.sort_by(|a, b| name(a.1).cmp(name(b.1)).then_with(|| a.0.cmp(b.0)));
    Value::Array(all.into_iter().map(|(id, d)| summary(id, d)).collect())
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
