//! One schema per database (README, "Your own views"): a collection's
//! schema, or its absence, is stored with it by the first process; a
//! process started with another one is refused, naming the collection,
//! unless it is started with `--replace-schema NAME`, which checks every
//! stored document first and refuses on the first invalid one (its key and
//! pointer in the message). On a SQLite file and across two processes on
//! PostgreSQL.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::ChildServer;

/// Any title; every ticket has one.
const TITLED: &str = r#"{"type": "object", "required": ["title"],
                         "properties": {"title": {"type": "string"}}}"#;
/// The same schema, written otherwise: not a change.
const TITLED_REFORMATTED: &str =
    r#"{"properties": {"title": {"type": "string"}}, "required": ["title"], "type": "object"}"#;
/// A status from a list.
const STATUSES: &str = r#"{"type": "object",
                           "properties": {"status": {"enum": ["open", "done"]}}}"#;

fn schemas(dir: &Path) {
    std::fs::write(dir.join("titled.json"), TITLED).unwrap();
    std::fs::write(dir.join("titled-again.json"), TITLED_REFORMATTED).unwrap();
    std::fs::write(dir.join("statuses.json"), STATUSES).unwrap();
}

/// Runs `duality serve ARGS` in `dir`, which must refuse to start; answers
/// its one line of stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "{args:?} started: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

