//! docs/PROTOCOL.md, "Errors": every bad input the engine sees for any
//! service (a body that is not the JSON a route takes, a wrong content
//! type, a body too large, a method or route that does not exist, a stream
//! position that does not parse) is a 4xx with a JSON `{"error"}`, changes
//! nothing and produces no event.

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
    let mut cases = vec![
        // Not JSON, or not the JSON the route takes.
        bad("PUT", "/notes/a", r#"{"text":"#, 400),
        bad("PUT", "/notes/a", r#"{"text":"A"} trailing"#, 400),
        bad("PUT", "/notes/a", "", 400),
        bad("PUT", "/notes/a", r#"{"text":5}"#, 400),
        bad("PUT", "/notes/a", r#"{"text":"A","extra":3}"#, 400),
        bad("PUT", "/notes/a", r#"{}"#, 400),
        bad("PUT", "/notes/a", r#"{"text":null}"#, 400),
        bad("PUT", "/notes/a", r#"[{"text":"A"}]"#, 400),
        bad("PUT", "/notes/a", r#""A""#, 400),
        // Refused by the write itself, after the body parsed.
        bad("PUT", "/notes/a", r#"{"text":"   "}"#, 400),
        bad("PUT", "/notes/a", r#"{"text":"A","tag":""}"#, 400),
        bad("PUT", "/notes/a%20b", r#"{"text":"A"}"#, 400),
        bad("DELETE", "/notes/nobody", "", 404),
        // The creating routes (create_once) refuse the same bodies.
        bad("POST", "/notes", r#"{"text":"#, 400),
        bad("POST", "/notes", r#"{"text":"A","extra":3}"#, 400),
        bad("POST", "/notes", r#"{"text":"   "}"#, 400),
        bad("POST", "/tags/rome/notes", r#"{"text":"A","tag":"b"}"#, 400),
        bad("POST", "/tags/%20/notes", r#"{"text":"A"}"#, 400),
        // No such method, route or document.
        bad("PATCH", "/notes", r#"{"text":"A"}"#, 405),
        bad("PUT", "/notes", r#"{"text":"A"}"#, 405),
        bad("POST", "/tags", r#"{"rome":{"total":9}}"#, 405),
        // A method the path does not take is 405, whatever the query.
        bad("PATCH", "/notes?key=a", r#"{"text":"A"}"#, 405),
        bad("TRACE", "/notes?where=x", "", 405),
        bad("DELETE", "/notes/a?x=1", "", 400),
        bad("POST", "/nowhere", r#"{}"#, 404),
        bad_get("/notes/nobody", vec![], 404),
        bad_get("/notes/a%20b", vec![], 400),
        bad_get("/nowhere", vec![], 404),
        // Stream positions that do not parse.
        bad_get("/note-events", vec![("X-Revision", "abc")], 400),
        bad_get("/note-events", vec![("X-Revision", "-3")], 400),
        bad_get("/note-events", vec![("Last-Event-ID", "x")], 400),
        bad_get("/note-events?revision=abc", vec![], 400),
        bad_get("/note-events?revision=-3", vec![], 400),
        bad_get("/tag-events?snapshot=maybe", vec![], 400),
    ];
    // Wrong or missing content type: 415.
    for content_type in [None, Some("text/plain")] {
        cases.push(Bad {
            method: "PUT",
            path: "/notes/a",
            headers: content_type
                .map(|c| vec![("content-type", c)])
                .unwrap_or_default(),
            body: Some(br#"{"text":"A"}"#.to_vec()),
            status: 415,
        });
    }
    // Bodies over 1 MiB: 413.
    let mut big = br#"{"text":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
    big.extend(br#""}"#);
    cases.push(Bad {
        method: "PUT",
        path: "/notes/a",
        headers: vec![("content-type", "application/json")],
        body: Some(big),
        status: 413,
    });
    // Not UTF-8.
    cases.push(Bad {
        method: "PUT",
        path: "/notes/a",
        headers: vec![("content-type", "application/json")],
        body: Some(b"{\"text\":\"\xff\xfe\"}".to_vec()),
        status: 400,
    });
    cases
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
async fn every_bad_input_is_a_json_4xx_that_changes_nothing_and_emits_no_event() {
    let server = spawn_default().await;
    server.note("first", "First", Some("rome")).await;
    let notes_before = server.get_json("/notes").await;
    let tags_before = server.get_json("/tags").await;
    let mut notes = server.subscribe("/note-events?revision=2", &[]).await;
    let mut tags = server.subscribe("/tag-events?revision=2", &[]).await;

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

    let r = server.get("/notes").await;
    assert_eq!(revision_of(&r), 1);
    assert_eq!(r.json::<Value>().await.unwrap(), notes_before);
    assert_eq!(server.get_json("/tags").await, tags_before);
    assert!(notes.quiet_for(Duration::from_millis(300)).await);
    assert!(tags.quiet_for(Duration::from_millis(100)).await);
    // The next good write is revision 2 of each view: nothing was consumed.
    let r = server.note("second", "Second", Some("oslo")).await;
    assert_eq!(revision_of(&r), 2);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"key": "second"}));
    assert_eq!(notes.change().await.0, 2);
    assert_eq!(tags.change().await, (2, json!({"oslo": {"total": 1}})));
}
