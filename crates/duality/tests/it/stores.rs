//! One store test suite, two backends: every behaviour of the `Store`
//! interface (docs/PROTOCOL.md) runs against a SQLite file and against
//! PostgreSQL, through the same test function, with the test service's
//! writes (`common::notes`: a note and its tag's count in one write). Then
//! what only PostgreSQL has: two stores (as two processes would) on one
//! database. The PostgreSQL half needs the engine's `postgres` feature.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::notes::{self, ELSEWHERE, NOTES, Note, TAGS};
use duality::domain::{Error, Registry, View, Write};
use duality::hub::Hub;
#[cfg(feature = "postgres")]
use duality::store::postgres::PgStore;
use duality::store::sqlite::{Location, SqliteStore};
use duality::store::{DocCheck, MetaChange, MetaSet, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A hub for the views these tests write.
fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(Arc::new(Registry::new([NOTES, TAGS]).unwrap())))
}

/// Every test gets at most this long.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// A database of one backend that stores can be opened on (and reopened).
struct Db {
    backend: Backend,
    /// The SQLite file's directory, removed on drop.
    _dir: Option<tempfile::TempDir>,
    file: Option<std::path::PathBuf>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    url: Option<String>,
}

impl Db {
    async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("duality.db");
                Db {
                    backend,
                    _dir: Some(dir),
                    file: Some(file),
                    url: None,
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Db {
                backend,
                _dir: None,
                file: None,
                url: Some(crate::common::pg::shared().database().await),
            },
        }
    }

    /// Opens a store on this database with its own hub.
    async fn open(&self) -> (Arc<dyn Store>, Arc<Hub>) {
        let hub = hub();
        let store: Arc<dyn Store> = match self.backend {
            Backend::Sqlite => {
                let location = Location::File(self.file.clone().unwrap());
                let h = Arc::clone(&hub);
                Arc::new(
                    tokio::task::spawn_blocking(move || SqliteStore::open(&location, h))
                        .await
                        .unwrap()
                        .unwrap(),
                )
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Arc::new(
                PgStore::open(self.url.as_deref().unwrap(), hub.clone())
                    .await
                    .unwrap(),
            ),
        };
        (store, hub)
    }

    /// Runs SQL on the database behind the stores' backs.
    async fn sql(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(self.file.as_ref().unwrap()).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let url = self.url.as_deref().unwrap();
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let driver = tokio::spawn(connection);
                client.batch_execute(sql).await.unwrap();
                drop(client);
                let _ = driver.await;
            }
        }
    }

    /// Sets the commit time of some notes events, as writers whose clocks
    /// disagree would have stamped them.
    async fn stamp(&self, revisions: &[u64], at: SystemTime) {
        let list: Vec<String> = revisions.iter().map(u64::to_string).collect();
        self.sql(&format!(
            "UPDATE events SET created_ms = {} WHERE view = 'notes' AND revision IN ({})",
            duality::store::unix_ms(at),
            list.join(", ")
        ))
        .await;
    }
}

/// Runs each behaviour on both backends, as `sqlite::NAME` and
/// `postgres::NAME` (the latter with the engine's `postgres` feature).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                tokio::time::timeout(super::WAIT, super::$name(super::Backend::Sqlite))
                    .await
                    .expect("the test took too long");
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                tokio::time::timeout(super::WAIT, super::$name(super::Backend::Postgres))
                    .await
                    .expect("the test took too long");
            })*
        }
    };
}

on_both_backends!(
    the_reference_sequence_gives_the_documented_views_events_and_revisions,
    a_write_that_changes_nothing_keeps_the_revision_and_adds_no_event,
    refused_writes_change_nothing_and_use_no_id,
    ids_are_never_reused_also_after_a_delete,
    a_write_that_reads_what_it_has_not_loaded_is_rerun_to_the_same_result,
    event_pages_start_where_asked_stop_at_the_limit_and_carry_the_bounds,
    trimming_deletes_old_events_but_never_the_view_or_its_revision,
    trimming_deletes_only_a_prefix_of_revisions_whatever_the_clocks_said,
    trimming_walks_a_long_outbox_in_batches_and_stops_at_the_first_young_event,
    the_epoch_belongs_to_the_database_and_survives_reopening,
    concurrent_writers_get_gapless_revisions_distinct_ids_and_ordered_live_events,
    refused_and_conflicting_writes_among_concurrent_ones_leave_the_others_exact,
    a_write_to_a_view_the_store_does_not_serve_is_refused_and_writing_goes_on,
    every_write_records_the_keys_it_changed_and_the_horizon_trims_them_as_a_prefix,
    a_database_from_before_catch_up_answers_only_positions_from_its_revision_on,
    view_metadata_is_compare_and_set_per_view_and_outlives_the_store,
    a_metadata_change_checks_every_document_and_a_refusal_changes_nothing,
    writes_of_the_view_wait_while_a_metadata_change_checks_its_documents,
);

