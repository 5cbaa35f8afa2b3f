//! The PostgreSQL store: any number of `duality` processes on one database.
//!
//! Same tables, same guarantees as the SQLite store; what changes is who
//! else writes. A write is one transaction on a pooled connection:
//!
//! 1. lock the rows of the views it declares in `views` (`SELECT ... FOR
//!    UPDATE`, always in the same order), so writers of a view serialise,
//!    across processes too, and never deadlock;
//! 2. run the pure [`Write`] over what has been loaded; each read it cannot
//!    answer yet ([`Missing`]) is loaded and the write runs again (writes
//!    are pure, so a re-run is harmless);
//! 3. save documents, events, the views' next revisions (allocated here,
//!    under the lock: gapless, never a sequence) and counters, NOTIFY
//!    `view:revision`, and commit.
//!
//! After the commit the events are published to this process's hub through
//! the [`Publisher`](listener::Publisher), which also publishes what other
//! processes commit (see [`listener`]): each process serves every stream.
//! The epoch lives in the database, so every process has the same.

mod listener;
mod sql;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use futures_util::future::{BoxFuture, try_join_all};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use super::{Committed, Event, EventsPage, Snapshot, Store, StoreError, new_epoch, unix_ms};
use crate::domain::View;
use crate::domain::write::{Fault, Missing, Plan, Source, Write};
use crate::hub::Hub;
use listener::Publisher;

/// Connections per process.
const POOL_SIZE: usize = 16;
/// How long opening the store may take before start-up fails.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for a new connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one write (all its round trips); past it the write is a 503.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one read.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts for a write that failed before its commit for a reason that a
/// retry can fix (a deadlock, a connection that was closed while idle).
const ATTEMPTS: u32 = 3;
/// The most reads one write may need (a guard against a write that never
/// stops asking).
const MAX_LOADS: usize = 100_000;

pub struct PgStore {
    pool: Pool,
    epoch: String,
    publisher: Arc<Publisher>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One line, whatever the error: its chain of causes joined by `: `.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn unavailable(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

pub(crate) fn unavailable_msg(m: impl Into<String>) -> StoreError {
    StoreError::Unavailable(m.into())
}

/// A pooled connection, or why there is none (one line).
pub(crate) async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Client, StoreError> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => unavailable(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            unavailable_msg("no database connection became available in time")
        }
        other => unavailable(other),
    })
}

