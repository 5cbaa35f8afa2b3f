//! `duality watch URL`: prints a view and keeps it current in the terminal.
//!
//! It checks that the URL is a view (a JSON object answered with
//! `X-Revision`), then follows it with the crate's [`Follower`] and redraws
//! on every change: in place on a terminal, as a new block otherwise. Flat
//! views (every document an object of scalars) print as a table, others as
//! pretty JSON. Stored text is printed with its control characters
//! escaped ([`crate::printable`]), so it cannot drive the terminal.
//!
//! `--output json` is for scripts: one JSON line for the snapshot, then one
//! per change as the follower applies it (told by its [`Observer`]), so a
//! script sees every revision, not only the latest state. After an
//! absence longer than the server keeps events, the follower catches up
//! with one patch (docs/PROTOCOL.md, "Catch-up"): its line says
//! `"compacted": true`, and its revision may skip many.
//!
//! A URL with a filter (`/persons?key=1&key=2`, `?where=<JSON>`) shows and
//! follows that part of the view: the query goes to the snapshot, whose
//! `Link` names the stream of the same subset. Such a stream skips the
//! revisions that leave the subset alone and says how far it got with
//! `progress`, so `--until` is reached at a revision that printed nothing.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::printable;
use duality_client::{Follower, Http, Observer, Options, ViewCopy, split_url};

/// What `duality watch` was given.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The view's URL, e.g. http://127.0.0.1:3000/persons (`http://` may
    /// be left out), with a filter if wanted: `/persons?key=1&key=2`,
    /// `/persons?where={"city":"Rome"}`.
    pub url: String,
    /// Print the view once and exit.
    #[arg(long)]
    pub once: bool,
    /// With the live mode: exit once the view reached this revision (for
    /// scripts); a filtered view may reach it without a change to show.
    #[arg(long, value_name = "REVISION")]
    pub until: Option<u64>,
    /// A read (or write) token, for a server started with `--read-token`.
    #[arg(long, env = "DUALITY_TOKEN", value_parser = duality::settings::parse_token, hide_env_values = true)]
    pub token: Option<duality::settings::Token>,
    /// `table` (a table or pretty JSON, redrawn on every change) or `json`
    /// (JSON lines: the snapshot, then every change with its revision).
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

/// How `duality watch` prints the view: the `--output` flag's help
/// describes both values (doc comments on them would change that help's
/// layout, so they have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[allow(missing_docs)]
pub enum Output {
    Table,
    Json,
}

/// What the header line says about the copy shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Printed once (`--once`): not kept current.
    Snapshot,
    /// Kept current from the view's change stream.
    Live,
    /// The connection is lost and being re-established: the copy shown may be
    /// out of date.
    Stale,
}