fn meta(name: &str, expected: Option<&str>, value: &str) -> MetaChange {
    MetaChange {
        view: NOTES,
        name: name.into(),
        expected: expected.map(Into::into),
        value: value.into(),
        check: None,
    }
}

async fn view_metadata_is_compare_and_set_per_view_and_outlives_the_store(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    assert_eq!(store.view_meta(NOTES, "schema".into()).await, Ok(None));
    let first = store.set_view_meta(meta("schema", None, "one")).await;
    assert_eq!(first, Ok(MetaSet::Stored));
    // Another writer that expected nothing learns what is there instead.
    let late = store.set_view_meta(meta("schema", None, "two")).await;
    assert_eq!(late, Ok(MetaSet::Changed(Some("one".into()))));
    let stale = store
        .set_view_meta(meta("schema", Some("zero"), "two"))
        .await;
    assert_eq!(stale, Ok(MetaSet::Changed(Some("one".into()))));
    let next = store
        .set_view_meta(meta("schema", Some("one"), "two"))
        .await;
    assert_eq!(next, Ok(MetaSet::Stored));
    // Per view and per name; events and revisions are left alone.
    assert_eq!(store.view_meta(TAGS, "schema".into()).await, Ok(None));
    assert_eq!(store.view_meta(NOTES, "other".into()).await, Ok(None));
    assert_eq!(store.events(NOTES, 0, 10).await.unwrap().current, 0);
    drop(store);
    let (again, _hub) = db.open().await;
    assert_eq!(
        again.view_meta(NOTES, "schema".into()).await,
        Ok(Some("two".into()))
    );
}

/// A check that refuses the note whose text is `bad`, and counts the
/// documents it was shown.
fn refusing_bad(seen: Arc<AtomicUsize>) -> DocCheck {
    Arc::new(move |key: &str, doc: &Value| {
        seen.fetch_add(1, Ordering::SeqCst);
        if doc["text"] == "bad" {
            return Err(Error::Invalid(format!("note {key} is bad")));
        }
        Ok(())
    })
}

