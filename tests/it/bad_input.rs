//! docs/PROTOCOL.md, "Errors", for the persons service: every person or id
//! its rules refuse is a 4xx with a JSON `{"error"}`, changes nothing and
//! produces no event in persons or locations. (Bad input of any service,
//! bodies that are not JSON, content types, sizes, methods, routes and
//! stream positions, is tested in crates/duality/tests/it/bad_input.rs.)

use std::time::Duration;

use crate::common::{TestServer, revision_of, spawn_default};
use serde_json::{Value, json};

struct Bad {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
    status: u16,
}

fn bad(method: &'static str, path: &'static str, body: &str, status: u16) -> Bad {
    Bad {
        method,
        path,
        headers: vec![("content-type", "application/json")],
        body: Some(body.as_bytes().to_vec()),
        status,
    }
}

fn bad_get(path: &'static str, headers: Vec<(&'static str, &'static str)>, status: u16) -> Bad {
    Bad {
        method: "GET",
        path,
        headers,
        body: None,
        status,
    }
}

fn cases() -> Vec<Bad> {
    vec![
        bad("POST", "/persons", r#"{"name":5}"#, 400),
        bad("POST", "/persons", r#"{"name":"Ann","city":7}"#, 400),
        bad("POST", "/persons", r#"{"name":"Ann","age":3}"#, 400),
        bad("POST", "/persons", r#"{}"#, 400),
        bad("POST", "/persons", r#"{"city":"Rome"}"#, 400),
        bad("POST", "/persons", r#"{"name":""}"#, 400),
        bad("POST", "/persons", r#"{"name":"   "}"#, 400),
        bad("POST", "/persons", r#"{"name":null}"#, 400),
        bad("POST", "/persons", r#"{"name":"Ann","city":""}"#, 400),
        // A new person has no city by leaving it out; documents hold no null.
        bad("POST", "/persons", r#"{"name":"Ann","city":null}"#, 400),
        bad("POST", "/persons", r#"[{"name":"Ann"}]"#, 400),
        bad("POST", "/persons", r#""Ann""#, 400),
        bad("PATCH", "/persons/1", r#"{"name":null}"#, 400),
        bad("PATCH", "/persons/1", r#"{"name":""}"#, 400),
        bad("PATCH", "/persons/1", r#"{"name":1}"#, 400),
        bad("PATCH", "/persons/1", r#"{"city":""}"#, 400),
        bad("PATCH", "/persons/1", r#"{"city":["Rome"]}"#, 400),
        bad("PATCH", "/persons/1", r#"{"age":3}"#, 400),
        bad("PATCH", "/persons/1", r#"[]"#, 400),
        bad("PATCH", "/persons/abc", r#"{"name":"X"}"#, 400),
        bad("PATCH", "/persons/-1", r#"{"name":"X"}"#, 400),
        bad("PATCH", "/persons/1.5", r#"{"name":"X"}"#, 400),
        bad("PATCH", "/persons/99", r#"{"name":"X"}"#, 404),
        bad("DELETE", "/persons/abc", "", 400),
        bad("DELETE", "/persons/99999999999999999999999", "", 400),
        bad("DELETE", "/persons/99", "", 404),
        bad("PUT", "/persons", r#"{"name":"X"}"#, 405),
        bad("POST", "/locations", r#"{"Rome":{"total":9}}"#, 405),
        bad_get("/persons/abc", vec![], 400),
        bad_get("/persons/0", vec![], 400),
        bad_get("/persons/42", vec![], 404),
        bad_get("/locations/Atlantis", vec![], 404),
    ]
}

async fn send(server: &TestServer, case: &Bad) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut req = server.client.request(method, server.url(case.path));
    for (k, v) in &case.headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = &case.body {
        req = req.body(body.clone());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_person_or_id_the_rules_refuse_is_a_json_4xx_that_changes_nothing_and_emits_no_event()
{
    let server = spawn_default().await;
    let r = server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    assert_eq!(r.status(), 201);
    let persons_before = server.get_json("/persons").await;
    let locations_before = server.get_json("/locations").await;
    let mut persons = server.subscribe("/person-events?revision=2", &[]).await;
    let mut locations = server.subscribe("/location-events?revision=2", &[]).await;

    for case in cases() {
        let r = send(&server, &case).await;
        let what = format!("{} {} {:?}", case.method, case.path, case.headers);
        assert_eq!(r.status().as_u16(), case.status, "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{what}: {body}");
    }

    let r = server.get("/persons").await;
    assert_eq!(revision_of(&r), 1);
    assert_eq!(r.json::<Value>().await.unwrap(), persons_before);
    assert_eq!(server.get_json("/locations").await, locations_before);
    assert!(persons.quiet_for(Duration::from_millis(300)).await);
    assert!(locations.quiet_for(Duration::from_millis(100)).await);
    // The next good write is revision 2 and id 2: nothing was consumed.
    let r = server.post("/persons", json!({"name":"Bob"})).await;
    assert_eq!(revision_of(&r), 2);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], json!(2));
}
