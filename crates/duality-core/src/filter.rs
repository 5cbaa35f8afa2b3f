//! Filters: the subset of a view a consumer subscribes to (docs/PROTOCOL.md,
//! "Filters").
//!
//! A [`Filter`] keeps the documents under some keys (`key=K`, repeatable)
//! and/or the documents that contain every member of a JSON object
//! (`where={...}`: objects compared member by member, recursively; arrays
//! and scalars compared whole). Both together keep what satisfies both.
//!
//! A change to a view becomes a change to the subset with
//! [`Filter::entry`]: a document that starts to match is sent whole, one
//! that stops matching as `null`, one that matches before and after with
//! its own patch, and one that matches neither not at all.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::Error;

/// The most `key` parameters one request may carry.
pub const MAX_KEYS: usize = 1000;

/// Which documents of a view a consumer wants; the default keeps them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these keys (`None`: any key).
    keys: Option<BTreeSet<String>>,
    /// Only documents that contain this object (`None`: any document).
    pattern: Option<Map<String, Value>>,
}

impl Filter {
    /// A filter from the raw `key` values and the raw `where` value of a
    /// request; a malformed one is a `400` naming the parameter.
    pub fn parse(keys: &[String], pattern: Option<&str>) -> Result<Filter, Error> {
        if keys.len() > MAX_KEYS {
            return Err(Error::Invalid(format!(
                "key: at most {MAX_KEYS} keys in one request, not {}",
                keys.len()
            )));
        }
        let keys = (!keys.is_empty()).then(|| keys.iter().cloned().collect());
        let pattern = match pattern {
            None => None,
            Some(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(object)) => Some(object),
                Ok(_) => {
                    return Err(Error::Invalid(
                        "where: must be a JSON object, such as {\"status\":\"open\"}".into(),
                    ));
                }
                Err(e) => return Err(Error::Invalid(format!("where: not JSON: {e}"))),
            },
        };
        Ok(Filter { keys, pattern })
    }

    /// A filter that keeps only `keys`.
    pub fn keys(keys: impl IntoIterator<Item = impl Into<String>>) -> Filter {
        Filter {
            keys: Some(keys.into_iter().map(Into::into).collect()),
            pattern: None,
        }
    }

    /// A filter that keeps the documents containing `pattern`.
    pub fn matching(pattern: Map<String, Value>) -> Filter {
        Filter {
            keys: None,
            pattern: Some(pattern),
        }
    }

    /// True if the filter keeps every document.
    pub fn is_all(&self) -> bool {
        self.keys.is_none() && self.pattern.is_none()
    }

    /// The keys it is limited to, if it is.
    pub fn key_set(&self) -> Option<&BTreeSet<String>> {
        self.keys.as_ref()
    }

    /// The object documents must contain, if any.
    pub fn pattern(&self) -> Option<&Map<String, Value>> {
        self.pattern.as_ref()
    }

    /// Where a subscription index finds this filter (see [`Anchor`]): its
    /// keys if it has any, else the first member of its `where` (depth
    /// first) whose value can be indexed, else everywhere.
    pub fn anchor(&self) -> Anchor {
        if let Some(keys) = &self.keys {
            return Anchor::Keys(keys.iter().cloned().collect());
        }
        fn first(pattern: &Map<String, Value>, path: &mut Vec<String>) -> Option<String> {
            for (name, want) in pattern {
                path.push(name.clone());
                let found = match want {
                    Value::Object(inner) => first(inner, path),
                    scalar => index_text(scalar),
                };
                if found.is_some() {
                    return found;
                }
                path.pop();
            }
            None
        }
        let mut path = Vec::new();
        match self.pattern.as_ref().and_then(|p| first(p, &mut path)) {
            Some(value) => Anchor::Member { path, value },
            None => Anchor::Everywhere,
        }
    }

    /// True if a document's key alone can still match (a cheap test
    /// before looking at the document).
    pub fn admits_key(&self, key: &str) -> bool {
        self.keys.as_ref().is_none_or(|keys| keys.contains(key))
    }

    /// True if the document `doc` under `key` is in the subset.
    pub fn matches(&self, key: &str, doc: &Value) -> bool {
        self.admits_key(key) && self.pattern.as_ref().is_none_or(|p| contains_all(doc, p))
    }

    /// What one document's change means for the subset: its member of the
    /// filtered patch, or `None` if the subset does not change. `before`
    /// and `after` are the document before and after the change (`None`:
    /// absent); `entry` is its member of the view's patch.
    pub fn entry(
        &self,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
        entry: &Value,
    ) -> Option<Value> {
        let was = before.is_some_and(|d| self.matches(key, d));
        let is = after.is_some_and(|d| self.matches(key, d));
        match (was, is, after) {
            (false, false, _) => None,
            (true, false, _) => Some(Value::Null),
            (false, true, Some(after)) => Some(after.clone()),
            (true, true, _) => Some(entry.clone()),
            (false, true, None) => None,
        }
    }

    /// What one event of the view means for the subset: its filtered
    /// patch, or `None` if the subset did not change. `prior` holds the
    /// documents the event replaced or deleted as they were before it (a
    /// created document is absent); a filter of keys alone does not need it.
    pub fn event(
        &self,
        patch: &Map<String, Value>,
        prior: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        for (key, entry) in patch.iter().filter(|(k, _)| self.admits_key(k)) {
            if self.pattern.is_none() {
                // A kept key's member is its change in the subset too (a
                // new document's is the whole document, a deleted one's null).
                out.insert(key.clone(), entry.clone());
                continue;
            }
            let before = prior.get(key);
            let after = match (before, entry) {
                (_, Value::Null) => None,
                (None, created) => Some(created.clone()),
                (Some(old), change) => {
                    let mut doc = old.clone();
                    crate::merge::apply(&mut doc, change);
                    Some(doc)
                }
            };
            if let Some(member) = self.entry(key, before, after.as_ref(), entry) {
                out.insert(key.clone(), member);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// [`Filter::event`] on an event as stored and sent: its patch and the
    /// documents it replaced as JSON text (`prior` is `None` for an event
    /// stored without them). Answers the filtered patch's text (`None`:
    /// the subset did not change), or [`Restrict::NeedsPrior`] when a
    /// `where` filter meets an event without its replaced documents.
    pub fn restrict(&self, patch: &str, prior: Option<&str>) -> Restrict {
        if self.is_all() {
            return Restrict::Kept(patch.to_string());
        }
        let object = |text: &str| match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        let Some(patch) = object(patch) else {
            return Restrict::Malformed;
        };
        let prior = match (&self.pattern, prior.map(object)) {
            (None, _) => Map::new(),
            (Some(_), Some(Some(prior))) => prior,
            (Some(_), Some(None)) => return Restrict::Malformed,
            (Some(_), None) => return Restrict::NeedsPrior,
        };
        match self.event(&patch, &prior) {
            Some(kept) => Restrict::Kept(Value::Object(kept).to_string()),
            None => Restrict::Nothing,
        }
    }

    /// A short, stable name of this filter (for a filtered snapshot's
    /// `ETag`): equal filters have equal fingerprints in every process.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({"key": self.keys, "where": self.pattern});
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The part of a view's documents this filter keeps.
    pub fn apply(&self, view: &Map<String, Value>) -> Map<String, Value> {
        view.iter()
            .filter(|(k, d)| self.matches(k, d))
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect()
    }
}

/// What a filter makes of one stored event (see [`Filter::restrict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restrict {
    /// The subset changed: this is its patch, as JSON text.
    Kept(String),
    /// The event left the subset alone.
    Nothing,
    /// A `where` filter needs the documents the event replaced, and the
    /// event was stored without them.
    NeedsPrior,
    /// The stored patch or prior is not a JSON object (never written so).
    Malformed,
}

/// Where a subscription index files a filter, so that a change is offered
/// only to the filters it can concern: every document a filter keeps is
/// under one of its keys, or has its anchor member with the anchor value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The documents under these keys.
    Keys(Vec<String>),
    /// The documents whose member at `path` (object members, outermost
    /// first) has the value whose [`index_text`] is `value`.
    Member {
        /// The member's path.
        path: Vec<String>,
        /// Its value's index text.
        value: String,
    },
    /// Nothing narrower: every change must be looked at (a `where` of
    /// arrays, fractions or empty objects only).
    Everywhere,
}

