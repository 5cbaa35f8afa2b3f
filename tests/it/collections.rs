//! Schemaless collections (README, "Your own views"): `--collection NAME[=schema.json]`
//! serves JSON documents under keys the client chooses, with the same
//! snapshot, stream, tokens, limits and errors as every other view.

use std::path::Path;
use std::time::Duration;

use crate::common::{ChildServer, TestServer, fold, header, revision_of, spawn};
use duality::Config;
use duality::settings::{Database, parse_token};
use duality::store::sqlite::Location;
use duality_services::Builtin;
use duality_services::settings::{Settings, parse_collection};
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

async fn put(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.send("PUT", path, Some(body)).await
}

async fn patch(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.send("PATCH", path, Some(body)).await
}

async fn error_of(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

fn schema_file(dir: &Path) -> String {
    let path = dir.join("orders.json");
    let schema = json!({
        "type": "object",
        "required": ["item", "quantity"],
        "properties": {
            "item": {"type": "string", "minLength": 1},
            "quantity": {"type": "integer", "minimum": 1},
            "notes": {"type": "array", "items": {"type": "string"}}
        },
        "additionalProperties": false
    });
    std::fs::write(&path, schema.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn put_creates_then_replaces_and_get_answers_the_document() {
    let s = spawn(with_collections(&["notes"])).await;
    let first = put(
        &s,
        "/collections/notes/items/a",
        json!({"text": "hi", "n": 1}),
    )
    .await;
    assert_eq!(first.status(), 201);
    assert_eq!(revision_of(&first), 1);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({"text": "hi", "n": 1})
    );
    let again = put(&s, "/collections/notes/items/a", json!({"text": "bye"})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(revision_of(&again), 2);
    assert_eq!(
        s.get_json("/collections/notes/items/a").await,
        json!({"text": "bye"})
    );
    assert_eq!(s.get("/collections/notes/items/zz").await.status(), 404);
    let view = s.get("/collections/notes").await;
    assert_eq!(revision_of(&view), 2);
    assert!(!header(&view, "etag").is_empty());
    assert_eq!(
        view.json::<Value>().await.unwrap(),
        json!({"a": {"text": "bye"}})
    );
}

#[tokio::test]
async fn patch_merges_removes_members_on_null_and_is_404_for_an_absent_document() {
    let s = spawn(with_collections(&["notes"])).await;
    put(
        &s,
        "/collections/notes/items/k",
        json!({"a": 1, "b": {"c": 2, "d": 3}}),
    )
    .await;
    let patched = patch(
        &s,
        "/collections/notes/items/k",
        json!({"a": null, "b": {"c": 5}}),
    )
    .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(revision_of(&patched), 2);
    assert_eq!(
        patched.json::<Value>().await.unwrap(),
        json!({"b": {"c": 5, "d": 3}})
    );
    let missing = patch(&s, "/collections/notes/items/none", json!({"a": 1})).await;
    assert_eq!(missing.status(), 404);
    let same = patch(&s, "/collections/notes/items/k", json!({})).await;
    assert_eq!((same.status().as_u16(), revision_of(&same)), (200, 2));
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let s = spawn(with_collections(&["notes"])).await;
    put(&s, "/collections/notes/items/k", json!({"a": 1})).await;
    let gone = s.send("DELETE", "/collections/notes/items/k", None).await;
    assert_eq!(gone.status(), 204);
    assert_eq!(revision_of(&gone), 2);
    let again = s.send("DELETE", "/collections/notes/items/k", None).await;
    assert_eq!(again.status(), 404);
    assert_eq!(s.get_json("/collections/notes").await, json!({}));
}

#[tokio::test]
async fn bad_documents_and_keys_are_400_and_change_nothing() {
    let s = spawn(with_collections(&["notes"])).await;
    let null = put(&s, "/collections/notes/items/k", json!({"a": {"b": null}})).await;
    assert_eq!(null.status(), 400);
    assert!(error_of(null).await.contains("null"));
    let array = put(&s, "/collections/notes/items/k", json!([1])).await;
    assert_eq!(array.status(), 400);
    let long = format!("/collections/notes/items/{}", "k".repeat(257));
    assert_eq!(put(&s, &long, json!({"a": 1})).await.status(), 400);
    let longest = format!("/collections/notes/items/{}", "é".repeat(256));
    assert_eq!(put(&s, &longest, json!({"a": 1})).await.status(), 201);
    let text = s
        .client
        .put(s.url("/collections/notes/items/k"))
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let big = json!({"a": "x".repeat(2 * 1024 * 1024)});
    assert_eq!(
        put(&s, "/collections/notes/items/k", big).await.status(),
        413
    );
    let view = s.get("/collections/notes").await;
    assert_eq!(revision_of(&view), 1, "only the good write counted");
    assert_eq!(s.get("/collections/nope").await.status(), 404);
}

#[tokio::test]
async fn a_document_the_schema_rejects_is_400_naming_the_failing_location() {
    let dir = tempfile::tempdir().unwrap();
    let arg = format!("orders={}", schema_file(dir.path()));
    let s = spawn(with_collections(&[&arg])).await;
    let ok = put(
        &s,
        "/collections/orders/items/o1",
        json!({"item": "bolt", "quantity": 2}),
    )
    .await;
    assert_eq!(ok.status(), 201);
    let bad = put(
        &s,
        "/collections/orders/items/o2",
        json!({"item": "nut", "quantity": 1, "notes": ["ok", 7]}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let why = error_of(bad).await;
    assert!(why.contains("/notes/1"), "{why}");
    let patched = patch(&s, "/collections/orders/items/o1", json!({"quantity": 0})).await;
    assert_eq!(patched.status(), 400);
    assert!(error_of(patched).await.contains("/quantity"));
    let removed = patch(&s, "/collections/orders/items/o1", json!({"item": null})).await;
    assert_eq!(removed.status(), 400, "the schema requires item");
    let view = s.get("/collections/orders").await;
    assert_eq!(revision_of(&view), 1);
    assert_eq!(
        view.json::<Value>().await.unwrap(),
        json!({"o1": {"item": "bolt", "quantity": 2}})
    );
}

#[tokio::test]
async fn the_stream_folds_into_the_snapshot() {
    let s = spawn(with_collections(&["notes"])).await;
    let mut stream = s
        .subscribe("/collections/notes/events?revision=1", &[])
        .await;
    put(
        &s,
        "/collections/notes/items/a",
        json!({"x": 1, "y": [1, 2]}),
    )
    .await;
    put(&s, "/collections/notes/items/b", json!({"x": 2})).await;
    patch(
        &s,
        "/collections/notes/items/a",
        json!({"y": null, "z": "new"}),
    )
    .await;
    s.send("DELETE", "/collections/notes/items/b", None).await;
    let mut patches = Vec::new();
    for expected in 1..=4 {
        let (revision, patch) = stream.change().await;
        assert_eq!(revision, expected);
        patches.push(patch);
    }
    let snapshot = s.get("/collections/notes").await;
    assert_eq!(revision_of(&snapshot), 4);
    let body: Value = snapshot.json().await.unwrap();
    assert_eq!(fold(json!({}), &patches), body);
    assert_eq!(body, json!({"a": {"x": 1, "z": "new"}}));
}

#[tokio::test]
async fn tokens_guard_collection_writes_snapshots_and_streams() {
    let s = spawn({
        let base = with_collections(&["notes"]);
        Settings {
            engine: Config {
                write_token: vec![parse_token("w").unwrap()],
                read_token: vec![parse_token("r").unwrap()],
                ..base.engine
            },
            builtin: base.builtin,
        }
    })
    .await;
    let url = s.url("/collections/notes/items/k");
    let open = s
        .client
        .put(&url)
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    let reader = s.client.put(&url).bearer_auth("r").json(&json!({"a": 1}));
    assert_eq!(reader.send().await.unwrap().status(), 401);
    let writer = s.client.put(&url).bearer_auth("w").json(&json!({"a": 1}));
    assert_eq!(writer.send().await.unwrap().status(), 201);
    assert_eq!(s.get("/collections/notes").await.status(), 401);
    let read = s.client.get(s.url("/collections/notes")).bearer_auth("r");
    assert_eq!(read.send().await.unwrap().status(), 200);
    let stream = s.url("/collections/notes/events?access_token=r&revision=1");
    let streamed = s.client.get(stream).send().await.unwrap();
    assert_eq!(streamed.status(), 200);
}

#[tokio::test]
async fn collections_appear_in_healthz_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let arg = format!("orders={}", schema_file(dir.path()));
    let s = spawn(with_collections(&["notes", &arg])).await;
    let health = s.get_json("/healthz").await;
    assert_eq!(health["collections"], json!(["notes", "orders"]));
    assert_eq!(health["revisions"]["collections.notes"], json!(0));
    let doc = s.get_json("/openapi.json").await;
    let paths = &doc["paths"];
    for path in [
        "/collections/notes",
        "/collections/notes/events",
        "/collections/notes/items/{key}",
        "/collections/orders/items/{key}",
    ] {
        assert!(paths.get(path).is_some(), "{path} is documented");
    }
    let item = &paths["/collections/orders/items/{key}"]["put"]["requestBody"];
    let schema = &item["content"]["application/json"]["schema"];
    assert_eq!(schema["allOf"][0]["required"], json!(["item", "quantity"]));
    assert_eq!(
        schema["allOf"][1]["$ref"],
        json!("#/components/schemas/CollectionDocument"),
        "and no null anywhere"
    );
}

#[tokio::test]
async fn a_restart_on_the_same_file_keeps_the_documents_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let settings = || {
        let base = with_collections(&["notes"]);
        Settings {
            engine: Config {
                db: Database::Sqlite(Location::File(db.clone())),
                ..base.engine
            },
            builtin: base.builtin,
        }
    };
    let s = spawn(settings()).await;
    put(&s, "/collections/notes/items/a", json!({"v": 1})).await;
    put(&s, "/collections/notes/items/b", json!({"v": 2})).await;
    s.stop().await.unwrap();
    let s = spawn(settings()).await;
    let view = s.get("/collections/notes").await;
    assert_eq!(revision_of(&view), 2);
    assert_eq!(
        view.json::<Value>().await.unwrap(),
        json!({"a": {"v": 1}, "b": {"v": 2}})
    );
    let next = put(&s, "/collections/notes/items/c", json!({"v": 3})).await;
    assert_eq!(revision_of(&next), 3);
}

#[tokio::test]
async fn the_command_line_and_its_variable_name_collections_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--db",
        ":memory:",
        "--services",
        "collections",
        "--collection",
        "notes",
    ];
    let child = ChildServer::start(&args, dir.path()).await;
    let base = child.base();
    let client = reqwest::Client::new();
    let url = format!("{base}/collections/notes/items/x");
    let r = client
        .put(&url)
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(child);
    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_duality"));
        cmd.args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} started");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err
    };
    assert!(refused(&["--collection", "a b"], &[]).contains("collection"));
    assert!(refused(&[], &[("DUALITY_COLLECTIONS", "ok,no way")]).contains("no way"));
    let missing = dir.path().join("missing.json").display().to_string();
    assert!(refused(&["--collection", &format!("x={missing}")], &[]).contains("missing.json"));
    let not_schema = dir.path().join("bad.json");
    std::fs::write(&not_schema, r#"{"type": 12}"#).unwrap();
    let arg = format!("x={}", not_schema.display());
    assert!(refused(&["--collection", &arg], &[]).contains("JSON Schema"));
    let err = refused(&["--services", "persons", "--collection", "x"], &[]);
    assert!(err.contains("collections"), "{err}");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn duality_watch_follows_a_collection() {
    let s = spawn(with_collections(&["notes"])).await;
    put(&s, "/collections/notes/items/a", json!({"v": 1})).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["watch", "--output", "json", &s.url("/collections/notes")])
        .args(["--until", "2"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("watch printed nothing")
        .unwrap()
        .unwrap();
    assert!(first.contains("\"v\":1"), "{first}");
    put(&s, "/collections/notes/items/b", json!({"v": 2})).await;
    let second = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("watch printed no change")
        .unwrap()
        .unwrap();
    assert!(second.contains("\"b\"") && second.contains("2"), "{second}");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("watch did not stop at --until")
        .unwrap();
    assert!(status.success());
}

/// The `"error"` of a `400` answer to `PUT path body`.
async fn refused_put(s: &TestServer, path: &str, body: Value) -> String {
    let r = put(s, path, body).await;
    assert_eq!(r.status(), 400, "{path}");
    error_of(r).await
}

#[tokio::test]
async fn schema_errors_name_the_root_as_the_empty_pointer_and_escape_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let schema = json!({
        "required": ["id"],
        "properties": {"a/b": {"properties": {"c~d": {"type": "string"}}}}
    });
    std::fs::write(&path, schema.to_string()).unwrap();
    let arg = format!("s={}", path.display());
    let s = spawn(with_collections(&[&arg])).await;
    let root = refused_put(&s, "/collections/s/items/k", json!({"x": 1})).await;
    assert!(root.contains(r#"at "":"#), "{root}");
    let nested = refused_put(
        &s,
        "/collections/s/items/k",
        json!({"id": 1, "a/b": {"c~d": 1}}),
    )
    .await;
    assert!(nested.contains(r#"at "/a~1b/c~0d":"#), "{nested}");
    assert_eq!(revision_of(&s.get("/collections/s").await), 0);
}

#[tokio::test]
async fn a_key_with_u0000_is_400_and_changes_nothing() {
    let s = spawn(with_collections(&["notes"])).await;
    for method in ["PUT", "PATCH"] {
        let r = s
            .send(
                method,
                "/collections/notes/items/a%00b",
                Some(json!({"a": 1})),
            )
            .await;
        assert_eq!(r.status(), 400, "{method}");
        assert!(error_of(r).await.contains("U+0000"));
    }
    assert_eq!(s.get("/collections/notes/items/%00").await.status(), 400);
    assert_eq!(
        s.send("DELETE", "/collections/notes/items/%00", None)
            .await
            .status(),
        400
    );
    assert_eq!(revision_of(&s.get("/collections/notes").await), 0);
}

#[tokio::test]
async fn schema_errors_do_not_repeat_the_clients_values_and_name_one_location_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let schema = json!({
        "properties": {
            "b": {"properties": {"c": {"type": "string"}}},
            "a": {"type": "string"},
            "secret": {"type": "string"},
            "z": {"type": "string"}
        }
    });
    std::fs::write(&path, schema.to_string()).unwrap();
    let arg = format!("s={}", path.display());
    let s = spawn(with_collections(&[&arg])).await;
    let secret = refused_put(
        &s,
        "/collections/s/items/k",
        json!({"secret": {"pin": 918273645}}),
    )
    .await;
    assert!(!secret.contains("918273645"), "{secret}");
    assert!(secret.contains("value"), "{secret}");
    for _ in 0..10 {
        let body = json!({"z": 1, "b": {"c": 2}, "a": 3});
        let why = refused_put(&s, "/collections/s/items/k", body).await;
        assert!(why.contains(r#"at "/a":"#), "{why}");
    }
}

#[tokio::test]
async fn a_null_inside_an_array_is_refused_with_its_pointer_by_put_and_patch() {
    let s = spawn(with_collections(&["notes"])).await;
    let why = refused_put(&s, "/collections/notes/items/k", json!({"a": [1, null]})).await;
    assert!(why.contains(r#"null at "/a/1""#), "{why}");
    let why = refused_put(&s, "/collections/notes/items/k", json!({"a": {"b": null}})).await;
    assert!(why.contains(r#"null at "/a/b""#), "{why}");
    assert_eq!(
        put(&s, "/collections/notes/items/k", json!({"a": 1}))
            .await
            .status(),
        201
    );
    for body in [json!({"b": [null]}), json!({"b": {"c": [{"d": null}]}})] {
        let r = patch(&s, "/collections/notes/items/k", body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let why = error_of(r).await;
        assert!(why.contains("null at \"/b"), "{why}");
    }
    let removed = patch(
        &s,
        "/collections/notes/items/k",
        json!({"a": null, "c": [1]}),
    )
    .await;
    assert_eq!(removed.status(), 200, "a null member still removes it");
    assert_eq!(
        s.get_json("/collections/notes").await,
        json!({"k": {"c": [1]}})
    );
}

#[tokio::test]
async fn a_collection_named_like_a_built_in_view_or_differing_by_case_stays_apart() {
    let mut settings = with_collections(&["persons", "Notes", "notes"]);
    // Collections alone would run without the persons service.
    settings.builtin.services = Some(duality_services::settings::Services::all());
    let s = spawn(settings).await;
    let person = s.post("/persons", json!({"name": "Ann"})).await;
    assert!(person.status().is_success(), "{}", person.status());
    assert_eq!(
        put(&s, "/collections/persons/items/k", json!({"v": 1}))
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&s, "/collections/Notes/items/k", json!({"v": 2}))
            .await
            .status(),
        201
    );
    let health = s.get_json("/healthz").await;
    assert_eq!(health["collections"], json!(["persons", "Notes", "notes"]));
    assert_eq!(health["revisions"]["persons"], json!(1));
    assert_eq!(health["revisions"]["collections.persons"], json!(1));
    assert_eq!(health["revisions"]["collections.Notes"], json!(1));
    assert_eq!(health["revisions"]["collections.notes"], json!(0));
    assert_eq!(
        s.get_json("/collections/persons").await,
        json!({"k": {"v": 1}})
    );
    assert_eq!(s.get_json("/collections/notes").await, json!({}));
    let persons = s.get_json("/persons").await;
    assert_eq!(persons.as_object().map(|p| p.len()), Some(1), "{persons}");
    let paths = &s.get_json("/openapi.json").await["paths"];
    assert!(paths.get("/persons").is_some() && paths.get("/collections/persons").is_some());
}
