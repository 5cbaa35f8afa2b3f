//! Stock: a third domain on duality's public API, as a crate of its own.
//!
//! Three views: `products` (`{"name"}` by product id), `stock` (the
//! quantity of one product in one warehouse, keyed `product/warehouse`)
//! and `totals` (per product, the sum over its warehouses), which is
//! derived: every stock write keeps it exact in the same transaction, so
//! one request is one event per view it changes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::put;
use duality::{ApiJson, App, Draft, Error, Server, Service, View, ViewSpec, Write, written};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

static PRODUCTS_SPEC: ViewSpec = ViewSpec::new("products", "/products", "/product-events");
static STOCK_SPEC: ViewSpec = ViewSpec::new("stock", "/stock", "/stock-events");
static TOTALS_SPEC: ViewSpec = ViewSpec::new("totals", "/totals", "/total-events");

/// Products by id.
pub const PRODUCTS: View = View::of(&PRODUCTS_SPEC);
/// Quantities by `product/warehouse`.
pub const STOCK: View = View::of(&STOCK_SPEC);
/// Per-product totals over all warehouses.
pub const TOTALS: View = View::of(&TOTALS_SPEC);

/// A product, as stored and as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
}

/// How many of a product one warehouse holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub quantity: u64,
}

/// A product's total over all warehouses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Total {
    pub total: u64,
}

fn valid_key(what: &str, key: &str) -> Result<(), Error> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if key.is_empty() || key.len() > 64 || !key.chars().all(plain) {
        return Err(Error::Invalid(format!(
            "{what} must be 1 to 64 letters, digits, - or _"
        )));
    }
    Ok(())
}

/// Creates or renames a product.
pub fn put_product(id: String, product: Product) -> Write {
    Write::new(&[PRODUCTS], move |d| {
        if product.name.trim().is_empty() {
            return Err(Error::Invalid("name must not be empty".into()));
        }
        d.write(PRODUCTS, id.clone(), &product)?;
        Ok(Value::Null)
    })
}

/// Sets the quantity of a product in a warehouse (0 removes the row) and
/// moves the product's total by the difference.
pub fn set_stock(product: String, warehouse: String, quantity: u64) -> Write {
    Write::new(&[PRODUCTS, STOCK, TOTALS], move |d: &mut Draft<'_>| {
        if d.read::<Product>(PRODUCTS, &product)?.is_none() {
            return Err(Error::NotFound(format!("no product {product}")));
        }
        let key = format!("{product}/{warehouse}");
        let before = d.read::<Quantity>(STOCK, &key)?.map_or(0, |q| q.quantity);
        match quantity {
            0 => d.delete(STOCK, key),
            _ => d.write(STOCK, key, &Quantity { quantity })?,
        }
        let total = d.read::<Total>(TOTALS, &product)?.map_or(0, |t| t.total);
        let total = total.saturating_sub(before) + quantity;
        match total {
            0 => d.delete(TOTALS, product.clone()),
            _ => d.write(TOTALS, product.clone(), &Total { total })?,
        }
        Ok(Value::Null)
    })
}

async fn product(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(product): ApiJson<Product>,
) -> Result<Response, Error> {
    valid_key("a product id", &id)?;
    let done = app.write(put_product(id, product)).await?;
    Ok(written(StatusCode::OK, done, PRODUCTS))
}

async fn stock(
    State(app): State<App>,
    Path((product, warehouse)): Path<(String, String)>,
    ApiJson(quantity): ApiJson<Quantity>,
) -> Result<Response, Error> {
    valid_key("a product id", &product)?;
    valid_key("a warehouse", &warehouse)?;
    let done = app
        .write(set_stock(product, warehouse, quantity.quantity))
        .await?;
    Ok(written(StatusCode::OK, done, TOTALS))
}

/// The stock service: three views and two writes.
pub fn service() -> Service {
    Service::new("stock")
        .view(PRODUCTS)
        .view(STOCK)
        .view(TOTALS)
        .route("/products/{id}", put(product))
        .route("/stock/{product}/{warehouse}", put(stock))
        .openapi(document)
}

/// The two writes in `/openapi.json` (the engine documents the views).
fn document(paths: &mut Map<String, Value>) {
    let key = |name: &str| {
        json!({"name": name, "in": "path", "required": true,
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}})
    };
    let answers = |what: &str| {
        json!({
            "200": {"description": what, "headers": {"X-Revision": {"schema": {"type": "integer"}}}},
            "400": {"description": "An invalid key or body"}
        })
    };
    let body = |properties: Value| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": false,
            "required": properties.as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()),
            "properties": properties}}}})
    };
    paths.insert(
        "/products/{id}".into(),
        json!({"put": {
            "tags": ["stock"], "summary": "Create or rename a product",
            "parameters": [key("id")],
            "requestBody": body(json!({"name": {"type": "string"}})),
            "responses": answers("Stored; X-Revision is the products revision")
        }}),
    );
    paths.insert(
        "/stock/{product}/{warehouse}".into(),
        json!({"put": {
            "tags": ["stock"], "summary": "Set how many of a product one warehouse holds (the product's total follows)",
            "parameters": [key("product"), key("warehouse")],
            "requestBody": body(json!({"quantity": {"type": "integer", "minimum": 0}})),
            "responses": answers("Stored; X-Revision is the totals revision")
        }}),
    );
}

/// A server with the stock service alone.
pub fn server() -> Server {
    Server::new().service(service())
}
