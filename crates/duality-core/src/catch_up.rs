//! Catch-up after a long absence (docs/PROTOCOL.md, "Catch-up"): the one
//! merge patch that takes a consumer's copy from its old revision to the
//! view's current one, built from which keys changed rather than from the
//! events, which retention has deleted.
//!
//! The store keeps one small row per key of a view: the revision that last
//! changed it and whether that change deleted it ([`Changed`]), and the
//! oldest position those rows still answer for (`since`: every key changed
//! after it has its row; older rows go past the horizon). For a consumer at
//! revision `after` and the view at revision `at`, every key whose last
//! change is after `after` gets its document at `at` whole, or `null` if it
//! has none then; a key with no row newer than `after` has not changed
//! since, so the consumer already has it right.
//!
//! The rows may have been read after the view moved past `at`: a key
//! changed again after `at` has a row newer than `at`, which says nothing of
//! whether it also changed between `after` and `at`. Such a key is sent as
//! it is at `at` anyway, which is right whether it changed or not; so the
//! patch is exact for the one revision `at` its documents were taken from.
//!
//! With a filter (docs/PROTOCOL.md, "Filters") the patch is restricted to
//! the subset: a changed key the filter keeps at `at` is sent whole; one it
//! does not keep is sent as `null` if the consumer could have had it (its
//! key is admitted), because the consumer's old copy may hold it and
//! nothing says it does not. A `null` for a document the copy never had
//! changes nothing (RFC 7396), so the answer is right either way; it costs
//! a few bytes per changed key that left or never was in the subset.

use serde_json::Value;

use crate::error::Error;
use crate::filter::Filter;

/// What the store remembers of one key: the revision that last changed it,
/// and whether that change deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The document's key.
    pub key: String,
    /// The revision of the last change of this key.
    pub revision: u64,
    /// True if that change deleted the document.
    pub deleted: bool,
}

/// The keys of a view changed after a position, as the store read them in
/// one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedKeys {
    /// The oldest position these rows answer for: every key changed after
    /// it has its row (older rows were deleted past the horizon).
    pub since: u64,
    /// Every key whose last change is after the position asked for.
    pub keys: Vec<Changed>,
}

/// True if rows that answer for positions from `since` on can catch a
/// consumer at revision `after` up.
pub fn covers(since: u64, after: u64) -> bool {
    after >= since
}

