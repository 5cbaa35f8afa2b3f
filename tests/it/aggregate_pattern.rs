//! README, "The Aggregate Pattern" over real HTTP: the customers and incidents services, and the
//! dashboard that the aggregates service composes from them by service
//! chaining, in one process and in separate processes.

use std::time::{Duration, Instant};

use crate::common::{ChildServer, Sse, TestServer, fold, revision_of, spawn, spawn_default};
use duality::Config;
use duality_services::Builtin;
use duality_services::settings::{Settings, parse_services};
use serde_json::{Value, json};

fn customer(name: &str, scoring: i64) -> Value {
    json!({"name": name, "city": "Oslo", "country": "Norway", "scoring": scoring})
}

fn incident(name: &str, amount: f64) -> Value {
    json!({"amount": amount, "customerName": name, "category": "billing"})
}

async fn post_id(base: &str, client: &reqwest::Client, path: &str, body: Value) -> String {
    let r = client
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "POST {path}");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(location, format!("{path}/{id}"));
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    id
}

async fn post(server: &TestServer, path: &str, body: Value) -> String {
    post_id(&server.url(""), &server.client, path, body).await
}

/// Polls `GET path` until `check` holds (or 15 s pass).
async fn eventually(
    server_base: &str,
    path: &str,
    check: impl Fn(&reqwest::header::HeaderMap, &Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client
            .get(format!("{server_base}{path}"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            let headers = r.headers().clone();
            if let Ok(body) = r.json::<Value>().await
                && check(&headers, &body)
            {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} never reached the expected state"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn customers_answer_count_top_items_and_item_with_the_specified_shapes_and_orders() {
    let server = spawn_default().await;
    let amy = post(&server, "/customers/items", customer("Amy", 9)).await;
    post(&server, "/customers/items", customer("Zed", 9)).await;
    post(&server, "/customers/items", customer("Bob", 10)).await;
    post(&server, "/customers/items", customer("Cat", 2)).await;

    assert_eq!(
        server.get_json("/customers/count").await,
        json!({"count": 4})
    );
    let top = server.get_json("/customers/top/3").await;
    let names: Vec<_> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("Bob"), json!("Amy"), json!("Zed")]);
    assert_eq!(
        top[1],
        json!({"id": amy, "name": "Amy", "country": "Norway", "scoring": 9})
    );
    let items = server.get_json("/customers/items").await;
    let names: Vec<_> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("Amy"), json!("Bob"), json!("Cat"), json!("Zed")]
    );
    assert_eq!(items[0].as_object().unwrap().len(), 4);
    assert_eq!(
        server.get_json(&format!("/customers/items/{amy}")).await,
        json!({"id": amy, "name": "Amy", "city": "Oslo", "country": "Norway", "scoring": 9})
    );
    for (path, status) in [
        ("/customers/top/0", 400),
        ("/customers/top/x", 400),
        ("/customers/top/-2", 400),
        ("/customers/items/not-a-uuid", 400),
        ("/customers/items/6f1c1a52-8d36-4c7e-9d3b-0a3f5b8e2c11", 404),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
}

