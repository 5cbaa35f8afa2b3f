//! The two faces of every view: the snapshot (`GET`) and the change stream.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use duality_core::Error;
use std::sync::Arc;

use super::query::Params;
use crate::app::App;
use crate::materialized::PiecesBody;
use crate::poll::{self, Keep, Polled};
use crate::store::Committed;
use crate::stream::{self, Opened, position};
use duality_core::Filter;
use duality_core::View;

/// Response header with the revision of a snapshot; a stream request may send
/// it to resume from that revision.
pub const X_REVISION: &str = "x-revision";
/// Response header with the epoch the revisions belong to; a stream request may
/// send it back, and revisions from another epoch are refused as gone.
pub const X_EPOCH: &str = "x-epoch";
/// On a composed view's snapshot: whether an upstream is lost.
pub const X_STALE: &str = "x-stale";

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Link` header that names a view's stream, so that a consumer never
/// guesses it from the snapshot's path; a filtered snapshot links the
/// stream of the same subset (its `key` and `where` parameters).
pub fn stream_link(view: View, params: &Params) -> HeaderValue {
    let filter = params.encoded(&["key", "where"]);
    let query = if filter.is_empty() {
        String::new()
    } else {
        format!("?{filter}")
    };
    header_value(&format!(
        "<{}{query}>; rel=\"{STREAM_REL}\"",
        view.stream_path()
    ))
}

/// The link relation of a snapshot's stream.
pub const STREAM_REL: &str = "duality-stream";

/// What a snapshot path takes: a filter.
pub const SNAPSHOT_PARAMS: &[&str] = &["key", "where"];

/// `GET` a whole view, or the part of it that `key`/`where` keep, with
/// `X-Revision`, `X-Epoch`, an `ETag`, a `Link` to its stream (and
/// `X-Stale` on a composed view).
pub async fn snapshot(
    app: App,
    view: View,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let params = Params::parse(query.as_deref(), SNAPSHOT_PARAMS)?;
    let filter = params.filter()?;
    let whole = app.snapshot(view).await?;
    let (snap, etag) = if filter.is_all() {
        let etag = whole.etag(app.epoch());
        (whole, etag)
    } else {
        let part = Arc::new(whole.filtered(&filter)?);
        let etag = whole.etag(&format!("{}-{}", app.epoch(), filter.fingerprint()));
        (part, etag)
    };
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag.as_str())
        });
    let gzip = accepts_gzip(&headers);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let pieces = snap.body(gzip).await;
        let mut response = axum::body::Body::new(PiecesBody::new(pieces)).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(X_REVISION, HeaderValue::from(snap.revision));
    h.insert(X_EPOCH, header_value(app.epoch()));
    h.insert(header::ETAG, header_value(&etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::LINK, stream_link(view, &params));
    if view.is_composed() {
        let stale = app.hub().stale(view)?.borrow().is_some();
        h.insert(
            X_STALE,
            HeaderValue::from_static(if stale { "true" } else { "false" }),
        );
    }
    Ok(response)
}

/// True if the request accepts a gzip body (`Accept-Encoding: gzip`, or
/// `*`, with a non-zero quality).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// What a stream path takes: where to start (`revision`, `snapshot`,
/// `epoch`: checked by `stream::position`), a filter, and the token a
/// browser's `EventSource` cannot send as a header.
pub const STREAM_PARAMS: &[&str] = &[
    "revision",
    "snapshot",
    "epoch",
    "key",
    "where",
    "access_token",
    "mode",
    "after",
    "wait",
];

/// A header as text, if given; not visible ASCII is a `400`.
pub(crate) fn text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::Invalid(format!("{name} must be visible ASCII")))
        })
        .transpose()
}

/// `GET` the change stream of a view (docs/PROTOCOL.md, "Reading the stream").
pub async fn events(
    app: App,
    view: View,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let params = Params::parse(query.as_deref(), STREAM_PARAMS)?;
    let filter = params.filter()?;
    match params.one("mode")? {
        None => {}
        Some("poll") => return poll(app, view, &params, filter).await,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "mode: `{}` is not a mode; the one mode is poll",
                other.chars().take(32).collect::<String>()
            )));
        }
    }
    let raw = position::Raw {
        last_event_id: text(&headers, "last-event-id")?,
        query_revision: params.one("revision")?,
        header_revision: text(&headers, X_REVISION)?,
        snapshot: params.one("snapshot")?,
        query_epoch: params.one("epoch")?,
        header_epoch: text(&headers, X_EPOCH)?,
    };
    let request = position::parse(&raw).map_err(Error::Invalid)?;
    match stream::open(&app, view, request, filter).await? {
        Opened::Gone {
            why,
            oldest,
            current,
        } => Err(gone(&app, view, why, oldest, current)),
        Opened::Stream(subscription) => Ok(event_stream(&app, subscription.into_body())),
    }
}

/// `GET <stream path>?mode=poll&after=R[&wait=S]`: the changes after `R`
/// as one JSON page (see [`crate::poll`]).
async fn poll(app: App, view: View, params: &Params, filter: Filter) -> Result<Response, Error> {
    for only_streams in ["revision", "snapshot"] {
        if params.one(only_streams)?.is_some() {
            return Err(Error::Invalid(format!(
                "{only_streams}: a poll starts after `after`, not at a revision or a snapshot"
            )));
        }
    }
    let after: u64 = params
        .one("after")?
        .ok_or_else(|| Error::Invalid("after: a poll needs the revision it starts after".into()))?
        .parse()
        .map_err(|_| Error::Invalid("after: not a revision (a non-negative integer)".into()))?;
    let wait = match params.one("wait")? {
        None => poll::DEFAULT_WAIT,
        Some(raw) => match raw.parse::<u64>() {
            Ok(s) if s <= poll::MAX_WAIT.as_secs() => std::time::Duration::from_secs(s),
            _ => {
                return Err(Error::Invalid(format!(
                    "wait: seconds from 0 to {}",
                    poll::MAX_WAIT.as_secs()
                )));
            }
        },
    };
    let epoch = params.one("epoch")?;
    match poll::poll(&app, view, after, epoch, &filter, wait).await? {
        Polled::Gone {
            why,
            oldest,
            current,
        } => Err(gone(&app, view, why, oldest, current)),
        Polled::Page {
            changes,
            next,
            keep,
        } => poll_page(&app, view, params, &changes, false, next, keep),
        // A catch-up depends on when it is asked: never immutable, but a
        // cache may keep it for a second like a page that reaches the head.
        Polled::CatchUp { revision, patch } => poll_page(
            &app,
            view,
            params,
            &[(revision, patch)],
            true,
            revision,
            Keep::Briefly,
        ),
    }
}

/// The answer to a poll: its page as JSON, with `next` and the cache
/// headers its `keep` allows.
fn poll_page(
    app: &App,
    view: View,
    params: &Params,
    changes: &[(u64, String)],
    compacted: bool,
    next: u64,
    keep: Keep,
) -> Result<Response, Error> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("mode", "poll");
    query.append_pair("after", &next.to_string());
    query.append_pair("epoch", app.epoch());
    let mut next_url = format!("{}?{}", view.stream_path(), query.finish());
    let rest = params.encoded(&["key", "where", "wait"]);
    if !rest.is_empty() {
        next_url.push('&');
        next_url.push_str(&rest);
    }
    let body = poll::page_json(app.epoch(), changes, compacted, &next_url)?;
    let cache = match keep {
        Keep::Forever => "public, max-age=31536000, immutable",
        Keep::Briefly => "public, max-age=1",
        Keep::Never => "no-store",
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::HeaderName::from_static(X_EPOCH),
                header_value(app.epoch()),
            ),
        ],
        body,
    )
        .into_response())
}

/// The `410` of a stream or poll position that cannot be served.
fn gone(app: &App, view: View, why: position::Gone, oldest: Option<u64>, current: u64) -> Error {
    Error::Gone(stream::gone_body(
        view,
        &why.to_string(),
        oldest,
        current,
        app.epoch(),
    ))
}

/// The answer that carries a stream's `body`: `text/event-stream`, never
/// cached or buffered by a proxy, with the epoch its revisions belong to.
pub(crate) fn event_stream(app: &App, body: axum::body::Body) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
            (
                header::HeaderName::from_static(X_EPOCH),
                header_value(app.epoch()),
            ),
        ],
        body,
    )
        .into_response()
}

/// The answer to a successful write: the output as JSON (none for 204) and
/// `X-Revision`, the written view's revision after the write.
pub fn written(status: StatusCode, done: Committed, view: View) -> Response {
    let revision = done.revision(view);
    let replayed = done.replayed;
    let mut response = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(done.output)).into_response()
    };
    response
        .headers_mut()
        .insert(X_REVISION, HeaderValue::from(revision));
    if replayed {
        response.extensions_mut().insert(super::metered::Replayed);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_refused_with_q_zero() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(accepts("gzip"));
        assert!(accepts("br, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.000"));
        assert!(!accepts(""));
    }
}