async fn put(base: &str, key: &str, doc: Value) -> u16 {
    reqwest::Client::new()
        .put(format!("{base}/collections/tickets/items/{key}"))
        .json(&doc)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn tickets(base: &str) -> Value {
    reqwest::get(format!("{base}/collections/tickets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_start_with_another_schema_or_none_is_refused_naming_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    schemas(dir.path());
    let db = ["--db", "t.db"];
    let with = |schema: &str| -> Vec<String> {
        let mut args: Vec<String> = db.iter().map(|s| s.to_string()).collect();
        args.extend(["--collection".to_string(), schema.to_string()]);
        args
    };
    let server = ChildServer::start(&as_str(&with("tickets=titled.json")), dir.path()).await;
    assert_eq!(put(&server.base(), "t1", json!({"title": "a"})).await, 201);
    drop(server);

    for other in ["tickets", "tickets=statuses.json"] {
        let line = refused(dir.path(), &as_str(&with(other)));
        assert!(
            line.starts_with("error: collection `tickets`: the database holds a schema for it"),
            "{line}"
        );
        assert!(line.contains("--replace-schema tickets"), "{line}");
    }
    // The same schema, however it is written, starts; nothing changed.
    let server = ChildServer::start(&as_str(&with("tickets=titled-again.json")), dir.path()).await;
    assert_eq!(tickets(&server.base()).await, json!({"t1": {"title": "a"}}));
    assert_eq!(put(&server.base(), "t2", json!({"title": 2})).await, 400);
    drop(server);

    // No schema is stored as such: a start with one is refused too.
    let server = ChildServer::start(&["--db", "n.db", "--collection", "tickets"], dir.path()).await;
    assert_eq!(
        put(&server.base(), "t1", json!({"anything": true})).await,
        201
    );
    drop(server);
    let line = refused(
        dir.path(),
        &["--db", "n.db", "--collection", "tickets=titled.json"],
    );
    assert!(
        line.contains("collection `tickets`: the database holds no schema for it"),
        "{line}"
    );
}

#[tokio::test]
async fn replacing_a_schema_checks_every_stored_document_and_refuses_on_the_first_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    schemas(dir.path());
    let titled = ["--db", "t.db", "--collection", "tickets=titled.json"];
    let server = ChildServer::start(&titled, dir.path()).await;
    let base = server.base();
    assert_eq!(
        put(&base, "t1", json!({"title": "a", "status": "open"})).await,
        201
    );
    assert_eq!(
        put(&base, "t2", json!({"title": "b", "status": "lost"})).await,
        201
    );
    drop(server);

    // From the configuration file, as from the flag.
    std::fs::write(
        dir.path().join("statuses.toml"),
        "db = \"t.db\"\nreplace_schema = [\"tickets\"]\n\n[collections.tickets]\nschema = \"statuses.json\"\n",
    )
    .unwrap();
    let line = refused(dir.path(), &["--config", "statuses.toml"]);
    assert!(
        line.starts_with("error: collection `tickets`: cannot replace its schema: the document \"t2\" fails it: schema violation at \"/status\""),
        "{line}"
    );
    // Refused: the old schema is still the stored one.
    let server = ChildServer::start(&titled, dir.path()).await;
    let base = server.base();
    assert_eq!(
        put(&base, "t2", json!({"title": "b", "status": "done"})).await,
        200
    );
    drop(server);

    let statuses = ["--config", "statuses.toml"];
    let server = ChildServer::start(&statuses, dir.path()).await;
    let base = server.base();
    assert_eq!(put(&base, "t3", json!({"status": "lost"})).await, 400);
    assert_eq!(put(&base, "t3", json!({"status": "open"})).await, 201);
    drop(server);
    // Now the new schema is the database's: the old one is refused.
    let line = refused(dir.path(), &titled);
    assert!(
        line.contains("collection `tickets`: the database holds a schema"),
        "{line}"
    );
    // Replacing it by none always passes.
    let none = [
        "--db",
        "t.db",
        "--collection",
        "tickets",
        "--replace-schema",
        "tickets",
    ];
    let server = ChildServer::start(&none, dir.path()).await;
    assert_eq!(put(&server.base(), "t4", json!({"status": 7})).await, 201);
    drop(server);
    let line = refused(
        dir.path(),
        &[
            "--db",
            "t.db",
            "--replace-schema",
            "nope",
            "--collection",
            "tickets",
        ],
    );
    assert_eq!(
        line,
        "error: --replace-schema nope names no configured collection"
    );
}

#[tokio::test]
async fn on_postgresql_a_second_process_with_another_schema_is_refused_and_a_replacement_checks_the_documents()
 {
    let url = crate::common::pg::shared().database().await;
    let dir = tempfile::tempdir().unwrap();
    schemas(dir.path());
    let args = |schema: &str, replace: bool| -> Vec<String> {
        let mut args = vec![
            "--db".to_string(),
            url.clone(),
            "--collection".into(),
            schema.into(),
        ];
        if replace {
            args.extend(["--replace-schema".to_string(), "tickets".to_string()]);
        }
        args
    };
    let first = ChildServer::start(&as_str(&args("tickets=titled.json", false)), dir.path()).await;
    let base = first.base();
    assert_eq!(
        put(&base, "t1", json!({"title": "a", "status": "lost"})).await,
        201
    );

    // While the first runs, a second with none or another is refused.
    for other in ["tickets", "tickets=statuses.json"] {
        let line = refused(dir.path(), &as_str(&args(other, false)));
        assert!(
            line.starts_with("error: collection `tickets`: the database holds a schema for it"),
            "{line}"
        );
    }
    // The same schema starts beside it.
    let second = ChildServer::start(
        &as_str(&args("tickets=titled-again.json", false)),
        dir.path(),
    )
    .await;
    assert_eq!(put(&second.base(), "t2", json!({"title": "b"})).await, 201);
    drop(second);
    // A replacement checks what the first process wrote.
    let line = refused(dir.path(), &as_str(&args("tickets=statuses.json", true)));
    assert!(
        line.contains("cannot replace its schema: the document \"t1\" fails it: schema violation at \"/status\""),
        "{line}"
    );
    assert_eq!(
        put(&base, "t1", json!({"title": "a", "status": "open"})).await,
        200
    );
    drop(first);
    let replaced =
        ChildServer::start(&as_str(&args("tickets=statuses.json", true)), dir.path()).await;
    assert_eq!(
        put(&replaced.base(), "t3", json!({"status": "lost"})).await,
        400
    );
    // From now on the database holds the new schema, for every process.
    let line = refused(dir.path(), &as_str(&args("tickets=titled.json", false)));
    assert!(line.contains("the database holds a schema"), "{line}");
    let again =
        ChildServer::start(&as_str(&args("tickets=statuses.json", false)), dir.path()).await;
    assert_eq!(
        tickets(&again.base()).await,
        json!({"t1": {"title": "a", "status": "open"}, "t2": {"title": "b"}})
    );
}

fn as_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
