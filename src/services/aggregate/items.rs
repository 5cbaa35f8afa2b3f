//! The item endpoints of the customers and incidents services: one set of
//! handlers, described per entity, over the pure domain functions.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use super::customers::{self, CustomerDoc, CustomerIndex};
use super::entity::{self, Item};
use super::incidents::{self, IncidentDoc, IncidentIndex};
use super::{CUSTOMERS, INCIDENTS};
use crate::services::fields;
use crate::{ApiJson, App, AppError, KeyHeader, create_once, written};
use futures_util::future::BoxFuture;

/// What differs between customers and incidents.
pub struct Entity<D> {
    /// `/customers/items`: the collection; items live below it.
    pub items: &'static str,
    /// The whole collection, from the view's read model.
    pub list: fn(App) -> BoxFuture<'static, Result<Response, AppError>>,
    /// Ties the entry to its document type `D`; holds no data.
    pub kind: std::marker::PhantomData<fn() -> D>,
}

/// Customers' items: listed by name from the customers index.
pub static CUSTOMER_ITEMS: Entity<CustomerDoc> = Entity {
    items: "/customers/items",
    list: |app| {
        Box::pin(async move {
            let list = app.read(CUSTOMERS, CustomerIndex::list).await?;
            Ok(Json(customers::Items(list)).into_response())
        })
    },
    kind: std::marker::PhantomData,
};

/// Incidents' items: listed by customer name, then id, from the incidents
/// index.
pub static INCIDENT_ITEMS: Entity<IncidentDoc> = Entity {
    items: "/incidents/items",
    list: |app| {
        Box::pin(async move {
            let groups = app.read(INCIDENTS, IncidentIndex::groups).await?;
            Ok(Json(incidents::Items(groups)).into_response())
        })
    },
    kind: std::marker::PhantomData,
};

/// The item routes of an entity: `GET`/`POST` on its collection and
/// `GET`/`PATCH`/`DELETE` on `{items}/{id}`.
pub fn routes<D: Item>(e: &'static Entity<D>) -> Router<App> {
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

async fn list<D: Item>(app: App, e: &'static Entity<D>) -> Result<Response, AppError> {
    (e.list)(app).await
}

async fn one<D: Item>(
    app: App,
    _: &'static Entity<D>,
    id: String,
) -> Result<Json<Value>, AppError> {
    let id = fields::uuid(&id)?;
    match app.doc_as::<D>(D::VIEW, &id).await? {
        Some(doc) => Ok(Json(doc.item(&id))),
        None => Err(AppError::NotFound(format!("no item with id {id}"))),
    }
}

async fn create<D: Item>(
    app: App,
    e: &'static Entity<D>,
    key: KeyHeader,
    body: Value,
) -> Result<Response, AppError> {
    let doc = D::parse_new(&body)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let write = entity::create(id, doc);
    let done = create_once(&app, key, e.items, &body, write).await?;
    // From the output, not `id`: a repeated key answers the first item.
    let id = done
        .output
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = written(StatusCode::CREATED, done, D::VIEW);
    if let Some(id) = id
        && let Ok(location) = format!("{}/{id}", e.items).parse()
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

async fn patch<D: Item>(
    app: App,
    _: &'static Entity<D>,
    id: String,
    body: Value,
) -> Result<Response, AppError> {
    let id = fields::uuid(&id)?;
    let done = app.write(entity::patch::<D>(id, body)).await?;
    Ok(written(StatusCode::OK, done, D::VIEW))
}

async fn delete<D: Item>(
    app: App,
    _: &'static Entity<D>,
    id: String,
) -> Result<Response, AppError> {
    let id = fields::uuid(&id)?;
    let done = app.write(entity::delete::<D>(id)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, D::VIEW))
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
            Ok::<_, AppError>(Json(incidents::Grouped(groups)))
        }),
    );
    (customers, incidents)
}
