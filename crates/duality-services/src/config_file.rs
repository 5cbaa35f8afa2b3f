//! The configuration file (`--config duality.toml` or `DUALITY_CONFIG`,
//! README "The configuration file", docs/ARCHITECTURE.md, "Derived views"): every setting a flag holds,
//! the collections with their schemas, and the derived views.
//!
//! A top-level key is a flag's name with `_` for `-` (`listen`,
//! `cors_origin`, `write_token`, `replace_schema`, …) and takes what the
//! flag takes: a string (a number where the flag takes one), `true` or
//! `false` for a switch, an array of strings for a flag that may be
//! repeated. The keys are the flags themselves (read from clap's command,
//! not listed twice), each value is checked by the flag's own parser, and
//! a setting the command line or the environment gives is left to them:
//! [`read`] answers the flags to add for the others, so the command line is
//! parsed once more with them and clap stays the one place that makes
//! typed settings. Collections are merged by name instead: `[collections.NAME]`
//! tables, plus `--collection`s (a name in both is the flag's). Derived
//! views have no flag: they come only from `[derived.NAME]` tables.
//!
//! Every refusal is one line naming the file and the line of the key it is
//! about (from the TOML crate's spans), and the derived view or collection.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, Command};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::derived::spec::{self, DerivedSpec, DerivedTable};
use crate::settings::{CollectionArg, Settings, parse_collection_name};

/// The keys that are tables of their own rather than a flag's value.
const COLLECTIONS: &str = "collections";
const DERIVED: &str = "derived";

/// What the file adds to the command line and the environment.
#[derive(Debug, Default)]
pub struct FromFile {
    /// Flags for the settings the file gives and neither the command line
    /// nor the environment does (`--listen`, `127.0.0.1:8080`, …), to parse
    /// after the command line's own.
    pub flags: Vec<OsString>,
    /// The file's collections that no `--collection` names, their schema
    /// paths resolved against the file's directory.
    pub collections: Vec<CollectionArg>,
    /// The derived views, checked against every collection (the file's and
    /// the flags').
    pub derived: Vec<DerivedSpec>,
}

/// Reads the configuration file at `path`. `given` says whether the
/// command line or the environment gave the setting of that flag id;
/// `flagged` are the `--collection`s they gave.
pub fn read(
    path: &Path,
    given: &dyn Fn(&str) -> bool,
    flagged: &[CollectionArg],
) -> Result<FromFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    parse(&text, dir, given, flagged).map_err(|refusal| {
        format!(
            "{}:{}: {}",
            path.display(),
            line_of(&text, refusal.at),
            refusal.message
        )
    })
}

/// A refusal at a byte offset of the file.
#[derive(Debug)]
struct Refusal {
    at: usize,
    message: String,
}

impl Refusal {
    fn at(span: Range<usize>, message: impl Into<String>) -> Refusal {
        Refusal {
            at: span.start,
            message: message.into(),
        }
    }

