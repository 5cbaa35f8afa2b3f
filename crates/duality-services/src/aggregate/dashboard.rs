//! Dashboard composition (README, "The Aggregate Pattern"): a pure function of the customers and
//! incidents views. The aggregates service stores its result as the
//! `dashboard` view, so each backend change becomes the minimal patch of the
//! dashboard.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ranking::{LEADING, Ranking, Tally};

/// How many entries each list holds at most.
pub const LIMIT: usize = 5;

// The tally answers only its leading names.
const _: () = assert!(LIMIT <= LEADING);

/// What the dashboard is composed from, kept current change by change:
/// each customer's name and scoring, each incident's customer name and
/// amount (nothing else of either), and the ordered read models over them.
/// Composing reads the first five of each order: O(log n), however many
/// customers and incidents there are.
#[derive(Debug, Default, Clone)]
pub struct Composer {
    customers: HashMap<Box<str>, (Box<str>, i64)>,
    ranking: Ranking,
    incidents: HashMap<Box<str>, (Arc<str>, f64)>,
    tally: Tally,
}

/// One entry of a merge patch of the customers view, as far as the
/// dashboard reads it: a changed customer names only what changed, a new
/// one names both.
#[derive(Debug, Deserialize)]
struct CustomerPatch {
    name: Option<Box<str>>,
    scoring: Option<i64>,
}

/// One entry of a merge patch of the incidents view, as far as the
/// dashboard reads it (see [`CustomerPatch`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncidentPatch<'a> {
    /// Borrowed from the patch: most incidents name a customer the tally
    /// knows, whose name it already holds.
    #[serde(borrow)]
    customer_name: Option<&'a str>,
    amount: Option<f64>,
}

/// Parses a patch entry; one that does not parse, or that adds an entity
/// without the fields the dashboard needs, is a backend's bug: logged
/// and left out rather than read as defaults.
fn entry<'a, T: Deserialize<'a>>(view: &str, id: &str, entry: &'a Value) -> Option<T> {
    T::deserialize(entry)
        .map_err(|e| tracing::error!(view, id, error = %e, "a change the dashboard cannot read; left out"))
        .ok()
}

fn incomplete(view: &str, id: &str) {
    tracing::error!(
        view,
        id,
        "a new document without the fields the dashboard needs; left out"
    );
}

impl Composer {
    /// Replaces what is known of the customers with a whole view.
    pub fn load_customers(&mut self, view: &Map<String, Value>) {
        self.customers.clear();
        self.ranking = Ranking::default();
        self.patch_customers(view);
    }

    /// Applies a merge patch of the customers view.
    pub fn patch_customers(&mut self, patch: &Map<String, Value>) {
        for (id, change) in patch {
            let parsed = match change.is_null() {
                true => None,
                false => match entry::<CustomerPatch>("customers", id, change) {
                    Some(parsed) => Some(parsed),
                    None => continue,
                },
            };
            let old = self.customers.remove(id.as_str());
            if let Some((name, scoring)) = &old {
                self.ranking.remove(id, name, *scoring);
            }
            let Some(parsed) = parsed else { continue };
            let (name, scoring) = match (parsed.name, parsed.scoring, old) {
                (Some(name), Some(scoring), _) => (name, scoring),
                (name, scoring, Some((old_name, old_scoring))) => {
                    (name.unwrap_or(old_name), scoring.unwrap_or(old_scoring))
                }
                (_, _, None) => {
                    incomplete("customers", id);
                    continue;
                }
            };
            self.ranking.insert(id, &name, scoring);
            self.customers.insert(id.as_str().into(), (name, scoring));
        }
    }

    /// Replaces what is known of the incidents with a whole view.
    pub fn load_incidents(&mut self, view: &Map<String, Value>) {
        self.incidents.clear();
        self.tally = Tally::default();
        self.patch_incidents(view);
    }

