//! Dashboard composition (SPEC §4): a pure function of the customers and
//! incidents views. The aggregates service stores its result as the
//! `dashboard` view, so each backend change becomes the minimal patch of the
//! dashboard.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::customers;
use super::incidents;

/// How many entries each list holds at most.
pub const LIMIT: usize = 5;

/// The dashboard's documents: its four top-level keys.
pub fn compose(
    customers: &Map<String, Value>,
    incidents: &Map<String, Value>,
) -> Map<String, Value> {
    let mut ranked: Vec<_> = customers.iter().collect();
    ranked.sort_by(|a, b| customers::by_rank(*a, *b));
    let top_customers: Vec<Value> = ranked
        .into_iter()
        .take(LIMIT)
        .map(|(_, c)| json!({"customerName": c.get("name"), "scoring": c.get("scoring")}))
        .collect();

    let mut per_customer: HashMap<&str, (u64, f64)> = HashMap::new();
    for incident in incidents.values() {
        let entry = per_customer
            .entry(incidents::customer_name(incident))
            .or_default();
        entry.0 += 1;
        entry.1 += incidents::amount(incident);
    }
    let by_count = top_by(&per_customer, |(n, _)| *n as f64)
        .into_iter()
        .map(|(name, (n, _))| json!({"customerName": name, "numberOfIncidents": n}))
        .collect();
    let by_volume = top_by(&per_customer, |(_, sum)| *sum)
        .into_iter()
        .map(|(name, (_, sum))| json!({"customerName": name, "incidentVolume": volume(sum)}))
        .collect();

    let mut out = Map::new();
    out.insert("customerCount".into(), json!(customers.len()));
    out.insert("topCustomers".into(), Value::Array(top_customers));
    out.insert("customersWithMostIncidents".into(), Value::Array(by_count));
    out.insert(
        "customersWithHighestIncidentVolume".into(),
        Value::Array(by_volume),
    );
    out
}

/// A sum as shown: float noise from adding decimals is rounded away (to
/// 6 places), and a sum past f64's range, which would serialise as null,
/// is capped.
fn volume(sum: f64) -> f64 {
    if !sum.is_finite() {
        return f64::MAX;
    }
    if sum.abs() < 1e15 {
        return (sum * 1e6).round() / 1e6;
    }
    sum
}

/// The `LIMIT` largest by `key` (descending), ties by name ascending.
fn top_by<'a>(
    groups: &HashMap<&'a str, (u64, f64)>,
    key: impl Fn(&(u64, f64)) -> f64,
) -> Vec<(&'a str, (u64, f64))> {
    let mut all: Vec<_> = groups.iter().map(|(n, v)| (*n, *v)).collect();
    all.sort_by(|a, b| {
        key(&b.1)
            .partial_cmp(&key(&a.1))
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.0.cmp(b.0))
    });
    all.truncate(LIMIT);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customers(list: &[(&str, i64)]) -> Map<String, Value> {
        list.iter()
            .enumerate()
            .map(|(i, (name, s))| {
                (
                    format!("id{i}"),
                    json!({"name": name, "city": "c", "country": "x", "scoring": s}),
                )
            })
            .collect()
    }

    fn incidents(list: &[(&str, f64)]) -> Map<String, Value> {
        list.iter()
            .enumerate()
            .map(|(i, (name, a))| {
                (
                    format!("i{i}"),
                    json!({"amount": a, "customerName": name, "category": "c"}),
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_world_composes_an_empty_dashboard() {
        let d = compose(&Map::new(), &Map::new());
        assert_eq!(
            Value::Object(d),
            json!({"customerCount": 0, "topCustomers": [], "customersWithMostIncidents": [],
                   "customersWithHighestIncidentVolume": []})
        );
    }

    #[test]
    fn top_customers_break_ties_by_name_and_hold_at_most_five() {
        let c = customers(&[
            ("Fay", 5),
            ("Eve", 9),
            ("Dan", 9),
            ("Cat", 1),
            ("Bob", 5),
            ("Al", 7),
            ("Gus", 0),
        ]);
        let d = compose(&c, &Map::new());
        assert_eq!(d["customerCount"], json!(7));
        assert_eq!(
            d["topCustomers"],
            json!([
                {"customerName":"Dan","scoring":9}, {"customerName":"Eve","scoring":9},
                {"customerName":"Al","scoring":7}, {"customerName":"Bob","scoring":5},
                {"customerName":"Fay","scoring":5}
            ])
        );
    }

    #[test]
    fn incident_lists_group_by_name_including_unknown_customers_and_break_ties_by_name() {
        let i = incidents(&[
            ("Zoe", 10.0),
            ("Zoe", 10.0),
            ("Amy", 1.5),
            ("Amy", 2.5),
            ("Ghost", 100.0),
            ("Bea", 4.0),
            ("Cid", 4.0),
            ("Dee", 0.0),
            ("Eli", 3.0),
        ]);
        let d = compose(&Map::new(), &i);
        assert_eq!(
            d["customersWithMostIncidents"],
            json!([
                {"customerName":"Amy","numberOfIncidents":2}, {"customerName":"Zoe","numberOfIncidents":2},
                {"customerName":"Bea","numberOfIncidents":1}, {"customerName":"Cid","numberOfIncidents":1},
                {"customerName":"Dee","numberOfIncidents":1}
            ])
        );
        assert_eq!(
            d["customersWithHighestIncidentVolume"],
            json!([
                {"customerName":"Ghost","incidentVolume":100.0}, {"customerName":"Zoe","incidentVolume":20.0},
                {"customerName":"Amy","incidentVolume":4.0}, {"customerName":"Bea","incidentVolume":4.0},
                {"customerName":"Cid","incidentVolume":4.0}
            ])
        );
    }

    #[test]
    fn volumes_lose_the_noise_of_adding_decimals() {
        let d = compose(
            &Map::new(),
            &incidents(&[("A", 0.1), ("A", 0.2), ("B", 80000.03), ("B", 769.7)]),
        );
        let v = &d["customersWithHighestIncidentVolume"];
        assert_eq!(v[0]["incidentVolume"], json!(80769.73));
        assert_eq!(v[1]["incidentVolume"], json!(0.3));
    }

    #[test]
    fn volumes_are_numbers_even_when_whole_and_never_overflow_to_null() {
        let d = compose(
            &Map::new(),
            &incidents(&[("A", 3.0), ("B", f64::MAX), ("B", f64::MAX)]),
        );
        let v = &d["customersWithHighestIncidentVolume"];
        assert_eq!(v[0]["incidentVolume"], json!(f64::MAX));
        assert!(v[1]["incidentVolume"].is_f64());
        assert!(!crate::domain::merge::has_null_member(&Value::Object(
            d.clone()
        )));
    }
}