    fn from_toml(e: toml::de::Error, context: &str) -> Refusal {
        let message = e.message().trim_end().replace('\n', " ");
        Refusal {
            at: e.span().map_or(0, |s| s.start),
            message: format!("{context}{message}"),
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The settings' command: the flags a file key may set.
fn command() -> Command {
    Settings::augment_args(Command::new("duality"))
}

/// The top-level keys that set a flag, in the order `--help` lists them.
pub fn setting_keys() -> Vec<String> {
    command()
        .get_arguments()
        .filter(|arg| arg.get_long().is_some() && arg.get_id() != COLLECTIONS)
        .map(|arg| arg.get_id().to_string())
        .collect()
}

fn parse(
    text: &str,
    dir: &Path,
    given: &dyn Fn(&str) -> bool,
    flagged: &[CollectionArg],
) -> Result<FromFile, Refusal> {
    let root = DeTable::parse(text).map_err(|e| Refusal::from_toml(e, ""))?;
    let root = root.get_ref();
    let command = command();
    let mut from_file = FromFile::default();
    let mut collections = None;
    let mut derived = None;
    for (key, value) in root.iter() {
        match key.get_ref().as_ref() {
            COLLECTIONS => collections = Some((key, value)),
            DERIVED => derived = Some((key, value)),
            name => {
                let flags = setting(&command, name, key.span(), value)?;
                if !given(name) {
                    from_file.flags.extend(flags);
                }
            }
        }
    }
    let mut names: Vec<String> = flagged.iter().map(|c| c.name.clone()).collect();
    if let Some((key, value)) = collections {
        for FileCollection { name, schema, span } in collection_tables(key.span(), value)? {
            let name = parse_collection_name(&name).map_err(|why| Refusal::at(span, why))?;
            if !names.contains(&name) {
                names.push(name.clone());
                from_file.collections.push(CollectionArg {
                    name,
                    schema: schema.map(|s| dir.join(s)),
                });
            }
        }
    }
    if let Some((key, value)) = derived {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        from_file.derived = derived_tables(key.span(), value, &names)?;
    }
    Ok(from_file)
}

/// The flags for the setting `name` of the file: `--flag value` per value,
/// each value checked by the flag's own parser; a switch set to `true` is
/// the bare flag, one set to `false` nothing.
fn setting(
    command: &Command,
    name: &str,
    key: Range<usize>,
    value: &Spanned<DeValue<'_>>,
) -> Result<Vec<OsString>, Refusal> {
    let Some(arg) = command
        .get_arguments()
        .find(|a| a.get_id() == name && a.get_long().is_some())
    else {
        return Err(Refusal::at(
            key,
            format!(
                "unknown key `{name}`; the settings are {}, and the tables [collections.NAME] and [derived.NAME]",
                setting_keys().join(", ")
            ),
        ));
    };
    let long = format!("--{}", arg.get_long().unwrap_or(name));
    if !arg.get_action().takes_values() {
        return match value.get_ref().as_bool() {
            Some(true) => Ok(vec![long.into()]),
            Some(false) => Ok(Vec::new()),
            None => Err(Refusal::at(
                value.span(),
                format!("{name} is a switch: true or false"),
            )),
        };
    }
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    let values: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::Array(items) if repeatable => items.iter().collect(),
        DeValue::Array(_) => {
            return Err(Refusal::at(
                value.span(),
                format!("{name} takes one value, not an array"),
            ));
        }
        _ => vec![value],
    };
    let mut flags = Vec::new();
    for item in values {
        let raw = match item.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().to_string(),
            DeValue::Boolean(b) => b.to_string(),
            other => {
                let wanted = if repeatable {
                    "a string or an array of strings"
                } else {
                    "a string"
                };
                return Err(Refusal::at(
                    item.span(),
                    format!("{name} takes {wanted}, not {}", other.type_str()),
                ));
            }
        };
        // The flag's own parser, so the file accepts exactly what the flag
        // does; its message is the parser's, without clap's prefix (which
        // would repeat a token's value).
        Command::new("duality")
            .no_binary_name(true)
            .arg(arg.clone().env(None))
            .try_get_matches_from([long.as_str(), raw.as_str()])
            .map_err(|e| {
                let why = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| {
                        duality::settings::one_line(&e)
                            .trim_start_matches("error: ")
                            .to_string()
                    });
                Refusal::at(item.span(), format!("{name}: {why}"))
            })?;
        flags.push(OsString::from(&long));
        flags.push(OsString::from(raw));
    }
    Ok(flags)
}

/// A `[collections.NAME]` table as the file holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionTable {
    /// The JSON Schema file, relative to the configuration file.
    #[serde(default)]
    schema: Option<PathBuf>,
}

const COLLECTION_KEYS: &[&str] = &["schema"];

/// One `[collections.NAME]` of the file.
struct FileCollection {
    name: String,
    /// As written, relative to the file.
    schema: Option<PathBuf>,
    /// Where its name is, for a refusal.
    span: Range<usize>,
}

/// Each `[collections.NAME]`.
fn collection_tables(
    key: Range<usize>,
    value: &Spanned<DeValue<'_>>,
) -> Result<Vec<FileCollection>, Refusal> {
    let tables = value
        .get_ref()
        .as_table()
        .ok_or_else(|| Refusal::at(key, "collections is a table of [collections.NAME] tables"))?;
    let mut found = Vec::new();
    for (name, table) in tables.iter() {
        let context = format!("[collections.{}] ", name.get_ref());
        let inner = table.get_ref().as_table().ok_or_else(|| {
            Refusal::at(
                table.span(),
                format!("{context}is a table (schema = \"file.json\", or nothing)"),
            )
        })?;
        known_keys(inner, COLLECTION_KEYS, &context)?;
        let parsed = CollectionTable::deserialize(ValueDeserializer::from(table.clone()))
            .map_err(|e| Refusal::from_toml(e, &context))?;
        found.push(FileCollection {
            name: name.get_ref().to_string(),
            schema: parsed.schema,
            span: name.span(),
        });
    }
    Ok(found)
}

