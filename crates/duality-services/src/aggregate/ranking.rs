//! Ordered read models, kept current change by change (README, "Views at any size").
//!
//! [`Ranking`] orders customers by scoring (descending), then name, then id;
//! [`Tally`] keeps, per customer name, the number of incidents and their
//! total amount, and the leading names both ways ([`Leaders`]). Each change
//! is O(log n) and reading the first `k` entries is O(k log n), so neither
//! the dashboard nor `/customers/top/{n}` ever sorts every customer or
//! incident.
//!
//! Names are ordered through [`SortName`], which keeps a name's first 16
//! bytes inside the key: most comparisons in a tree of 100,000 names then
//! never leave the tree's node for the name's heap allocation (a cache miss
//! each), which is what a change's O(log n) steps mostly cost.
//!
//! Volumes are summed exactly: amounts below [`HUGE`] in whole millionths
//! (an `i128`), larger ones kept as they are and added up in one fixed
//! order. Adding and then removing an amount therefore leaves no float
//! noise behind, and the total does not depend on the order of changes.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::Arc;

use super::leaders::Leaders;

/// Amounts at or above this are not counted in millionths.
pub const HUGE: f64 = 1e15;

/// How many of the tally's leading names are always answered, each way.
pub const LEADING: usize = 64;

/// How many leading names the tally keeps ordered at most, each way: few
/// enough that their ordered set stays in the processor's caches.
const KEPT: usize = 2048;

/// A name as an ordering key: the same order as the name's bytes, with the
/// first 16 of them kept inline so that most comparisons stop there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortName<P> {
    /// The first 16 bytes, big-endian, zero-padded: ordered as the bytes
    /// are, and a name that is a prefix of another never sorts after it.
    head: u128,
    name: P,
}

impl<P: Deref<Target = str>> SortName<P> {
    /// The key of `name`.
    pub fn new(name: P) -> Self {
        let mut head = [0u8; 16];
        let bytes = name.as_bytes();
        let n = bytes.len().min(16);
        head[..n].copy_from_slice(&bytes[..n]);
        SortName {
            head: u128::from_be_bytes(head),
            name,
        }
    }

    /// The name itself.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl<P: Deref<Target = str> + Eq> Ord for SortName<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.name.as_bytes().cmp(other.name.as_bytes()))
    }
}

impl<P: Deref<Target = str> + Eq> PartialOrd for SortName<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A customer's place: (scoring desc, name, id).
type Place = (Reverse<i64>, SortName<Box<str>>, SortName<Box<str>>);

/// Customers by (scoring desc, name asc, id asc).
#[derive(Debug, Default, Clone)]
pub struct Ranking {
    ranked: BTreeSet<Place>,
}

impl Ranking {
    fn key(id: &str, name: &str, scoring: i64) -> Place {
        (
            Reverse(scoring),
            SortName::new(name.into()),
            SortName::new(id.into()),
        )
    }

    /// Ranks the customer `id`; a customer whose name or scoring changes must
    /// be removed with its old values first.
    pub fn insert(&mut self, id: &str, name: &str, scoring: i64) {
        self.ranked.insert(Ranking::key(id, name, scoring));
    }

    /// Drops the customer `id`, given the name and scoring it was inserted
    /// with.
    pub fn remove(&mut self, id: &str, name: &str, scoring: i64) {
        self.ranked.remove(&Ranking::key(id, name, scoring));
    }

    /// How many customers are ranked.
    pub fn len(&self) -> usize {
        self.ranked.len()
    }

    /// True if no customer is ranked.
    pub fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// The best `n` as `(id, name, scoring)`.
    pub fn top(&self, n: usize) -> impl Iterator<Item = (&str, &str, i64)> {
        self.ranked
            .iter()
            .take(n)
            .map(|(Reverse(s), name, id)| (id.as_str(), name.as_str(), *s))
    }
}

/// An exact sum of non-negative amounts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Volume {
    micros: i128,
    /// Amounts of [`HUGE`] or more, ascending.
    huge: Vec<f64>,
}

fn micros(amount: f64) -> i128 {
    (amount * 1e6).round() as i128
}