async fn a_metadata_change_checks_every_document_and_a_refusal_changes_nothing(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    for text in ["a", "b", "c"] {
        store.write(create(text, None)).await.unwrap();
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let checked = MetaChange {
        check: Some(refusing_bad(Arc::clone(&seen))),
        ..meta("schema", None, "strict")
    };
    assert_eq!(
        store.set_view_meta(checked.clone()).await,
        Ok(MetaSet::Stored)
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3, "every document was shown");
    store.write(create("bad", None)).await.unwrap();
    let stricter = MetaChange {
        expected: Some("strict".into()),
        value: "stricter".into(),
        ..checked
    };
    let refused = store.set_view_meta(stricter).await;
    assert_eq!(refused, Err(Error::Invalid("note 4 is bad".into())));
    assert_eq!(
        store.view_meta(NOTES, "schema".into()).await,
        Ok(Some("strict".into())),
        "a refused change changes nothing"
    );
}

async fn writes_of_the_view_wait_while_a_metadata_change_checks_its_documents(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    store.write(create("a", None)).await.unwrap();
    let (checking, checked) = std::sync::mpsc::channel::<()>();
    let release = Arc::new(std::sync::Mutex::new(checked));
    let slow: DocCheck = Arc::new(move |_: &str, _: &Value| {
        // Holds the check until the test has started a write and let it
        // try for a while.
        let _ = release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        Ok(())
    });
    let change = MetaChange {
        check: Some(slow),
        ..meta("schema", None, "checked")
    };
    let setter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.set_view_meta(change).await })
    };
    // A second store on PostgreSQL, as another process; the same one on
    // SQLite, whose one writer is the file's.
    let (writer, _writer_hub) = match b {
        Backend::Sqlite => (Arc::clone(&store), _hub),
        #[cfg(feature = "postgres")]
        Backend::Postgres => db.open().await,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let write = tokio::spawn(async move { writer.write(create("b", None)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "a write committed during the check");
    checking.send(()).unwrap();
    assert_eq!(setter.await.unwrap(), Ok(MetaSet::Stored));
    let committed = write.await.unwrap().unwrap();
    assert_eq!(committed.revision(NOTES), 2);
}

fn note(text: &str, tag: Option<&str>) -> Note {
    Note {
        text: text.into(),
        tag: tag.map(Into::into),
    }
}

/// A new note under the next id.
fn create(text: &str, tag: Option<&str>) -> Write {
    notes::create(note(text, tag))
}

/// Moves note `id` to `tag`, keeping its text.
fn set_tag(id: u64, tag: Option<&str>) -> Write {
    notes::retag(id.to_string(), tag.map(Into::into))
}

/// Removes note `id`.
fn delete(id: u64) -> Write {
    notes::remove(id.to_string())
}

async fn all_events(store: &dyn Store, view: View) -> Vec<(u64, Value)> {
    let page = store.events(view, 0, 10_000).await.unwrap();
    page.events
        .into_iter()
        .map(|e| (e.revision, serde_json::from_str(&e.patch).unwrap()))
        .collect()
}

fn fold(patches: impl IntoIterator<Item = Value>) -> Value {
    let patches: Vec<Value> = patches.into_iter().collect();
    crate::common::fold(json!({}), &patches)
}

async fn the_reference_sequence_gives_the_documented_views_events_and_revisions(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let s = &*store;
    let ann = s.write(create("Ann", Some("work"))).await.unwrap();
    assert_eq!(ann.output, json!({"id":1,"text":"Ann","tag":"work"}));
    assert_eq!((ann.revision(NOTES), ann.revision(TAGS)), (1, 1));
    let bob = s.write(create("Bob", None)).await.unwrap();
    assert_eq!((bob.revision(NOTES), bob.revision(TAGS)), (2, 1));
    s.write(set_tag(2, Some("work"))).await.unwrap();
    s.write(set_tag(1, None)).await.unwrap();
    let del = s.write(delete(2)).await.unwrap();
    assert_eq!((del.revision(NOTES), del.revision(TAGS)), (5, 4));

    let notes = s.snapshot(NOTES).await.unwrap();
    assert_eq!(notes.revision, 5);
    assert_eq!(Value::Object(notes.docs), json!({"1":{"text":"Ann"}}));
    let tags = s.snapshot(TAGS).await.unwrap();
    assert_eq!(tags.revision, 4);
    assert_eq!(Value::Object(tags.docs), json!({}));
    assert_eq!(
        s.doc(NOTES, "1".into()).await.unwrap(),
        Some(json!({"text":"Ann"}))
    );
    assert_eq!(s.doc(NOTES, "2".into()).await.unwrap(), None);

    assert_eq!(
        all_events(s, NOTES).await,
        vec![
            (1, json!({"1":{"text":"Ann","tag":"work"}})),
            (2, json!({"2":{"text":"Bob"}})),
            (3, json!({"2":{"tag":"work"}})),
            (4, json!({"1":{"tag":null}})),
            (5, json!({"2":null})),
        ]
    );
    assert_eq!(
        all_events(s, TAGS).await,
        vec![
            (1, json!({"work":{"total":1}})),
            (2, json!({"work":{"total":2}})),
            (3, json!({"work":{"total":1}})),
            (4, json!({"work":null})),
        ]
    );
    // Moving the only note of a tag is one tags event.
    s.write(set_tag(1, Some("work"))).await.unwrap();
    let moved = s.write(set_tag(1, Some("idea"))).await.unwrap();
    assert_eq!(moved.revision(TAGS), 6);
    let last = all_events(s, TAGS).await.pop().unwrap();
    assert_eq!(last, (6, json!({"work":null,"idea":{"total":1}})));
    for view in [NOTES, TAGS] {
        let events = all_events(s, view).await;
        let snapshot = s.snapshot(view).await.unwrap();
        assert_eq!(
            fold(events.into_iter().map(|(_, p)| p)),
            Value::Object(snapshot.docs),
            "{view}: folded events equal the view"
        );
    }
}

async fn a_write_that_changes_nothing_keeps_the_revision_and_adds_no_event(b: Backend) {
    let db = Db::new(b).await;
    let (store, hub) = db.open().await;
    let mut live = hub.subscribe(NOTES).unwrap();
    store.write(create("Ann", Some("work"))).await.unwrap();
    assert_eq!(frames(&mut live, 1).await, vec![1]);
    let same = store.write(set_tag(1, Some("work"))).await.unwrap();
    assert_eq!(same.output, json!({"text":"Ann","tag":"work"}));
    assert_eq!(same.revision(NOTES), 1);
    assert_eq!(same.revision(TAGS), 1);
    let empty = store
        .write(notes::save("1".into(), note("Ann", Some("work"))))
        .await
        .unwrap();
    assert_eq!(empty.revision(NOTES), 1);
    assert_eq!(all_events(&*store, NOTES).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        live.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
}

/// The hub has no channel and the store no copy for a view outside the
/// registry; a write naming one, sent to the store directly (a service may
/// hold `App::store`), must be refused before it reaches the writer.
async fn a_write_to_a_view_the_store_does_not_serve_is_refused_and_writing_goes_on(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let stray = Write::new(&[ELSEWHERE], |d| {
        d.put(ELSEWHERE, "here", json!(1))?;
        Ok(Value::Null)
    });
    let refused = store.write(stray).await;
    assert!(matches!(refused, Err(Error::NotFound(_))), "{refused:?}");
    let next = store.write(create("Ann", None)).await.unwrap();
    assert_eq!(next.revision(NOTES), 1);
}

async fn refused_writes_change_nothing_and_use_no_id(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let missing = store.write(delete(7)).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    // A write that took an id and then failed: the id is not used up.
    let half = Write::new(&[NOTES], |d| {
        let id = d.next_id("notes")?;
        d.put(NOTES, id.to_string(), json!({"text":"X"}))?;
        Err(Error::Invalid("refused after taking an id".into()))
    });
    assert!(matches!(store.write(half).await, Err(Error::Invalid(_))));
    let nulls = Write::new(&[NOTES], |d| {
        d.put(NOTES, "1", json!({"text": null}))?;
        Ok(Value::Null)
    });
    assert!(matches!(store.write(nulls).await, Err(Error::Invalid(_))));
    let snapshot = store.snapshot(NOTES).await.unwrap();
    assert_eq!((snapshot.revision, snapshot.docs.len()), (0, 0));
    let first = store.write(create("Ann", None)).await.unwrap();
    assert_eq!(first.output["id"], json!(1));
    assert_eq!(first.revision(NOTES), 1);
}

async fn ids_are_never_reused_also_after_a_delete(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    for expected in 1..=3 {
        let c = store.write(create("P", None)).await.unwrap();
        assert_eq!(c.output["id"], json!(expected));
    }
    store.write(delete(3)).await.unwrap();
    let next = store.write(create("Q", None)).await.unwrap();
    assert_eq!(next.output["id"], json!(4));
    // Also after reopening the database.
    drop(store);
    let (store, _hub) = db.open().await;
    let next = store.write(create("R", None)).await.unwrap();
    assert_eq!(next.output["id"], json!(5));
    assert_eq!(next.revision(NOTES), 6);
}

/// A write whose reads depend on each other (`a` names the next key to
/// read), so a store that loads on demand must run it several times.
async fn a_write_that_reads_what_it_has_not_loaded_is_rerun_to_the_same_result(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let seed = Write::new(&[NOTES], |d| {
        d.put(NOTES, "a", json!({"next":"b","n":1}))?;
        d.put(NOTES, "b", json!({"next":"c","n":2}))?;
        d.put(NOTES, "c", json!({"n":3}))?;
        Ok(Value::Null)
    });
    store.write(seed).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let chase = Write::new(&[NOTES, TAGS], move |d| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut key = "a".to_string();
        let mut sum = 0;
        let mut path = Vec::new();
        loop {
            let Some(doc) = d.get(NOTES, &key)? else {
                return Err(Error::NotFound(format!("no {key}")));
            };
            sum += doc["n"].as_i64().unwrap();
            path.push(key.clone());
            match doc.get("next").and_then(Value::as_str) {
                Some(next) => key = next.to_string(),
                None => break,
            }
        }
        let id = d.next_id("chase")?;
        d.put(TAGS, format!("sum-{id}"), json!({"sum": sum}))?;
        d.delete(NOTES, "a");
        Ok(json!({"path": path, "sum": sum, "id": id}))
    });
    let done = store.write(chase.clone()).await.unwrap();
    assert_eq!(done.output, json!({"path":["a","b","c"],"sum":6,"id":1}));
    assert_eq!(done.revision(TAGS), 1);
    assert_eq!(done.revision(NOTES), 2);
    assert!(runs.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        all_events(&*store, TAGS).await,
        vec![(1, json!({"sum-1":{"sum":6}}))]
    );
    assert_eq!(
        all_events(&*store, NOTES).await.pop().unwrap(),
        (2, json!({"a":null}))
    );
    let notes = store.snapshot(NOTES).await.unwrap();
    assert_eq!(
        Value::Object(notes.docs),
        json!({"b":{"next":"c","n":2},"c":{"n":3}})
    );
    // Without `a` the same write finds nothing to chase and is refused.
    assert!(matches!(store.write(chase).await, Err(Error::NotFound(_))));
}

async fn event_pages_start_where_asked_stop_at_the_limit_and_carry_the_bounds(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let empty = store.events(NOTES, 0, 10).await.unwrap();
    assert_eq!(
        (empty.events.len(), empty.oldest, empty.current),
        (0, None, 0)
    );
    for i in 0..10 {
        store.write(create(&format!("P{i}"), None)).await.unwrap();
    }
    let page = store.events(NOTES, 3, 4).await.unwrap();
    let revisions: Vec<u64> = page.events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![3, 4, 5, 6]);
    assert_eq!((page.oldest, page.current), (Some(1), 10));
    assert_eq!(page.events[0].patch, r#"{"3":{"text":"P2"}}"#);
    let tail = store.events(NOTES, 9, 100).await.unwrap();
    assert_eq!(tail.events.len(), 2);
    let beyond = store.events(NOTES, 11, 100).await.unwrap();
    assert_eq!(
        (beyond.events.len(), beyond.oldest, beyond.current),
        (0, Some(1), 10)
    );
    let other = store.events(TAGS, 0, 100).await.unwrap();
    assert_eq!((other.events.len(), other.current), (0, 0));
}

async fn trimming_deletes_old_events_but_never_the_view_or_its_revision(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    for i in 0..3 {
        store
            .write(create(&format!("P{i}"), Some("home")))
            .await
            .unwrap();
    }
    let before = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.trim(before).await.unwrap(), 0, "nothing is that old");
    let after = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        store.trim(after).await.unwrap(),
        6,
        "3 notes + 3 tags events"
    );
    let page = store.events(NOTES, 0, 100).await.unwrap();
    assert_eq!((page.events.len(), page.oldest, page.current), (0, None, 3));
    let notes = store.snapshot(NOTES).await.unwrap();
    assert_eq!((notes.revision, notes.docs.len()), (3, 3));
    let next = store.write(create("P3", None)).await.unwrap();
    assert_eq!(next.revision(NOTES), 4);
    let page = store.events(NOTES, 0, 100).await.unwrap();
    assert_eq!((page.oldest, page.current), (Some(4), 4));
}

