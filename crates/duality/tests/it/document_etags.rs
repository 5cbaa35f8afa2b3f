//! docs/PROTOCOL.md, "One document: ETag and conditional writes": a
//! document read through the engine's `http::document::get` answers the
//! `ETag` of the revision that last changed it, from the in-memory copy;
//! `If-None-Match` answers `304`, an `If-Match` that does not hold `412`,
//! a malformed one `400`. A database written before documents kept that
//! revision gets it at start, on SQLite and on PostgreSQL.

use std::path::Path;

use crate::common::{TestServer, header, revision_of, spawn, spawn_default};
use duality::settings::Database;
use duality::store::Location;

/// `GET path` with one request header.
async fn get_with(s: &TestServer, path: &str, name: &str, value: &str) -> reqwest::Response {
    s.client
        .get(s.url(path))
        .header(name, value)
        .send()
        .await
        .unwrap()
}

/// The revision in a document's `ETag` (`"EPOCH-REVISION"`), checked to
/// carry the answer's epoch.
fn changed_at(r: &reqwest::Response) -> u64 {
    let etag = header(r, "etag");
    let epoch = header(r, "x-epoch");
    let inner = etag
        .strip_prefix(&format!("\"{epoch}-"))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{etag} is not \"{epoch}-REVISION\""));
    inner.parse().unwrap()
}

#[tokio::test]
async fn a_document_s_etag_is_the_revision_that_last_changed_it() {
    let s = spawn_default().await;
    s.note("a", "one", None).await;
    s.note("b", "two", None).await;
    let a = s.get("/notes/a").await;
    assert_eq!(a.status(), 200);
    assert_eq!((changed_at(&a), revision_of(&a)), (1, 2));
    assert_eq!(header(&a, "content-type"), "application/json");
    let b = s.get("/notes/b").await;
    assert_eq!(changed_at(&b), 2);
    // The same document again changes nothing, and keeps its tag.
    s.note("a", "one", None).await;
    assert_eq!(changed_at(&s.get("/notes/a").await), 1);
    s.note("a", "uno", None).await;
    let a = s.get("/notes/a").await;
    assert_eq!((changed_at(&a), revision_of(&a)), (3, 3));
    assert_eq!(changed_at(&s.get("/notes/b").await), 2);
}

#[tokio::test]
async fn if_none_match_answers_304_and_a_failed_if_match_412_and_a_bad_one_400() {
    let s = spawn_default().await;
    s.note("a", "one", None).await;
    let first = s.get("/notes/a").await;
    let etag = header(&first, "etag");
    let same = get_with(&s, "/notes/a", "if-none-match", &etag).await;
    assert_eq!(same.status(), 304);
    assert_eq!(header(&same, "etag"), etag);
    assert!(same.bytes().await.unwrap().is_empty());
    let held = get_with(&s, "/notes/a", "if-match", &etag).await;
    assert_eq!(held.status(), 200);
    s.note("a", "changed", None).await;
    let changed = get_with(&s, "/notes/a", "if-none-match", &etag).await;
    assert_eq!(changed.status(), 200);
    let failed = get_with(&s, "/notes/a", "if-match", &etag).await;
    assert_eq!(failed.status(), 412);
    let body: serde_json::Value = failed.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("If-Match") && why.contains("\"a\""), "{why}");
    let bad = get_with(&s, "/notes/a", "if-match", "not-quoted").await;
    assert_eq!(bad.status(), 400);
    let missing = get_with(&s, "/notes/zz", "if-none-match", "*").await;
    assert_eq!(missing.status(), 404);
}

/// Makes the SQLite file `db` look as if it was written before documents
/// kept the revision that last changed them.
fn drop_revisions_sqlite(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("ALTER TABLE docs DROP COLUMN revision")
        .unwrap();
}

#[tokio::test]
async fn a_sqlite_file_written_before_documents_kept_their_revision_stamps_them_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let config = || duality::Config {
        db: Database::Sqlite(Location::File(db.clone())),
        ..duality::Config::ephemeral()
    };
    let s = spawn(config()).await;
    s.note("a", "one", None).await;
    s.note("b", "two", None).await;
    s.stop().await.unwrap();
    drop_revisions_sqlite(&db);
    let s = spawn(config()).await;
    // Each document gets the view's revision: the latest its last change
    // can have been.
    for key in ["a", "b"] {
        assert_eq!(changed_at(&s.get(&format!("/notes/{key}")).await), 2);
    }
    s.note("a", "uno", None).await;
    assert_eq!(changed_at(&s.get("/notes/a").await), 3);
    assert_eq!(changed_at(&s.get("/notes/b").await), 2);
    s.stop().await.unwrap();
    let s = spawn(config()).await;
    assert_eq!(changed_at(&s.get("/notes/a").await), 3, "kept on disk");
    s.stop().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgresql_database_written_before_documents_kept_their_revision_stamps_them_at_start() {
    let pg = crate::common::pg::shared();
    let url = pg.database().await;
    let config = || duality::Config {
        db: Database::Postgres(url.clone()),
        ..duality::Config::ephemeral()
    };
    let s = spawn(config()).await;
    s.note("a", "one", None).await;
    s.note("b", "two", None).await;
    s.stop().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute("ALTER TABLE docs DROP COLUMN revision")
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let a = spawn(config()).await;
    let b = spawn(config()).await;
    for key in ["a", "b"] {
        assert_eq!(changed_at(&a.get(&format!("/notes/{key}")).await), 2);
    }
    a.note("a", "uno", None).await;
    assert_eq!(changed_at(&a.get("/notes/a").await), 3);
    // The other process learns the change from the outbox, with its revision.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = b.get("/notes/a").await;
        if revision_of(&r) >= 3 {
            assert_eq!(changed_at(&r), 3);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw revision 3"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(changed_at(&b.get("/notes/b").await), 2);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
