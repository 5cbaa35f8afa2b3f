//! `GET /streams`: several subscriptions over one connection
//! (docs/PROTOCOL.md, "Many views on one connection"), for a browser,
//! which opens at most six connections per host.
//!
//! The request names each subscription as `s=<id>:<view name>` (at most
//! [`MAX_SUBSCRIPTIONS`]), and gives it the parameters of a view's own
//! stream, prefixed with its id: `<id>.snapshot`, `<id>.revision`,
//! `<id>.key`, `<id>.where`. The connection takes `epoch` (or `X-Epoch`),
//! `access_token`, and a `Last-Event-ID` listing positions (`a=12,b=7`).
//! Everything is checked before anything is opened: a malformed request
//! is a `400` naming what is wrong.

use axum::http::HeaderMap;
use axum::response::Response;
use duality_core::{Error, View};

use super::query::Params;
use super::views::{X_EPOCH, event_stream, text};
use crate::app::App;
use crate::stream::multiplex::{self, Entry, MAX_SUBSCRIPTIONS, parse_positions, valid_id};
use crate::stream::position;

/// Where the multiplexed stream is served.
pub const PATH: &str = "/streams";

/// The parameters of the connection as a whole.
pub const CONNECTION_PARAMS: &[&str] = &["s", "epoch", "access_token"];

/// The parameters each subscription takes, after `<id>.`.
pub const SUBSCRIPTION_PARAMS: &[&str] = &["revision", "snapshot", "key", "where"];

/// What the request asks for: its subscriptions, and the epoch its
/// positions belong to.
#[derive(Debug)]
pub struct Asked {
    /// The subscriptions, in the order of their `s=`.
    pub entries: Vec<Entry>,
    /// The epoch the positions belong to, if the consumer said.
    pub epoch: Option<String>,
}

/// Reads a multiplexed stream request against the served `views`; an
/// `Err` is a `400` that names what is wrong.
pub fn parse(
    query: Option<&str>,
    last_event_id: Option<&str>,
    header_epoch: Option<&str>,
    views: &[View],
) -> Result<Asked, Error> {
    let invalid = |message: String| Error::Invalid(message);
    let params = Params::decode(query);
    let specs = params.all("s");
    if specs.is_empty() {
        return Err(invalid(
            "s: name at least one subscription, as s=<id>:<view name>".into(),
        ));
    }
    if specs.len() > MAX_SUBSCRIPTIONS {
        return Err(invalid(format!(
            "s: at most {MAX_SUBSCRIPTIONS} subscriptions on one connection, not {}",
            specs.len()
        )));
    }
    let mut named: Vec<(String, View)> = Vec::with_capacity(specs.len());
    for spec in &specs {
        let shown: String = spec.chars().take(80).collect();
        let Some((id, name)) = spec.split_once(':') else {
            return Err(invalid(format!(
                "s: `{shown}` is not <id>:<view name>, such as a:notes"
            )));
        };
        if !valid_id(id) {
            return Err(invalid(format!(
                "s: `{shown}`: an id is 1 to {} ASCII letters, digits, - or _",
                multiplex::MAX_ID
            )));
        }
        if named.iter().any(|(seen, _)| seen == id) {
            return Err(invalid(format!("s: the id `{id}` is given twice")));
        }
        let Some(&view) = views.iter().find(|v| v.name() == name) else {
            return Err(invalid(format!(
                "s: `{shown}`: this server serves no view `{}` (GET /healthz lists them)",
                name.chars().take(64).collect::<String>()
            )));
        };
        named.push((id.to_string(), view));
    }
    let takes = format!(
        "{}, and for each subscription <id>.{}",
        CONNECTION_PARAMS.join(", "),
        SUBSCRIPTION_PARAMS.join(", <id>.")
    );
    params.refuse_unknown(
        |name| {
            CONNECTION_PARAMS.contains(&name)
                || name.split_once('.').is_some_and(|(id, param)| {
                    SUBSCRIPTION_PARAMS.contains(&param) && named.iter().any(|(n, _)| n == id)
                })
        },
        &takes,
    )?;
    let resumed = parse_positions(last_event_id.unwrap_or("")).map_err(invalid)?;
    if let Some((id, _)) = resumed
        .iter()
        .find(|(id, _)| !named.iter().any(|(n, _)| n == id))
    {
        return Err(invalid(format!(
            "Last-Event-ID names `{id}`, which no s= subscribes"
        )));
    }
    let epoch = params
        .one("epoch")?
        .or(header_epoch)
        .map(|e| e.trim().to_string());
    let mut entries = Vec::with_capacity(named.len());
    for (id, view) in named {
        let own = |param: &str| format!("{id}.{param}");
        let prefixed = |e: Error| match e {
            Error::Invalid(message) => Error::Invalid(format!("{id}.{message}")),
            other => other,
        };
        let at = resumed.iter().find(|(n, _)| *n == id).map(|(_, at)| *at);
        let last = at.map(|at| at.to_string());
        let raw = position::Raw {
            last_event_id: last.as_deref(),
            query_revision: params.one(&own("revision"))?,
            snapshot: params.one(&own("snapshot"))?,
            ..position::Raw::default()
        };
        let request = position::parse(&raw).map_err(|m| prefixed(Error::Invalid(m)))?;
        let filter =
            duality_core::Filter::parse(&params.all(&own("key")), params.one(&own("where"))?)
                .map_err(prefixed)?;
        entries.push(Entry {
            id,
            view,
            request,
            filter,
            resumed: at,
        });
    }
    Ok(Asked { entries, epoch })
}

