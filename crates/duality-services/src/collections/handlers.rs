//! The endpoints of a collection beyond its snapshot and stream: parse,
//! run a write or read the view, shape the answer.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::writes::{self, CollectionPatch, Created, Doc, Saved};
use super::{Collection, MAX_KEY_CHARS};
use duality::http::document::{self, etag};
use duality::{ApiJson, App, Committed, Conditions, Error, KeyHeader, create_once, written};

/// Checks a percent-decoded key: 1 to [`MAX_KEY_CHARS`] characters, and
/// no U+0000, which PostgreSQL `text` cannot hold (refused here, it is a
/// `400` on every store rather than a store error on one).
pub fn key_of(raw: String) -> Result<String, Error> {
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(Error::Invalid(format!(
            "a key is 1 to {MAX_KEY_CHARS} characters, got {chars}"
        )));
    }
    if raw.contains('\0') {
        return Err(Error::Invalid(
            "a key must not contain the character U+0000".into(),
        ));
    }
    Ok(raw)
}

fn object(body: Value) -> Result<Doc, Error> {
    match body {
        Value::Object(doc) => Ok(doc),
        _ => Err(Error::Invalid("the body must be a JSON object".into())),
    }
}

/// The write's answer as its type (it was made by this module's writes).
fn answer_of<T: DeserializeOwned>(done: &Committed) -> Result<T, Error> {
    serde_json::from_value(done.output.clone())
        .map_err(|e| Error::internal_from("a collection write answered unexpectedly", e))
}

/// The path of the document at `key` (percent-encoded as a path segment).
fn item_path(c: &Collection, key: &str) -> String {
    let mut segment = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                segment.push(byte as char);
            }
            _ => segment.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("/collections/{}/items/{segment}", c.name)
}

/// `GET /collections/{name}/items/{key}`: the document with its `ETag`
/// and `X-Revision`; `304` or `412` by the request's conditions.
pub async fn get(
    c: Arc<Collection>,
    app: App,
    key: String,
    conditions: Conditions,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    document::get(&app, c.view, &key, &conditions.0, || {
        Error::NotFound(format!("no document `{key}` in the collection {}", c.name))
    })
    .await
}

/// Answers a `PUT` or `PATCH` with the document after it (`201` if it was
/// new), its `ETag` and `X-Revision`.
fn saved(app: &App, mut done: Committed, c: &Collection) -> Result<Response, Error> {
    let saved: Saved = answer_of(&done)?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let changed = saved
        .unchanged_since
        .unwrap_or_else(|| done.revision(c.view));
    done.output = Value::Object(saved.document);
    let mut response = written(status, done, c.view);
    response
        .headers_mut()
        .insert(header::ETAG, etag(app, changed));
    Ok(response)
}

/// `PUT /collections/{name}/items/{key}`: create or replace, if the
/// request's conditions hold.
pub async fn put(
    c: Arc<Collection>,
    app: App,
    key: String,
    conditions: Conditions,
    body: Value,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    let doc = object(body)?;
    let done = app
        .write(writes::put(Arc::clone(&c), key, doc, conditions.0)?)
        .await?;
    saved(&app, done, &c)
}

/// `PATCH /collections/{name}/items/{key}`: a JSON Merge Patch, if the
/// request's conditions hold.
pub async fn patch(
    c: Arc<Collection>,
    app: App,
    key: String,
    conditions: Conditions,
    body: Value,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    let patch = object(body)?;
    writes::refuse_null_in_array(&patch)?;
    let done = app
        .write(writes::patch(Arc::clone(&c), key, patch, conditions.0))
        .await?;
    saved(&app, done, &c)
}

/// `DELETE /collections/{name}/items/{key}`, if the request's conditions
/// hold.
pub async fn delete(
    c: Arc<Collection>,
    app: App,
    key: String,
    conditions: Conditions,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    let done = app
        .write(writes::delete(Arc::clone(&c), key, conditions.0))
        .await?;
    Ok(written(StatusCode::NO_CONTENT, done, c.view))
}

/// `POST /collections/{name}/items`: a new document under a new,
/// time-ordered key (a UUIDv7), at most once per `Idempotency-Key`;
/// `201` with its `Location`, `ETag` and `X-Revision`.
pub async fn create(
    c: Arc<Collection>,
    app: App,
    key: KeyHeader,
    body: Value,
) -> Result<Response, Error> {
    let doc = object(body.clone())?;
    let fresh = uuid::Uuid::now_v7().to_string();
    let route = format!("/collections/{}/items", c.name);
    let write = writes::create(Arc::clone(&c), fresh, doc)?;
    let done = create_once(&app, key, &route, &body, write).await?;
    let created: Created = answer_of(&done)?;
    let changed = done.revision(c.view);
    let location = item_path(&c, &created.key);
    let mut response = written(StatusCode::CREATED, done, c.view);
    let h = response.headers_mut();
    h.insert(header::ETAG, etag(&app, changed));
    if let Ok(location) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PATCH /collections/{name}`: a merge patch of the collection, all or
/// nothing, if the request's conditions hold for the collection; answers
/// each key's document after it (`null`: none), with the collection's
/// `ETag` and `X-Revision`.
pub async fn patch_collection(
    c: Arc<Collection>,
    app: App,
    conditions: Conditions,
    body: Value,
) -> Result<Response, Error> {
    let patch = CollectionPatch::parse(object(body)?, c.batch_limit, key_of)?;
    let done = app
        .write(writes::patch_collection(
            Arc::clone(&c),
            patch,
            conditions.0,
        ))
        .await?;
    let revision = done.revision(c.view);
    let mut response = written(StatusCode::OK, done, c.view);
    response
        .headers_mut()
        .insert(header::ETAG, etag(&app, revision));
    Ok(response)
}

/// The item routes of one collection.
pub fn item_routes(c: &Arc<Collection>) -> axum::routing::MethodRouter<App> {
    let (g, p, m, d) = (c.clone(), c.clone(), c.clone(), c.clone());
    axum::routing::get(
        move |State(app): State<App>, Path(key): Path<String>, conditions: Conditions| {
            get(g.clone(), app, key, conditions)
        },
    )
    .put(
        move |State(app): State<App>,
              Path(key): Path<String>,
              conditions: Conditions,
              ApiJson(body): ApiJson<Value>| { put(p.clone(), app, key, conditions, body) },
    )
    .patch(
        move |State(app): State<App>,
              Path(key): Path<String>,
              conditions: Conditions,
              ApiJson(body): ApiJson<Value>| {
            patch(m.clone(), app, key, conditions, body)
        },
    )
    .delete(
        move |State(app): State<App>, Path(key): Path<String>, conditions: Conditions| {
            delete(d.clone(), app, key, conditions)
        },
    )
}

/// `POST /collections/{name}/items`.
pub fn create_route(c: &Arc<Collection>) -> axum::routing::MethodRouter<App> {
    let c = c.clone();
    axum::routing::post(
        move |State(app): State<App>, key: KeyHeader, ApiJson(body): ApiJson<Value>| {
            create(c.clone(), app, key, body)
        },
    )
}

/// `PATCH /collections/{name}` (its `GET` is the engine's snapshot).
pub fn collection_route(c: &Arc<Collection>) -> axum::routing::MethodRouter<App> {
    let c = c.clone();
    axum::routing::patch(
        move |State(app): State<App>, conditions: Conditions, ApiJson(body): ApiJson<Value>| {
            patch_collection(c.clone(), app, conditions, body)
        },
    )
}