    /// Applies a merge patch of the incidents view.
    pub fn patch_incidents(&mut self, patch: &Map<String, Value>) {
        for (id, change) in patch {
            let parsed = match change.is_null() {
                true => None,
                false => match entry::<IncidentPatch>("incidents", id, change) {
                    Some(parsed) => Some(parsed),
                    None => continue,
                },
            };
            let old = self.incidents.remove(id.as_str());
            if let Some((name, amount)) = &old {
                self.tally.remove(name, *amount);
            }
            let Some(parsed) = parsed else { continue };
            let (name, amount) = match (parsed.customer_name, parsed.amount, &old) {
                (Some(name), Some(amount), _) => (name, amount),
                (name, amount, Some((old_name, old_amount))) => {
                    (name.unwrap_or(old_name), amount.unwrap_or(*old_amount))
                }
                (_, _, None) => {
                    incomplete("incidents", id);
                    continue;
                }
            };
            let name = self.tally.add(name, amount);
            self.incidents.insert(id.as_str().into(), (name, amount));
        }
    }

    fn top_customers(&self) -> impl Iterator<Item = (&str, i64)> {
        self.ranking
            .top(LIMIT)
            .map(|(_, name, scoring)| (name, scoring))
    }

    fn most_incidents(&self) -> impl Iterator<Item = (&str, u64)> {
        self.tally.top_by_count(LIMIT)
    }

    fn highest_volume(&self) -> impl Iterator<Item = (&str, f64)> {
        self.tally
            .top_by_volume(LIMIT)
            .map(|(name, sum)| (name, volume(sum)))
    }

    /// The dashboard as the read models have it now.
    pub fn compose(&self) -> Composition {
        fn owned<'a, T>(entries: impl Iterator<Item = (&'a str, T)>) -> Vec<(Box<str>, T)> {
            entries.map(|(name, n)| (Box::from(name), n)).collect()
        }
        Composition {
            customer_count: self.ranking.len(),
            top_customers: owned(self.top_customers()),
            most_incidents: owned(self.most_incidents()),
            highest_volume: owned(self.highest_volume()),
        }
    }

    /// True if [`compose`](Composer::compose) would answer `composition`:
    /// checked in place, without building anything, since most backend
    /// changes leave the lists as they were.
    pub fn composes(&self, composition: &Composition) -> bool {
        fn same<'a, T: PartialEq + Copy + 'a>(
            now: impl Iterator<Item = (&'a str, T)>,
            then: &'a [(Box<str>, T)],
        ) -> bool {
            now.eq(then.iter().map(|(name, n)| (&**name, *n)))
        }
        self.ranking.len() == composition.customer_count
            && same(self.top_customers(), &composition.top_customers)
            && same(self.most_incidents(), &composition.most_incidents)
            && same(self.highest_volume(), &composition.highest_volume)
    }
}

/// The dashboard's lists as composed, typed: compared with the read models
/// in place, and turned into documents only to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    customer_count: usize,
    top_customers: Vec<(Box<str>, i64)>,
    most_incidents: Vec<(Box<str>, u64)>,
    highest_volume: Vec<(Box<str>, f64)>,
}

impl Composition {
    /// The dashboard's documents: its four top-level keys.
    pub fn docs(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("customerCount".into(), json!(self.customer_count));
        out.insert(
            "topCustomers".into(),
            self.top_customers
                .iter()
                .map(|(name, scoring)| json!({"customerName": name, "scoring": scoring}))
                .collect(),
        );
        out.insert(
            "customersWithMostIncidents".into(),
            self.most_incidents
                .iter()
                .map(|(name, n)| json!({"customerName": name, "numberOfIncidents": n}))
                .collect(),
        );
        out.insert(
            "customersWithHighestIncidentVolume".into(),
            self.highest_volume
                .iter()
                .map(|(name, sum)| json!({"customerName": name, "incidentVolume": sum}))
                .collect(),
        );
        out
    }
}

/// The dashboard of two whole views, composed from scratch.
pub fn compose(
    customers: &Map<String, Value>,
    incidents: &Map<String, Value>,
) -> Map<String, Value> {
    let mut composer = Composer::default();
    composer.load_customers(customers);
    composer.load_incidents(incidents);
    composer.compose().docs()
}