/// Each `[derived.NAME]`, checked; `collections` are every configured
/// collection's name.
fn derived_tables(
    key: Range<usize>,
    value: &Spanned<DeValue<'_>>,
    collections: &[&str],
) -> Result<Vec<DerivedSpec>, Refusal> {
    let tables = value
        .get_ref()
        .as_table()
        .ok_or_else(|| Refusal::at(key, "derived is a table of [derived.NAME] tables"))?;
    let mut specs = Vec::new();
    for (name, table) in tables.iter() {
        let name_text = name.get_ref().to_string();
        let context = format!("[derived.{name_text}] ");
        let inner = table.get_ref().as_table().ok_or_else(|| {
            Refusal::at(
                table.span(),
                format!("{context}is a table (from, group_by, …)"),
            )
        })?;
        known_keys(inner, spec::KEYS, &context).map_err(|mut refusal| {
            refusal.message.push_str(&format!(
                " (the aggregates are {})",
                spec::AGGREGATES.join(", ")
            ));
            refusal
        })?;
        if let Some(top) = inner.get("top").and_then(|t| t.get_ref().as_table()) {
            known_keys(top, spec::TOP_KEYS, &format!("{context}top: "))?;
        }
        for member in ["from", "group_by"] {
            if !inner.contains_key(member) {
                return Err(Refusal::at(name.span(), format!("{context}needs {member}")));
            }
        }
        let raw = DerivedTable::deserialize(ValueDeserializer::from(table.clone()))
            .map_err(|e| Refusal::from_toml(e, &context))?;
        let spec = DerivedSpec::from_table(&name_text, raw, collections).map_err(|e| {
            let span = e
                .key
                .iter()
                .try_fold(table, |at, key| at.get_ref().get(key.as_str()))
                .map_or(name.span(), |at| at.span());
            let key = if e.key.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.key.join("."))
            };
            Refusal::at(span, format!("{context}{key}{}", e.message))
        })?;
        specs.push(spec);
    }
    Ok(specs)
}

