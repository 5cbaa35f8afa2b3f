//! The test-only service the engine's tests run on: nothing of a product,
//! only what the engine must handle.
//!
//! - `notes` (`/notes`, `/note-events`): `{"text", "tag"?}` by key, written
//!   with `PUT /notes/{key}` and removed with `DELETE /notes/{key}`;
//! - `tags` (`/tags`, `/tag-events`): `{"total"}` notes per tag, derived
//!   in the same write, so one request can be one event in each view;
//! - `GET /broken`: an internal error with a cause that must not leak;
//! - `GET /elsewhere/{key}` and `PUT /elsewhere/{key}`: a handler that reads
//!   or writes a view this process does not serve.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use duality::{ApiJson, App, Draft, Error, Server, Service, View, ViewSpec, Write, written};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

static NOTES_SPEC: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
static TAGS_SPEC: ViewSpec = ViewSpec::new("tags", "/tags", "/tag-events");
static ELSEWHERE_SPEC: ViewSpec = ViewSpec::new("elsewhere", "/elsewhere", "/elsewhere-events");

/// Notes by key.
pub const NOTES: View = View::of(&NOTES_SPEC);
/// Notes counted by tag.
pub const TAGS: View = View::of(&TAGS_SPEC);
/// A view no test server serves.
pub const ELSEWHERE: View = View::of(&ELSEWHERE_SPEC);

/// What the internal error of `GET /broken` is caused by: never to be
/// seen by a client.
pub const SECRET_CAUSE: &str = "disk /dev/secret9 is on fire";

/// A note, as stored and as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tally {
    total: u64,
}

fn valid_key(key: &str) -> Result<(), Error> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if key.is_empty() || key.len() > 64 || !key.chars().all(plain) {
        return Err(Error::Invalid(
            "a key must be 1 to 64 letters, digits, - or _".into(),
        ));
    }
    Ok(())
}

/// Moves the count of `tag` by one (a count of 0 removes the tag).
fn count(d: &mut Draft<'_>, tag: &str, up: bool) -> Result<(), Error> {
    let total = d.read::<Tally>(TAGS, tag)?.map_or(0, |t| t.total);
    let total = if up {
        total + 1
    } else {
        total.saturating_sub(1)
    };
    match total {
        0 => d.delete(TAGS, tag),
        total => d.write(TAGS, tag, &Tally { total })?,
    }
    Ok(())
}

/// Sets a note, and moves its count between tags if its tag changed.
fn save(key: String, note: Note) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        if note.text.trim().is_empty() || note.tag.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::Invalid("text and tag must not be blank".into()));
        }
        let before = d.read::<Note>(NOTES, &key)?.and_then(|n| n.tag);
        if before != note.tag {
            if let Some(old) = &before {
                count(d, old, false)?;
            }
            if let Some(new) = &note.tag {
                count(d, new, true)?;
            }
        }
        d.write(NOTES, key.clone(), &note)?;
        Ok(json!({ "key": key }))
    })
}

/// Removes a note and its count; `404` if there is none.
fn remove(key: String) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        let Some(note) = d.read::<Note>(NOTES, &key)? else {
            return Err(Error::NotFound(format!("no note {key}")));
        };
        d.delete(NOTES, key.clone());
        if let Some(tag) = &note.tag {
            count(d, tag, false)?;
        }
        Ok(Value::Null)
    })
}

async fn put_note(
    State(app): State<App>,
    Path(key): Path<String>,
    ApiJson(note): ApiJson<Note>,
) -> Result<Response, Error> {
    valid_key(&key)?;
    let done = app.write(save(key, note)).await?;
    Ok(written(StatusCode::OK, done, NOTES))
}

async fn delete_note(State(app): State<App>, Path(key): Path<String>) -> Result<Response, Error> {
    valid_key(&key)?;
    let done = app.write(remove(key)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, NOTES))
}

async fn get_note(State(app): State<App>, Path(key): Path<String>) -> Result<Response, Error> {
    valid_key(&key)?;
    match app.doc(NOTES, &key).await? {
        Some(note) => Ok(Json(note).into_response()),
        None => Err(Error::NotFound(format!("no note {key}"))),
    }
}

async fn broken() -> Result<Response, Error> {
    Err(Error::internal_from(
        "reading the broken route",
        std::io::Error::other(SECRET_CAUSE),
    ))
}

async fn read_elsewhere(
    State(app): State<App>,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    match app.doc(ELSEWHERE, &key).await? {
        Some(doc) => Ok(Json(doc).into_response()),
        None => Err(Error::NotFound(format!("no {key} elsewhere"))),
    }
}

async fn write_elsewhere(
    State(app): State<App>,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    let write = Write::new(&[ELSEWHERE], move |d| {
        d.put(ELSEWHERE, key.clone(), json!({"here": true}))?;
        Ok(Value::Null)
    });
    let done = app.write(write).await?;
    Ok(written(StatusCode::OK, done, ELSEWHERE))
}

/// Documents the service's own routes, as a real service does.
fn openapi(paths: &mut Map<String, Value>) {
    let key = json!({"name": "key", "in": "path", "required": true, "schema": {"type": "string"}});
    let error = json!({"description": "An error", "content": {"application/json":
                       {"schema": {"$ref": "#/components/schemas/Error"}}}});
    paths.insert(
        "/notes/{key}".into(),
        json!({
            "get": {"tags": ["notes"], "parameters": [key],
                    "responses": {"200": {"description": "The note"}, "404": error}},
            "put": {"tags": ["notes"], "parameters": [key],
                    "responses": {"200": {"description": "Saved"}, "400": error}},
            "delete": {"tags": ["notes"], "parameters": [key],
                       "responses": {"204": {"description": "Deleted"}, "404": error}},
        }),
    );
}

/// The test service: two views, their writes, and the routes that fail.
pub fn service() -> Service {
    Service::new("notes")
        .view(NOTES)
        .view(TAGS)
        .route(
            "/notes/{key}",
            put(put_note).delete(delete_note).get(get_note),
        )
        .route("/broken", get(broken))
        .route("/elsewhere/{key}", get(read_elsewhere).put(write_elsewhere))
        .openapi(openapi)
}

/// A server with the test service alone.
pub fn server() -> Server {
    Server::new().service(service())
}