/// The merge patch, as compact JSON text, from the consumer's copy at
/// revision `after` to the view at revision `at`, restricted to `filter`.
///
/// `changed` must hold every key whose last change is after `after` (rows
/// of older changes are ignored); `doc(key)` answers a document's stored
/// text at `at`, `None` if it has none. A deleted key whose deletion is at
/// or before `at` is `null` without asking `doc`. Members are in key order.
pub fn patch<'a>(
    changed: &[Changed],
    after: u64,
    at: u64,
    doc: impl Fn(&str) -> Option<&'a str>,
    filter: &Filter,
) -> Result<String, Error> {
    let mut members: Vec<(&str, Option<&str>)> = Vec::with_capacity(changed.len());
    for row in changed {
        if row.revision <= after || !filter.admits_key(&row.key) {
            continue;
        }
        let text = if row.deleted && row.revision <= at {
            None
        } else {
            doc(&row.key)
        };
        let text = match (text, filter.pattern()) {
            (Some(text), Some(_)) => {
                let parsed: Value = serde_json::from_str(text).map_err(|e| {
                    Error::internal(format!(
                        "the stored document {:?} is not JSON: {e}",
                        row.key
                    ))
                })?;
                filter.matches(&row.key, &parsed).then_some(text)
            }
            (text, _) => text,
        };
        members.push((&row.key, text));
    }
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    let size: usize = members
        .iter()
        .map(|(k, d)| k.len() + d.map_or(4, str::len) + 4)
        .sum();
    let mut out = String::with_capacity(size + 2);
    out.push('{');
    for (i, (key, text)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key = serde_json::to_string(key)
            .map_err(|e| Error::internal(format!("a key cannot be written as JSON: {e}")))?;
        out.push_str(&key);
        out.push(':');
        out.push_str(text.unwrap_or("null"));
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::merge;

    type State = BTreeMap<String, String>;

    fn changed(key: &str, revision: u64, deleted: bool) -> Changed {
        Changed {
            key: key.into(),
            revision,
            deleted,
        }
    }

    fn as_map(state: &State) -> Map<String, Value> {
        state
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn changed_documents_go_whole_and_deleted_ones_as_null_in_key_order() {
        let now: State = [("a", r#"{"n":1}"#), ("c", r#"{"n":3}"#)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rows = [
            changed("c", 9, false),
            changed("b", 7, true),
            changed("a", 3, false),
            changed("z", 2, true),
        ];
        let text = patch(
            &rows,
            5,
            9,
            |k| now.get(k).map(String::as_str),
            &Filter::default(),
        )
        .unwrap();
        assert_eq!(
            text, r#"{"b":null,"c":{"n":3}}"#,
            "rows at or before 5 are left out"
        );
        let all = patch(
            &rows,
            0,
            9,
            |k| now.get(k).map(String::as_str),
            &Filter::default(),
        );
        assert_eq!(
            all.unwrap(),
            r#"{"a":{"n":1},"b":null,"c":{"n":3},"z":null}"#
        );
        let none = patch(&rows, 9, 9, |_| None, &Filter::default()).unwrap();
        assert_eq!(none, "{}");
    }

    #[test]
    fn a_key_changed_again_after_the_snapshot_is_sent_as_the_snapshot_has_it() {
        // Read at 12, snapshot at 10: "b" was deleted at 11, so at 10 it
        // still exists and is sent whole; "q" was created at 12, so at 10
        // it is absent and sent as null.
        let at_10: State = [("b", r#"{"v":2}"#)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rows = [changed("b", 11, true), changed("q", 12, false)];
        let text = patch(
            &rows,
            4,
            10,
            |k| at_10.get(k).map(String::as_str),
            &Filter::default(),
        )
        .unwrap();
        assert_eq!(text, r#"{"b":{"v":2},"q":null}"#);
    }

    #[test]
    fn a_filtered_patch_nulls_changed_keys_that_left_the_subset_and_skips_other_keys() {
        let now: State = [
            ("a", r#"{"tag":"red"}"#),
            ("b", r#"{"tag":"blue"}"#),
            ("c", r#"{"tag":"red"}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rows = [
            changed("a", 6, false),
            changed("b", 7, false),
            changed("c", 8, false),
            changed("d", 9, true),
        ];
        let doc = |k: &str| now.get(k).map(String::as_str);
        let red = Filter::parse(&[], Some(r#"{"tag":"red"}"#)).unwrap();
        assert_eq!(
            patch(&rows, 5, 9, doc, &red).unwrap(),
            r#"{"a":{"tag":"red"},"b":null,"c":{"tag":"red"},"d":null}"#
        );
        let keys = Filter::keys(["b", "c"]);
        assert_eq!(
            patch(&rows, 5, 9, doc, &keys).unwrap(),
            r#"{"b":{"tag":"blue"},"c":{"tag":"red"}}"#
        );
    }

    #[test]
    fn a_position_is_covered_from_the_oldest_one_the_rows_answer_for() {
        assert!(covers(0, 0));
        assert!(covers(4, 4) && covers(4, 9));
        assert!(!covers(5, 4));
    }

    /// One write: each touched key's new document (`None`: deleted).
    fn writes() -> impl Strategy<Value = Vec<Vec<(u8, Option<u8>)>>> {
        prop::collection::vec(
            prop::collection::vec((0u8..8, prop::option::weighted(0.75, 0u8..4)), 1..4),
            1..40,
        )
    }

    fn key(k: u8) -> String {
        format!("k{k}")
    }

    fn doc(v: u8) -> String {
        json!({"tag": v % 2, "v": v}).to_string()
    }

    proptest! {
        /// For random writes, a random past revision `after`, a random
        /// revision `at` of the documents, rows read at the newest revision
        /// and trimmed below a random point no later than `after`: the
        /// patch applied to the view at `after` gives the view at `at`, and
        /// the same holds for every filter's subset.
        #[test]
        fn the_catch_up_patch_applied_to_the_old_view_gives_the_view_at_its_revision(
            writes in writes(),
            picks in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            filter_pick in 0usize..4,
        ) {
            // states[r]: the view at revision r.
            let mut states: Vec<State> = vec![State::new()];
            let mut rows: BTreeMap<String, Changed> = BTreeMap::new();
            for (i, write) in writes.iter().enumerate() {
                let revision = i as u64 + 1;
                let mut next = states[i].clone();
                for (k, v) in write {
                    match v {
                        Some(v) => next.insert(key(*k), doc(*v)),
                        None => next.remove(&key(*k)),
                    };
                    rows.insert(key(*k), changed(&key(*k), revision, v.is_none()));
                }
                states.push(next);
            }
            let newest = writes.len() as u64;
            let at = picks.0.index(newest as usize + 1) as u64;
            let after = picks.1.index(at as usize + 1) as u64;
            // The horizon deleted the rows below some `below` ≤ after + 1,
            // and the oldest position answered moved to the newest of them.
            let below = picks.2.index(after as usize + 2) as u64;
            let since = rows
                .values()
                .filter(|r| r.revision < below)
                .map(|r| r.revision)
                .max()
                .unwrap_or(0);
            prop_assert!(covers(since, after));
            let kept: Vec<Changed> = rows
                .values()
                .filter(|r| r.revision >= below && r.revision > after)
                .cloned()
                .collect();
            let filter = match filter_pick {
                0 => Filter::default(),
                1 => Filter::keys(["k1", "k2", "k5"]),
                2 => Filter::parse(&[], Some(r#"{"tag":1}"#)).unwrap(),
                _ => Filter::parse(&["k0".into(), "k3".into()], Some(r#"{"tag":0}"#)).unwrap(),
            };
            let docs = &states[at as usize];
            let text = patch(&kept, after, at, |k| docs.get(k).map(String::as_str), &filter).unwrap();
            let patch_value: Value = serde_json::from_str(&text).unwrap();
            let mut old = Value::Object(filter.apply(&as_map(&states[after as usize])));
            merge::apply(&mut old, &patch_value);
            prop_assert_eq!(old, Value::Object(filter.apply(&as_map(docs))));
        }
    }
}