/// Where a configuration points, without its password.
fn target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(h) => format!("{h}:{port}"),
            Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    format!(
        "postgres://{}@{hosts}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects, creates or checks the schema, reads the epoch and starts
    /// listening for other processes' commits. Fails with a one-line error
    /// if the URL is invalid or the database cannot be reached.
    pub async fn open(url: &str, hub: Arc<Hub>) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| unavailable_msg(format!("invalid PostgreSQL URL: {}", describe(&e))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("duality");
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let target = target(&config);
        match tokio::time::timeout(OPEN_TIMEOUT, Self::open_at(config, hub)).await {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(StoreError::Unavailable(m))) => {
                Err(unavailable_msg(format!("PostgreSQL at {target}: {m}")))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(unavailable_msg(format!(
                "PostgreSQL at {target} did not answer within {OPEN_TIMEOUT:?}"
            ))),
        }
    }

    async fn open_at(config: tokio_postgres::Config, hub: Arc<Hub>) -> Result<PgStore, StoreError> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(unavailable)?;
        let client = pooled(&pool).await?;
        let views: Vec<String> = View::ALL
            .iter()
            .map(|v| format!("('{}', 0)", v.name()))
            .collect();
        let schema = sql::SCHEMA
            .replace("{lock}", &sql::SCHEMA_LOCK.to_string())
            .replace("{epoch}", &new_epoch())
            .replace("{version}", &sql::SCHEMA_VERSION.to_string())
            .replace("{views}", &views.join(", "));
        client.batch_execute(&schema).await.map_err(unavailable)?;
        let mut epoch = None;
        for row in client.query(sql::META, &[]).await.map_err(unavailable)? {
            match (row.get::<_, &str>(0), row.get::<_, String>(1)) {
                ("epoch", value) => epoch = Some(value),
                ("schema", version) if version != sql::SCHEMA_VERSION.to_string() => {
                    return Err(unavailable_msg(format!(
                        "the database has schema version {version}; this duality knows version {}",
                        sql::SCHEMA_VERSION
                    )));
                }
                _ => {}
            }
        }
        let epoch = epoch.ok_or_else(|| unavailable_msg("the database has no epoch"))?;

        let publisher = Arc::new(Publisher::new(hub, pool.clone()));
        // LISTEN before reading the revisions: a commit after the read is
        // then notified, and one before it is below the cursor.
        let session = listener::listen(&config, &publisher).await?;
        for row in client
            .query(sql::ALL_REVISIONS, &[])
            .await
            .map_err(unavailable)?
        {
            if let Some(view) = View::from_name(row.get(0)) {
                publisher.start_at(view, row.get::<_, i64>(1) as u64).await;
            }
        }
        drop(client);
        let tasks = vec![
            tokio::spawn(Arc::clone(&publisher).run()),
            tokio::spawn(listener::listen_forever(
                config,
                Arc::clone(&publisher),
                session,
            )),
        ];
        Ok(PgStore {
            pool,
            epoch,
            publisher,
            tasks,
        })
    }

    /// One attempt at a write: one transaction, committed or rolled back.
    async fn write_once(&self, write: &Write) -> Result<(Committed, Plan), Failed> {
        let mut client = pooled(&self.pool).await.map_err(Failed::final_before)?;
        let tx = client.transaction().await.map_err(Failed::before)?;
        let mut loaded = Loaded::default();
        lock_views(&tx, write.views(), &mut loaded)
            .await
            .map_err(Failed::before)?;
        let mut loads = 0;
        let (output, plan) = loop {
            match write.execute(&loaded) {
                Ok(done) => break done,
                Err(Fault::Missing(missing)) if loads < MAX_LOADS => {
                    loads += 1;
                    loaded.load(&tx, missing).await?;
                }
                Err(Fault::Missing(m)) => {
                    return Err(Failed::final_before(unavailable_msg(format!(
                        "a write asked for more than {MAX_LOADS} reads (last {m:?})"
                    ))));
                }
                Err(Fault::Invalid(m)) => return Err(Failed::Fault(StoreError::Invalid(m))),
                Err(Fault::NotFound(m)) => return Err(Failed::Fault(StoreError::NotFound(m))),
            }
        };
        metrics::histogram!("duality_pg_write_loads").record(loads as f64);
        if !plan.changes.is_empty() || !plan.counters.is_empty() {
            persist(&tx, &plan, unix_ms(SystemTime::now())).await?;
        }
        tx.commit()
            .await
            .map_err(|e| Failed::Commit(unavailable(e)))?;
        let committed = Committed {
            output,
            revisions: plan.revisions.clone(),
        };
        Ok((committed, plan))
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        pooled(&self.pool).await
    }
}

/// Bounds a read in time: a database that stopped answering is a 503.
async fn bounded<R>(read: impl Future<Output = Result<R, StoreError>>) -> Result<R, StoreError> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| unavailable_msg("the database did not answer in time"))?
}

/// Why an attempt at a write failed, and so whether to try again.
enum Failed {
    /// Before the commit: nothing was committed; `retry` if a new attempt
    /// may succeed.
    Before { error: StoreError, retry: bool },
    /// The write itself refused (400, 404).
    Fault(StoreError),
    /// At the commit: it may or may not have committed.
    Commit(StoreError),
}

impl Failed {
    fn before(e: tokio_postgres::Error) -> Failed {
        Failed::Before {
            retry: retryable(&e),
            error: unavailable(e),
        }
    }

    fn final_before(error: StoreError) -> Failed {
        Failed::Before {
            error,
            retry: false,
        }
    }
}

/// Errors that a new attempt can fix.
fn retryable(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
        )
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Failed {
        Failed::before(e)
    }
}

/// Locks the declared views' rows and notes their revisions.
async fn lock_views(
    tx: &Transaction<'_>,
    views: &[View],
    loaded: &mut Loaded,
) -> Result<(), tokio_postgres::Error> {
    if views.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = views.iter().map(|v| v.name()).collect();
    let lock = tx.prepare_cached(sql::LOCK_VIEWS).await?;
    let mut rows = tx.query(&lock, &[&names]).await?;
    if rows.len() < names.len() {
        // A view this database has not seen (all known views are created
        // at start, so only a newer binary's view gets here).
        let add = tx.prepare_cached(sql::ADD_VIEWS).await?;
        tx.execute(&add, &[&names]).await?;
        rows = tx.query(&lock, &[&names]).await?;
    }
    for row in rows {
        if let Some(view) = View::from_name(row.get(0)) {
            loaded.revisions.insert(view, row.get::<_, i64>(1) as u64);
        }
    }
    Ok(())
}

