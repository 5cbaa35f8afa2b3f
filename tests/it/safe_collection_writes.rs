//! Collections for real apps (docs/PROTOCOL.md, "One
//! document: ETag and conditional writes"): a document's `ETag` and
//! `If-Match`/`If-None-Match` (exactly one of two writers with the same
//! tag wins, on SQLite and across two PostgreSQL processes), server-made
//! time-ordered keys (`POST …/items`, with `Idempotency-Key`), and
//! atomic multi-document writes (`PATCH /collections/NAME`: one revision,
//! one event, all or nothing, a limit named when exceeded).

use std::time::Duration;

use crate::common::{ChildServer, TestServer, fold, header, revision_of, spawn};
use duality_services::Builtin;
use duality_services::settings::{BatchLimit, Settings, parse_collection};
use serde_json::{Value, json};

fn with_collections(args: &[&str]) -> Settings {
    Settings {
        builtin: Builtin {
            collections: args.iter().map(|a| parse_collection(a).unwrap()).collect(),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    }
}

/// A request to `base + path` with `headers` and an optional JSON body.
async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn on(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    send(&s.client, method, &s.url(path), headers, body).await
}

async fn error_of(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

/// The revision in an `ETag` of the form `"EPOCH-REVISION"`.
fn tagged_revision(etag: &str, epoch: &str) -> u64 {
    etag.strip_prefix(&format!("\"{epoch}-"))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{etag} is not \"{epoch}-REVISION\""))
        .parse()
        .unwrap()
}

/// The epoch the server's revisions (and so its ETags) belong to.
async fn epoch_of(s: &TestServer) -> String {
    header(&s.get("/collections/notes").await, "x-epoch")
}