/// The retained notes revisions: (oldest, newest, current), after
/// checking that they are exactly one contiguous range ending at current.
async fn retained(store: &dyn Store) -> (Option<u64>, u64) {
    let page = store.events(NOTES, 0, 10_000).await.unwrap();
    let revisions: Vec<u64> = page.events.iter().map(|e| e.revision).collect();
    let expected: Vec<u64> = match page.oldest {
        Some(oldest) => (oldest..=page.current).collect(),
        None => Vec::new(),
    };
    assert_eq!(revisions, expected, "a contiguous range ending at current");
    (page.oldest, page.current)
}

async fn trimming_deletes_only_a_prefix_of_revisions_whatever_the_clocks_said(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    for i in 0..8 {
        store.write(create(&format!("P{i}"), None)).await.unwrap();
    }
    let now = SystemTime::now();
    let cutoff = now - Duration::from_secs(3600);
    let long_ago = now - Duration::from_secs(7200);
    // Another writer, two hours behind, committed every other revision.
    db.stamp(&[1, 2, 4, 5, 7], long_ago).await;
    assert_eq!(store.trim(cutoff).await.unwrap(), 2, "1 and 2; 3 is young");
    assert_eq!(retained(&*store).await, (Some(3), 8));

    db.stamp(&[3], long_ago).await;
    assert_eq!(store.trim(cutoff).await.unwrap(), 3, "3, 4 and 5");
    assert_eq!(retained(&*store).await, (Some(6), 8));

    // A clock stepped back: the newest event looks older than one before it.
    db.stamp(&[8], long_ago).await;
    assert_eq!(store.trim(cutoff).await.unwrap(), 0, "6 is young");
    assert_eq!(retained(&*store).await, (Some(6), 8));

    db.stamp(&[6], long_ago).await;
    assert_eq!(store.trim(cutoff).await.unwrap(), 3);
    assert_eq!(retained(&*store).await, (None, 8));
    let notes = store.snapshot(NOTES).await.unwrap();
    assert_eq!((notes.revision, notes.docs.len()), (8, 8));
}

