//! `Idempotency-Key` on the built-in services' creating `POST`s
//! (docs/PROTOCOL.md, "Security model"): each of them goes through the
//! engine's `create_once`, so a repeated key answers the first outcome
//! and a key reused with another body is a `422`. How the engine keeps
//! keys (in the write's transaction, on SQLite and PostgreSQL, `409` while
//! running, retries after a timeout, retention) is tested on the engine's
//! test service in crates/duality/tests/it/idempotency_keys.rs.

use crate::common::{TestServer, spawn_default};
use serde_json::{Value, json};

/// What a client sees of an answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    location: Option<String>,
}

/// A `POST` with an `Idempotency-Key`.
async fn post_keyed(server: &TestServer, path: &str, key: &str, body: &Value) -> Answer {
    let r = server
        .client
        .post(server.url(path))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        location,
    }
}

#[tokio::test]
async fn every_built_in_creating_route_answers_a_repeated_key_with_its_first_outcome() {
    let server = spawn_default().await;
    // Customers before incidents: an incident names its customer.
    let routes = [
        (
            "/persons",
            json!({"name": "Ann", "city": "Rome"}),
            json!({"name": "Bob"}),
        ),
        (
            "/customers/items",
            json!({"name": "Acme", "city": "Rome", "country": "IT", "scoring": 7}),
            json!({"name": "Acme", "city": "Rome", "country": "IT", "scoring": 8}),
        ),
        (
            "/incidents/items",
            json!({"amount": 12.5, "customerName": "Acme", "category": "billing"}),
            json!({"amount": 13, "customerName": "Acme", "category": "billing"}),
        ),
    ];
    for (path, body, other) in &routes {
        let first = post_keyed(&server, path, "order-1", body).await;
        assert_eq!(first.status, 201, "{path}: {first:?}");
        assert!(first.location.is_some(), "{path}: {first:?}");
        let again = post_keyed(&server, path, "order-1", body).await;
        assert_eq!(again, first, "{path}: the id is the first one's too");
        let reused = post_keyed(&server, path, "order-1", other).await;
        assert_eq!(reused.status, 422, "{path}: {reused:?}");
    }
    assert_eq!(
        server.get_json("/persons").await.as_object().unwrap().len(),
        1
    );
    assert_eq!(
        server.get_json("/customers/count").await,
        json!({"count": 1})
    );
    assert_eq!(
        server
            .get_json("/incidents/items")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await.unwrap();
}
