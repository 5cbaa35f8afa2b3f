//! The state of one derived view, and the documents a write changes in it
//! (docs/ARCHITECTURE.md, "Derived views"): pure, with no view, store or write in sight.
//!
//! [`Shape`] is what a [`DerivedSpec`] asks of each document: its group
//! (the value at `group_by`; a string as it is, a number or a boolean as
//! its JSON text; a document without one, or with an object, an array, a
//! string over [`MAX_GROUP_KEY`] characters or holding U+0000 there, is
//! left out) and, per member, the number it contributes (the value at the
//! member's pointer, if it is a number: other values, and documents
//! without one, are left out of that member, not of the group).
//!
//! [`Groups`] keeps, per group, the count, an exact [`Sum`] per `sum`
//! member, and per `min`/`max` member the multiset of its numbers (a
//! `BTreeMap` of number to how many documents hold it), so that a document
//! leaving a group finds the next minimum in O(log n); with `top`, the
//! groups ordered by that member (descending, then by key). A change is
//! O(log n); [`Groups::derive`] answers, without changing anything, the
//! documents of the view that a write's changes change, in
//! O((changes + limit) · log n), however many documents and groups.
//!
//! A group's document holds its count, its sums (0 when none of its
//! documents has a number there), and its minimums and maximums (left out
//! while none has). With `top`, the view holds only the `limit` first
//! groups, each with `"rank"` from 1; a group whose `by` member is left
//! out is not ranked.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::number::{ByValue, Num, Sum};
use super::spec::{DerivedSpec, Pointer, RANK};

/// The longest group key, in characters: longer values are left out.
pub const MAX_GROUP_KEY: usize = 1024;

/// What one member of a group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Count,
    Sum(Pointer),
    Min(Pointer),
    Max(Pointer),
}

/// What a derived view asks of each document (see the module docs).
#[derive(Debug, Clone)]
pub struct Shape {
    group_by: Pointer,
    /// Members by name, in name order.
    members: Vec<(String, Kind)>,
    /// The member the groups are ranked by, and how many are kept.
    top: Option<(usize, usize)>,
}

impl Shape {
    /// The shape a checked spec declares.
    pub fn new(spec: &DerivedSpec) -> Shape {
        let mut members: Vec<(String, Kind)> = Vec::new();
        members.extend(spec.count.iter().map(|m| (m.clone(), Kind::Count)));
        let pointers = |map: &BTreeMap<String, Pointer>, kind: fn(Pointer) -> Kind| {
            map.iter()
                .map(move |(m, p)| (m.clone(), kind(p.clone())))
                .collect::<Vec<_>>()
        };
        members.extend(pointers(&spec.sum, Kind::Sum));
        members.extend(pointers(&spec.min, Kind::Min));
        members.extend(pointers(&spec.max, Kind::Max));
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let top = spec.top.as_ref().and_then(|top| {
            let by = members.iter().position(|(m, _)| *m == top.by)?;
            Some((by, top.limit))
        });
        Shape {
            group_by: spec.group_by.clone(),
            members,
            top,
        }
    }

    /// The group `doc` belongs to and the number it gives each member, or
    /// `None` if it is left out.
    fn entry(&self, doc: &Value) -> Option<Entry> {
        let key = match self.group_by.resolve(doc)? {
            Value::String(s) => s.clone(),
            v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
            _ => return None,
        };
        if key.contains('\0') || key.chars().count() > MAX_GROUP_KEY {
            return None;
        }
        let values = self
            .members
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Count => None,
                Kind::Sum(p) | Kind::Min(p) | Kind::Max(p) => p.resolve(doc).and_then(Num::of),
            })
            .collect();
        Some(Entry { key, values })
    }
}

/// A document as a group sees it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    /// Per member (in the shape's order): the number it gives, if any.
    values: Vec<Option<Num>>,
}

/// What one group holds per member.
#[derive(Debug, Clone)]
enum Slot {
    Count,
    Sum(Sum),
    /// Each number, and how many documents hold it.
    Numbers(BTreeMap<Num, u64>),
}

#[derive(Debug, Clone)]
struct Group {
    count: u64,
    slots: Vec<Slot>,
}

