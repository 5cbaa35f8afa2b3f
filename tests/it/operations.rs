//! Operations (README, "Configuration"): health, metrics, the OpenAPI document, compression.

use crate::common::spawn_default;
use serde_json::json;

#[tokio::test]
async fn healthz_reports_ok_the_epoch_and_each_views_revision() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    let r = server.get("/persons").await;
    let epoch = r.headers()["x-epoch"].to_str().unwrap().to_string();
    // Right after start the in-process aggregates service may still be
    // connecting its followers: "degraded" until they are live.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let health = loop {
        let health = server.get_json("/healthz").await;
        if health["status"] == json!("ok") || std::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(health["status"], json!("ok"), "{health}");
    assert_eq!(health["epoch"], json!(epoch));
    assert_eq!(health["revisions"]["persons"], json!(1));
    assert_eq!(health["revisions"]["locations"], json!(1));
}

#[tokio::test]
async fn metrics_count_writes_events_and_subscribers_in_prometheus_text() {
    let server = spawn_default().await;
    let mut stream = server.subscribe("/person-events", &[]).await;
    server.post("/persons", json!({"name":"Ann"})).await;
    // The store answers the writer before it fans the event out (and
    // counts it): scraping right after the POST could miss it.
    stream.change().await;
    let r = server.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for metric in [
        "duality_writes_total{outcome=\"committed\"}",
        "duality_events_total{view=\"persons\"}",
        "duality_subscribers{view=\"persons\"}",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_answers() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    let customer = json!({"name":"Cy","city":"Oslo","country":"Norway","scoring":3});
    let r = server.post("/customers/items", customer.clone()).await;
    let customer_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let incident = json!({"amount":5,"customerName":"Cy","category":"x"});
    let r = server.post("/incidents/items", incident.clone()).await;
    let incident_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = server.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], json!("3.1.0"));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = [
        ("GET", "/persons"),
        ("POST", "/persons"),
        ("GET", "/persons/{id}"),
        ("PATCH", "/persons/{id}"),
        ("DELETE", "/persons/{id}"),
        ("GET", "/locations"),
        ("GET", "/locations/{city}"),
        ("GET", "/person-events"),
        ("GET", "/location-events"),
        ("GET", "/streams"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/customers"),
        ("GET", "/customer-events"),
        ("GET", "/customers/count"),
        ("GET", "/customers/top/{limit}"),
        ("GET", "/customers/items"),
        ("POST", "/customers/items"),
        ("GET", "/customers/items/{id}"),
        ("PATCH", "/customers/items/{id}"),
        ("DELETE", "/customers/items/{id}"),
        ("GET", "/incidents"),
        ("GET", "/incident-events"),
        ("GET", "/incidents/items"),
        ("POST", "/incidents/items"),
        ("GET", "/incidents/items/{id}"),
        ("PATCH", "/incidents/items/{id}"),
        ("DELETE", "/incidents/items/{id}"),
        ("GET", "/incidents/grouped-by-customer"),
        ("GET", "/aggregates/dashboard"),
        ("GET", "/aggregates/dashboard-events"),
        ("GET", "/aggregates/dashboard/composed"),
        ("GET", "/"),
        ("GET", "/docs"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    expected.sort();
    assert_eq!(documented, expected);
    // Every documented route exists: none answers 404 or 405 (deletes last,
    // so the person they remove is there for the other methods).
    documented.sort_by_key(|(m, _)| m == "DELETE");
    for (method, path) in documented {
        let id = if path.starts_with("/customers") {
            customer_id.as_str()
        } else if path.starts_with("/incidents") {
            incident_id.as_str()
        } else {
            "1"
        };
        let concrete = path
            .replace("{id}", id)
            .replace("{city}", "Rome")
            .replace("{limit}", "3");
        // Several streams on one connection need at least one named.
        let concrete = if concrete == "/streams" {
            "/streams?s=a:persons&s=b:dashboard".to_string()
        } else {
            concrete
        };
        let body = match method.as_str() {
            "POST" if path.starts_with("/customers") => Some(customer.clone()),
            "POST" if path.starts_with("/incidents") => Some(incident.clone()),
            "POST" => Some(json!({"name":"Bob"})),
            "PATCH" => Some(json!({})),
            _ => None,
        };
        let r = server.send(&method, &concrete, body).await;
        assert!(
            r.status().is_success(),
            "{method} {concrete}: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn snapshots_are_compressed_on_request_but_streams_never_are() {
    let server = spawn_default().await;
    for i in 0..50 {
        server
            .post(
                "/persons",
                json!({"name": format!("person {i}"), "city": "Rome"}),
            )
            .await;
    }
    let r = server
        .client
        .get(server.url("/persons"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("content-encoding").unwrap(), "gzip");
    for stream in ["/person-events", "/streams?s=a:persons"] {
        let r = server
            .client
            .get(server.url(stream))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{stream}");
        assert!(r.headers().get("content-encoding").is_none(), "{stream}");
    }
}