/// Refuses the first key of `table` not in `known`.
fn known_keys(table: &DeTable<'_>, known: &[&str], context: &str) -> Result<(), Refusal> {
    match table
        .iter()
        .find(|(key, _)| !known.contains(&key.get_ref().as_ref()))
    {
        Some((key, _)) => Err(Refusal::at(
            key.span(),
            format!(
                "{context}unknown key `{}`; the keys are {}",
                key.get_ref(),
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<FromFile, String> {
        parse(text, Path::new("conf"), &|_| false, &[])
            .map_err(|r| format!("{}: {}", line_of(text, r.at), r.message))
    }

    fn refusal(text: &str) -> String {
        parsed(text).unwrap_err()
    }

    fn flags(from: &FromFile) -> Vec<String> {
        from.flags
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_flag_has_its_key() {
        let keys = setting_keys();
        for arg in command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let id = arg.get_id().as_str();
            assert!(
                id == COLLECTIONS || keys.iter().any(|k| k == id),
                "--{long} has no key"
            );
            assert_eq!(
                long.replace('-', "_").trim_end_matches('s'),
                id.trim_end_matches('s')
            );
        }
        for key in ["listen", "db", "write_token", "services", "replace_schema"] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
    }

    #[test]
    fn settings_become_the_flags_that_set_them() {
        let from = parsed(
            "listen = \"127.0.0.1:9\"\nretention = \"5m\"\nmax_connections = 7\n\
             cors_origin = [\"https://a.example\", \"https://b.example\"]\n\
             open_writes = true\ndemo_data = false\nservices = \"persons,collections\"\n",
        )
        .unwrap();
        assert_eq!(
            flags(&from),
            [
                "--cors-origin",
                "https://a.example",
                "--cors-origin",
                "https://b.example",
                "--listen",
                "127.0.0.1:9",
                "--max-connections",
                "7",
                "--open-writes",
                "--retention",
                "5m",
                "--services",
                "persons,collections"
            ]
        );
    }

    #[test]
    fn a_setting_given_on_the_command_line_or_environment_is_left_to_it() {
        let text = "listen = \"9\"\nretention = \"5m\"\n";
        let from = parse(text, Path::new(""), &|id| id == "listen", &[]).unwrap();
        assert_eq!(flags(&from), ["--retention", "5m"]);
        // A bad value is refused even where the flag overrides it.
        let bad = parse("listen = \"x:y\"", Path::new(""), &|_| true, &[]);
        assert!(bad.is_err());
    }

    #[test]
    fn bad_settings_are_refused_at_their_line_by_the_flag_s_parser() {
        assert_eq!(
            refusal("\n\nretention = \"5 parsecs\""),
            "3: retention: `5 parsecs` has an unknown unit; use ms, s, m, h or d"
        );
        let e = refusal("listen = \"x\"\nlisten_on = \"1\"");
        assert!(e.starts_with("1: listen: "), "{e}");
        let e = refusal("lisen = \"1\"");
        assert!(
            e.starts_with("1: unknown key `lisen`; the settings are listen, db"),
            "{e}"
        );
        assert!(refusal("max_connections = 0").starts_with("1: max_connections: "));
        assert_eq!(
            refusal("open_writes = \"yes\""),
            "1: open_writes is a switch: true or false"
        );
        assert_eq!(
            refusal("listen = [\"1\"]"),
            "1: listen takes one value, not an array"
        );
        assert!(refusal("retention = 1.5").contains("retention takes a string, not float"));
        assert!(refusal("write_token = [\"a b\"]").starts_with("1: write_token: "));
        assert!(!refusal("write_token = [\"s3cret x\"]").contains("s3cret"));
        assert!(refusal("a = ").starts_with("1: "));
    }

    #[test]
    fn collections_are_tables_with_a_schema_relative_to_the_file() {
        let from =
            parsed("[collections.tickets]\nschema = \"t.json\"\n[collections.notes]\n").unwrap();
        assert_eq!(
            from.collections,
            [
                CollectionArg {
                    name: "notes".into(),
                    schema: None
                },
                CollectionArg {
                    name: "tickets".into(),
                    schema: Some(PathBuf::from("conf/t.json"))
                }
            ]
        );
        assert_eq!(
            refusal("[collections.a]\nschema = \"x\"\nshema = \"y\""),
            "3: [collections.a] unknown key `shema`; the keys are schema"
        );
        assert!(refusal("[collections.\"a b\"]").starts_with("1: `a b` is not a collection name"));
        let flagged = [CollectionArg {
            name: "tickets".into(),
            schema: None,
        }];
        let from = parse(
            "[collections.tickets]\nschema = \"t.json\"",
            Path::new(""),
            &|_| false,
            &flagged,
        )
        .unwrap();
        assert!(from.collections.is_empty(), "the flag's collection wins");
    }

    const TICKETS: &str = "[collections.tickets]\n\n";

    #[test]
    fn derived_views_become_specs_checked_against_the_collections() {
        let from = parsed(&format!(
            "{TICKETS}[derived.by-status]\nfrom = \"tickets\"\ngroup_by = \"/status\"\n\
             count = \"total\"\nsum = {{ points = \"/estimate\" }}\ntop = {{ by = \"total\", limit = 5 }}\n"
        ))
        .unwrap();
        let spec = &from.derived[0];
        assert_eq!(spec.name, "by-status");
        assert_eq!(spec.group_by.as_str(), "/status");
        assert_eq!(spec.sum["points"].as_str(), "/estimate");
        assert_eq!(spec.top.as_ref().map(|t| t.limit), Some(5));
        // A `--collection` counts as configured.
        let flagged = [CollectionArg {
            name: "t".into(),
            schema: None,
        }];
        let from = parse(
            "[derived.v]\nfrom = \"t\"\ngroup_by = \"/a\"\ncount = \"n\"",
            Path::new(""),
            &|_| false,
            &flagged,
        )
        .unwrap();
        assert_eq!(from.derived[0].from, "t");
    }

    #[test]
    fn each_derived_view_error_names_the_view_and_its_line() {
        let view = "[derived.v]\nfrom = \"tickets\"\ngroup_by = \"/s\"\n";
        let with = |extra: &str| refusal(&format!("{TICKETS}{view}{extra}"));
        assert_eq!(
            with("avg = { a = \"/x\" }"),
            "6: [derived.v] unknown key `avg`; the keys are from, group_by, count, sum, min, max, top (the aggregates are count, sum, min, max)"
        );
        assert_eq!(
            with("count = \"n\"\nsum = { p = \"estimate\" }"),
            "7: [derived.v] sum.p: \"estimate\" is not a JSON pointer: it must start with /"
        );
        assert_eq!(
            with("count = \"n\"\nmax = { p = \"/a~2\" }"),
            "7: [derived.v] max.p: \"/a~2\" is not a JSON pointer: ~ must be written ~0 and / inside a name ~1"
        );
        assert_eq!(
            with("count = \"n\"\ntop = { by = \"m\", limit = 3 }"),
            "7: [derived.v] top.by: top.by = \"m\" is not one of its members (n)"
        );
        assert!(
            with("count = \"n\"\ntop = { by = \"n\", limit = 3, x = 1 }")
                .starts_with("7: [derived.v] top: unknown key `x`")
        );
        assert!(with("count = 3").starts_with("6: [derived.v] invalid type: integer"));
        assert_eq!(
            with(""),
            "3: [derived.v] it declares no member: give it a count, sum, min or max"
        );
        assert_eq!(
            refusal(&format!(
                "{TICKETS}[derived.v]\nfrom = \"nope\"\ngroup_by = \"/s\"\ncount = \"n\""
            )),
            "4: [derived.v] from: from = \"nope\" names no collection; the collections are tickets"
        );
        assert_eq!(
            refusal(&format!(
                "{TICKETS}[derived.v]\nfrom = \"tickets\"\ngroup_by = \"s\"\ncount = \"n\""
            )),
            "5: [derived.v] group_by: \"s\" is not a JSON pointer: it must start with /"
        );
        assert_eq!(
            refusal("[derived.v]\nfrom = \"t\"\ncount = \"n\""),
            "1: [derived.v] needs group_by"
        );
    }
}