/// Saves a plan: documents, events, revisions and counters, and NOTIFYs
/// the changed views, as a fixed number of pipelined statements.
async fn persist(tx: &Transaction<'_>, plan: &Plan, now: i64) -> Result<(), Failed> {
    let (mut up_views, mut up_keys, mut up_docs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut del_views, mut del_keys) = (Vec::new(), Vec::new());
    let (mut ev_views, mut ev_revisions, mut ev_patches) = (Vec::new(), Vec::new(), Vec::new());
    let mut payloads = Vec::new();
    for change in &plan.changes {
        let view = change.view.name();
        for (key, doc) in &change.rows {
            match doc {
                Some(doc) => {
                    up_views.push(view);
                    up_keys.push(key.as_str());
                    up_docs.push(doc.to_string());
                }
                None => {
                    del_views.push(view);
                    del_keys.push(key.as_str());
                }
            }
        }
        ev_views.push(view);
        ev_revisions.push(change.revision as i64);
        ev_patches.push(change.patch.to_string());
        payloads.push(listener::payload(change.view, change.revision));
    }
    let counter_names: Vec<&str> = plan.counters.iter().map(|(n, _)| n.as_str()).collect();
    let counter_next: Vec<i64> = plan.counters.iter().map(|(_, n)| *n as i64).collect();

    let prepared = try_join_all(
        [
            sql::UPSERT_DOCS,
            sql::DELETE_DOCS,
            sql::INSERT_EVENTS,
            sql::ADVANCE_VIEWS,
            sql::UPSERT_COUNTERS,
            sql::NOTIFY,
        ]
        .map(|q| tx.prepare_cached(q)),
    )
    .await?;
    let [upsert, delete, insert, advance, counters, notify] = &prepared[..] else {
        unreachable!("six statements were prepared");
    };
    type Pending<'a> = BoxFuture<'a, Result<u64, tokio_postgres::Error>>;
    // Sent one after the other without waiting (pipelined), run in order.
    let mut statements: Vec<Pending<'_>> = Vec::new();
    if !up_views.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(upsert, &[&up_views, &up_keys, &up_docs]).await
        }));
    }
    if !del_views.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(delete, &[&del_views, &del_keys]).await
        }));
    }
    if !counter_names.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(counters, &[&counter_names, &counter_next]).await
        }));
    }
    let changed = ev_views.len() as u64;
    if changed > 0 {
        statements.push(Box::pin(async {
            tx.execute(insert, &[&ev_views, &ev_revisions, &ev_patches, &now])
                .await
        }));
        statements.push(Box::pin(async { tx.execute(notify, &[&payloads]).await }));
        statements.push(Box::pin(async {
            tx.execute(advance, &[&ev_views, &ev_revisions]).await
        }));
    }
    let counts = try_join_all(statements).await?;
    if changed > 0 && counts.last() != Some(&changed) {
        // Cannot happen while every writer locks its views first; refuse
        // rather than commit a revision twice or with a gap.
        return Err(Failed::final_before(unavailable_msg(
            "a view's revision moved during the write",
        )));
    }
    Ok(())
}

/// What a write has read so far, inside its transaction.
#[derive(Default)]
struct Loaded {
    revisions: HashMap<View, u64>,
    docs: HashMap<(View, String), Option<Value>>,
    counters: HashMap<String, u64>,
}

impl Loaded {
    async fn load(&mut self, tx: &Transaction<'_>, missing: Missing) -> Result<(), Failed> {
        match missing {
            Missing::Doc(view, key) => {
                let stmt = tx.prepare_cached(sql::DOC).await?;
                let row = tx.query_opt(&stmt, &[&view.name(), &key]).await?;
                let doc = row
                    .map(|r| parse_doc(r.get(0)))
                    .transpose()
                    .map_err(Failed::final_before)?;
                self.docs.insert((view, key), doc);
            }
            Missing::Counter(name) => {
                let stmt = tx.prepare_cached(sql::LOCK_COUNTER).await?;
                let next: i64 = tx.query_one(&stmt, &[&name]).await?.get(0);
                self.counters.insert(name, next as u64);
            }
            Missing::Revision(view) => {
                let stmt = tx.prepare_cached(sql::REVISION).await?;
                let revision = tx
                    .query_opt(&stmt, &[&view.name()])
                    .await?
                    .map_or(0, |r| r.get::<_, i64>(0) as u64);
                self.revisions.insert(view, revision);
            }
        }
        Ok(())
    }
}