impl Volume {
    /// Adds `amount` to the sum, exactly.
    pub fn add(&mut self, amount: f64) {
        if amount < HUGE {
            self.micros += micros(amount);
        } else {
            let at = self.huge.partition_point(|h| *h < amount);
            self.huge.insert(at, amount);
        }
    }

    /// Takes back an `amount` added before; a huge amount that was never added
    /// is ignored.
    pub fn remove(&mut self, amount: f64) {
        if amount < HUGE {
            self.micros -= micros(amount);
        } else if let Some(at) = self.huge.iter().position(|h| *h == amount) {
            self.huge.remove(at);
        }
    }

    /// The total as shown: exact to the millionth, capped at `f64::MAX`
    /// so that it never serialises as null.
    pub fn total(&self) -> f64 {
        let small = self.micros as f64 / 1e6;
        let sum = self.huge.iter().fold(small, |acc, h| acc + h);
        if sum.is_finite() { sum } else { f64::MAX }
    }
}

/// A total that sorts (f64's total order; totals are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Total(f64);

impl Eq for Total {}

impl PartialOrd for Total {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Total {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

type ByCount = (Reverse<u64>, SortName<Arc<str>>);
type ByVolume = (Reverse<Total>, SortName<Arc<str>>);

#[derive(Debug, Clone)]
struct Group {
    name: SortName<Arc<str>>,
    count: u64,
    volume: Volume,
}

impl Group {
    fn by_count(&self) -> ByCount {
        (Reverse(self.count), self.name.clone())
    }

    fn by_volume(&self) -> ByVolume {
        (Reverse(Total(self.volume.total())), self.name.clone())
    }
}

/// Incidents per customer name: counts and volumes, and the leading
/// names each way.
#[derive(Debug, Clone)]
pub struct Tally {
    groups: HashMap<Arc<str>, Group>,
    by_count: Leaders<ByCount>,
    by_volume: Leaders<ByVolume>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::with_leaders(LEADING, KEPT)
    }
}

impl Tally {
    /// Counts one more incident of `amount` for the customer `name`;
    /// answers the tally's own copy of the name, shared by every incident
    /// of that customer.
    pub fn add(&mut self, name: &str, amount: f64) -> Arc<str> {
        self.update(name, |g| {
            g.count += 1;
            g.volume.add(amount);
        })
    }

    /// Takes back one incident of `amount` for `name`, as it was added.
    pub fn remove(&mut self, name: &str, amount: f64) {
        self.update(name, |g| {
            g.count = g.count.saturating_sub(1);
            g.volume.remove(amount);
        });
    }

    /// A tally that answers at least `leading` names each way and keeps
    /// at most `kept` ordered.
    fn with_leaders(leading: usize, kept: usize) -> Self {
        Tally {
            groups: HashMap::new(),
            by_count: Leaders::new(leading, kept),
            by_volume: Leaders::new(leading, kept),
        }
    }

    /// Applies `f` to the group of `name` and moves it in both orders (or
    /// drops it once its last incident went); answers the group's name.
    fn update(&mut self, name: &str, f: impl FnOnce(&mut Group)) -> Arc<str> {
        let (group, old) = match self.groups.get_mut(name) {
            Some(group) => {
                let old = (group.by_count(), group.by_volume());
                (group, Some(old))
            }
            None => {
                let key: Arc<str> = Arc::from(name);
                let group = Group {
                    name: SortName::new(Arc::clone(&key)),
                    count: 0,
                    volume: Volume::default(),
                };
                (self.groups.entry(key).or_insert(group), None)
            }
        };
        f(group);
        let shared = Arc::clone(&group.name.name);
        let new = (group.count > 0).then(|| (group.by_count(), group.by_volume()));
        if new.is_none() {
            self.groups.remove(name);
        }
        let (old_count, old_volume) = old.unzip();
        let (new_count, new_volume) = new.unzip();
        if self.by_count.replace(old_count, new_count) {
            self.by_count
                .refill(self.groups.values().map(Group::by_count));
        }
        if self.by_volume.replace(old_volume, new_volume) {
            self.by_volume
                .refill(self.groups.values().map(Group::by_volume));
        }
        shared
    }

    /// The `n` names with the most incidents, ties by name; `n` at most
    /// [`LEADING`].
    pub fn top_by_count(&self, n: usize) -> impl Iterator<Item = (&str, u64)> {
        self.by_count
            .first(n)
            .map(|(Reverse(c), name)| (name.as_str(), *c))
    }

