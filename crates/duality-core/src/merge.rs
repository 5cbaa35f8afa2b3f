//! JSON Merge Patch (RFC 7396): the diff that produces a patch, and the apply.
//!
//! `diff(a, b)` is the *minimal* patch: a key appears in it only if its value
//! differs between `a` and `b`, and nested objects are diffed recursively.
//! Arrays and scalars are replaced whole, as RFC 7396 requires. Documents
//! never contain `null` inside objects (null means "delete" in a merge
//! patch), so `apply(a, diff(a, b)) == b` holds for every document.

use serde_json::{Map, Value};

/// The minimal merge patch that takes `a` to `b`, or `None` if they are equal.
pub fn diff(a: &Value, b: &Value) -> Option<Value> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => Some(Value::Object(diff_objects(a, b))),
        _ => Some(b.clone()),
    }
}

/// The patch between two objects; empty if they are equal.
pub fn diff_objects(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in a.keys() {
        if !b.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new) in b {
        match a.get(key) {
            None => {
                patch.insert(key.clone(), new.clone());
            }
            Some(old) => {
                if let Some(d) = diff(old, new) {
                    patch.insert(key.clone(), d);
                }
            }
        }
    }
    patch
}

/// Applies a merge patch in place (RFC 7396 section 2).
pub fn apply(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// True if `value` has a `null` inside an object at any depth: such a value
/// cannot be a document, because a merge patch could not reproduce it.
pub fn has_null_member(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| v.is_null() || has_null_member(v)),
        Value::Array(items) => items.iter().any(has_null_member),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// RFC 7396, Appendix A: (original, patch, result).
    fn rfc_examples() -> Vec<(Value, Value, Value)> {
        vec![
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ]
    }

    #[test]
    fn apply_matches_every_rfc_7396_example() {
        for (original, patch, result) in rfc_examples() {
            let mut doc = original.clone();
            apply(&mut doc, &patch);
            assert_eq!(doc, result, "original {original} patch {patch}");
        }
    }

    #[test]
    fn diff_reproduces_every_rfc_7396_result_that_is_a_document() {
        for (original, _, result) in rfc_examples() {
            if has_null_member(&original) || result.is_null() {
                continue;
            }
            let mut doc = original.clone();
            if let Some(patch) = diff(&original, &result) {
                apply(&mut doc, &patch);
            }
            assert_eq!(doc, result, "original {original}");
        }
    }

    #[test]
    fn diff_of_the_spec_reference_rows_is_exact() {
        let before = json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob"}});
        let after = json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob","city":"Rome"}});
        assert_eq!(diff(&before, &after), Some(json!({"2":{"city":"Rome"}})));
        let before = json!({"Rome":{"total":1}});
        let after = json!({"Paris":{"total":1}});
        assert_eq!(
            diff(&before, &after),
            Some(json!({"Rome":null,"Paris":{"total":1}}))
        );
        assert_eq!(diff(&after, &after), None);
    }

    #[test]
    fn a_null_member_is_found_at_any_depth() {
        assert!(has_null_member(&json!({"a":{"b":[{"c":null}]}})));
        assert!(!has_null_member(&json!({"a":[null, 1]})));
    }

    /// JSON documents: nulls only inside arrays, never as object members.
    fn document() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (-1000i64..1000).prop_map(|n| json!(n)),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(prop_oneof![Just(Value::Null), inner.clone()], 0..4)
                    .prop_map(Value::Array),
                prop::collection::btree_map("[a-e]", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object_document() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-e]", document(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Every key in `patch` marks a real difference between `a` and `b`.
    fn assert_minimal(a: &Value, b: &Value, patch: &Value) {
        if let (Value::Object(a), Value::Object(b), Value::Object(p)) = (a, b, patch) {
            for (key, sub) in p {
                let (old, new) = (a.get(key), b.get(key));
                assert_ne!(old, new, "unchanged key {key} in patch");
                if let (Some(old), Some(new)) = (old, new) {
                    assert_minimal(old, new, sub);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_target(a in object_document(), b in object_document()) {
            let mut doc = a.clone();
            if let Some(patch) = diff(&a, &b) {
                apply(&mut doc, &patch);
            }
            prop_assert_eq!(doc, b);
        }

        #[test]
        fn the_diff_names_only_changed_keys(a in object_document(), b in object_document()) {
            match diff(&a, &b) {
                None => prop_assert_eq!(&a, &b),
                Some(patch) => assert_minimal(&a, &b, &patch),
            }
        }

        #[test]
        fn applying_a_diff_twice_changes_nothing_more(a in object_document(), b in object_document()) {
            if let Some(patch) = diff(&a, &b) {
                let mut doc = a.clone();
                apply(&mut doc, &patch);
                apply(&mut doc, &patch);
                prop_assert_eq!(doc, b);
            }
        }
    }
}
