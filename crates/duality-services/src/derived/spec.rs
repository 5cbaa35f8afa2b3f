//! What a derived view is, as declared in the configuration file
//! (`[derived.NAME]`, docs/ARCHITECTURE.md, "Derived views"): the collection it is computed from, the
//! JSON Pointer its documents are grouped by, and the members each group
//! holds (a count, sums, minimums, maximums), optionally only the `limit`
//! largest groups (`top`).
//!
//! [`DerivedSpec`] is the typed, checked form that the runtime builds on:
//! every pointer is well formed (RFC 6901), every member name is distinct,
//! `top.by` names a member of the group, and `from` a configured
//! collection. [`DerivedTable`] is the raw table as the file holds it
//! (unknown keys refused by serde); [`DerivedSpec::from_table`] checks it.
//! A refusal is a [`SpecError`] naming the key it is about, so the file
//! reader can point at that key's line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::settings::MAX_COLLECTION_NAME;

/// The member `top` adds to each group it keeps: its place, from 1.
pub const RANK: &str = "rank";

/// The keys of a `[derived.NAME]` table.
pub const KEYS: &[&str] = &["from", "group_by", "count", "sum", "min", "max", "top"];

/// The aggregates a derived view may declare.
pub const AGGREGATES: &[&str] = &["count", "sum", "min", "max"];

/// The keys of its `top` table.
pub const TOP_KEYS: &[&str] = &["by", "limit"];

/// One derived view, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedSpec {
    /// The view's name: served at `/derived/NAME`, its view is
    /// `derived.NAME`. 1 to 64 ASCII letters, digits, `-` or `_`.
    pub name: String,
    /// The collection whose documents it is computed from.
    pub from: String,
    /// Where a document's group is (`/status`); documents without it are
    /// left out.
    pub group_by: Pointer,
    /// The member that holds the number of documents in the group.
    pub count: Option<String>,
    /// Members holding the sum of a number in the group's documents.
    pub sum: BTreeMap<String, Pointer>,
    /// Members holding the smallest such number.
    pub min: BTreeMap<String, Pointer>,
    /// Members holding the largest such number.
    pub max: BTreeMap<String, Pointer>,
    /// Only the `limit` largest groups by one member, each with [`RANK`].
    pub top: Option<Top>,
}

/// `top = { by, limit }`: keep the `limit` largest groups by the member
/// `by` (ties by key, ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// A member of the group: the count or a sum, min or max member.
    pub by: String,
    /// How many groups are kept; at least 1.
    pub limit: usize,
}

/// A JSON Pointer (RFC 6901) into a document, never the empty pointer
/// (the whole document is an object, never a group value or a number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pointer(String);

impl Pointer {
    /// Reads a pointer: `/` then reference tokens separated by `/`, where
    /// `~` appears only as `~0` (a `~`) or `~1` (a `/`).
    pub fn parse(raw: &str) -> Result<Pointer, String> {
        if raw.is_empty() {
            return Err("the empty pointer names the whole document; start it with /".into());
        }
        if !raw.starts_with('/') {
            return Err(format!(
                "{} is not a JSON pointer: it must start with /",
                quoted(raw)
            ));
        }
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "{} is not a JSON pointer: ~ must be written ~0 and / inside a name ~1",
                    quoted(raw)
                ));
            }
        }
        Ok(Pointer(raw.to_string()))
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the pointer names in `doc`, if anything.
    pub fn resolve<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        doc.pointer(&self.0)
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `[derived.NAME]` table as the file holds it, before it is checked.
/// Unknown keys (`avg = …`, a misspelt `group-by`) are refused here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedTable {
    /// The collection it is computed from.
    pub from: String,
    /// The pointer documents are grouped by.
    pub group_by: String,
    /// The count's member.
    #[serde(default)]
    pub count: Option<String>,
    /// Sum members: member = pointer.
    #[serde(default)]
    pub sum: BTreeMap<String, String>,
    /// Minimum members: member = pointer.
    #[serde(default)]
    pub min: BTreeMap<String, String>,
    /// Maximum members: member = pointer.
    #[serde(default)]
    pub max: BTreeMap<String, String>,
    /// `{ by, limit }`.
    #[serde(default)]
    pub top: Option<TopTable>,
}

/// `top = { by, limit }` as the file holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopTable {
    /// The member groups are ranked by.
    pub by: String,
    /// How many groups are kept.
    pub limit: i64,
}

