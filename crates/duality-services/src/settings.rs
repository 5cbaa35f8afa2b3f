//! The built-in services' own flags and environment variables, next to
//! the engine's [`Config`] (which they flatten into one command line).
//!
//! Every value is parsed and checked here, so an invalid flag is refused at
//! start with a one-line error, before anything is opened.

use std::path::PathBuf;

use clap::Args;
use clap::builder::BoolishValueParser;
use duality::Config;

use crate::derived::DerivedSpec;
use duality::settings::{Token, parse_token};

/// Everything the built-in server needs: the engine's configuration and
/// the built-in services' settings.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where and how the engine serves.
    #[command(flatten)]
    pub engine: Config,
    /// Which built-in services run, and what they need.
    #[command(flatten)]
    pub builtin: Builtin,
}

impl Settings {
    /// Settings for tests and tools: an in-memory database on port 0, every
    /// built-in service, no demo data.
    pub fn ephemeral() -> Self {
        Settings {
            engine: Config::ephemeral(),
            builtin: Builtin::default(),
        }
    }
}

/// The built-in services' flags.
#[derive(Debug, Clone, Default, Args)]
pub struct Builtin {
    /// Comma list of services to run (built in: persons, customers,
    /// incidents, aggregates, collections), or `all`. When not given: only
    /// the collections and derived views if any are configured, else all.
    #[arg(long, env = "DUALITY_SERVICES", value_parser = parse_services)]
    pub services: Option<Services>,

    /// Where the aggregates service finds the customers service.
    #[arg(long, env = "DUALITY_CUSTOMERS_URL")]
    pub customers_url: Option<String>,

    /// Where the aggregates service finds the incidents service.
    #[arg(long, env = "DUALITY_INCIDENTS_URL")]
    pub incidents_url: Option<String>,

    /// Serve a schemaless collection of JSON documents at
    /// `/collections/NAME` (repeatable); `NAME=schema.json` validates every
    /// document against that JSON Schema. The variable takes a comma list.
    /// NAME is 1 to 64 ASCII letters, digits, `-` or `_`; case matters. Its
    /// view is `collections.NAME`, so a built-in view's name is allowed.
    #[arg(long = "collection", value_name = "NAME[=SCHEMA]", env = "DUALITY_COLLECTIONS", value_delimiter = ',', value_parser = parse_collection)]
    pub collections: Vec<CollectionArg>,

    /// Replace the schema stored with the collection NAME by the one it is
    /// started with (repeatable; the variable takes a comma list). Every
    /// stored document is checked against the new schema first: the first
    /// one it rejects refuses the start and nothing changes. Without it, a
    /// start with another schema than the stored one (or none) is refused.
    #[arg(long = "replace-schema", value_name = "NAME", env = "DUALITY_REPLACE_SCHEMA", value_delimiter = ',', value_parser = parse_collection_name)]
    pub replace_schema: Vec<String>,

    /// The most documents one `PATCH /collections/NAME` (a merge patch of
    /// many documents, all or nothing) may change: 1 to 100000. A larger
    /// patch is refused with `413`, naming the limit.
    #[arg(long, env = "DUALITY_COLLECTION_BATCH_LIMIT", value_name = "DOCUMENTS", default_value = "1000", value_parser = parse_batch_limit)]
    pub collection_batch_limit: BatchLimit,

    /// Load a built-in sample of customers and incidents into an empty database.
    #[arg(long, env = "DUALITY_DEMO_DATA", value_parser = BoolishValueParser::new())]
    pub demo_data: bool,

    /// The token the aggregates service sends to `--customers-url` and
    /// `--incidents-url` (a read token of those servers).
    #[arg(long, env = "DUALITY_UPSTREAM_TOKEN", value_parser = parse_token, hide_env_values = true)]
    pub upstream_token: Option<Token>,

    /// The derived views, each checked against the collections (from the
    /// configuration file's `[derived.NAME]` tables; there is no flag).
    #[arg(skip)]
    pub derived: Vec<DerivedSpec>,
}

impl Builtin {
    /// The services this process runs: those `--services` names; when it
    /// is not given, only the collections (and their derived views) if any
    /// are configured, else every built-in service.
    pub fn selected(&self) -> Services {
        match &self.services {
            Some(services) => services.clone(),
            None if !self.collections.is_empty() || !self.derived.is_empty() => {
                Services::only(CONFIGURED_ONLY.iter().copied())
            }
            None => Services::all(),
        }
    }