impl Source for Loaded {
    fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing> {
        self.docs
            .get(&(view, key.to_string()))
            .cloned()
            .ok_or_else(|| Missing::Doc(view, key.into()))
    }

    fn counter(&self, name: &str) -> Result<u64, Missing> {
        self.counters
            .get(name)
            .copied()
            .ok_or_else(|| Missing::Counter(name.into()))
    }

    fn revision(&self, view: View) -> Result<u64, Missing> {
        self.revisions
            .get(&view)
            .copied()
            .ok_or(Missing::Revision(view))
    }
}

fn parse_doc(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| unavailable_msg(format!("a stored document is not JSON: {e}")))
}

impl Store for PgStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Committed, StoreError>> {
        Box::pin(async move {
            let mut attempt = 1;
            let (committed, plan) = loop {
                let outcome = tokio::time::timeout(WRITE_TIMEOUT, self.write_once(&write))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failed::Commit(unavailable_msg(
                            "the database did not answer in time",
                        )))
                    });
                match outcome {
                    Ok(done) => break done,
                    Err(Failed::Before { error, retry: true }) if attempt < ATTEMPTS => {
                        attempt += 1;
                        tracing::debug!(%error, attempt, "retrying a write");
                    }
                    Err(
                        Failed::Before { error, .. } | Failed::Fault(error) | Failed::Commit(error),
                    ) => return Err(error),
                }
            };
            for change in &plan.changes {
                self.publisher
                    .local(change.view, change.revision, &change.patch.to_string())
                    .await;
            }
            Ok(committed)
        })
    }

    fn snapshot(&self, view: View) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        Box::pin(bounded(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(sql::SNAPSHOT)
                .await
                .map_err(unavailable)?;
            let rows = client
                .query(&stmt, &[&view.name()])
                .await
                .map_err(unavailable)?;
            let mut revision = 0;
            let mut docs = Map::new();
            for row in rows {
                revision = row.get::<_, i64>(0) as u64;
                if let Some(key) = row.get::<_, Option<String>>(1) {
                    docs.insert(key, parse_doc(row.get(2))?);
                }
            }
            Ok(Snapshot { revision, docs })
        }))
    }

    fn doc(&self, view: View, key: String) -> BoxFuture<'_, Result<Option<Value>, StoreError>> {
        Box::pin(bounded(async move {
            let client = self.client().await?;
            let stmt = client.prepare_cached(sql::DOC).await.map_err(unavailable)?;
            let row = client
                .query_opt(&stmt, &[&view.name(), &key])
                .await
                .map_err(unavailable)?;
            row.map(|r| parse_doc(r.get(0))).transpose()
        }))
    }

    fn events(
        &self,
        view: View,
        from: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<EventsPage, StoreError>> {
        Box::pin(bounded(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(sql::EVENTS)
                .await
                .map_err(unavailable)?;
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client
                .query(&stmt, &[&view.name(), &from, &limit])
                .await
                .map_err(unavailable)?;
            let mut page = EventsPage {
                events: Vec::with_capacity(rows.len()),
                oldest: None,
                current: 0,
            };
            for row in rows {
                page.current = row.get::<_, i64>(0) as u64;
                page.oldest = row.get::<_, Option<i64>>(1).map(|o| o as u64);
                if let Some(revision) = row.get::<_, Option<i64>>(2) {
                    page.events.push(Event {
                        revision: revision as u64,
                        patch: row.get(3),
                    });
                }
            }
            Ok(page)
        }))
    }

    fn trim(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        let cutoff = unix_ms(cutoff);
        Box::pin(async move {
            tokio::time::timeout(READ_TIMEOUT, async {
                let mut client = pooled(&self.pool).await?;
                let tx = client.transaction().await.map_err(unavailable)?;
                // One process trims at a time; the others skip this round.
                // Their streams notice deleted events in the outbox.
                let mine: bool = tx
                    .query_one(sql::TRY_TRIM_LOCK, &[&sql::TRIM_LOCK])
                    .await
                    .map_err(unavailable)?
                    .get(0);
                if !mine {
                    return Ok(0);
                }
                let stmt = tx.prepare_cached(sql::TRIM).await.map_err(unavailable)?;
                let deleted = tx.execute(&stmt, &[&cutoff]).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(deleted)
            })
            .await
            .map_err(|_| unavailable_msg("trimming did not finish in time"))?
        })
    }
}