    /// The `n` names with the largest volume, ties by name; `n` at most
    /// [`LEADING`].
    pub fn top_by_volume(&self, n: usize) -> impl Iterator<Item = (&str, f64)> {
        self.by_volume
            .first(n)
            .map(|(Reverse(Total(v)), name)| (name.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn adding_and_removing_leaves_no_float_noise() {
        let mut v = Volume::default();
        for a in [0.1, 0.2, 80000.03, 769.7] {
            v.add(a);
        }
        v.remove(0.2);
        assert_eq!(v.total(), 80769.83);
        v.add(f64::MAX);
        v.add(f64::MAX);
        assert_eq!(v.total(), f64::MAX);
    }

    #[test]
    fn a_name_whose_last_incident_goes_disappears() {
        let mut t = Tally::default();
        t.add("A", 1.0);
        t.add("B", 1.0);
        t.remove("A", 1.0);
        assert_eq!(t.top_by_count(5).collect::<Vec<_>>(), [("B", 1)]);
        assert_eq!(t.top_by_volume(5).collect::<Vec<_>>(), [("B", 1.0)]);
    }

    #[test]
    fn every_incident_of_a_customer_shares_the_tally_s_copy_of_its_name() {
        let mut t = Tally::default();
        let first = t.add("Customer 1", 1.0);
        let second = t.add(&String::from("Customer 1"), 2.0);
        assert!(Arc::ptr_eq(&first, &second));
        t.remove("Customer 1", 1.0);
        t.remove("Customer 1", 2.0);
        let again = t.add("Customer 1", 3.0);
        assert!(
            !Arc::ptr_eq(&first, &again),
            "a customer whose incidents all went is forgotten"
        );
    }

    proptest! {
        #[test]
        fn names_sort_as_their_bytes_do(a in "[a-c\\x00\\u{e9}]{0,20}", b in "[a-c\\x00\\u{e9}]{0,20}") {
            let key = |s: &str| SortName::new(Box::<str>::from(s));
            prop_assert_eq!(key(&a).cmp(&key(&b)), a.as_bytes().cmp(b.as_bytes()));
            let (long, short) = (format!("{a}{b}"), a.clone());
            prop_assert_eq!(key(&long).cmp(&key(&short)), long.as_bytes().cmp(short.as_bytes()));
        }

        #[test]
        fn the_tally_always_equals_a_count_from_scratch(
            ops in proptest::collection::vec((0..6usize, 0..4u8, any::<bool>()), 1..200)
        ) {
            let names = ["A", "B", "C", "D", "E", "F"];
            let amounts = [0.0, 0.1, 2.5, 1e16];
            // The default keeps every name ordered; the small one keeps two
            // to four, so names cross its bound and refill it.
            for (mut t, n) in [(Tally::default(), 6), (Tally::with_leaders(2, 4), 2)] {
                let mut live: Vec<(usize, f64)> = Vec::new();
                for &(i, a, add) in &ops {
                    let amount = amounts[a as usize];
                    if add || live.is_empty() {
                        t.add(names[i], amount);
                        live.push((i, amount));
                    } else {
                        let (i, amount) = live.remove(i % live.len());
                        t.remove(names[i], amount);
                    }
                }
                let mut counts = Vec::new();
                let mut volumes = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let mine: Vec<f64> = live.iter().filter(|(j, _)| *j == i).map(|(_, a)| *a).collect();
                    if mine.is_empty() {
                        continue;
                    }
                    let mut v = Volume::default();
                    mine.iter().for_each(|a| v.add(*a));
                    counts.push((Reverse(mine.len() as u64), *name));
                    volumes.push((Reverse(Total(v.total())), *name));
                }
                counts.sort();
                volumes.sort();
                let want: Vec<(&str, u64)> = counts.iter().take(n).map(|(Reverse(c), name)| (*name, *c)).collect();
                prop_assert_eq!(t.top_by_count(n).collect::<Vec<_>>(), want);
                let want: Vec<(&str, f64)> = volumes.iter().take(n).map(|(Reverse(Total(v)), name)| (*name, *v)).collect();
                prop_assert_eq!(t.top_by_volume(n).collect::<Vec<_>>(), want);
            }
        }
    }
}
