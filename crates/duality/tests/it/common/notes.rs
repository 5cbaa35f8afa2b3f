//! The test-only service the engine's tests run on: nothing of a product,
//! only what the engine must handle.
//!
//! - `notes` (`/notes`, `/note-events`): `{"text", "tag"?}` by key, written
//!   with `PUT /notes/{key}` and removed with `DELETE /notes/{key}`;
//!   created with `POST /notes` (under the next id, `1`, `2`…) or
//!   `POST /tags/{tag}/notes` (under a random key drawn before the write),
//!   both at most once per `Idempotency-Key` (`duality::create_once`);
//! - `tags` (`/tags`, `/tag-events`): `{"total"}` notes per tag, derived
//!   in the same write, so one request can be one event in each view;
//! - one metric of its own, [`POSTED`], listed with the service;
//! - `GET /broken`: an internal error with a cause that must not leak;
//! - `GET /elsewhere/{key}` and `PUT /elsewhere/{key}`: a handler that reads
//!   or writes a view this process does not serve.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use duality::telemetry::{Kind, Metric};
use duality::{
    ApiJson, App, Conditions, Draft, Error, KeyHeader, Server, Service, View, ViewSpec, Write,
    create_once, written,
};
use serde::de::DeserializeOwned;
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

/// The id counter of `POST /notes`: ids are never reused.
const NOTE_IDS: &str = "notes";

/// The service's own metric: `POST /notes` answered `201` (a replay too).
pub const POSTED: &str = "duality_test_notes_posted_total";

const METRICS: &[Metric] = &[(
    POSTED,
    Kind::Counter,
    "POST /notes answered 201, replays included (a metric of the engine's test service)",
)];

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

/// Refuses a blank text or tag.
fn check(note: &Note) -> Result<(), Error> {
    if note.text.trim().is_empty() || note.tag.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(Error::Invalid("text and tag must not be blank".into()));
    }
    Ok(())
}

/// Moves one note's count from the tag `before` to the tag `after`.
fn retally(d: &mut Draft<'_>, before: Option<&str>, after: Option<&str>) -> Result<(), Error> {
    if before != after {
        if let Some(old) = before {
            count(d, old, false)?;
        }
        if let Some(new) = after {
            count(d, new, true)?;
        }
    }
    Ok(())
}

fn not_found(key: &str) -> Error {
    Error::NotFound(format!("no note {key}"))
}

/// A note as written, with `extra` members first (`{"id": 1, "text", "tag"?}`).
fn shown(extra: &[(&str, Value)], note: &Note) -> Value {
    let mut out: Map<String, Value> = extra
        .iter()
        .map(|(name, value)| ((*name).to_string(), value.clone()))
        .collect();
    out.insert("text".into(), json!(note.text));
    if let Some(tag) = &note.tag {
        out.insert("tag".into(), json!(tag));
    }
    Value::Object(out)
}

/// Sets a note, and moves its count between tags if its tag changed.
pub fn save(key: String, note: Note) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        check(&note)?;
        let before = d.read::<Note>(NOTES, &key)?.and_then(|n| n.tag);
        retally(d, before.as_deref(), note.tag.as_deref())?;
        d.write(NOTES, key.clone(), &note)?;
        Ok(json!({ "key": key }))
    })
}

/// Adds `note` under the next id (ids are never reused, also not after a
/// delete) and counts its tag; answers it with its id.
pub fn create(note: Note) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        check(&note)?;
        let id = d.next_id(NOTE_IDS)?;
        d.write(NOTES, id.to_string(), &note)?;
        retally(d, None, note.tag.as_deref())?;
        Ok(shown(&[("id", json!(id))], &note))
    })
}

/// Moves the note `key` to `tag` (`None`: untagged), keeping its text;
/// `404` if there is none. Answers the note.
pub fn retag(key: String, tag: Option<String>) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        let old = d
            .read::<Note>(NOTES, &key)?
            .ok_or_else(|| not_found(&key))?;
        let note = Note {
            text: old.text,
            tag: tag.clone(),
        };
        check(&note)?;
        retally(d, old.tag.as_deref(), note.tag.as_deref())?;
        d.write(NOTES, key.clone(), &note)?;
        Ok(shown(&[], &note))
    })
}

/// Removes a note and its count; `404` if there is none.
pub fn remove(key: String) -> Write {
    Write::new(&[NOTES, TAGS], move |d| {
        let note = d
            .read::<Note>(NOTES, &key)?
            .ok_or_else(|| not_found(&key))?;
        d.delete(NOTES, key.clone());
        retally(d, note.tag.as_deref(), None)?;
        Ok(Value::Null)
    })
}

/// A request body read as `T`; `400` if it is not one.
fn parse<T: DeserializeOwned>(body: &Value) -> Result<T, Error> {
    T::deserialize(body).map_err(|e| Error::Invalid(format!("not a note: {e}")))
}

/// A `201` for a created note, with its `Location`.
fn created(done: duality::Committed, key: Option<String>) -> Response {
    let mut response = written(StatusCode::CREATED, done, NOTES);
    if let Some(key) = key
        && let Ok(location) = format!("/notes/{key}").parse()
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    response
}

/// `POST /notes`: creates a note under the next id, at most once per
/// `Idempotency-Key`.
async fn post_note(
    State(app): State<App>,
    key: KeyHeader,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Error> {
    let note: Note = parse(&body)?;
    let done = create_once(&app, key, "/notes", &body, create(note)).await?;
    metrics::counter!(POSTED).increment(1);
    let id = done.output.get("id").and_then(Value::as_u64);
    Ok(created(done, id.map(|id| id.to_string())))
}

/// The body of `POST /tags/{tag}/notes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    text: String,
}

/// `POST /tags/{tag}/notes`: creates a note tagged `tag` under a random
/// key drawn before the write, at most once per `Idempotency-Key` and
/// path: a repeat answers the first note's key, not a new one.
async fn post_tagged(
    State(app): State<App>,
    Path(tag): Path<String>,
    key: KeyHeader,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Error> {
    let Text { text } = parse(&body)?;
    let note = Note {
        text,
        tag: Some(tag.clone()),
    };
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    let route = format!("/tags/{tag}/notes");
    let done = create_once(&app, key, &route, &body, save(fresh, note)).await?;
    let key = done
        .output
        .get("key")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(created(done, key))
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

async fn get_note(
    State(app): State<App>,
    Path(key): Path<String>,
    Conditions(conditions): Conditions,
) -> Result<Response, Error> {
    valid_key(&key)?;
    duality::http::document::get(&app, NOTES, &key, &conditions, || {
        Error::NotFound(format!("no note {key}"))
    })
    .await
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
    let body =
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    let created = json!({"description": "Created (or the first outcome of its Idempotency-Key)"});
    if let Some(Value::Object(ops)) = paths.get_mut("/notes") {
        ops.insert(
            "post".into(),
            json!({"tags": ["notes"], "requestBody": body,
                   "responses": {"201": created, "400": error, "409": error, "422": error}}),
        );
    }
    let tag = json!({"name": "tag", "in": "path", "required": true, "schema": {"type": "string"}});
    paths.insert(
        "/tags/{tag}/notes".into(),
        json!({"post": {"tags": ["notes"], "parameters": [tag], "requestBody": body,
                        "responses": {"201": created, "400": error, "409": error, "422": error}}}),
    );
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
        .metrics(METRICS)
        .route("/notes", post(post_note))
        .route("/tags/{tag}/notes", post(post_tagged))
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