/// Renders a view: a header line, then a table or pretty JSON.
pub fn render(name: &str, copy: &ViewCopy, shown: Shown) -> String {
    let state = match shown {
        Shown::Snapshot => "snapshot",
        Shown::Live => "live",
        Shown::Stale => "stale, reconnecting",
    };
    let mut out = format!(
        "{} @ revision {} ({state})\n",
        printable::escaped(name),
        copy.revision
    );
    if copy.doc.is_empty() {
        out.push_str("(empty)\n");
        return out;
    }
    match table(&copy.doc) {
        Some(table) => out.push_str(&table),
        None => {
            let pretty =
                serde_json::to_string_pretty(&Value::Object(copy.doc.clone())).unwrap_or_default();
            out.push_str(&printable::json_escaped(&pretty));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(printable::escaped(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A table with the key first and one column per field, if the view is flat.
pub fn table(doc: &Map<String, Value>) -> Option<String> {
    let mut columns = BTreeSet::new();
    for value in doc.values() {
        let fields = value.as_object()?;
        for (k, v) in fields {
            scalar(v)?;
            columns.insert(k.clone());
        }
    }
    let columns: Vec<String> = columns.into_iter().collect();
    let mut keys: Vec<&String> = doc.keys().collect();
    // Numeric keys (person ids) in numeric order, others alphabetically.
    keys.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    let mut rows = vec![
        std::iter::once("key".to_string())
            .chain(columns.iter().map(|c| printable::escaped(c)))
            .collect::<Vec<_>>(),
    ];
    for key in keys {
        let fields = &doc[key];
        let mut row = vec![printable::escaped(key)];
        for c in &columns {
            row.push(fields.get(c).and_then(scalar).unwrap_or_default());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    Some(out)
}

/// The name shown for a view's URL: its last path segment
/// (`http://host:port/persons` → `persons`), with its filter decoded
/// (`persons?where={"city":"Rome"}`).
fn view_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.trim_end_matches('/');
    let name = path.rsplit('/').next().unwrap_or(path);
    let query: Vec<String> = reqwest::Url::parse(url)
        .map(|parsed| {
            parsed
                .query_pairs()
                .map(|(name, value)| format!("{name}={value}"))
                .collect()
        })
        .unwrap_or_default();
    if query.is_empty() {
        name.to_string()
    } else {
        format!("{name}?{}", query.join("&"))
    }
}

/// The URL as given, with `http://` in front if it has no scheme
/// (`127.0.0.1:3000/persons`).
pub fn with_scheme(raw: &str) -> String {
    let raw = raw.trim();
    if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    }
}

/// The snapshot URLs a stream URL may belong to, most likely first:
/// `/person-events` → `/persons`, `/aggregates/dashboard-events` →
/// `/aggregates/dashboard`, `/collections/x/events` → `/collections/x`.
/// A query (a filter) is kept.
pub fn snapshot_candidates(stream_url: &str) -> Vec<String> {
    let (url, query) = match stream_url.split_once('?') {
        Some((url, query)) => (url, format!("?{query}")),
        None => (stream_url, String::new()),
    };
    let url = url.trim_end_matches('/');
    let bases = if let Some(base) = url.strip_suffix("/events") {
        vec![base.to_string()]
    } else {
        match url.strip_suffix("-events") {
            Some(base) => vec![format!("{base}s"), base.to_string()],
            None => Vec::new(),
        }
    };
    bases.into_iter().map(|base| base + &query).collect()
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

async fn get(url: &str, token: Option<&str>) -> Result<reqwest::Response, String> {
    let mut request = client()?.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))
}

/// The error for a stream URL: which snapshot URL to give instead.
async fn stream_given(url: &str, token: Option<&str>) -> String {
    for candidate in snapshot_candidates(url) {
        let is_view = get(&candidate, token)
            .await
            .is_ok_and(|r| r.status().is_success() && r.headers().contains_key("x-revision"));
        if is_view {
            return format!("{url} is a change stream; watch its view: duality watch {candidate}");
        }
    }
    format!("{url} is a change stream; give the URL of its view (the snapshot)")
}

/// Checks that `url` answers a view, and returns it.
async fn fetch_once(url: &str, token: Option<&str>) -> Result<ViewCopy, String> {
    let response = get(url, token).await?;
    let is_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        drop(response);
        return Err(stream_given(url, token).await);
    }
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        let hint = if token.is_some() {
            "refused the token"
        } else {
            "needs a token (--token)"
        };
        return Err(format!("{url} answered 401: the server {hint}"));
    }
    if !response.status().is_success() {
        return Err(format!("{url} answered {}: not a view", response.status()));
    }
    let revision = response
        .headers()
        .get("x-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| format!("{url} is not a duality view (no X-Revision header)"))?;
    let epoch = response
        .headers()
        .get("x-epoch")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let doc = response
        .json::<Map<String, Value>>()
        .await
        .map_err(|_| format!("{url} is not a duality view (not a JSON object)"))?;
    Ok(ViewCopy {
        loaded: true,
        revision,
        epoch,
        doc,
    })
}

/// One JSON line of `--output json`.
pub fn snapshot_line(view: &Map<String, Value>, revision: u64, epoch: &str) -> String {
    json!({"revision": revision, "epoch": epoch, "view": view}).to_string()
}

/// One JSON line of `--output json`.
pub fn patch_line(patch: &Map<String, Value>, revision: u64) -> String {
    json!({"revision": revision, "patch": patch}).to_string()
}

/// The JSON line of a catch-up: one patch over many revisions, marked
/// `"compacted": true` as a poll marks it.
pub fn compacted_line(patch: &Map<String, Value>, revision: u64) -> String {
    json!({"revision": revision, "patch": patch, "compacted": true}).to_string()
}

/// Hands every applied change, as its JSON line, to the printing loop,
/// and every revision a filtered view reached without a change, with no
/// line (for `--until`).
struct Lines(mpsc::UnboundedSender<(u64, Option<String>)>);

impl Observer for Lines {
    fn loaded(&self, view: &Map<String, Value>, revision: u64, epoch: &str) {
        let line = snapshot_line(view, revision, epoch);
        let _ = self.0.send((revision, Some(line)));
    }

    fn patched(&self, patch: &Map<String, Value>, revision: u64) {
        let _ = self.0.send((revision, Some(patch_line(patch, revision))));
    }

    fn progressed(&self, revision: u64) {
        let _ = self.0.send((revision, None));
    }

    fn compacted(&self, patch: &Map<String, Value>, revision: u64) {
        let _ = self
            .0
            .send((revision, Some(compacted_line(patch, revision))));
    }
}

/// `--output json` live: prints each line as the follower applies it.
async fn run_json(url: &str, token: Option<&str>, until: Option<u64>) -> Result<(), String> {
    // The path keeps its query: a filtered snapshot links the stream of
    // the same subset.
    let (base, path) = split_url(url).map_err(|e| e.to_string())?;
    let transport = Arc::new(Http::with_token(&base, token).map_err(|e| e.to_string())?);
    let (tx, mut lines) = mpsc::unbounded_channel();
    // Keeping the copy makes the follower hand over a snapshot whole, as
    // one `loaded` (without it, large snapshots come in parts).
    let options = Options::default();
    let _follower = Follower::spawn_linked(transport, &path, options, Some(Arc::new(Lines(tx))));
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let (revision, line) = line.ok_or("the follower stopped")?;
                if let Some(line) = line {
                    let _ = writeln!(stdout, "{line}");
                    let _ = stdout.flush();
                }
                if until.is_some_and(|until| revision >= until) {
                    return Ok(());
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Runs `duality watch`: prints the view, then follows its changes until Ctrl-C
/// (or `--once`, `--until`).
pub async fn run(args: WatchArgs) -> Result<(), String> {
    let url = with_scheme(&args.url);
    let name = view_name(&url);
    let token = args.token.as_ref().map(duality::settings::Token::as_str);
    let first = fetch_once(&url, token).await?;
    let mut stdout = std::io::stdout();
    match (args.once, args.output) {
        (true, Output::Table) => {
            let _ = stdout.write_all(render(&name, &first, Shown::Snapshot).as_bytes());
            return Ok(());
        }
        (true, Output::Json) => {
            let line = snapshot_line(&first.doc, first.revision, &first.epoch);
            let _ = writeln!(stdout, "{line}");
            return Ok(());
        }
        (false, Output::Json) => return run_json(&url, token, args.until).await,
        (false, Output::Table) => {}
    }
    let in_place = stdout.is_terminal();
    let follower =
        Follower::connect_with_token(&url, token, Options::default()).map_err(|e| e.to_string())?;
    let mut copies = follower.watch();
    let mut health = follower.watch_health();
    // Show the first frame once the stream is live (or after a moment, as
    // "stale", if it cannot connect), not in between bootstrap and connect.
    let _ = tokio::time::timeout(Duration::from_secs(2), health.wait_for(|h| h.live)).await;
    let mut shown: Option<(u64, bool)> = None;
    loop {
        let copy = copies.borrow_and_update().clone();
        let live = health.borrow_and_update().live;
        if copy.loaded && shown != Some((copy.revision, live)) {
            let mut frame = String::new();
            if in_place {
                frame.push_str("\x1b[2J\x1b[H");
            } else if shown.is_some() {
                frame.push('\n');
            }
            let state = if live { Shown::Live } else { Shown::Stale };
            frame.push_str(&render(&name, &copy, state));
            let _ = stdout.write_all(frame.as_bytes());
            let _ = stdout.flush();
            shown = Some((copy.revision, live));
            if args.until.is_some_and(|until| copy.revision >= until) {
                return Ok(());
            }
        }
        tokio::select! {
            changed = copies.changed() => changed.map_err(|_| "the follower stopped".to_string())?,
            changed = health.changed() => changed.map_err(|_| "the follower stopped".to_string())?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn copy(doc: Value, revision: u64) -> ViewCopy {
        ViewCopy {
            loaded: true,
            revision,
            epoch: String::new(),
            doc: doc.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn flat_views_print_as_a_table_in_key_order() {
        let c = copy(
            json!({"10": {"name": "Cy"}, "2": {"name": "Bob", "city": "Rome"}}),
            5,
        );
        assert_eq!(
            render("persons", &c, Shown::Live),
            "persons @ revision 5 (live)\nkey  city  name\n2    Rome  Bob\n10         Cy\n"
        );
    }

    #[test]
    fn nested_views_print_as_pretty_json() {
        let c = copy(json!({"customerCount": 2, "topCustomers": []}), 1);
        let text = render("dashboard", &c, Shown::Stale);
        assert!(text.starts_with("dashboard @ revision 1 (stale, reconnecting)\n{\n"));
        assert!(text.contains("\"customerCount\": 2"));
    }

    #[test]
    fn stored_control_characters_are_escaped_in_tables_and_json() {
        let evil = "\u{1b}]0;pwned\u{7}";
        let flat = copy(
            json!({"1": {"name": evil, evil: "x"}, evil: {"name": "k"}}),
            2,
        );
        let nested = copy(
            json!({"top": [{"customerName": format!("{evil}\u{9b}2J")}]}),
            3,
        );
        for text in [
            render("persons", &flat, Shown::Live),
            render(evil, &nested, Shown::Live),
        ] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        assert!(render("persons", &flat, Shown::Live).contains("\\u{1b}]0;pwned\\u{7}"));
        assert!(render("d", &nested, Shown::Live).contains("\\u001b]0;pwned\\u0007\\u009b2J"));
    }

    #[test]
    fn an_empty_view_says_so() {
        assert_eq!(
            render("persons", &copy(json!({}), 0), Shown::Snapshot),
            "persons @ revision 0 (snapshot)\n(empty)\n"
        );
    }

    #[test]
    fn urls_without_a_scheme_are_http() {
        assert_eq!(
            with_scheme("127.0.0.1:3102/persons"),
            "http://127.0.0.1:3102/persons"
        );
        assert_eq!(with_scheme("https://h/persons"), "https://h/persons");
    }

    #[test]
    fn a_stream_url_points_back_at_its_view() {
        assert_eq!(
            snapshot_candidates("http://h:1/person-events"),
            ["http://h:1/persons", "http://h:1/person"]
        );
        assert_eq!(
            snapshot_candidates("http://h:1/aggregates/dashboard-events")[1],
            "http://h:1/aggregates/dashboard"
        );
        assert_eq!(
            snapshot_candidates("http://h:1/collections/notes/events"),
            ["http://h:1/collections/notes"]
        );
        assert!(snapshot_candidates("http://h:1/persons").is_empty());
        assert_eq!(
            snapshot_candidates("http://h:1/person-events?key=1&key=2")[0],
            "http://h:1/persons?key=1&key=2"
        );
        assert_eq!(
            snapshot_candidates("http://h:1/collections/notes/events?where=%7B%7D"),
            ["http://h:1/collections/notes?where=%7B%7D"]
        );
    }

    #[test]
    fn the_name_is_the_last_path_segment_with_its_filter() {
        assert_eq!(view_name("http://h:1/aggregates/dashboard"), "dashboard");
        assert_eq!(view_name("http://h:1/persons/"), "persons");
        assert_eq!(
            view_name("http://h:1/persons?key=1&key=2"),
            "persons?key=1&key=2"
        );
        assert_eq!(
            view_name("http://h:1/persons?where=%7B%22city%22%3A%22Rome%22%7D"),
            r#"persons?where={"city":"Rome"}"#
        );
    }
}
