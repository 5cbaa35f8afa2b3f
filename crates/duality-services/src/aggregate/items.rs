//! The item endpoints of the customers and incidents services: one set of
//! handlers, generic over the item type, over the pure domain functions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::Value;

use super::customers::{self, CustomerIndex};
use super::entity::{self, Item};
use super::incidents::{self, IncidentIndex};
use super::{CUSTOMERS, INCIDENTS};
use crate::fields;
use duality::{ApiJson, App, Error, KeyHeader, create_once, written};

/// The item routes of one kind of item: `GET` (`list`) and `POST` on its
/// collection `items`, and `GET`/`PATCH`/`DELETE` on `{items}/{id}`.
pub fn routes<D: Item>(items: &'static str, list: MethodRouter<App>) -> Routes {
    vec![
        (
            items.to_string(),
            list.post(
                move |State(app): State<App>, key: KeyHeader, ApiJson(body): ApiJson<Value>| {
                    create::<D>(app, items, key, body)
                },
            ),
        ),
        (
            format!("{items}/{{id}}"),
            get(one::<D>).patch(patch::<D>).delete(delete::<D>),
        ),
    ]
}

/// Routes as a service adds them: a path and its handlers.
pub type Routes = Vec<(String, MethodRouter<App>)>;

/// `GET /customers/items`: every customer, by name, from the index.
pub async fn list_customers(State(app): State<App>) -> Result<Response, Error> {
    let list = app.read(CUSTOMERS, CustomerIndex::list).await?;
    Ok(Json(customers::Items(list)).into_response())
}

/// `GET /incidents/items`: every incident, by customer name then id.
pub async fn list_incidents(State(app): State<App>) -> Result<Response, Error> {
    let groups = app.read(INCIDENTS, IncidentIndex::groups).await?;
    Ok(Json(incidents::Items(groups)).into_response())
}

async fn one<D: Item>(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let id = fields::uuid(&id)?;
    match app.doc_as::<D>(D::VIEW, &id).await? {
        Some(doc) => Ok(Json(doc.item(&id))),
        None => Err(Error::NotFound(format!("no item with id {id}"))),
    }
}

async fn create<D: Item>(
    app: App,
    items: &'static str,
    key: KeyHeader,
    body: Value,
) -> Result<Response, Error> {
    let doc = D::parse_new(&body)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let write = entity::create(id, doc);
    let done = create_once(&app, key, items, &body, write).await?;
    // From the output, not `id`: a repeated key answers the first item.
    let id = done
        .output
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = written(StatusCode::CREATED, done, D::VIEW);
    if let Some(id) = id
        && let Ok(location) = format!("{items}/{id}").parse()
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

async fn patch<D: Item>(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Error> {
    let id = fields::uuid(&id)?;
    let done = app.write(entity::patch::<D>(id, body)).await?;
    Ok(written(StatusCode::OK, done, D::VIEW))
}

async fn delete<D: Item>(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id = fields::uuid(&id)?;
    let done = app.write(entity::delete::<D>(id)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, D::VIEW))
}

/// `GET /customers/count` and `/customers/top/{limit}`: read models kept
/// with the customers view.
pub fn customer_reads() -> Routes {
    vec![
        (
            "/customers/count".into(),
            get(|State(app): State<App>| async move {
                let count = app.read(CUSTOMERS, CustomerIndex::count).await?;
                Ok::<_, Error>(Json(count))
            }),
        ),
        (
            "/customers/top/{limit}".into(),
            get(
                |State(app): State<App>, Path(limit): Path<String>| async move {
                    let limit = customers::parse_limit(&limit)?;
                    let top = app
                        .read(CUSTOMERS, |i: &CustomerIndex| i.top(limit))
                        .await?;
                    Ok::<_, Error>(Json(top))
                },
            ),
        ),
    ]
}

/// `GET /incidents/grouped-by-customer`: a read model kept with the
/// incidents view.
pub fn incident_reads() -> Routes {
    vec![(
        "/incidents/grouped-by-customer".into(),
        get(|State(app): State<App>| async move {
            let groups = app.read(INCIDENTS, IncidentIndex::groups).await?;
            Ok::<_, Error>(Json(incidents::Grouped(groups)))
        }),
    )]
}