/// Why a derived view was refused, and the key of its table the reason is
/// about (`["sum", "points"]`; empty for the table itself), so a message
/// can point at that key's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The key inside `[derived.NAME]`, outermost first.
    pub key: Vec<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl SpecError {
    fn at(key: &[&str], message: impl Into<String>) -> SpecError {
        SpecError {
            key: key.iter().map(|k| k.to_string()).collect(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DerivedSpec {
    /// Checks the table of the derived view `name`, whose `from` must be one
    /// of `collections`.
    pub fn from_table(
        name: &str,
        table: DerivedTable,
        collections: &[&str],
    ) -> Result<DerivedSpec, SpecError> {
        let pointers = |kind: &str, members: BTreeMap<String, String>| {
            members
                .into_iter()
                .map(|(member, raw)| match Pointer::parse(&raw) {
                    Ok(pointer) => Ok((member, pointer)),
                    Err(why) => Err(SpecError::at(&[kind, &member], why)),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        let top = match table.top {
            None => None,
            Some(top) => {
                let limit = usize::try_from(top.limit)
                    .ok()
                    .filter(|limit| *limit >= 1)
                    .ok_or_else(|| {
                        SpecError::at(
                            &["top", "limit"],
                            format!("top.limit is {}; it must be at least 1", top.limit),
                        )
                    })?;
                Some(Top { by: top.by, limit })
            }
        };
        let spec = DerivedSpec {
            name: name.to_string(),
            from: table.from,
            group_by: Pointer::parse(&table.group_by)
                .map_err(|why| SpecError::at(&["group_by"], why))?,
            count: table.count,
            sum: pointers("sum", table.sum)?,
            min: pointers("min", table.min)?,
            max: pointers("max", table.max)?,
            top,
        };
        spec.validate(collections)?;
        Ok(spec)
    }

    /// Checks a spec however it was made: its name, that `from` is one of
    /// `collections`, that it declares at least one member and each member
    /// once (and not [`RANK`] when it has `top`), and that `top.by` names
    /// one of them with a limit of at least 1.
    pub fn validate(&self, collections: &[&str]) -> Result<(), SpecError> {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty()
            || self.name.len() > MAX_COLLECTION_NAME
            || !self.name.chars().all(plain)
        {
            return Err(SpecError::at(
                &[],
                format!(
                    "`{}` is not a derived view name: use 1 to {MAX_COLLECTION_NAME} ASCII letters, digits, - or _",
                    self.name
                ),
            ));
        }
        if !collections.contains(&self.from.as_str()) {
            let known = if collections.is_empty() {
                "no collection is configured".to_string()
            } else {
                format!("the collections are {}", collections.join(", "))
            };
            return Err(SpecError::at(
                &["from"],
                format!("from = \"{}\" names no collection; {known}", self.from),
            ));
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        let members = self
            .count
            .iter()
            .map(|m| ("count", m.as_str()))
            .chain(self.sum.keys().map(|m| ("sum", m.as_str())))
            .chain(self.min.keys().map(|m| ("min", m.as_str())))
            .chain(self.max.keys().map(|m| ("max", m.as_str())));
        for (kind, member) in members {
            let key: &[&str] = if kind == "count" {
                &["count"]
            } else {
                &[kind, member]
            };
            if member.is_empty() {
                return Err(SpecError::at(key, format!("{kind} names an empty member")));
            }
            if let Some((first, _)) = seen.iter().find(|(_, m)| *m == member) {
                return Err(SpecError::at(
                    key,
                    format!("member `{member}` is declared twice ({first} and {kind})"),
                ));
            }
            if self.top.is_some() && member == RANK {
                return Err(SpecError::at(
                    key,
                    format!("member `{RANK}` is the one top adds; name it otherwise"),
                ));
            }
            seen.push((kind, member));
        }
        if seen.is_empty() {
            return Err(SpecError::at(
                &[],
                "it declares no member: give it a count, sum, min or max",
            ));
        }
        if let Some(top) = &self.top {
            if !seen.iter().any(|(_, m)| *m == top.by) {
                let names: Vec<&str> = seen.iter().map(|(_, m)| *m).collect();
                return Err(SpecError::at(
                    &["top", "by"],
                    format!(
                        "top.by = \"{}\" is not one of its members ({})",
                        top.by,
                        names.join(", ")
                    ),
                ));
            }
            if top.limit == 0 {
                return Err(SpecError::at(
                    &["top", "limit"],
                    "top.limit is 0; it must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// The view's name, `derived.NAME`.
    pub fn view_name(&self) -> String {
        format!("derived.{}", self.name)
    }

    /// The snapshot's path, `/derived/NAME`.
    pub fn path(&self) -> String {
        format!("/derived/{}", self.name)
    }

    /// The stream's path, `/derived/NAME/events`.
    pub fn events_path(&self) -> String {
        format!("/derived/{}/events", self.name)
    }
}

fn quoted(raw: &str) -> String {
    Value::String(raw.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(value: Value) -> DerivedTable {
        serde_json::from_value(value).unwrap()
    }

    fn check(value: Value) -> Result<DerivedSpec, SpecError> {
        DerivedSpec::from_table("v", table(value), &["tickets"])
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        for good in ["/a", "/a/b", "/", "/a~0b", "/a~1b/0", "/~01"] {
            assert_eq!(Pointer::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a", "a/b", "/a~", "/a~2", "/~x", "#/a"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
        let doc = json!({"a/b": {"c~d": 3}, "": 1});
        assert_eq!(
            Pointer::parse("/a~1b/c~0d").unwrap().resolve(&doc),
            Some(&json!(3))
        );
        assert_eq!(Pointer::parse("/").unwrap().resolve(&doc), Some(&json!(1)));
        assert_eq!(Pointer::parse("/missing").unwrap().resolve(&doc), None);
    }

    #[test]
    fn a_full_table_becomes_a_spec() {
        let spec = check(json!({
            "from": "tickets", "group_by": "/status", "count": "total",
            "sum": {"points": "/estimate"}, "min": {"least": "/estimate"},
            "max": {"most": "/estimate"}, "top": {"by": "points", "limit": 3}
        }))
        .unwrap();
        assert_eq!(spec.name, "v");
        assert_eq!(spec.group_by.as_str(), "/status");
        assert_eq!(spec.count.as_deref(), Some("total"));
        assert_eq!(spec.sum["points"].as_str(), "/estimate");
        assert_eq!(spec.min["least"].as_str(), "/estimate");
        assert_eq!(spec.max["most"].as_str(), "/estimate");
        assert_eq!(
            spec.top,
            Some(Top {
                by: "points".into(),
                limit: 3
            })
        );
        assert_eq!(spec.view_name(), "derived.v");
        assert_eq!(spec.events_path(), "/derived/v/events");
    }

    #[test]
    fn each_refusal_names_its_key() {
        let key = |value: Value| check(value).unwrap_err().key;
        let base = || json!({"from": "tickets", "group_by": "/s", "count": "n"});
        let with = |k: &str, v: Value| {
            let mut t = base();
            t[k] = v;
            t
        };
        assert_eq!(key(with("from", json!("nope"))), ["from"]);
        assert_eq!(key(with("group_by", json!("status"))), ["group_by"]);
        assert_eq!(key(with("sum", json!({"p": "/a~2"}))), ["sum", "p"]);
        assert_eq!(key(with("max", json!({"n": "/a"}))), ["max", "n"]);
        assert_eq!(
            key(with("top", json!({"by": "other", "limit": 2}))),
            ["top", "by"]
        );
        assert_eq!(
            key(with("top", json!({"by": "n", "limit": 0}))),
            ["top", "limit"]
        );
        assert_eq!(
            key(with("top", json!({"by": "n", "limit": -4}))),
            ["top", "limit"]
        );
        let mut ranked = with("count", json!("rank"));
        ranked["top"] = json!({"by": "rank", "limit": 1});
        assert_eq!(key(ranked), ["count"]);
        assert_eq!(
            key(with("sum", json!({"n": "/a"}))),
            ["sum", "n"],
            "a member declared twice"
        );
        let bare = json!({"from": "tickets", "group_by": "/s"});
        assert!(key(bare).is_empty());
        let message = check(with("from", json!("nope"))).unwrap_err().message;
        assert!(
            message.contains("nope") && message.contains("tickets"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_and_aggregates_are_refused_by_the_table() {
        let unknown = json!({"from": "t", "group_by": "/s", "avg": {"a": "/x"}});
        let error = serde_json::from_value::<DerivedTable>(unknown).unwrap_err();
        assert!(error.to_string().contains("avg"), "{error}");
        let top = json!({"from": "t", "group_by": "/s", "top": {"by": "n", "limit": 1, "x": 1}});
        assert!(serde_json::from_value::<DerivedTable>(top).is_err());
    }

    #[test]
    fn names_are_plain_like_collection_names() {
        let spec = check(json!({"from": "tickets", "group_by": "/s", "count": "n"})).unwrap();
        for bad in ["", "a b", "a/b", "ü"] {
            let named = DerivedSpec {
                name: bad.into(),
                ..spec.clone()
            };
            assert!(named.validate(&["tickets"]).is_err(), "{bad}");
        }
        assert!(spec.validate(&[]).is_err());
    }
}
