//! Persons endpoints (README, "What it serves"). Handlers parse, call a domain write through
//! the app, and shape the answer; they never touch the store directly.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::rules::{self as persons, LocationDoc, NewPerson, Person, PersonDoc, PersonPatch};
use super::{LOCATIONS, PERSONS};
use duality::{ApiJson, App, Error, KeyHeader, create_once, written};

/// `POST /persons`: creates a person (at most once per `Idempotency-Key`) and
/// answers `201` with its `Location`.
pub async fn create(
    State(app): State<App>,
    key: KeyHeader,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Error> {
    let person = NewPerson::parse(&body)?;
    let done = create_once(&app, key, "/persons", &body, persons::create(person)).await?;
    let id = done.output.get("id").and_then(Value::as_u64);
    let mut response = written(StatusCode::CREATED, done, PERSONS);
    if let Some(id) = id {
        response.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/persons/{id}"))
                .unwrap_or_else(|_| HeaderValue::from_static("/persons")),
        );
    }
    Ok(response)
}

/// `GET /persons/{id}`: the person with its id, or `404`.
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Response, Error> {
    let id = persons::parse_id(&id)?;
    match app.doc_as::<PersonDoc>(PERSONS, &id.to_string()).await? {
        Some(doc) => Ok(Json(Person { id, doc }).into_response()),
        None => Err(Error::NotFound(format!("no person with id {id}"))),
    }
}

/// `PATCH /persons/{id}`: applies a merge patch to the person, moving it
/// between cities in `locations` if its city changes.
pub async fn patch(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Error> {
    let id = persons::parse_id(&id)?;
    let patch = PersonPatch::parse(&body)?;
    let done = app.write(persons::patch(id, patch)).await?;
    Ok(written(StatusCode::OK, done, PERSONS))
}

/// `DELETE /persons/{id}`: removes the person and its count in `locations`;
/// answers `204`.
pub async fn delete(State(app): State<App>, Path(id): Path<String>) -> Result<Response, Error> {
    let id = persons::parse_id(&id)?;
    let done = app.write(persons::delete(id)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, PERSONS))
}

/// `GET /locations/{city}`: the city's `{"total": n}`, or `404` when no person
/// lives there.
pub async fn location(State(app): State<App>, Path(city): Path<String>) -> Result<Response, Error> {
    match app.doc_as::<LocationDoc>(LOCATIONS, &city).await? {
        Some(doc) => Ok(Json(doc).into_response()),
        None => Err(Error::NotFound(format!("no location `{city}`"))),
    }
}