    /// Where the aggregates service finds its backends when they do not
    /// run in this process.
    pub fn upstreams(&self) -> crate::aggregate::Upstream {
        crate::aggregate::Upstream {
            customers_url: self.customers_url.clone(),
            incidents_url: self.incidents_url.clone(),
            token: self.upstream_token.clone(),
        }
    }
}

/// The services one process runs, by name (`--services`): all that the
/// server has, or those listed. Names are checked against the server's
/// services at launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services(Option<Vec<String>>);

impl Services {
    /// Every service the server has.
    pub fn all() -> Self {
        Services(None)
    }

    /// Only the services named.
    pub fn only(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort();
        names.dedup();
        Services(Some(names))
    }

    /// Whether the service `name` is selected.
    pub fn contains(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }

    /// The names listed, or `None` for all.
    pub fn names(&self) -> Option<&[String]> {
        self.0.as_deref()
    }
}

/// One `--collection`: its name, and the JSON Schema file its documents
/// must match, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionArg {
    /// The collection's name, also its path segment.
    pub name: String,
    /// The JSON Schema file, if one was given.
    pub schema: Option<PathBuf>,
}

/// The services that run by default when collections or derived views are
/// configured: the collections service serves both.
pub const CONFIGURED_ONLY: &[&str] = &[crate::collections::SERVICE];

/// How many documents one patch of a collection may change
/// (`--collection-batch-limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit(pub usize);

impl Default for BatchLimit {
    fn default() -> Self {
        BatchLimit(crate::collections::DEFAULT_BATCH_LIMIT)
    }
}

/// The largest `--collection-batch-limit`.
pub const MAX_BATCH_LIMIT: usize = 100_000;

/// Reads `--collection-batch-limit`: a whole number from 1 to
/// [`MAX_BATCH_LIMIT`].
pub fn parse_batch_limit(raw: &str) -> Result<BatchLimit, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH_LIMIT).contains(&n) => Ok(BatchLimit(n)),
        _ => Err(format!(
            "`{raw}` is not a batch limit: use a whole number of documents from 1 to {MAX_BATCH_LIMIT}"
        )),
    }
}

/// The longest collection name.
pub const MAX_COLLECTION_NAME: usize = 64;

/// Reads one `--collection`: `NAME` or `NAME=schema.json`, where a name is
/// 1 to 64 ASCII letters, digits, `-` or `_` (it is part of the URL).
pub fn parse_collection(raw: &str) -> Result<CollectionArg, String> {
    let (name, schema) = match raw.split_once('=') {
        Some((name, path)) if path.trim().is_empty() => {
            return Err(format!("`{name}=` names no schema file"));
        }
        Some((name, path)) => (name.trim(), Some(PathBuf::from(path.trim()))),
        None => (raw.trim(), None),
    };
    Ok(CollectionArg {
        name: parse_collection_name(name)?,
        schema,
    })
}

/// Reads a collection's name: 1 to 64 ASCII letters, digits, `-` or `_`
/// (it is part of the URL).
pub fn parse_collection_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > MAX_COLLECTION_NAME || !name.chars().all(plain) {
        return Err(format!(
            "`{name}` is not a collection name: use 1 to {MAX_COLLECTION_NAME} ASCII letters, digits, - or _"
        ));
    }
    Ok(name.to_string())
}

/// Reads `--services`: a comma list of service names, or `all`.
pub fn parse_services(raw: &str) -> Result<Services, String> {
    let mut names = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if name == "all" {
            return Ok(Services::all());
        }
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "`{name}` is not a service name (lower-case letters, digits, - and _)"
            ));
        }
        names.push(name.to_string());
    }
    Ok(Services::only(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_plain_names_with_an_optional_schema_file() {
        assert_eq!(
            parse_collection("notes"),
            Ok(CollectionArg {
                name: "notes".into(),
                schema: None
            })
        );
        assert_eq!(
            parse_collection("orders=s/orders.json").map(|c| c.schema),
            Ok(Some(PathBuf::from("s/orders.json")))
        );
        for bad in ["", "a b", "x=", "ü", "a/b", &"n".repeat(65)] {
            assert!(parse_collection(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn services_are_a_comma_list_of_names() {
        assert_eq!(
            parse_services("persons, aggregates"),
            Ok(Services::only(["aggregates", "persons"]))
        );
        assert_eq!(parse_services("all"), Ok(Services::all()));
        assert!(parse_services("persons,No pe").is_err());
        assert!(parse_services("").is_err());
    }
}