#[tokio::test]
async fn a_document_answers_the_etag_of_its_last_change_and_the_collection_s_revision() {
    let s = spawn(with_collections(&["notes"])).await;
    let epoch = epoch_of(&s).await;
    let a = on(
        &s,
        "PUT",
        "/collections/notes/items/a",
        &[],
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(a.status(), 201);
    assert_eq!(tagged_revision(&header(&a, "etag"), &epoch), 1);
    on(
        &s,
        "PUT",
        "/collections/notes/items/b",
        &[],
        Some(json!({"v": 2})),
    )
    .await;
    let got = s.get("/collections/notes/items/a").await;
    assert_eq!(got.status(), 200);
    let etag = header(&got, "etag");
    assert_eq!(
        tagged_revision(&etag, &epoch),
        1,
        "a was last changed by revision 1"
    );
    assert_eq!(revision_of(&got), 2, "read at the collection's revision 2");
    assert_eq!(got.json::<Value>().await.unwrap(), json!({"v": 1}));
    // The same document again is no change: its ETag stays.
    let same = on(
        &s,
        "PUT",
        "/collections/notes/items/a",
        &[],
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!((same.status().as_u16(), revision_of(&same)), (200, 2));
    assert_eq!(header(&same, "etag"), etag);
    let patched = on(
        &s,
        "PATCH",
        "/collections/notes/items/a",
        &[],
        Some(json!({"w": 3})),
    )
    .await;
    assert_eq!(tagged_revision(&header(&patched, "etag"), &epoch), 3);
    let fresh = on(
        &s,
        "GET",
        "/collections/notes/items/b",
        &[(
            "if-none-match",
            &header(&s.get("/collections/notes/items/b").await, "etag"),
        )],
        None,
    )
    .await;
    assert_eq!(fresh.status(), 304);
}

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_etag_and_changes_nothing() {
    let s = spawn(with_collections(&["notes"])).await;
    let first = on(
        &s,
        "PUT",
        "/collections/notes/items/k",
        &[],
        Some(json!({"v": 1})),
    )
    .await;
    let old = header(&first, "etag");
    let second = on(
        &s,
        "PUT",
        "/collections/notes/items/k",
        &[("if-match", &old)],
        Some(json!({"v": 2})),
    )
    .await;
    assert_eq!(second.status(), 200);
    let current = header(&second, "etag");
    assert_ne!(current, old);
    let mut stream = s
        .subscribe("/collections/notes/events?revision=3", &[])
        .await;
    let stale = [("if-match", old.as_str())];
    for (method, body) in [
        ("PUT", Some(json!({"v": 3}))),
        ("PATCH", Some(json!({"v": 3}))),
        ("DELETE", None),
    ] {
        let r = on(&s, method, "/collections/notes/items/k", &stale, body).await;
        assert_eq!(r.status(), 412, "{method}");
        assert_eq!(header(&r, "content-type"), "application/json");
        let why = error_of(r).await;
        assert!(
            why.contains("If-Match") && why.contains(&current),
            "{method}: {why}"
        );
    }
    // `*` means "exists": a PUT of a new key with it is refused too.
    let absent = on(
        &s,
        "PUT",
        "/collections/notes/items/new",
        &[("if-match", "*")],
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(absent.status(), 412);
    assert!(error_of(absent).await.contains("does not exist"));
    assert!(
        stream.quiet_for(Duration::from_millis(300)).await,
        "no event"
    );
    assert_eq!(revision_of(&s.get("/collections/notes").await), 2);
    assert_eq!(
        s.get_json("/collections/notes").await,
        json!({"k": {"v": 2}})
    );
    // The current tag, or `*`, lets each write through.
    let star = on(
        &s,
        "PATCH",
        "/collections/notes/items/k",
        &[("if-match", "*")],
        Some(json!({"w": 1})),
    )
    .await;
    assert_eq!(star.status(), 200);
    let now = header(&star, "etag");
    let gone = on(
        &s,
        "DELETE",
        "/collections/notes/items/k",
        &[("if-match", &now)],
        None,
    )
    .await;
    assert_eq!(gone.status(), 204);
    // A document that is gone is a 404, whatever the conditions.
    let again = on(
        &s,
        "DELETE",
        "/collections/notes/items/k",
        &[("if-match", &now)],
        None,
    )
    .await;
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn if_none_match_star_makes_a_put_create_only() {
    let s = spawn(with_collections(&["notes"])).await;
    let create = [("if-none-match", "*")];
    let first = on(
        &s,
        "PUT",
        "/collections/notes/items/k",
        &create,
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(first.status(), 201);
    let second = on(
        &s,
        "PUT",
        "/collections/notes/items/k",
        &create,
        Some(json!({"v": 2})),
    )
    .await;
    assert_eq!(second.status(), 412);
    assert!(error_of(second).await.contains("If-None-Match"));
    assert_eq!(
        s.get_json("/collections/notes").await,
        json!({"k": {"v": 1}})
    );
    assert_eq!(revision_of(&s.get("/collections/notes").await), 1);
}

#[tokio::test]
async fn malformed_conditions_are_400_and_change_nothing() {
    let s = spawn(with_collections(&["notes"])).await;
    on(
        &s,
        "PUT",
        "/collections/notes/items/k",
        &[],
        Some(json!({"v": 1})),
    )
    .await;
    for (name, value) in [
        ("if-match", "no-quotes"),
        ("if-match", "*, \"x\""),
        ("if-none-match", "\"unterminated"),
        ("if-match", "\"a\" *"),
    ] {
        for method in ["GET", "PUT", "PATCH", "DELETE"] {
            let body = (method == "PUT" || method == "PATCH").then(|| json!({"v": 9}));
            let r = on(
                &s,
                method,
                "/collections/notes/items/k",
                &[(name, value)],
                body,
            )
            .await;
            assert_eq!(r.status(), 400, "{method} {name}: {value:?}");
            assert!(
                error_of(r).await.to_lowercase().contains(name),
                "{method} {name}"
            );
        }
    }
    assert_eq!(revision_of(&s.get("/collections/notes").await), 1);
}

/// `writers` concurrent requests with the same `headers` against the
/// servers at `bases` (round-robin), each with its own body; answers each
/// writer's status and the body it sent.
async fn race(
    client: &reqwest::Client,
    bases: &[String],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    writers: usize,
) -> Vec<(u16, Value)> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(writers));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = format!("{}{path}", bases[w % bases.len()]);
        let (client, start, method) = (client.clone(), start.clone(), method.to_string());
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        tasks.push(tokio::spawn(async move {
            // Each body differs from every earlier one: a write that
            // changes nothing keeps the ETag, and would let another through.
            let body = json!({"writer": w, "race": now_text()});
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            start.wait().await;
            let r = send(&client, &method, &url, &pairs, Some(body.clone())).await;
            (r.status().as_u16(), body)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Something no earlier request of a race sent.
fn now_text() -> String {
    format!("{:?}", std::time::SystemTime::now())
}

/// Races writers with one ETag, then writers creating one key, against
/// `bases`; exactly one of each race wins, the others get 412, and the
/// document is the winner's, at one revision per winner.
async fn exactly_one_wins(client: &reqwest::Client, bases: &[String], rounds: usize) {
    const WRITERS: usize = 8;
    let item = |k: &str| format!("/collections/notes/items/{k}");
    let first = send(
        client,
        "PUT",
        &format!("{}{}", bases[0], item("k")),
        &[],
        Some(json!({"writer": "first"})),
    )
    .await;
    assert_eq!(first.status(), 201);
    let mut etag = header(&first, "etag");
    let mut writes = 1;
    for round in 0..rounds {
        let method = if round % 2 == 0 { "PUT" } else { "PATCH" };
        let answers = race(
            client,
            bases,
            method,
            &item("k"),
            &[("if-match", &etag)],
            WRITERS,
        )
        .await;
        let won: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
            .collect();
        let refused = answers.iter().filter(|(s, _)| *s == 412).count();
        assert_eq!(
            (won.len(), refused),
            (1, WRITERS - 1),
            "round {round}: {answers:?}"
        );
        writes += 1;
        // Every process serves the winner's write, under one new ETag.
        let before = etag.clone();
        for base in bases {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let r = send(client, "GET", &format!("{base}{}", item("k")), &[], None).await;
                if revision_of(&r) >= writes {
                    assert_eq!(revision_of(&r), writes, "one revision per winner");
                    let now = header(&r, "etag");
                    assert_ne!(now, before);
                    if base != &bases[0] {
                        assert_eq!(now, etag, "the same ETag on every process");
                    }
                    etag = now;
                    let doc: Value = r.json().await.unwrap();
                    assert_eq!(doc["writer"], won[0]["writer"], "round {round} on {base}");
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{base} stuck before {writes}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Creating one new key: exactly one PUT with If-None-Match: * wins.
        let key = format!("new-{round}");
        let answers = race(
            client,
            bases,
            "PUT",
            &item(&key),
            &[("if-none-match", "*")],
            WRITERS,
        )
        .await;
        let created = answers.iter().filter(|(s, _)| *s == 201).count();
        let refused = answers.iter().filter(|(s, _)| *s == 412).count();
        assert_eq!(
            (created, refused),
            (1, WRITERS - 1),
            "create {key}: {answers:?}"
        );
        writes += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_exactly_one_of_two_writers_with_the_same_etag_wins() {
    let s = spawn(with_collections(&["notes"])).await;
    exactly_one_wins(&s.client, &[s.url("")], 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_two_postgresql_processes_exactly_one_writer_with_the_same_etag_wins() {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--db",
        &url,
        "--services",
        "collections",
        "--collection",
        "notes",
    ];
    let a = ChildServer::start(&args, dir.path()).await;
    let b = ChildServer::start(&args, dir.path()).await;
    let client = reqwest::Client::new();
    exactly_one_wins(&client, &[a.base(), b.base()], 6).await;
}

#[tokio::test]
async fn post_makes_time_ordered_keys_whose_location_serves_the_document() {
    let s = spawn(with_collections(&["notes"])).await;
    let mut keys = Vec::new();
    for i in 0..20 {
        let r = s.post("/collections/notes/items", json!({"n": i})).await;
        assert_eq!(r.status(), 201);
        assert_eq!(revision_of(&r), i + 1);
        let location = header(&r, "location");
        let etag = header(&r, "etag");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["document"], json!({"n": i}));
        let key = body["key"].as_str().unwrap().to_string();
        let uuid = uuid::Uuid::parse_str(&key).unwrap();
        assert_eq!(uuid.get_version_num(), 7, "{key}");
        assert_eq!(location, format!("/collections/notes/items/{key}"));
        let got = s.get(&location).await;
        assert_eq!(got.status(), 200);
        assert_eq!(header(&got, "etag"), etag);
        assert_eq!(got.json::<Value>().await.unwrap(), json!({"n": i}));
        keys.push(key);
    }
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, keys, "keys made later sort later, and none twice");
    let view = s.get_json("/collections/notes").await;
    assert_eq!(view.as_object().unwrap().len(), 20);
    // What a PUT refuses, a POST refuses too.
    assert_eq!(
        s.post("/collections/notes/items", json!([1]))
            .await
            .status(),
        400
    );
    let null = s
        .post("/collections/notes/items", json!({"a": [null]}))
        .await;
    assert_eq!(null.status(), 400);
    assert_eq!(revision_of(&s.get("/collections/notes").await), 20);
}

/// What a client sees of an answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    location: String,
    revision: String,
    etag: String,
    body: Value,
}

async fn answer(r: reqwest::Response) -> Answer {
    Answer {
        status: r.status().as_u16(),
        location: header(&r, "location"),
        revision: header(&r, "x-revision"),
        etag: header(&r, "etag"),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn post_with_an_idempotency_key_answers_a_repeat_with_its_first_outcome() {
    let s = spawn(with_collections(&["notes"])).await;
    let post = |key: &'static str, body: Value| {
        let s = &s;
        async move {
            on(
                s,
                "POST",
                "/collections/notes/items",
                &[("idempotency-key", key)],
                Some(body),
            )
            .await
        }
    };
    let first = answer(post("order-1", json!({"item": "bolt"})).await).await;
    assert_eq!(first.status, 201);
    let again = answer(post("order-1", json!({"item": "bolt"})).await).await;
    assert_eq!(again, first, "the same key, Location, revision and ETag");
    let reused = post("order-1", json!({"item": "nut"})).await;
    assert_eq!(reused.status(), 422);
    let other = answer(post("order-2", json!({"item": "bolt"})).await).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.location, first.location);
    let view = s.get_json("/collections/notes").await;
    assert_eq!(view.as_object().unwrap().len(), 2, "{view}");
    let bad = post("", json!({"item": "bolt"})).await;
    assert_eq!(bad.status(), 400);
}

fn limited(limit: usize, args: &[&str]) -> Settings {
    let mut settings = with_collections(args);
    settings.builtin.collection_batch_limit = BatchLimit(limit);
    settings
}

#[tokio::test]
async fn a_collection_patch_creates_merges_and_deletes_in_one_revision_and_one_event() {
    let s = spawn(with_collections(&["notes"])).await;
    on(
        &s,
        "PUT",
        "/collections/notes/items/a",
        &[],
        Some(json!({"v": 1, "old": true})),
    )
    .await;
    on(
        &s,
        "PUT",
        "/collections/notes/items/b",
        &[],
        Some(json!({"v": 2})),
    )
    .await;
    let mut stream = s
        .subscribe("/collections/notes/events?revision=1", &[])
        .await;
    let mut patches = vec![stream.change().await.1, stream.change().await.1];
    let body =
        json!({"a": {"old": null, "v": 10}, "b": null, "c": {"v": 3, "gone": null}, "zz": null});
    let r = on(&s, "PATCH", "/collections/notes", &[], Some(body)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(revision_of(&r), 3);
    let epoch = header(&s.get("/collections/notes").await, "x-epoch");
    assert_eq!(
        header(&r, "etag"),
        format!("\"{epoch}-3\""),
        "the snapshot's ETag"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"a": {"v": 10}, "b": null, "c": {"v": 3}, "zz": null})
    );
    let (revision, patch) = stream.change().await;
    assert_eq!(revision, 3);
    assert_eq!(
        patch,
        json!({"a": {"old": null, "v": 10}, "b": null, "c": {"v": 3}})
    );
    patches.push(patch);
    assert!(
        stream.quiet_for(Duration::from_millis(300)).await,
        "one event"
    );
    let view = s.get_json("/collections/notes").await;
    assert_eq!(view, json!({"a": {"v": 10}, "c": {"v": 3}}));
    assert_eq!(fold(json!({}), &patches), view);
    // Each changed document's ETag is the patch's revision.
    let c = s.get("/collections/notes/items/c").await;
    assert_eq!(header(&c, "etag"), format!("\"{epoch}-3\""));
    // Nothing to change: no revision, no event.
    let same = on(
        &s,
        "PATCH",
        "/collections/notes",
        &[],
        Some(json!({"c": {"v": 3}, "b": null})),
    )
    .await;
    assert_eq!((same.status().as_u16(), revision_of(&same)), (200, 3));
    assert!(stream.quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn one_document_the_schema_refuses_refuses_the_whole_patch_naming_its_key_and_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("orders.json");
    std::fs::write(
        &schema,
        json!({"type": "object", "required": ["item"],
               "properties": {"item": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}})
        .to_string(),
    )
    .unwrap();
    let arg = format!("orders={}", schema.display());
    let s = spawn(with_collections(&[&arg])).await;
    let ok = json!({"item": "bolt", "quantity": 1});
    on(
        &s,
        "PUT",
        "/collections/orders/items/o1",
        &[],
        Some(ok.clone()),
    )
    .await;
    let mut stream = s
        .subscribe("/collections/orders/events?revision=2", &[])
        .await;
    let cases = [
        (
            json!({"o2": {"item": "nut"}, "o3": {"item": "x", "quantity": 0}}),
            "\"o3\"",
            "\"/quantity\"",
        ),
        (
            json!({"o1": {"item": null}, "o2": {"item": "nut"}}),
            "\"o1\"",
            "\"\"",
        ),
        (
            json!({"o2": {"item": "nut", "tags": [null]}}),
            "\"o2\"",
            "\"/tags/0\"",
        ),
        (json!({"o2": {"item": "nut"}, "o9": 5}), "\"o9\"", "object"),
        (
            json!({"o2": {"item": "nut"}, "": {"item": "x"}}),
            "\"\"",
            "1 to 256",
        ),
    ];
    for (body, key, pointer) in cases {
        let r = on(&s, "PATCH", "/collections/orders", &[], Some(body.clone())).await;
        assert_eq!(r.status(), 400, "{body}");
        let why = error_of(r).await;
        assert!(
            why.contains(&format!("the document {key}")),
            "{body}: {why}"
        );
        assert!(why.contains(pointer), "{body}: {why}");
    }
    assert!(
        stream.quiet_for(Duration::from_millis(300)).await,
        "no event"
    );
    let view = s.get("/collections/orders").await;
    assert_eq!(revision_of(&view), 1);
    assert_eq!(view.json::<Value>().await.unwrap(), json!({"o1": ok}));
}

#[tokio::test]
async fn a_collection_patch_over_the_limit_is_413_naming_it_and_changes_nothing() {
    let s = spawn(limited(3, &["notes"])).await;
    let four = json!({"a": {}, "b": {}, "c": {}, "d": {}});
    let r = on(&s, "PATCH", "/collections/notes", &[], Some(four)).await;
    assert_eq!(r.status(), 413);
    let why = error_of(r).await;
    assert!(
        why.contains("at most 3") && why.contains("names 4"),
        "{why}"
    );
    let three = json!({"a": {}, "b": {}, "c": {}});
    assert_eq!(
        on(&s, "PATCH", "/collections/notes", &[], Some(three))
            .await
            .status(),
        200
    );
    assert_eq!(revision_of(&s.get("/collections/notes").await), 1);
    let doc = s.get_json("/openapi.json").await;
    let patch = &doc["paths"]["/collections/notes"]["patch"];
    assert_eq!(
        patch["requestBody"]["content"]["application/json"]["schema"]["maxProperties"],
        json!(3)
    );
    assert!(patch["responses"].get("412").is_some() && patch["responses"].get("413").is_some());
}

#[tokio::test]
async fn the_batch_limit_is_a_flag_and_a_bad_one_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--db",
        ":memory:",
        "--services",
        "collections",
        "--collection",
        "notes",
        "--collection-batch-limit",
        "2",
    ];
    let child = ChildServer::start(&args, dir.path()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/collections/notes", child.base());
    let r = send(
        &client,
        "PATCH",
        &url,
        &[],
        Some(json!({"a": {}, "b": {}, "c": {}})),
    )
    .await;
    assert_eq!(r.status(), 413);
    assert!(error_of(r).await.contains("at most 2"));
    drop(child);
    for bad in ["0", "100001", "many"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_duality"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--db",
                ":memory:",
                "--collection-batch-limit",
                bad,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("batch limit"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn if_match_on_a_collection_patch_is_checked_against_the_snapshot_s_etag() {
    let s = spawn(with_collections(&["notes"])).await;
    on(
        &s,
        "PUT",
        "/collections/notes/items/a",
        &[],
        Some(json!({"v": 1})),
    )
    .await;
    let etag = header(&s.get("/collections/notes").await, "etag");
    let ok = on(
        &s,
        "PATCH",
        "/collections/notes",
        &[("if-match", &etag)],
        Some(json!({"b": {"v": 2}})),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let stale = on(
        &s,
        "PATCH",
        "/collections/notes",
        &[("if-match", &etag)],
        Some(json!({"c": {"v": 3}})),
    )
    .await;
    assert_eq!(stale.status(), 412);
    assert!(error_of(stale).await.contains("the collection notes"));
    assert_eq!(
        s.get_json("/collections/notes").await,
        json!({"a": {"v": 1}, "b": {"v": 2}})
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_naming_1_mib() {
    let s = spawn(with_collections(&["notes"])).await;
    let big = json!({"a": "x".repeat(1024 * 1024 + 1)});
    for (method, path) in [
        ("PUT", "/collections/notes/items/k"),
        ("POST", "/collections/notes/items"),
        ("PATCH", "/collections/notes"),
    ] {
        let body = if method == "PATCH" {
            json!({"k": big})
        } else {
            big.clone()
        };
        let r = on(&s, method, path, &[], Some(body)).await;
        assert_eq!(r.status(), 413, "{method} {path}");
        let why = error_of(r).await;
        assert!(why.contains("1 MiB") && why.contains("1048576"), "{why}");
    }
    assert_eq!(revision_of(&s.get("/collections/notes").await), 0);
}