async fn trimming_walks_a_long_outbox_in_batches_and_stops_at_the_first_young_event(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let batch = duality::store::trim::BATCH;
    let (total, young) = (2 * batch + batch / 2, 2 * batch + 7);
    let now = duality::store::unix_ms(SystemTime::now());
    // Old events, one young one past two whole batches, old ones after it.
    db.sql(&format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {total})
         INSERT INTO events (view, revision, patch, created_ms)
         SELECT 'notes', n, '{{}}', CASE WHEN n = {young} THEN {now} ELSE 0 END FROM s;
         INSERT INTO views (view, revision) VALUES ('notes', {total})
         ON CONFLICT (view) DO UPDATE SET revision = excluded.revision;"
    ))
    .await;
    let cutoff = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.trim(cutoff).await.unwrap(), young - 1);
    let page = store.events(NOTES, 0, 2).await.unwrap();
    assert_eq!(page.oldest, Some(young));
    assert_eq!(page.events[0].revision, young);
    assert_eq!(page.current, total);
}

/// The changed keys of notes after `after`, as (key, revision, deleted),
/// with the oldest position they answer for; `None` past the horizon.
async fn changed_after(store: &dyn Store, after: u64) -> Option<(u64, Vec<(String, u64, bool)>)> {
    let changed = store.changed(NOTES, after).await.unwrap()?;
    let mut keys: Vec<(String, u64, bool)> = changed
        .keys
        .into_iter()
        .map(|c| (c.key, c.revision, c.deleted))
        .collect();
    keys.sort();
    Some((changed.since, keys))
}