/// The text a value is indexed by when a filter compares it whole:
/// strings, integers, booleans and null (their JSON text). Fractions and
/// arrays are not indexed (`1.0` and `1` differ as JSON text in ways
/// equality may not), nor objects (compared member by member).
pub fn index_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if !n.is_f64() => Some(n.to_string()),
        Value::Number(_) | Value::Array(_) | Value::Object(_) => None,
        scalar => Some(scalar.to_string()),
    }
}

/// The member of `doc` at `path` (object members, outermost first).
pub fn member<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(doc, |at, name| at.as_object()?.get(name))
}

/// True if `doc` has every member of `pattern` with an equal value:
/// objects member by member, recursively; anything else whole.
pub fn contains_all(doc: &Value, pattern: &Map<String, Value>) -> bool {
    let Value::Object(doc) = doc else {
        return false;
    };
    pattern
        .iter()
        .all(|(name, want)| match (doc.get(name), want) {
            (Some(have @ Value::Object(_)), Value::Object(want)) => contains_all(have, want),
            (Some(have), want) => have == want,
            (None, _) => false,
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::merge;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn where_compares_objects_member_by_member_and_everything_else_whole() {
        let doc = json!({"status": "open", "owner": {"name": "Ann", "team": "a"}, "tags": ["x", "y"], "n": 1});
        let yes = [
            json!({}),
            json!({"status": "open"}),
            json!({"owner": {"team": "a"}}),
            json!({"owner": {}}),
            json!({"tags": ["x", "y"], "n": 1}),
        ];
        let no = [
            json!({"status": "closed"}),
            json!({"tags": ["x"]}),
            json!({"n": 1.5}),
            json!({"owner": {"name": "Bob"}}),
            json!({"missing": null}),
            json!({"owner": "Ann"}),
        ];
        for p in yes {
            assert!(contains_all(&doc, &object(p.clone())), "{p}");
        }
        for p in no {
            assert!(!contains_all(&doc, &object(p.clone())), "{p}");
        }
    }

    #[test]
    fn malformed_filters_name_their_parameter() {
        let keys: Vec<String> = (0..=MAX_KEYS).map(|i| i.to_string()).collect();
        let too_many = Filter::parse(&keys, None).unwrap_err();
        assert!(too_many.to_string().starts_with("key:"), "{too_many}");
        for bad in ["[1]", "3", "\"open\"", "{", "null"] {
            let e = Filter::parse(&[], Some(bad)).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().starts_with("where:"), "{bad}: {e}");
        }
        assert!(Filter::parse(&[], None).unwrap().is_all());
        assert_eq!(
            Filter::parse(&["b".into(), "a".into(), "b".into()], Some("{\"x\":1}")).unwrap(),
            Filter {
                keys: Some(["a".to_string(), "b".to_string()].into()),
                pattern: Some(object(json!({"x": 1}))),
            }
        );
    }

    #[test]
    fn a_change_enters_leaves_or_stays_in_the_subset() {
        let open = Filter::matching(object(json!({"status": "open"})));
        let o = json!({"status": "open", "n": 1});
        let o2 = json!({"status": "open", "n": 2});
        let c = json!({"status": "closed", "n": 1});
        let e = |b: Option<&Value>, a: Option<&Value>| {
            let entry = match (b, a) {
                (_, None) => Value::Null,
                (None, Some(a)) => a.clone(),
                (Some(b), Some(a)) => merge::diff(b, a).unwrap_or(json!({})),
            };
            open.entry("k", b, a, &entry)
        };
        assert_eq!(e(None, Some(&o)), Some(o.clone()));
        assert_eq!(
            e(Some(&c), Some(&o)),
            Some(o.clone()),
            "starts to match: whole"
        );
        assert_eq!(e(Some(&o), Some(&c)), Some(Value::Null), "stops matching");
        assert_eq!(e(Some(&o), None), Some(Value::Null));
        assert_eq!(e(Some(&o), Some(&o2)), Some(json!({"n": 2})), "its patch");
        assert_eq!(e(Some(&c), None), None);
        assert_eq!(e(None, Some(&c)), None);
    }

    #[test]
    fn a_filter_is_anchored_by_its_keys_else_by_an_indexable_member() {
        let f = |keys: &[&str], pattern: Value| Filter {
            keys: (!keys.is_empty()).then(|| keys.iter().map(|k| k.to_string()).collect()),
            pattern: Some(object(pattern)).filter(|p| !p.is_empty()),
        };
        assert_eq!(
            f(&["b", "a"], json!({"status": "open"})).anchor(),
            Anchor::Keys(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            f(&[], json!({"tags": ["x"], "owner": {"team": "a"}})).anchor(),
            Anchor::Member {
                path: vec!["owner".into(), "team".into()],
                value: "\"a\"".into()
            }
        );
        assert_eq!(
            f(&[], json!({"n": 1})).anchor(),
            Anchor::Member {
                path: vec!["n".into()],
                value: "1".into()
            }
        );
        assert_eq!(
            f(&[], json!({"n": 1.5, "tags": []})).anchor(),
            Anchor::Everywhere
        );
        assert_eq!(f(&[], json!({})).anchor(), Anchor::Everywhere);
        assert_eq!(
            index_text(&json!("1")),
            Some("\"1\"".into()),
            "a string is not its number"
        );
        assert_eq!(
            member(&json!({"a": {"b": 2}}), &["a".into(), "b".into()]),
            Some(&json!(2))
        );
        assert_eq!(member(&json!({"a": 1}), &["a".into(), "b".into()]), None);
    }

    fn doc() -> impl Strategy<Value = Value> {
        (
            prop::option::of(prop_oneof![Just("open"), Just("closed")]),
            prop::option::of(0..3i64),
            prop::option::of(prop_oneof![Just("a"), Just("b")]),
        )
            .prop_map(|(status, n, team)| {
                let mut d = Map::new();
                if let Some(s) = status {
                    d.insert("status".into(), json!(s));
                }
                if let Some(n) = n {
                    d.insert("n".into(), json!(n));
                }
                if let Some(t) = team {
                    d.insert("owner".into(), json!({"team": t}));
                }
                Value::Object(d)
            })
    }

    fn filter() -> impl Strategy<Value = Filter> {
        (
            prop::option::of(prop::collection::btree_set("[a-d]", 0..3)),
            prop::option::of(doc()),
        )
            .prop_map(|(keys, pattern)| Filter {
                keys,
                pattern: pattern.map(object),
            })
    }

    proptest! {
        /// Folding the filtered patches of any sequence of writes from the
        /// filtered start gives the filtered view, every step; and a step
        /// that leaves the subset alone has no filtered patch.
        #[test]
        fn filtered_patches_fold_to_the_filtered_view(
            filter in filter(),
            writes in prop::collection::vec(
                prop::collection::btree_map("[a-d]", prop::option::of(doc()), 1..3), 0..12)
        ) {
            let mut view = Map::new();
            let mut copy = filter.apply(&view);
            for write in writes {
                let mut patch = Map::new();
                let mut filtered = Map::new();
                let mut prior = Map::new();
                let before = view.clone();
                for (key, new) in &write {
                    let old = before.get(key);
                    let entry = match (old, new) {
                        (None, None) => continue,
                        (Some(_), None) => Value::Null,
                        (None, Some(n)) => n.clone(),
                        (Some(o), Some(n)) => match merge::diff(o, n) { Some(p) => p, None => continue },
                    };
                    if let Some(f) = filter.entry(key, old, new.as_ref(), &entry) {
                        filtered.insert(key.clone(), f);
                    }
                    if let Some(old) = old {
                        prior.insert(key.clone(), old.clone());
                    }
                    patch.insert(key.clone(), entry);
                    match new {
                        Some(n) => { view.insert(key.clone(), n.clone()); }
                        None => { view.remove(key); }
                    }
                }
                let want = filter.apply(&view);
                prop_assert_eq!(filtered.is_empty(), want == copy, "an event exactly when the subset changes");
                prop_assert_eq!(
                    filter.event(&patch, &prior),
                    (!filtered.is_empty()).then(|| filtered.clone()),
                    "from the event's patch and prior alone"
                );
                let mut folded = Value::Object(copy.clone());
                merge::apply(&mut folded, &Value::Object(filtered));
                copy = match folded { Value::Object(m) => m, _ => unreachable!() };
                prop_assert_eq!(&copy, &want);
            }
        }

        /// A filter's anchor never hides a document it keeps: every kept
        /// document is under one of its keys or has its anchor value.
        #[test]
        fn every_kept_document_is_found_under_the_filters_anchor(
            filter in filter(),
            key in "[a-d]",
            d in doc(),
        ) {
            if filter.matches(&key, &d) {
                match filter.anchor() {
                    Anchor::Keys(keys) => prop_assert!(keys.contains(&key)),
                    Anchor::Member { path, value } => prop_assert_eq!(
                        member(&d, &path).and_then(index_text),
                        Some(value)
                    ),
                    Anchor::Everywhere => {}
                }
            }
        }
    }
}
