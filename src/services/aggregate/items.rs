//! The item endpoints of the customers and incidents services: one set of
//! handlers, described per entity, over the pure domain functions.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::{CUSTOMERS, INCIDENTS};
use super::customers::{self, CustomerIndex};
use super::entity::Kind;
use super::incidents::{self, IncidentIndex};
use crate::services::fields;
use crate::{ApiJson, App, AppError, KeyHeader, create_once, written};
use futures_util::future::BoxFuture;

/// What differs between customers and incidents.
pub struct Entity {
    pub kind: &'static Kind,
    /// `/customers/items`: the collection; items live below it.
    pub items: &'static str,
    /// The whole collection, from the view's read model.
    pub list: fn(App) -> BoxFuture<'static, Result<Value, AppError>>,
}

pub static CUSTOMER_ITEMS: Entity = Entity {
    kind: &customers::KIND,
    items: "/customers/items",
    list: |app| {
        Box::pin(async move {
            let list = app.read(CUSTOMERS, CustomerIndex::list).await?;
            Ok(customers::items_of(&list))
        })
    },
};

pub static INCIDENT_ITEMS: Entity = Entity {
    kind: &incidents::KIND,
    items: "/incidents/items",
    list: |app| {
        Box::pin(async move {
            let groups = app.read(INCIDENTS, IncidentIndex::groups).await?;
            Ok(incidents::items_of(&groups))
        })
    },
};

pub fn routes(e: &'static Entity) -> Router<App> {
    Router::new()
        .route(
            e.items,
            get(move |State(app): State<App>| list(app, e)).post(
                move |State(app): State<App>, key: KeyHeader, ApiJson(body): ApiJson<Value>| {
                    create(app, e, key, body)
                },
            ),
        )
        .route(
            &format!("{}/{{id}}", e.items),
            get(move |State(app): State<App>, Path(id): Path<String>| one(app, e, id))
                .patch(
                    move |State(app): State<App>,
                          Path(id): Path<String>,
                          ApiJson(body): ApiJson<Value>| {
                        patch(app, e, id, body)
                    },
                )
                .delete(move |State(app): State<App>, Path(id): Path<String>| delete(app, e, id)),
        )
}

async fn list(app: App, e: &'static Entity) -> Result<Json<Value>, AppError> {
    Ok(Json((e.list)(app).await?))
}

async fn one(app: App, e: &'static Entity, id: String) -> Result<Json<Value>, AppError> {
    let id = fields::uuid(&id)?;
    match app.doc(e.kind.view, &id).await? {
        Some(doc) => Ok(Json((e.kind.item)(&id, &doc))),
        None => Err(AppError::NotFound(format!("no item with id {id}"))),
    }
}

async fn create(
    app: App,
    e: &'static Entity,
    key: KeyHeader,
    body: Value,
) -> Result<Response, AppError> {
    let doc = e.kind.parse_new(&body)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let write = e.kind.create(id, doc);
    let done = create_once(&app, key, e.items, &body, write).await?;
    // From the output, not `id`: a repeated key answers the first item.
    let id = done
        .output
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = written(StatusCode::CREATED, done, e.kind.view);
    if let Some(id) = id
        && let Ok(location) = format!("{}/{id}", e.items).parse()
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

async fn patch(
    app: App,
    e: &'static Entity,
    id: String,
    body: Value,
) -> Result<Response, AppError> {
    let id = fields::uuid(&id)?;
    let done = app.write(e.kind.patch(id, body)).await?;
    Ok(written(StatusCode::OK, done, e.kind.view))
}

async fn delete(app: App, e: &'static Entity, id: String) -> Result<Response, AppError> {
    let id = fields::uuid(&id)?;
    let done = app.write(e.kind.delete(id)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, e.kind.view))
}

/// `GET /customers/count`, `/customers/top/{limit}` and
/// `/incidents/grouped-by-customer`: read models kept with the views.
pub fn read_models() -> (Router<App>, Router<App>) {
    let customers = Router::new()
        .route(
            "/customers/count",
            get(|State(app): State<App>| async move {
                let count = app.read(CUSTOMERS, CustomerIndex::count).await?;
                Ok::<_, AppError>(Json(count))
            }),
        )
        .route(
            "/customers/top/{limit}",
            get(
                |State(app): State<App>, Path(limit): Path<String>| async move {
                    let limit = customers::parse_limit(&limit)?;
                    let top = app
                        .read(CUSTOMERS, |i: &CustomerIndex| i.top(limit))
                        .await?;
                    Ok::<_, AppError>(Json(top))
                },
            ),
        );
    let incidents = Router::new().route(
        "/incidents/grouped-by-customer",
        get(|State(app): State<App>| async move {
            let groups = app.read(INCIDENTS, IncidentIndex::groups).await?;
            Ok::<_, AppError>(Json(incidents::grouped_of(&groups)))
        }),
    );
    (customers, incidents)
}
