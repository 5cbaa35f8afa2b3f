//! docs/PROTOCOL.md, "Errors", on the server's side: a handler that reads
//! or writes a view this process does not serve gets an error, never a
//! panic, and the client a JSON 4xx; a fault of the server is a `500` whose
//! body says nothing of its cause, which goes to the log instead.

use crate::common::{logs, notes, spawn_default};
use serde_json::{Value, json};

#[tokio::test]
async fn a_view_this_process_does_not_serve_is_a_404_and_the_server_keeps_serving() {
    let server = spawn_default().await;
    let r = server.get("/elsewhere/x").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("elsewhere"), "{body}");

    // A write that declares it is refused too, and writes nothing.
    let r = server.put("/elsewhere/x", json!({})).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    // Its snapshot and stream are no routes of this process.
    for path in ["/elsewhere", "/elsewhere-events"] {
        assert_eq!(server.get(path).await.status(), 404, "{path}");
    }

    // The server goes on serving, as often as it is asked.
    for _ in 0..3 {
        assert_eq!(server.get("/elsewhere/x").await.status(), 404);
    }
    let r = server.note("after", "still here", None).await;
    assert_eq!(crate::common::revision_of(&r), 1);
    assert_eq!(
        server.get_json("/notes").await,
        json!({"after": {"text": "still here"}})
    );
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert!(!server.has_stopped());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_internal_error_is_a_500_that_names_no_cause_and_the_cause_is_logged() {
    let server = spawn_default().await;
    let r = server.get("/broken").await;
    assert_eq!(r.status(), 500);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"internal server error"}"#
    );
    assert!(
        logs::contains(&[
            "answering 500",
            "reading the broken route",
            notes::SECRET_CAUSE
        ]),
        "the cause is not in the log"
    );
    // And the server goes on.
    server.note("a", "Ay", None).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
}