impl Group {
    fn new(shape: &Shape) -> Group {
        let slots = shape
            .members
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Count => Slot::Count,
                Kind::Sum(_) => Slot::Sum(Sum::default()),
                Kind::Min(_) | Kind::Max(_) => Slot::Numbers(BTreeMap::new()),
            })
            .collect();
        Group { count: 0, slots }
    }

    fn add(&mut self, values: &[Option<Num>]) {
        self.count += 1;
        for (slot, value) in self.slots.iter_mut().zip(values) {
            match (slot, value) {
                (Slot::Sum(sum), Some(n)) => sum.add(*n),
                (Slot::Numbers(numbers), Some(n)) => *numbers.entry(*n).or_default() += 1,
                _ => {}
            }
        }
    }

    fn remove(&mut self, values: &[Option<Num>]) {
        self.count = self.count.saturating_sub(1);
        for (slot, value) in self.slots.iter_mut().zip(values) {
            match (slot, value) {
                (Slot::Sum(sum), Some(n)) => sum.remove(*n),
                (Slot::Numbers(numbers), Some(n)) => {
                    if let Some(held) = numbers.get_mut(n) {
                        *held -= 1;
                        if *held == 0 {
                            numbers.remove(n);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Each member's value (`None`: left out), as it is now.
    fn values(&self, shape: &Shape) -> Vec<Option<Num>> {
        self.slots
            .iter()
            .zip(&shape.members)
            .map(|(slot, (_, kind))| match (slot, kind) {
                (Slot::Count, _) => Some(Num::Int(self.count.into())),
                (Slot::Sum(sum), _) => Some(sum.value()),
                (Slot::Numbers(n), Kind::Max(_)) => n.last_key_value().map(|(v, _)| *v),
                (Slot::Numbers(n), _) => n.first_key_value().map(|(v, _)| *v),
            })
            .collect()
    }
}

/// How a write moves one group: the numbers its documents bring and take
/// away, per member.
#[derive(Debug, Default)]
struct Delta {
    count: i64,
    added: Vec<Vec<Num>>,
    removed: Vec<Vec<Num>>,
}

impl Delta {
    fn new(members: usize) -> Delta {
        Delta {
            count: 0,
            added: vec![Vec::new(); members],
            removed: vec![Vec::new(); members],
        }
    }

    fn take(&mut self, values: &[Option<Num>], leaves: bool) {
        self.count += if leaves { -1 } else { 1 };
        let side = if leaves {
            &mut self.removed
        } else {
            &mut self.added
        };
        for (numbers, value) in side.iter_mut().zip(values) {
            numbers.extend(*value);
        }
    }
}

/// A document of the view a write changes: its key, the document after
/// (`None`: deleted) and before (`None`: absent).
pub type Moved = (String, Option<Value>, Option<Value>);

/// A group's place in a `top`: its `by` value descending (equal values
/// tie, whether integers or floats), then its key.
type Place = (Reverse<ByValue>, String);

/// A derived view's state (see the module docs).
#[derive(Debug, Clone)]
pub struct Groups {
    shape: Shape,
    groups: HashMap<String, Group>,
    /// With `top`: every group that has a `by` value, in rank order.
    ranked: BTreeSet<Place>,
}

impl Groups {
    /// No document yet.
    pub fn new(shape: Shape) -> Groups {
        Groups {
            shape,
            groups: HashMap::new(),
            ranked: BTreeSet::new(),
        }
    }

    fn place(&self, key: &str, values: &[Option<Num>]) -> Option<Place> {
        let (by, _) = self.shape.top?;
        values[by].map(|v| (Reverse(ByValue(v)), key.to_string()))
    }

    /// The document at some key went from `old` to `new`.
    pub fn change(&mut self, old: Option<&Value>, new: Option<&Value>) {
        let old = old.and_then(|d| self.shape.entry(d));
        let new = new.and_then(|d| self.shape.entry(d));
        if old == new {
            return;
        }
        let ranked = self.shape.top.is_some();
        for (entry, leaves) in [(old, true), (new, false)] {
            let Some(Entry { key, values }) = entry else {
                continue;
            };
            let shape = &self.shape;
            let group = self
                .groups
                .entry(key.clone())
                .or_insert_with(|| Group::new(shape));
            let before = ranked.then(|| group.values(shape));
            if leaves {
                group.remove(&values);
            } else {
                group.add(&values);
            }
            let gone = group.count == 0;
            let after = (ranked && !gone).then(|| group.values(shape));
            if gone {
                self.groups.remove(&key);
            }
            if let Some(place) = before.and_then(|b| self.place(&key, &b)) {
                self.ranked.remove(&place);
            }
            if let Some(place) = after.and_then(|a| self.place(&key, &a)) {
                self.ranked.insert(place);
            }
        }
    }

    /// A group's document from its members' values.
    fn doc(&self, values: &[Option<Num>], rank: Option<usize>) -> Value {
        let mut doc = Map::new();
        for ((name, _), value) in self.shape.members.iter().zip(values) {
            if let Some(v) = value {
                doc.insert(name.clone(), v.to_json());
            }
        }
        if let Some(rank) = rank {
            doc.insert(RANK.into(), Value::from(rank));
        }
        Value::Object(doc)
    }

    /// The members' values of `key` after `delta`; `None` if the group is
    /// then empty.
    fn after(&self, key: &str, delta: &Delta) -> Option<Vec<Option<Num>>> {
        let group = self.groups.get(key);
        let count = group.map_or(0, |g| g.count) as i64 + delta.count;
        if count <= 0 {
            return None;
        }
        let empty = Group::new(&self.shape);
        let group = group.unwrap_or(&empty);
        let values = group
            .slots
            .iter()
            .zip(&self.shape.members)
            .enumerate()
            .map(|(i, (slot, (_, kind)))| {
                let (added, removed) = (&delta.added[i], &delta.removed[i]);
                match (slot, kind) {
                    (Slot::Count, _) => Some(Num::Int(count.into())),
                    (Slot::Sum(sum), _) => {
                        let mut sum = sum.clone();
                        added.iter().for_each(|n| sum.add(*n));
                        removed.iter().for_each(|n| sum.remove(*n));
                        Some(sum.value())
                    }
                    (Slot::Numbers(numbers), Kind::Max(_)) => {
                        let kept = first_kept(numbers.iter().rev(), removed);
                        kept.into_iter().chain(added.iter().copied()).max()
                    }
                    (Slot::Numbers(numbers), _) => {
                        let kept = first_kept(numbers.iter(), removed);
                        kept.into_iter().chain(added.iter().copied()).min()
                    }
                }
            })
            .collect();
        Some(values)
    }

    /// The documents of the view that `changes` (each a document's
    /// `(old, new)`, all made in one write on top of this state) change:
    /// `(key, after, before)`, where `after` is `None` to delete and
    /// `before` is the document as it is now (`None`: absent). Changes
    /// nothing.
    pub fn derive<'a>(
        &self,
        changes: impl IntoIterator<Item = (Option<&'a Value>, Option<&'a Value>)>,
    ) -> Vec<Moved> {
        let mut deltas: BTreeMap<String, Delta> = BTreeMap::new();
        for (old, new) in changes {
            let old = old.and_then(|d| self.shape.entry(d));
            let new = new.and_then(|d| self.shape.entry(d));
            if old == new {
                continue;
            }
            for (entry, leaves) in [(old, true), (new, false)] {
                if let Some(Entry { key, values }) = entry {
                    deltas
                        .entry(key)
                        .or_insert_with(|| Delta::new(self.shape.members.len()))
                        .take(&values, leaves);
                }
            }
        }
        if let Some((_, limit)) = self.shape.top
            && self.beyond_top(&deltas, limit)
        {
            return Vec::new();
        }
        let moved: Vec<(String, Option<Vec<Option<Num>>>)> = deltas
            .iter()
            .map(|(key, delta)| (key.clone(), self.after(key, delta)))
            .collect();
        match self.shape.top {
            None => moved
                .into_iter()
                .filter_map(|(key, after)| {
                    let before = self
                        .groups
                        .get(&key)
                        .map(|g| self.doc(&g.values(&self.shape), None));
                    let after = after.map(|values| self.doc(&values, None));
                    (before != after).then_some((key, after, before))
                })
                .collect(),
            Some((_, limit)) => self.derive_top(moved, limit),
        }
    }

    /// Whether every group `deltas` moves stays behind the first `limit`
    /// ranked groups, before and after: then the top does not change. The
    /// common case with many groups, answered in O(log n) per group.
    fn beyond_top(&self, deltas: &BTreeMap<String, Delta>, limit: usize) -> bool {
        if limit > 64 {
            return false;
        }
        let Some(last) = self.ranked.iter().nth(limit - 1) else {
            return false;
        };
        deltas.iter().all(|(key, delta)| {
            let old = self
                .groups
                .get(key)
                .and_then(|g| self.place(key, &g.values(&self.shape)));
            let new = self.after(key, delta).and_then(|v| self.place(key, &v));
            old.is_none_or(|p| p > *last) && new.is_none_or(|p| p > *last)
        })
    }

    /// [`Groups::derive`] for a `top` view: the first `limit` groups
    /// before and after, merged from the ranked groups the write leaves
    /// alone and the ones it moves.
    fn derive_top(
        &self,
        moved: Vec<(String, Option<Vec<Option<Num>>>)>,
        limit: usize,
    ) -> Vec<Moved> {
        let before: Vec<&Place> = self.ranked.iter().take(limit).collect();
        let touched: HashMap<&str, Option<&Vec<Option<Num>>>> = moved
            .iter()
            .map(|(key, after)| (key.as_str(), after.as_ref()))
            .collect();
        let mut entering: Vec<Place> = moved
            .iter()
            .filter_map(|(key, after)| self.place(key, after.as_ref()?))
            .collect();
        entering.sort();
        let staying = self
            .ranked
            .iter()
            .filter(|(_, key)| !touched.contains_key(key.as_str()))
            .take(limit);
        let mut after: Vec<&Place> = staying.chain(entering.iter()).collect();
        after.sort();
        after.truncate(limit);
        let was: HashMap<&str, usize> = before
            .iter()
            .enumerate()
            .map(|(i, (_, key))| (key.as_str(), i + 1))
            .collect();
        let mut out = Vec::new();
        let mut kept = std::collections::HashSet::new();
        for (i, (_, key)) in after.iter().enumerate() {
            let rank = i + 1;
            kept.insert(key.as_str());
            let current = || self.groups.get(key).map(|g| g.values(&self.shape));
            let new = match touched.get(key.as_str()) {
                Some(after) => after.cloned(),
                None => current(),
            };
            let new = new.map(|values| self.doc(&values, Some(rank)));
            let old = was
                .get(key.as_str())
                .and_then(|r| current().map(|values| self.doc(&values, Some(*r))));
            if new != old {
                out.push((key.clone(), new, old));
            }
        }
        for (rank, (_, key)) in before.into_iter().enumerate() {
            if !kept.contains(key.as_str()) {
                let old = self
                    .groups
                    .get(key)
                    .map(|g| self.doc(&g.values(&self.shape), Some(rank + 1)));
                out.push((key.clone(), None, old));
            }
        }
        out
    }

    /// The view's document at `key`, if it has one.
    pub fn doc_of(&self, key: &str) -> Option<Value> {
        let group = self.groups.get(key)?;
        let values = group.values(&self.shape);
        match self.shape.top {
            None => Some(self.doc(&values, None)),
            Some((_, limit)) => {
                let place = self.place(key, &values)?;
                let rank = self.ranked.range(..=&place).take(limit + 1).count();
                (rank <= limit).then(|| self.doc(&values, Some(rank)))
            }
        }
    }

    /// Every document of the view.
    pub fn all(&self) -> Map<String, Value> {
        match self.shape.top {
            None => self
                .groups
                .iter()
                .map(|(key, g)| (key.clone(), self.doc(&g.values(&self.shape), None)))
                .collect(),
            Some((_, limit)) => self
                .ranked
                .iter()
                .take(limit)
                .enumerate()
                .filter_map(|(i, (_, key))| {
                    let g = self.groups.get(key)?;
                    Some((key.clone(), self.doc(&g.values(&self.shape), Some(i + 1))))
                })
                .collect(),
        }
    }
}

/// The first number of `numbers` (in the order given) that the removals
/// leave at least once.
fn first_kept<'n>(
    numbers: impl Iterator<Item = (&'n Num, &'n u64)>,
    removed: &[Num],
) -> Option<Num> {
    for (n, held) in numbers {
        let gone = removed.iter().filter(|r| *r == n).count() as u64;
        if *held > gone {
            return Some(*n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derived::spec::Top;
    use proptest::prelude::*;
    use serde_json::json;

    fn pointer(p: &str) -> Pointer {
        Pointer::parse(p).unwrap()
    }

    fn spec(group_by: &str) -> DerivedSpec {
        DerivedSpec {
            name: "v".into(),
            from: "c".into(),
            group_by: pointer(group_by),
            count: None,
            sum: BTreeMap::new(),
            min: BTreeMap::new(),
            max: BTreeMap::new(),
            top: None,
        }
    }

    /// Runs `writes` (each a list of `(key, new document)`) on a
    /// collection, keeping the view from the documents `derive` answers.
    struct Run {
        groups: Groups,
        docs: BTreeMap<String, Value>,
        view: Map<String, Value>,
    }

    impl Run {
        fn new(spec: &DerivedSpec) -> Run {
            Run {
                groups: Groups::new(Shape::new(spec)),
                docs: BTreeMap::new(),
                view: Map::new(),
            }
        }

        /// One write; answers the view's event (its merge patch), if any.
        fn write(&mut self, changes: &[(&str, Option<Value>)]) -> Option<Value> {
            let olds: Vec<Option<Value>> = changes
                .iter()
                .map(|(k, _)| self.docs.get(*k).cloned())
                .collect();
            let pairs = olds
                .iter()
                .zip(changes)
                .map(|(old, (_, new))| (old.as_ref(), new.as_ref()));
            let out = self.groups.derive(pairs);
            let mut patch = Map::new();
            for (key, doc, before) in out {
                assert_eq!(
                    before.as_ref(),
                    self.view.get(&key),
                    "the document before, {key}"
                );
                let entry = match (&doc, self.view.get(&key)) {
                    (Some(new), Some(old)) => duality::merge::diff(old, new),
                    (Some(new), None) => Some(new.clone()),
                    (None, Some(_)) => Some(Value::Null),
                    (None, None) => None,
                };
                if let Some(entry) = entry {
                    patch.insert(key.clone(), entry);
                }
                match doc {
                    Some(doc) => self.view.insert(key, doc),
                    None => self.view.remove(&key),
                };
            }
            for (old, (key, new)) in olds.iter().zip(changes) {
                self.groups.change(old.as_ref(), new.as_ref());
                match new {
                    Some(doc) => self.docs.insert(key.to_string(), doc.clone()),
                    None => self.docs.remove(*key),
                };
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
    }

    /// The view computed from the documents alone, another way.
    fn scratch(spec: &DerivedSpec, docs: &BTreeMap<String, Value>) -> Map<String, Value> {
        let mut by_group: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for doc in docs.values() {
            let key = match doc.pointer(spec.group_by.as_str()) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => continue,
            };
            by_group.entry(key).or_default().push(doc);
        }
        let numbers = |docs: &[&Value], p: &Pointer| -> Vec<Num> {
            docs.iter()
                .filter_map(|d| d.pointer(p.as_str()).and_then(Num::of))
                .collect()
        };
        let mut rows: Vec<(String, Map<String, Value>)> = Vec::new();
        for (key, members) in by_group {
            let mut doc = Map::new();
            if let Some(count) = &spec.count {
                doc.insert(count.clone(), json!(members.len()));
            }
            for (m, p) in &spec.sum {
                let mut sum = Sum::default();
                numbers(&members, p).into_iter().for_each(|n| sum.add(n));
                doc.insert(m.clone(), sum.value().to_json());
            }
            for (m, p) in &spec.min {
                if let Some(n) = numbers(&members, p).into_iter().min() {
                    doc.insert(m.clone(), n.to_json());
                }
            }
            for (m, p) in &spec.max {
                if let Some(n) = numbers(&members, p).into_iter().max() {
                    doc.insert(m.clone(), n.to_json());
                }
            }
            rows.push((key, doc));
        }
        let Some(Top { by, limit }) = &spec.top else {
            return rows
                .into_iter()
                .map(|(k, d)| (k, Value::Object(d)))
                .collect();
        };
        let mut ranked: Vec<(f64, String, Map<String, Value>)> = rows
            .into_iter()
            .filter_map(|(k, d)| Some((d.get(by)?.as_f64()?, k, d)))
            .collect();
        ranked.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        ranked
            .into_iter()
            .take(*limit)
            .enumerate()
            .map(|(i, (_, k, mut d))| {
                d.insert(RANK.into(), json!(i + 1));
                (k, Value::Object(d))
            })
            .collect()
    }

    /// The reference sequence of persons and locations (tests/it/persons_and_locations.rs), as a collection of persons with
    /// `group_by = "/city"`, `count = "total"`: the locations events.
    #[test]
    fn counting_persons_by_city_gives_the_locations_events() {
        let mut locations = spec("/city");
        locations.count = Some("total".into());
        let mut run = Run::new(&locations);
        let rows = [
            (
                ("1", Some(json!({"name":"Ann","city":"Rome"}))),
                Some(json!({"Rome":{"total":1}})),
            ),
            (("2", Some(json!({"name":"Bob"}))), None),
            (
                ("2", Some(json!({"name":"Bob","city":"Rome"}))),
                Some(json!({"Rome":{"total":2}})),
            ),
            (
                ("1", Some(json!({"name":"Ann"}))),
                Some(json!({"Rome":{"total":1}})),
            ),
            (("2", None), Some(json!({"Rome":null}))),
        ];
        for (i, ((key, doc), event)) in rows.into_iter().enumerate() {
            assert_eq!(run.write(&[(key, doc)]), event, "row {}", i + 1);
        }
        assert_eq!(run.view, Map::new());
        run.write(&[("3", Some(json!({"city":"Rome"})))]);
        assert_eq!(
            run.write(&[("3", Some(json!({"city":"Paris"})))]),
            Some(json!({"Rome":null,"Paris":{"total":1}})),
            "a move is one event"
        );
    }

    #[test]
    fn a_group_is_its_value_as_a_string_or_as_json_text_and_others_are_left_out() {
        let mut by = spec("/g");
        by.count = Some("n".into());
        let mut run = Run::new(&by);
        for (k, g) in [
            ("a", json!("x")),
            ("b", json!(3)),
            ("c", json!(true)),
            ("d", json!({"x": 1})),
            ("e", json!([1])),
            ("f", json!("3")),
            ("g", json!("a\u{0}b")),
            ("h", json!("x".repeat(MAX_GROUP_KEY + 1))),
        ] {
            run.write(&[(k, Some(json!({ "g": g })))]);
        }
        run.write(&[("i", Some(json!({"other": 1})))]);
        assert_eq!(
            Value::Object(run.view.clone()),
            json!({"x": {"n": 1}, "3": {"n": 2}, "true": {"n": 1}})
        );
    }

    #[test]
    fn min_and_max_find_the_next_number_when_the_extreme_leaves() {
        let mut by = spec("/g");
        by.min.insert("lo".into(), pointer("/v"));
        by.max.insert("hi".into(), pointer("/v"));
        by.sum.insert("s".into(), pointer("/v"));
        let mut run = Run::new(&by);
        run.write(&[
            ("a", Some(json!({"g": "x", "v": 1}))),
            ("b", Some(json!({"g": "x", "v": 5}))),
        ]);
        run.write(&[
            ("c", Some(json!({"g": "x", "v": 5}))),
            ("d", Some(json!({"g": "x", "v": "9"}))),
        ]);
        assert_eq!(run.view["x"], json!({"lo": 1, "hi": 5, "s": 11}));
        assert_eq!(
            run.write(&[("b", None)]),
            Some(json!({"x": {"s": 6}})),
            "another 5 is left"
        );
        assert_eq!(
            run.write(&[("c", None)]),
            Some(json!({"x": {"hi": 1, "s": 1}}))
        );
        assert_eq!(
            run.write(&[("a", None)]),
            Some(json!({"x": {"lo": null, "hi": null, "s": 0}})),
            "the group stays while a document without a number is in it"
        );
        assert_eq!(run.write(&[("d", None)]), Some(json!({"x": null})));
    }

    #[test]
    fn top_keeps_the_largest_groups_ranked_with_ties_by_key() {
        let mut by = spec("/g");
        by.count = Some("n".into());
        by.top = Some(Top {
            by: "n".into(),
            limit: 2,
        });
        let mut run = Run::new(&by);
        run.write(&[
            ("1", Some(json!({"g": "b"}))),
            ("2", Some(json!({"g": "a"}))),
        ]);
        assert_eq!(
            Value::Object(run.view.clone()),
            json!({"a": {"n": 1, "rank": 1}, "b": {"n": 1, "rank": 2}})
        );
        assert_eq!(
            run.write(&[("3", Some(json!({"g": "c"})))]),
            None,
            "c ties and sorts after b"
        );
        assert_eq!(
            run.write(&[("4", Some(json!({"g": "c"})))]),
            Some(json!({"c": {"n": 2, "rank": 1}, "a": {"rank": 2}, "b": null}))
        );
        assert_eq!(
            run.write(&[("4", None), ("3", None)]),
            Some(json!({"c": null, "a": {"rank": 1}, "b": {"n": 1, "rank": 2}}))
        );
    }

    fn doc() -> impl Strategy<Value = Option<Value>> {
        let group = prop::sample::select(vec![
            json!("x"),
            json!("y"),
            json!(1),
            json!(true),
            json!({"o": 1}),
            Value::Null,
        ]);
        let number = prop::sample::select(vec![
            json!(1),
            json!(2.5),
            json!(-3),
            json!("7"),
            json!(1e300),
            json!(2),
            json!(-0.0),
            Value::Null,
        ]);
        prop::option::weighted(0.8, (group, number.clone(), number)).prop_map(|doc| {
            doc.map(|(g, v, w)| {
                let mut d = Map::new();
                for (name, value) in [("g", g), ("v", v), ("w", w)] {
                    if !value.is_null() {
                        d.insert(name.into(), value);
                    }
                }
                Value::Object(d)
            })
        })
    }

    fn full_spec(top: Option<(usize, usize)>) -> DerivedSpec {
        let mut s = spec("/g");
        s.count = Some("n".into());
        s.sum.insert("s".into(), pointer("/v"));
        s.min.insert("lo".into(), pointer("/v"));
        s.max.insert("hi".into(), pointer("/v"));
        s.max.insert("hw".into(), pointer("/w"));
        s.top = top.map(|(by, limit)| Top {
            by: ["n", "s", "lo", "hi"][by].into(),
            limit,
        });
        s
    }

    proptest! {
        #[test]
        fn the_view_kept_write_by_write_equals_the_view_from_the_documents(
            top in prop::option::of((0..4usize, 1..4usize)),
            writes in prop::collection::vec(prop::collection::vec((0..6usize, doc()), 1..4), 1..40),
        ) {
            let spec = full_spec(top);
            let mut run = Run::new(&spec);
            let keys = ["a", "b", "c", "d", "e", "f"];
            for write in writes {
                let mut changes: Vec<(&str, Option<Value>)> = Vec::new();
                for (k, doc) in write {
                    changes.retain(|(c, _)| *c != keys[k]);
                    changes.push((keys[k], doc));
                }
                run.write(&changes);
                let want = scratch(&spec, &run.docs);
                prop_assert_eq!(&run.view, &want);
                prop_assert_eq!(&run.groups.all(), &want);
                for key in ["x", "y", "1", "true", "nope"] {
                    let doc = run.groups.doc_of(key);
                    prop_assert_eq!(doc.as_ref(), want.get(key), "{}", key);
                }
            }
        }
    }
}