async fn every_write_records_the_keys_it_changed_and_the_horizon_trims_them_as_a_prefix(
    b: Backend,
) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    store.write(create("P0", None)).await.unwrap(); // 1: "1"
    store.write(create("P1", None)).await.unwrap(); // 2: "2"
    store.write(create("P2", None)).await.unwrap(); // 3: "3"
    store.write(set_tag(1, Some("work"))).await.unwrap(); // 4: "1" again
    store.write(delete(2)).await.unwrap(); // 5: "2" deleted
    let row = |k: &str, r: u64, d: bool| (k.to_string(), r, d);
    assert_eq!(
        changed_after(&*store, 0).await,
        Some((
            0,
            vec![row("1", 4, false), row("2", 5, true), row("3", 3, false)]
        )),
        "one row per key: its last change, and whether it deleted it"
    );
    assert_eq!(
        changed_after(&*store, 3).await,
        Some((0, vec![row("1", 4, false), row("2", 5, true)]))
    );
    assert_eq!(changed_after(&*store, 5).await, Some((0, vec![])));

    // "3" (revision 3) was written long ago, the rest now: the horizon
    // takes 3, and a position before it can no longer be caught up.
    let now = SystemTime::now();
    let stamp = |key: &str, at: SystemTime| {
        format!(
            "UPDATE changed_keys SET changed_ms = {} WHERE view = 'notes' AND key = '{key}';",
            duality::store::unix_ms(at)
        )
    };
    let long_ago = now - Duration::from_secs(7200);
    db.sql(&stamp("3", long_ago)).await;
    let cutoff = now - Duration::from_secs(3600);
    assert_eq!(store.trim_changes(cutoff).await.unwrap(), 1);
    assert_eq!(changed_after(&*store, 2).await, None, "3 is gone");
    assert_eq!(
        changed_after(&*store, 3).await,
        Some((3, vec![row("1", 4, false), row("2", 5, true)]))
    );

    // A clock stepped back: "2" (5) looks old, but "1" (4) before it is
    // young, so nothing goes; once "1" is old too, both go.
    db.sql(&stamp("2", long_ago)).await;
    assert_eq!(store.trim_changes(cutoff).await.unwrap(), 0, "4 is young");
    assert_eq!(changed_after(&*store, 3).await.unwrap().0, 3);
    db.sql(&stamp("1", long_ago)).await;
    assert_eq!(store.trim_changes(cutoff).await.unwrap(), 2);
    assert_eq!(changed_after(&*store, 4).await, None);
    assert_eq!(changed_after(&*store, 5).await, Some((5, vec![])));

    // What is kept survives reopening, and writes go on recording.
    drop(store);
    let (store, _hub) = db.open().await;
    store.write(create("P3", None)).await.unwrap(); // 6: "4"
    assert_eq!(
        changed_after(&*store, 5).await,
        Some((5, vec![row("4", 6, false)]))
    );
}

