//! `duality watch URL`: prints a view and keeps it current in the terminal.
//!
//! It checks that the URL is a view (a JSON object answered with
//! `X-Revision`), then follows it with the crate's [`Follower`] and redraws
//! on every change: in place on a terminal, as a new block otherwise. Flat
//! views (every document an object of scalars) print as a table, others as
//! pretty JSON. Stored text is printed with its control characters
//! escaped ([`crate::printable`]), so it cannot drive the terminal.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};

use crate::client::{Follower, Options, ViewCopy};
use crate::printable;

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The view's URL, e.g. http://127.0.0.1:3000/persons
    pub url: String,
    /// Print the view once and exit.
    #[arg(long)]
    pub once: bool,
    /// With the live mode: exit once this revision is shown (for scripts).
    #[arg(long, value_name = "REVISION")]
    pub until: Option<u64>,
    /// A read (or write) token, for a server started with `--read-token`.
    #[arg(long, env = "DUALITY_TOKEN", value_parser = crate::settings::parse_token, hide_env_values = true)]
    pub token: Option<crate::settings::Token>,
}

/// Renders a view: a header line, then a table or pretty JSON.
pub fn render(name: &str, copy: &ViewCopy, live: bool) -> String {
    let state = if live { "live" } else { "stale, reconnecting" };
    let mut out = format!(
        "{} @ revision {} ({state})\n",
        printable::escaped(name),
        copy.revision
    );
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

/// Splits `http://host:port/persons` into the name shown (`persons`).
fn view_name(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .to_string()
}

/// Checks that `url` answers a view, and returns it.
async fn fetch_once(url: &str, token: Option<&str>) -> Result<ViewCopy, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
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

pub async fn run(args: WatchArgs) -> Result<(), String> {
    let name = view_name(&args.url);
    let token = args.token.as_ref().map(crate::settings::Token::as_str);
    let first = fetch_once(&args.url, token).await?;
    let mut stdout = std::io::stdout();
    if args.once {
        let _ = stdout.write_all(render(&name, &first, true).as_bytes());
        return Ok(());
    }
    let in_place = stdout.is_terminal();
    let follower = Follower::connect_with_token(&args.url, token, Options::default())?;
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
            frame.push_str(&render(&name, &copy, live));
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
            render("persons", &c, true),
            "persons @ revision 5 (live)\nkey  city  name\n2    Rome  Bob\n10         Cy\n"
        );
    }

    #[test]
    fn nested_views_print_as_pretty_json() {
        let c = copy(json!({"customerCount": 2, "topCustomers": []}), 1);
        let text = render("dashboard", &c, false);
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
        for text in [render("persons", &flat, true), render(evil, &nested, true)] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        assert!(render("persons", &flat, true).contains("\\u{1b}]0;pwned\\u{7}"));
        assert!(render("d", &nested, true).contains("\\u001b]0;pwned\\u0007\\u009b2J"));
    }

    #[test]
    fn an_empty_view_is_an_empty_table() {
        assert_eq!(table(&Map::new()).unwrap(), "key\n");
    }

    #[test]
    fn the_name_is_the_last_path_segment() {
        assert_eq!(view_name("http://h:1/aggregates/dashboard"), "dashboard");
        assert_eq!(view_name("http://h:1/persons/"), "persons");
    }
}