/// `GET /streams`: the subscriptions of the request, on one connection.
pub async fn events(
    app: App,
    views: &[View],
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let asked = parse(
        query.as_deref(),
        text(&headers, "last-event-id")?,
        text(&headers, X_EPOCH)?,
        views,
    )?;
    let mux = multiplex::open(&app, asked.entries, asked.epoch.as_deref()).await?;
    Ok(event_stream(&app, mux.into_body()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality_core::ViewSpec;
    use duality_core::position::Start;

    static NOTES: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
    static TAGS: ViewSpec = ViewSpec::new("tags", "/tags", "/tag-events");

    fn views() -> Vec<View> {
        vec![View::of(&NOTES), View::of(&TAGS)]
    }

    fn refused(query: &str, last: Option<&str>) -> String {
        match parse(Some(query), last, None, &views()) {
            Ok(asked) => panic!("{query} was accepted: {asked:?}"),
            Err(e) => {
                assert_eq!(e.status(), 400, "{query}: {e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn each_subscription_takes_its_own_prefixed_parameters_and_position() {
        let asked = parse(
            Some("s=a:notes&a.snapshot=true&s=b:tags&b.key=x&b.key=y&b.revision=3&s=c:notes&epoch=e1"),
            Some("a=12"),
            Some("ignored"),
            &views(),
        )
        .unwrap();
        assert_eq!(asked.epoch.as_deref(), Some("e1"));
        let [a, b, c] = &asked.entries[..] else {
            panic!("{asked:?}");
        };
        assert_eq!((a.id.as_str(), a.view.name()), ("a", "notes"));
        assert_eq!(a.request.start, Start::From(13), "Last-Event-ID wins");
        assert_eq!(a.resumed, Some(12));
        assert_eq!(b.request.start, Start::From(3));
        assert_eq!(b.filter, duality_core::Filter::keys(["x", "y"]));
        assert_eq!(c.request.start, Start::Oldest);
        assert!(c.filter.is_all());
    }

    #[test]
    fn malformed_requests_are_refused_naming_what_is_wrong() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("", None, "s:"),
            ("epoch=x", None, "s:"),
            ("s=notes", None, "`notes`"),
            ("s=:notes", None, "id"),
            ("s=a%2Cb:notes", None, "id"),
            ("s=a:notes&s=a:tags", None, "`a` is given twice"),
            ("s=a:nope", None, "no view `nope`"),
            ("s=a:notes&b.key=x", None, "`b.key`"),
            ("s=a:notes&a.colour=red", None, "`a.colour`"),
            ("s=a:notes&key=x", None, "`key`"),
            ("s=a:notes&a.revision=x", None, "a.revision"),
            ("s=a:notes&a.snapshot=maybe", None, "a.snapshot"),
            ("s=a:notes&a.where=%5B%5D", None, "a.where"),
            ("s=a:notes&a.where=1&a.where=2", None, "a.where"),
            ("s=a:notes", Some("b=3"), "`b`"),
            ("s=a:notes", Some("a=x"), "Last-Event-ID"),
            ("s=a:notes", Some("7"), "Last-Event-ID"),
        ];
        for (query, last, named) in cases {
            let error = refused(query, *last);
            assert!(error.contains(named), "{query}: {error}");
        }
        let many: String = (0..=MAX_SUBSCRIPTIONS)
            .map(|i| format!("s=s{i}:notes&"))
            .collect();
        assert!(refused(&many, None).contains("at most 64"));
        let keys: String = (0..=1000).map(|i| format!("a.key=k{i}&")).collect();
        assert!(refused(&format!("s=a:notes&{keys}"), None).contains("a.key"));
    }
}