async fn a_database_from_before_catch_up_answers_only_positions_from_its_revision_on(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    for i in 0..3 {
        store.write(create(&format!("P{i}"), None)).await.unwrap();
    }
    drop(store);
    // As written by a server from before catch-up: no table of changed keys.
    db.sql("DROP TABLE changed_keys; DROP TABLE catch_up_since;")
        .await;
    let (store, _hub) = db.open().await;
    assert_eq!(
        changed_after(&*store, 2).await,
        None,
        "the keys changed before were never recorded"
    );
    assert_eq!(changed_after(&*store, 3).await, Some((3, vec![])));
    store.write(delete(1)).await.unwrap();
    assert_eq!(
        changed_after(&*store, 3).await,
        Some((3, vec![("1".to_string(), 4, true)]))
    );
}

async fn the_epoch_belongs_to_the_database_and_survives_reopening(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    let epoch = store.epoch().to_string();
    assert_eq!(epoch.len(), 32, "{epoch}");
    store.write(create("Ann", None)).await.unwrap();
    drop(store);
    let (again, hub) = db.open().await;
    assert_eq!(again.epoch(), epoch);
    assert_eq!(hub.latest(NOTES), Ok(1), "the hub learns the revisions");
    let other = Db::new(b).await;
    let (fresh, _hub) = other.open().await;
    assert_ne!(fresh.epoch(), epoch, "another database, another history");
}

async fn concurrent_writers_get_gapless_revisions_distinct_ids_and_ordered_live_events(b: Backend) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let db = Db::new(b).await;
    let (store, hub) = db.open().await;
    let mut notes_live = hub.subscribe(NOTES).unwrap();
    let mut tags_live = hub.subscribe(TAGS).unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let tag = ["work", "home", "todo"][(w + i) % 3];
                let c = store
                    .write(create(&format!("W{w}-{i}"), Some(tag)))
                    .await
                    .unwrap();
                ids.push(c.output["id"].as_u64().unwrap());
                if i % 5 == 4 {
                    store.write(set_tag(ids[i - 1], None)).await.unwrap();
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    let total = (WRITERS * EACH + WRITERS * EACH / 5) as u64;
    for (view, live) in [(NOTES, &mut notes_live), (TAGS, &mut tags_live)] {
        let snapshot = store.snapshot(view).await.unwrap();
        if view == NOTES {
            assert_eq!(snapshot.revision, total);
        }
        let events = all_events(&*store, view).await;
        let revisions: Vec<u64> = events.iter().map(|(r, _)| *r).collect();
        assert_eq!(revisions, (1..=snapshot.revision).collect::<Vec<_>>());
        assert_eq!(
            fold(events.into_iter().map(|(_, p)| p)),
            Value::Object(snapshot.docs.clone())
        );
        // The hub gets every event once, in order (the ring holds them all;
        // a writer may hear of its commit just before it is published).
        let published = frames(live, snapshot.revision as usize).await;
        assert_eq!(
            published,
            (1..=snapshot.revision).collect::<Vec<_>>(),
            "{view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(live.try_recv().is_err(), "{view}: nothing twice");
        assert_eq!(hub.latest(view), Ok(snapshot.revision));
    }
    let tags = store.snapshot(TAGS).await.unwrap();
    let notes = store.snapshot(NOTES).await.unwrap();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for n in notes.docs.values() {
        if let Some(t) = n.get("tag").and_then(Value::as_str) {
            *totals.entry(t.into()).or_default() += 1;
        }
    }
    let expected: serde_json::Map<String, Value> = totals
        .into_iter()
        .map(|(t, n)| (t, json!({"total": n})))
        .collect();
    assert_eq!(tags.docs, expected, "tags stay exact");
}

/// Writes that arrive together (and so may share a transaction): refused
/// ones change nothing and do not disturb the others, and writes to the
/// same document apply one after the other.
async fn refused_and_conflicting_writes_among_concurrent_ones_leave_the_others_exact(b: Backend) {
    let db = Db::new(b).await;
    let (store, _hub) = db.open().await;
    store.write(create("Ann", Some("work"))).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..120u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let write = match i % 3 {
                0 => create(&format!("P{i}"), None),
                1 => delete(10_000 + i),
                _ => set_tag(1, Some(["work", "home", "todo"][(i % 9 / 3) as usize])),
            };
            (i, store.write(write).await)
        }));
    }
    let mut revisions = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match (i % 3, result) {
            (0, Ok(c)) => {
                ids.push(c.output["id"].as_u64().unwrap());
                revisions.push(c.revision(NOTES));
            }
            (1, Err(Error::NotFound(_))) => {}
            (2, Ok(c)) => revisions.push(c.revision(NOTES)),
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        (2..=41).collect::<Vec<_>>(),
        "refused writes use no id"
    );
    let notes = store.snapshot(NOTES).await.unwrap();
    let events = all_events(&*store, NOTES).await;
    let got: Vec<u64> = events.iter().map(|(r, _)| *r).collect();
    assert_eq!(got, (1..=notes.revision).collect::<Vec<_>>());
    assert_eq!(
        fold(events.into_iter().map(|(_, p)| p)),
        Value::Object(notes.docs.clone())
    );
    // Each write's X-Revision is one that exists, and creates are unique.
    assert!(revisions.iter().all(|r| (1..=notes.revision).contains(r)));
    let tag = notes.docs["1"]["tag"].as_str().unwrap().to_string();
    let expected = json!({ tag: {"total": 1} });
    let tags = store.snapshot(TAGS).await.unwrap();
    assert_eq!(Value::Object(tags.docs), expected);
    let tag_events = all_events(&*store, TAGS).await;
    assert_eq!(fold(tag_events.into_iter().map(|(_, p)| p)), expected);
}

