//! Failing locations in error messages, as JSON Pointers (RFC 6901: `~`
//! is written `~0`, `/` is `~1`, and the empty string `""` is the whole
//! document, while `/` is the member with the empty key).
//!
//! Messages quote the pointer as a JSON string, so the root and keys with
//! spaces or colons read unambiguously.

use jsonschema::paths::{Location, LocationSegment};
use serde_json::{Map, Value};

/// `pointer` as a JSON string, for a message.
pub fn quoted(pointer: &str) -> String {
    Value::String(pointer.to_string()).to_string()
}

/// The pointer of the first `null` in the object with these members, at
/// any depth and in the order they serialise, or `None` if it holds none.
/// Escaping is left to the schema crate's location type, so both kinds of
/// error write pointers alike.
pub fn first_null_member(members: &Map<String, Value>) -> Option<String> {
    let mut path = Vec::new();
    let null = members
        .iter()
        .any(|(key, member)| descend(&mut path, key.as_str().into(), member));
    found(null, path)
}

/// The pointer of the first `null` inside an array in the merge patch with
/// these members, at any depth, or `None` if it holds none: a `null`
/// member of a patch removes that member, but one in an array could never
/// be stored.
pub fn first_null_in_array(members: &Map<String, Value>) -> Option<String> {
    let mut path = Vec::new();
    let null = members
        .iter()
        .any(|(key, member)| descend_patch(&mut path, key.as_str().into(), member));
    found(null, path)
}

/// Looks for a `null` inside an array under `segment` of a patch (a
/// `null` member is a removal, not one).
fn descend_patch<'v>(
    path: &mut Vec<LocationSegment<'v>>,
    segment: LocationSegment<'v>,
    value: &'v Value,
) -> bool {
    path.push(segment);
    let found = match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, member)| descend_patch(path, key.as_str().into(), member)),
        Value::Array(_) => find_null(value, path),
        _ => false,
    };
    if !found {
        path.pop();
    }
    found
}

fn found(null: bool, path: Vec<LocationSegment<'_>>) -> Option<String> {
    null.then(|| {
        path.into_iter()
            .fold(Location::new(), |at, segment| at.join(segment))
            .as_str()
            .to_string()
    })
}

fn find_null<'v>(value: &'v Value, path: &mut Vec<LocationSegment<'v>>) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map
            .iter()
            .any(|(key, member)| descend(path, key.as_str().into(), member)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .any(|(i, item)| descend(path, i.into(), item)),
        _ => false,
    }
}

/// Looks for a `null` under `segment`, which stays on `path` only if one
/// was found.
fn descend<'v>(
    path: &mut Vec<LocationSegment<'v>>,
    segment: LocationSegment<'v>,
    value: &'v Value,
) -> bool {
    path.push(segment);
    let found = find_null(value, path);
    if !found {
        path.pop();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first_null(doc: Value) -> Option<String> {
        first_null_member(doc.as_object().unwrap())
    }

    #[test]
    fn the_root_is_the_empty_pointer_and_keys_are_escaped() {
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(first_null(json!({"": null})).unwrap(), "/");
        assert_eq!(
            first_null(json!({"a/b": {"c~d": null}})).unwrap(),
            "/a~1b/c~0d"
        );
    }

    #[test]
    fn a_patch_may_hold_null_members_but_no_null_in_an_array() {
        let first = |v: Value| first_null_in_array(v.as_object().unwrap());
        assert_eq!(first(json!({"a": null, "b": {"c": null}})), None);
        assert_eq!(first(json!({"a": null, "b": [1, null]})).unwrap(), "/b/1");
        assert_eq!(
            first(json!({"a": {"x": null, "y": [{"z": null}]}})).unwrap(),
            "/a/y/0/z"
        );
    }

    #[test]
    fn a_null_is_found_at_any_depth_first_in_member_order() {
        assert_eq!(first_null(json!({"a": 1, "b": [{}]})), None);
        assert_eq!(first_null(json!({"a": [1, null]})).unwrap(), "/a/1");
        assert_eq!(
            first_null(json!({"a": [{"b": [null]}]})).unwrap(),
            "/a/0/b/0"
        );
        assert_eq!(
            first_null(json!({"b": null, "a": {"z": null}})).unwrap(),
            "/a/z"
        );
    }
}