/// A sum as shown: float noise is rounded away (to 6 places), and a sum
/// past f64's range, which would serialise as null, is capped.
fn volume(sum: f64) -> f64 {
    if !sum.is_finite() {
        return f64::MAX;
    }
    if sum.abs() < 1e15 {
        return (sum * 1e6).round() / 1e6;
    }
    sum
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

    proptest::proptest! {
        #[test]
        fn composing_change_by_change_equals_composing_from_scratch(
            ops in proptest::collection::vec((0..8usize, 0..6usize, 0..4u8, proptest::bool::ANY), 1..120)
        ) {
            let names = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay"];
            let amounts = [0.0, 0.1, 250.25, 1e16];
            let mut c = Map::new();
            let mut i = Map::new();
            let mut live = Composer::default();
            let mut before = live.compose();
            for (slot, name, amount, delete) in ops {
                let key = format!("k{slot}");
                let (cp, ip) = if delete {
                    (json!({&key: null}), json!({&key: null}))
                } else {
                    (json!({&key: {"name": names[name], "scoring": slot as i64, "city": "c", "country": "x"}}),
                     json!({&key: {"amount": amounts[amount as usize], "customerName": names[name], "category": "k"}}))
                };
                let mut cv = Value::Object(c);
                duality::domain::merge::apply(&mut cv, &cp);
                c = cv.as_object().cloned().unwrap_or_default();
                let mut iv = Value::Object(i);
                duality::domain::merge::apply(&mut iv, &ip);
                i = iv.as_object().cloned().unwrap_or_default();
                live.patch_customers(cp.as_object().unwrap());
                live.patch_incidents(ip.as_object().unwrap());
                let now = live.compose();
                proptest::prop_assert_eq!(now.docs(), compose(&c, &i));
                proptest::prop_assert!(live.composes(&now));
                proptest::prop_assert_eq!(live.composes(&before), before == now);
                before = now;
            }
        }
    }

    #[test]
    fn a_partial_patch_changes_only_what_it_names() {
        let mut live = Composer::default();
        live.load_customers(&customers(&[("Ann", 3)]));
        live.load_incidents(&incidents(&[("Ann", 2.0)]));
        live.patch_customers(json!({"id0": {"scoring": 8}}).as_object().unwrap());
        live.patch_incidents(json!({"i0": {"customerName": "Bob"}}).as_object().unwrap());
        let d = live.compose().docs();
        assert_eq!(
            d["topCustomers"],
            json!([{"customerName": "Ann", "scoring": 8}])
        );
        assert_eq!(
            d["customersWithHighestIncidentVolume"],
            json!([{"customerName": "Bob", "incidentVolume": 2.0}])
        );
    }

    #[test]
    fn entries_it_cannot_read_are_left_out_not_defaulted() {
        let mut live = Composer::default();
        live.load_customers(
            json!({"a": {"name": "NoScore"}, "b": {"name": 7, "scoring": 1}})
                .as_object()
                .unwrap(),
        );
        live.load_incidents(
            json!({"i": {"customerName": "NoAmount"}})
                .as_object()
                .unwrap(),
        );
        assert_eq!(
            Value::Object(live.compose().docs()),
            json!({"customerCount": 0, "topCustomers": [], "customersWithMostIncidents": [],
                   "customersWithHighestIncidentVolume": []})
        );
        live.patch_customers(
            json!({"c": {"name": "Cy", "scoring": 4}})
                .as_object()
                .unwrap(),
        );
        live.patch_customers(json!({"c": {"scoring": "high"}}).as_object().unwrap());
        assert_eq!(
            live.compose().docs()["topCustomers"],
            json!([{"customerName": "Cy", "scoring": 4}])
        );
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
        assert!(!duality::domain::merge::has_null_member(&Value::Object(
            d.clone()
        )));
    }
}