#[tokio::test]
async fn customer_writes_change_the_view_and_its_stream_and_bad_ones_change_nothing() {
    let server = spawn_default().await;
    let mut stream = server.subscribe("/customer-events?revision=1", &[]).await;
    let id = post(&server, "/customers/items", customer("Amy", 3)).await;
    assert_eq!(
        stream.change().await,
        (1, json!({ id.clone(): customer("Amy", 3) }))
    );
    let r = server
        .send(
            "PATCH",
            &format!("/customers/items/{id}"),
            Some(json!({"scoring": 8})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(revision_of(&r), 2);
    assert_eq!(r.json::<Value>().await.unwrap()["scoring"], json!(8));
    assert_eq!(
        stream.change().await,
        (2, json!({ id.clone(): {"scoring": 8} }))
    );
    for (method, body) in [
        ("POST", json!({"name": "X", "city": "Y", "country": "Z"})),
        (
            "POST",
            json!({"name": "X", "city": "Y", "country": "Z", "scoring": 11}),
        ),
        (
            "POST",
            json!({"name": "X", "city": "Y", "country": "Z", "scoring": 1, "vip": true}),
        ),
        ("PATCH", json!({"scoring": "high"})),
        ("PATCH", json!({"name": null})),
        ("PATCH", json!({"tier": 1})),
    ] {
        let path = if method == "POST" {
            "/customers/items".to_string()
        } else {
            format!("/customers/items/{id}")
        };
        let r = server.send(method, &path, Some(body.clone())).await;
        assert_eq!(r.status(), 400, "{method} {body}");
    }
    assert!(stream.quiet_for(Duration::from_millis(200)).await);
    let r = server
        .send("DELETE", &format!("/customers/items/{id}"), None)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(revision_of(&r), 3);
    assert_eq!(stream.change().await, (3, json!({ id.clone(): null })));
    assert_eq!(
        server
            .send("DELETE", &format!("/customers/items/{id}"), None)
            .await
            .status(),
        404
    );
    let r = server.get("/customers").await;
    assert_eq!(revision_of(&r), 3);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn incidents_answer_items_item_and_groups_including_unknown_customers() {
    let server = spawn_default().await;
    post(&server, "/customers/items", customer("Amy", 3)).await;
    let a = post(&server, "/incidents/items", incident("Amy", 10.5)).await;
    let b = post(&server, "/incidents/items", incident("Ghost Ltd", 3.0)).await;
    post(&server, "/incidents/items", incident("Amy", 1.0)).await;
    let items = server.get_json("/incidents/items").await;
    assert_eq!(items.as_array().unwrap().len(), 3);
    for item in items.as_array().unwrap() {
        let keys: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["amount", "customerName", "id"]);
    }
    assert_eq!(
        server.get_json(&format!("/incidents/items/{a}")).await,
        json!({"id": a, "amount": 10.5, "customerName": "Amy", "category": "billing"})
    );
    let groups = server.get_json("/incidents/grouped-by-customer").await;
    assert_eq!(groups["Amy"].as_array().unwrap().len(), 2);
    assert_eq!(
        groups["Ghost Ltd"],
        json!([{"id": b, "amount": 3.0, "customerName": "Ghost Ltd"}])
    );
    assert_eq!(server.get("/incidents/items/xyz").await.status(), 400);
    let r = server.post("/incidents/items", incident("Amy", -1.0)).await;
    assert_eq!(r.status(), 400);
    let r = server
        .send(
            "PATCH",
            &format!("/incidents/items/{a}"),
            Some(json!({"amount": 2})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        server.get_json("/incidents").await[&a]["amount"],
        json!(2.0)
    );
}

#[tokio::test]
async fn a_backend_write_reaches_dashboard_subscribers_as_one_small_patch() {
    let server = spawn_default().await;
    for (name, score) in [("Amy", 5), ("Bob", 7)] {
        post(&server, "/customers/items", customer(name, score)).await;
    }
    post(&server, "/incidents/items", incident("Amy", 4.0)).await;
    let dash = eventually(&server.url(""), "/aggregates/dashboard", |_, d| {
        d["customersWithMostIncidents"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(dash["customerCount"], json!(2));

    let mut stream = server
        .subscribe("/aggregates/dashboard-events?snapshot=true", &[])
        .await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.event, "snapshot");
    let mut doc: Value = serde_json::from_str(&first.data).unwrap();
    let mut revision: u64 = first.id.parse().unwrap();

    // A new incident changes both incident lists, nothing else.
    post(&server, "/incidents/items", incident("Bob", 9.0)).await;
    let (rev, patch) = stream.change().await;
    assert_eq!(rev, revision + 1);
    let keys: Vec<_> = patch.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "customersWithHighestIncidentVolume",
            "customersWithMostIncidents"
        ]
    );
    doc = fold(doc, &[patch]);
    revision = rev;

    // A new top customer changes the count and the top list only.
    post(&server, "/customers/items", customer("Cid", 10)).await;
    let (rev, patch) = stream.change().await;
    assert_eq!(rev, revision + 1);
    let keys: Vec<_> = patch.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["customerCount", "topCustomers"]);
    doc = fold(doc, &[patch]);

    // A write that does not change the dashboard emits nothing on it.
    let amy_city = json!({"city": "Bergen"});
    let cid = server.get_json("/customers/items").await[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .send("PATCH", &format!("/customers/items/{cid}"), Some(amy_city))
        .await;
    assert!(stream.quiet_for(Duration::from_millis(500)).await);

    let r = server.get("/aggregates/dashboard").await;
    assert_eq!(revision_of(&r), rev);
    assert_eq!(r.headers()["x-stale"], "false");
    assert_eq!(r.json::<Value>().await.unwrap(), doc);
    assert_eq!(doc, server.get_json("/aggregates/dashboard/composed").await);
}

#[tokio::test]
async fn demo_data_fills_an_empty_database_and_the_dashboard_at_once() {
    let settings = Settings {
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    assert_eq!(
        server.get_json("/customers/count").await,
        json!({"count": 40})
    );
    assert_eq!(
        server
            .get_json("/incidents/items")
            .await
            .as_array()
            .unwrap()
            .len(),
        100
    );
    let dash = eventually(&server.url(""), "/aggregates/dashboard", |_, d| {
        d["customerCount"] == json!(40)
    })
    .await;
    for list in [
        "topCustomers",
        "customersWithMostIncidents",
        "customersWithHighestIncidentVolume",
    ] {
        assert_eq!(dash[list].as_array().unwrap().len(), 5, "{list}");
    }
    assert_eq!(
        dash,
        server.get_json("/aggregates/dashboard/composed").await
    );
}

#[tokio::test]
async fn the_dashboard_survives_a_killed_backend_marked_stale_and_recovers_by_itself() {
    crate::common::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backends.db");
    let db = db.to_str().unwrap();
    let backend_args = ["--db", db, "--services", "customers,incidents"];
    let mut backend = ChildServer::start(&backend_args, dir.path()).await;
    let base = backend.base();
    let client = reqwest::Client::new();
    post_id(&base, &client, "/customers/items", customer("Amy", 6)).await;
    post_id(&base, &client, "/incidents/items", incident("Amy", 3.0)).await;

    let aggregates_db = dir.path().join("aggregates.db");
    let settings = Settings {
        engine: Config {
            db: duality::settings::parse_database(aggregates_db.to_str().unwrap()).unwrap(),
            ..Config::ephemeral()
        },
        builtin: Builtin {
            services: Some(parse_services("aggregates").unwrap()),
            customers_url: Some(base.clone()),
            incidents_url: Some(base.clone()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    };
    let aggregates = spawn(settings).await;
    let agg = aggregates.url("");
    // The split process serves only the aggregates service.
    assert_eq!(aggregates.get("/customers").await.status(), 404);
    let before = eventually(&agg, "/aggregates/dashboard", |h, d| {
        d["customerCount"] == json!(1) && h["x-stale"] == "false"
    })
    .await;
    let mut stream = aggregates
        .subscribe("/aggregates/dashboard-events", &[("Last-Event-ID", "1")])
        .await;

    backend.kill_9();
    let stale = eventually(&agg, "/aggregates/dashboard", |h, _| h["x-stale"] == "true").await;
    assert_eq!(stale, before, "the last known state is served while stale");
    let health = aggregates.get_json("/healthz").await;
    assert_eq!(health["stale"], json!(true));
    assert_eq!(health["upstreams"]["customers"]["stale"], json!(true));
    // Stream consumers are told too, with a named event that plain
    // `onmessage` handlers ignore.
    let marked = stream.next().await.expect("stream ended");
    assert_eq!(marked.event, "stale", "{marked:?}");
    let data: Value = serde_json::from_str(&marked.data).unwrap();
    assert!(
        data["upstreams"]
            .as_array()
            .unwrap()
            .contains(&json!("customers"))
    );
    // And the operator: one warning names the lost upstream.
    assert!(
        crate::common::logs::contains(&["WARN", "lost the upstream", &base]),
        "no warning about the lost upstream in:\n{}",
        crate::common::logs::text()
    );

    let addr = backend.addr;
    drop(backend);
    let backend = ChildServer::restart_on(addr, &backend_args, dir.path()).await;
    post_id(
        &backend.base(),
        &client,
        "/customers/items",
        customer("Bob", 9),
    )
    .await;
    let after = eventually(&agg, "/aggregates/dashboard", |h, d| {
        h["x-stale"] == "false" && d["customerCount"] == json!(2)
    })
    .await;
    assert_eq!(
        after["topCustomers"][0],
        json!({"customerName": "Bob", "scoring": 9})
    );
    assert_eq!(aggregates.get_json("/healthz").await["stale"], json!(false));
    // The change arrived on the dashboard stream too, in order, and so did
    // the `fresh` mark.
    let mut seen = Vec::new();
    let mut fresh = false;
    while !fresh
        || seen
            .last()
            .map(|(_, p): &(u64, Value)| p.get("customerCount").is_none())
            .unwrap_or(true)
    {
        let e = stream.next().await.expect("stream ended");
        match e.event.as_str() {
            "fresh" => fresh = true,
            // One upstream regained before the other: still stale.
            "stale" => assert!(!fresh, "stale after fresh: {e:?}"),
            "message" => seen.push((
                e.id.parse().unwrap(),
                serde_json::from_str(&e.data).unwrap(),
            )),
            other => panic!("unexpected event {other}: {e:?}"),
        }
    }
    let revisions: Vec<u64> = seen.iter().map(|(r, _)| *r).collect();
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(revisions[0], 2);
    assert!(
        crate::common::logs::contains(&["INFO", "following the upstream again", &base]),
        "no line about the regained upstream in:\n{}",
        crate::common::logs::text()
    );
}

/// A backend that answers garbage, then 500s: the aggregates service stays
/// up, serves its last state marked stale, and never crashes.
#[tokio::test]
async fn a_backend_answering_garbage_or_500_never_crashes_the_aggregates_service() {
    use axum::routing::get;
    let garbage = axum::Router::new()
        .route(
            "/customers",
            get(|| async { ([("x-revision", "7")], "{not json") }),
        )
        .route(
            "/incidents",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/customer-events", get(|| async { "data: nonsense\n\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, garbage).await });
    let settings = Settings {
        builtin: Builtin {
            services: Some(parse_services("aggregates").unwrap()),
            customers_url: Some(base.clone()),
            incidents_url: Some(base),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    };
    let server = spawn(settings).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = server.get("/aggregates/dashboard").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-stale"], "true");
    assert_eq!(revision_of(&r), 0);
    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], json!("degraded"));
    assert!(
        health["upstreams"]["incidents"]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert_eq!(
        server.get("/aggregates/dashboard/composed").await.status(),
        503
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn separate_processes_chain_over_http_and_agree_with_composing_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let backend = ChildServer::start(
        &[
            "--db",
            ":memory:",
            "--services",
            "customers,incidents",
            "--demo-data",
        ],
        dir.path(),
    )
    .await;
    let aggregates = ChildServer::start(
        &[
            "--db",
            ":memory:",
            "--services",
            "aggregates",
            "--customers-url",
            &backend.base(),
            "--incidents-url",
            &backend.base(),
        ],
        dir.path(),
    )
    .await;
    let dash = eventually(&aggregates.base(), "/aggregates/dashboard", |_, d| {
        d["customerCount"] == json!(40)
    })
    .await;
    let composed: Value = reqwest::get(format!(
        "{}/aggregates/dashboard/composed",
        aggregates.base()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(dash, composed);
    let client = reqwest::Client::new();
    let r = client
        .get(format!(
            "{}/aggregates/dashboard-events?snapshot=true",
            aggregates.base()
        ))
        .send()
        .await
        .unwrap();
    let mut stream = Sse::new(r);
    let snapshot = stream.next().await.unwrap();
    let doc: Value = serde_json::from_str(&snapshot.data).unwrap();
    post_id(
        &backend.base(),
        &client,
        "/incidents/items",
        incident("Brand New Co", 1e9),
    )
    .await;
    let (_, patch) = stream.change().await;
    assert_eq!(
        patch,
        json!({"customersWithHighestIncidentVolume": fold(doc.clone(), std::slice::from_ref(&patch))["customersWithHighestIncidentVolume"].clone()})
    );
    assert_eq!(
        patch["customersWithHighestIncidentVolume"][0]["customerName"],
        json!("Brand New Co")
    );
}

#[tokio::test]
async fn the_aggregates_service_alone_needs_the_backend_urls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = Settings {
        builtin: Builtin {
            services: Some(parse_services("aggregates").unwrap()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    };
    crate::common::logs::capture();
    let err = duality_services::launch(settings, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--customers-url"), "{err}");
}