/// Collects `n` frames of `view` from a hub, in the order they came.
async fn frames(live: &mut broadcast::Receiver<Arc<duality::hub::Frame>>, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), live.recv()).await {
            Ok(Ok(frame)) => got.push(frame.revision),
            Ok(Err(e)) => panic!("hub: {e:?} after {got:?}"),
            Err(_) => panic!("only {} of {n} frames arrived: {got:?}", got.len()),
        }
    }
    got
}

// ---------------------------------------------------------------------------
// PostgreSQL only: two stores on one database, as two processes.

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_database_each_publish_every_event_once_and_in_order() {
    tokio::time::timeout(WAIT, async {
        let db = Db::new(Backend::Postgres).await;
        let (a, hub_a) = db.open().await;
        let (b, hub_b) = db.open().await;
        assert_eq!(a.epoch(), b.epoch(), "the epoch is the database's");
        let mut live_a = hub_a.subscribe(NOTES).unwrap();
        let mut live_b = hub_b.subscribe(NOTES).unwrap();
        const EACH: usize = 60;
        let mut tasks = Vec::new();
        for (i, store) in [&a, &b, &a, &b].into_iter().enumerate() {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for n in 0..EACH {
                    store
                        .write(create(&format!("S{i}-{n}"), None))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all: Vec<u64> = (1..=(4 * EACH) as u64).collect();
        assert_eq!(frames(&mut live_a, all.len()).await, all);
        assert_eq!(frames(&mut live_b, all.len()).await, all);
        // Nothing is published twice.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(live_a.try_recv().is_err() && live_b.try_recv().is_err());
        assert_eq!(hub_a.latest(NOTES), Ok(all.len() as u64));
        assert_eq!(hub_b.latest(NOTES), Ok(all.len() as u64));
        // Trimming from both at once: one deletes, the other skips.
        let cutoff = SystemTime::now() + Duration::from_secs(1);
        let (ta, tb) = tokio::join!(a.trim(cutoff), b.trim(cutoff));
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        let left = a.events(NOTES, 0, 10).await.unwrap();
        assert_eq!(left.events.len(), 0);
        assert_eq!(
            ta + tb,
            all.len() as u64,
            "each event deleted once: {ta} + {tb}"
        );
    })
    .await
    .expect("the test took too long");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_or_unreachable_url_is_a_one_line_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    for url in [
        format!("postgres://nobody@127.0.0.1:{port}/none"),
        "postgres://u@host with spaces:x/db".to_string(),
        crate::common::pg::shared().url("no_such_database"),
    ] {
        let opened = tokio::time::timeout(Duration::from_secs(30), PgStore::open(&url, hub()))
            .await
            .expect("opening must fail promptly");
        let Err(Error::Unavailable(unavailable)) = opened else {
            panic!("{url} opened");
        };
        let message = unavailable.cause;
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains("PostgreSQL"), "{message}");
        eprintln!("{url}: {message}");
    }
}
