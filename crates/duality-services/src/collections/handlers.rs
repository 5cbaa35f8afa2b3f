//! The item endpoints of a collection: parse, run a write or read the
//! view, shape the answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::writes::{self, Doc};
use super::{Collection, MAX_KEY_CHARS};
use duality::{ApiJson, App, Committed, Error, written};

/// Checks a percent-decoded key: 1 to [`MAX_KEY_CHARS`] characters, and
/// no U+0000, which PostgreSQL `text` cannot hold (refused here, it is a
/// `400` on every store rather than a store error on one).
fn key_of(raw: String) -> Result<String, Error> {
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

/// `GET /collections/{name}/items/{key}`.
pub async fn get(c: Arc<Collection>, app: App, key: String) -> Result<Response, Error> {
    let key = key_of(key)?;
    match app.doc_as::<Doc>(c.view, &key).await? {
        Some(doc) => Ok(Json(doc).into_response()),
        None => Err(Error::NotFound(format!(
            "no document `{key}` in the collection {}",
            c.name
        ))),
    }
}

/// Answers a write with the document after it (`201` if it was new).
fn answer(done: Committed, c: &Collection) -> Response {
    let mut done = done;
    let created = done.output["created"] == Value::Bool(true);
    done.output = done.output["document"].take();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    written(status, done, c.view)
}

/// `PUT /collections/{name}/items/{key}`: create or replace.
pub async fn put(
    c: Arc<Collection>,
    app: App,
    key: String,
    body: Value,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    let doc = object(body)?;
    let done = app.write(writes::put(&c, key, doc)?).await?;
    Ok(answer(done, &c))
}

/// `PATCH /collections/{name}/items/{key}`: a JSON Merge Patch.
pub async fn patch(
    c: Arc<Collection>,
    app: App,
    key: String,
    body: Value,
) -> Result<Response, Error> {
    let key = key_of(key)?;
    let patch = object(body)?;
    let done = app.write(writes::patch(Arc::clone(&c), key, patch)).await?;
    Ok(answer(done, &c))
}

/// `DELETE /collections/{name}/items/{key}`.
pub async fn delete(c: Arc<Collection>, app: App, key: String) -> Result<Response, Error> {
    let key = key_of(key)?;
    let done = app.write(writes::delete(Arc::clone(&c), key)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, c.view))
}

/// The item routes of one collection.
pub fn routes(c: &Arc<Collection>) -> axum::routing::MethodRouter<App> {
    let (g, p, m, d) = (c.clone(), c.clone(), c.clone(), c.clone());
    axum::routing::get(move |State(app): State<App>, Path(key): Path<String>| {
        get(g.clone(), app, key)
    })
    .put(
        move |State(app): State<App>, Path(key): Path<String>, ApiJson(body): ApiJson<Value>| {
            put(p.clone(), app, key, body)
        },
    )
    .patch(
        move |State(app): State<App>, Path(key): Path<String>, ApiJson(body): ApiJson<Value>| {
            patch(m.clone(), app, key, body)
        },
    )
    .delete(move |State(app): State<App>, Path(key): Path<String>| delete(d.clone(), app, key))
}
