//! Subscribing to part of a view (docs/PROTOCOL.md, "Filters"): a
//! snapshot narrowed with `key=` and `where=` is the view at its
//! `X-Revision` restricted to the matching documents, with its own `ETag`;
//! and a query parameter a path does not know is a `400` naming it, on
//! every path, instead of being ignored.

use serde_json::{Value, json};

use crate::common::{header, revision_of, spawn_default};

fn encoded(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_snapshot_narrowed_by_keys_or_where_holds_only_the_matching_documents() {
    let server = spawn_default().await;
    server.note("a", "one", Some("red")).await;
    server.note("b", "two", Some("blue")).await;
    server.note("c", "three", Some("red")).await;
    let whole = server.get("/notes").await;
    let revision = revision_of(&whole);

    let by_key = server.get("/notes?key=a&key=b&key=missing").await;
    assert_eq!(by_key.status(), 200);
    assert_eq!(revision_of(&by_key), revision);
    assert_eq!(
        by_key.json::<Value>().await.unwrap(),
        json!({"a": {"text": "one", "tag": "red"}, "b": {"text": "two", "tag": "blue"}})
    );

    let red = format!("/notes?where={}", encoded(r#"{"tag":"red"}"#));
    let by_where = server.get(&red).await;
    assert_eq!(revision_of(&by_where), revision);
    assert_eq!(
        by_where.json::<Value>().await.unwrap(),
        json!({"a": {"text": "one", "tag": "red"}, "c": {"text": "three", "tag": "red"}})
    );

    let both = format!("{red}&key=a&key=b");
    let body: Value = server.get(&both).await.json().await.unwrap();
    assert_eq!(body, json!({"a": {"text": "one", "tag": "red"}}));

    let none: Value = server.get("/notes?key=nothing").await.json().await.unwrap();
    assert_eq!(none, json!({}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_narrowed_snapshot_has_its_own_etag_and_answers_304_and_gzip() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    server.note("b", "two", None).await;
    let whole = server.get("/notes").await;
    let part = server.get("/notes?key=a").await;
    let (whole_tag, part_tag) = (header(&whole, "etag"), header(&part, "etag"));
    assert_ne!(whole_tag, part_tag, "another body, another tag");
    assert_eq!(
        header(&part, "link"),
        "</note-events>; rel=\"duality-stream\""
    );
    let again = server
        .client
        .get(server.url("/notes?key=a"))
        .header("if-none-match", &part_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let other = server
        .client
        .get(server.url("/notes?key=b"))
        .header("if-none-match", &part_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another filter's tag does not match");
    let zipped = server
        .client
        .get(server.url("/notes?key=b"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert_eq!(text, r#"{"b":{"text":"two"}}"#);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_filter_or_an_unknown_parameter_is_a_400_naming_it_on_every_path() {
    let server = spawn_default().await;
    server.note("a", "one", None).await;
    let cases = [
        ("/notes?warehouse=north", "warehouse"),
        ("/notes?limit=2", "limit"),
        ("/notes?where=%5B1%5D", "where"),
        ("/notes?where=%7B", "where"),
        ("/notes?where=%7B%7D&where=%7B%7D", "where"),
        ("/note-events?limit=2", "limit"),
        ("/note-events?snapshot=true&colour=red", "colour"),
        ("/healthz?verbose=1", "verbose"),
        ("/openapi.json?x=1", "x"),
        ("/?debug=1", "debug"),
    ];
    for (path, named) in cases {
        let r = server.get(path).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{path}: {error}");
    }
    let too_many: String = (0..=1000).map(|i| format!("key=k{i}&")).collect();
    let r = server.get(&format!("/notes?{too_many}")).await;
    assert_eq!(r.status(), 400);
    // The page's assets take their version, and nothing changed meanwhile.
    assert_eq!(server.get("/assets/app.js?v=1").await.status(), 200);
    assert_eq!(
        server.get_json("/notes").await,
        json!({"a": {"text": "one"}})
    );
    server.stop().await.unwrap();
}
