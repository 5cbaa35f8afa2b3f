//! The PostgreSQL store: any number of `duality` processes on one database.
//!
//! Same tables, same guarantees as the SQLite store; what changes is who
//! else writes. Writes run in [`writer`]: each process's writes are
//! group-committed on one connection, and every transaction first locks
//! the rows of the views it writes in `views` (`SELECT ... FOR UPDATE`, one
//! fixed order), so writers of a view serialise across processes, and
//! revisions are allocated under that lock: gapless, committed in order,
//! never from a sequence. Each commit NOTIFYs `view:revision`.
//!
//! After the commit the events are published to this process's hub through
//! the [`Publisher`](listener::Publisher), which also publishes what other
//! processes commit (see [`listener`]): every process serves every stream.
//! Reads (snapshots, documents, outbox pages) are single statements on
//! pooled connections, so each sees one consistent snapshot. The epoch
//! lives in the database, so every process has the same.

mod listener;
mod sql;
mod writer;

use duality_core::Error;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use super::{
    Changed, ChangedKeys, Committed, Event, EventsPage, MetaChange, MetaSet, Publish, Snapshot,
    Store, new_epoch, trim, unix_ms,
};
use duality_core::View;
use duality_core::view::Registry;
use duality_core::write::Write;
use duality_core::{Chunks, chunks};
use futures_util::StreamExt;
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
/// Documents checked at once by `set_view_meta`.
const CHECK_PAGE: usize = 1024;
/// Bound on reading a whole view (once per process, at start).
const SCAN_TIMEOUT: Duration = Duration::from_secs(300);

/// A [`Store`](crate::store::Store) on PostgreSQL: a connection pool for reads,
/// one writer task that group-commits, and events shared between processes on
/// the same database.
pub struct PgStore {
    pool: Pool,
    epoch: String,
    /// The writer task's queue (group commit, see [`writer`]).
    jobs: mpsc::Sender<writer::Job>,
    tasks: Vec<JoinHandle<()>>,
    /// The views this process serves (what retention trims).
    registry: Registry,
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

pub(crate) fn unavailable(e: impl std::error::Error + 'static) -> Error {
    Error::store_unavailable(describe(&e))
}

pub(crate) fn unavailable_msg(m: impl Into<String>) -> Error {
    Error::store_unavailable(m.into())
}

/// A pooled connection, or why there is none (one line).
pub(crate) async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Client, Error> {
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
    let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
    format!(
        "postgres://{user}{hosts}/{}",
        config.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects, creates or checks the schema, reads the epoch and starts
    /// listening for other processes' commits. Fails with a one-line error
    /// if the URL is invalid or the database cannot be reached.
    pub async fn open(url: &str, hub: Arc<dyn Publish>) -> Result<PgStore, Error> {
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
            Ok(Err(Error::Unavailable(u))) => Err(unavailable_msg(format!(
                "PostgreSQL at {target}: {}",
                u.cause
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(unavailable_msg(format!(
                "PostgreSQL at {target} did not answer within {OPEN_TIMEOUT:?}"
            ))),
        }
    }

    async fn open_at(
        config: tokio_postgres::Config,
        hub: Arc<dyn Publish>,
    ) -> Result<PgStore, Error> {
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
        // Registered names are plain (see `Registry::new`): no quoting.
        let views: Vec<String> = hub
            .registry()
            .views()
            .map(|v| format!("('{}', 0)", v.name()))
            .collect();
        let insert_views = if views.is_empty() {
            String::new()
        } else {
            sql::INSERT_VIEWS.replace("{views}", &views.join(", "))
        };
        let schema = sql::SCHEMA
            .replace("{lock}", &sql::SCHEMA_LOCK.to_string())
            .replace("{epoch}", &new_epoch())
            .replace("{version}", &sql::SCHEMA_VERSION.to_string())
            .replace("{views}", &insert_views);
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

        let registry = hub.registry().clone();
        let publisher = Arc::new(Publisher::new(hub, pool.clone()));
        // LISTEN before reading the revisions: a commit after the read is
        // then notified, and one before it is below the cursor.
        let session = listener::listen(&config, &publisher).await?;
        for row in client
            .query(sql::ALL_REVISIONS, &[])
            .await
            .map_err(unavailable)?
        {
            if let Some(view) = publisher.registry().get(row.get(0)) {
                publisher.start_at(view, row.get::<_, i64>(1) as u64).await;
            }
        }
        drop(client);
        let mut models = duality_core::derive::Models::default();
        for view in registry
            .views()
            .filter(|v| duality_core::derive::Models::modeled(*v))
        {
            models.insert(view, load_model(&pool, view).await?);
        }
        let (jobs, queued) = mpsc::channel(writer::QUEUE);
        let tasks = vec![
            tokio::spawn(writer::run(
                pool.clone(),
                Arc::clone(&publisher),
                queued,
                models,
            )),
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
            jobs,
            tasks,
            registry,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, Error> {
        pooled(&self.pool).await
    }

    /// One transaction of a trim: deletes a prefix of the view's oldest
    /// [`trim::BATCH`] events from revision `from` on (see
    /// [`trim`](super::trim)) and answers how many, and where the next batch
    /// starts if one may be due; `None` if another process holds the trim
    /// lock (one process trims at a time, the others skip).
    async fn trim_batch(
        &self,
        view: View,
        cutoff: i64,
        from: u64,
    ) -> Result<Option<(u64, Option<u64>)>, Error> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        let mine: bool = tx
            .query_one(sql::TRY_TRIM_LOCK, &[&sql::TRIM_LOCK])
            .await
            .map_err(unavailable)?
            .get(0);
        if !mine {
            return Ok(None);
        }
        let batch = trim::BATCH as i64;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let row = tx
            .query_one(sql::TRIM_HEAD, &[&view.name(), &cutoff, &batch, &from])
            .await
            .map_err(unavailable)?;
        let head = trim::Head {
            young: row.get::<_, Option<i64>>(0).map(|v| v as u64),
            last: row.get::<_, Option<i64>>(1).map(|v| v as u64),
            count: row.get::<_, i64>(2) as u64,
        };
        let Some(below) = head.delete_below() else {
            // Ends the transaction now, so the lock is free for the next
            // view (a dropped one releases it only later).
            tx.commit().await.map_err(unavailable)?;
            return Ok(Some((0, None)));
        };
        let below = i64::try_from(below).unwrap_or(i64::MAX);
        let deleted = tx
            .execute(sql::TRIM_BELOW, &[&view.name(), &below])
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some((deleted, head.next_from(trim::BATCH))))
    }

    /// One transaction of a horizon trim: as [`PgStore::trim_batch`], over
    /// the view's changed-key rows, also moving the oldest position they
    /// answer for to the newest row deleted; `None` if another process
    /// holds the trim lock.
    async fn trim_changes_batch(
        &self,
        view: View,
        cutoff: i64,
        from: u64,
    ) -> Result<Option<(u64, Option<u64>)>, Error> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        let mine: bool = tx
            .query_one(sql::TRY_TRIM_LOCK, &[&sql::TRIM_LOCK])
            .await
            .map_err(unavailable)?
            .get(0);
        if !mine {
            return Ok(None);
        }
        let batch = trim::BATCH as i64;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let row = tx
            .query_one(
                sql::TRIM_CHANGED_HEAD,
                &[&view.name(), &cutoff, &batch, &from],
            )
            .await
            .map_err(unavailable)?;
        let head = trim::Head {
            young: row.get::<_, Option<i64>>(0).map(|v| v as u64),
            last: row.get::<_, Option<i64>>(1).map(|v| v as u64),
            count: row.get::<_, i64>(2) as u64,
        };
        let Some(below) = head.delete_below() else {
            tx.commit().await.map_err(unavailable)?;
            return Ok(Some((0, None)));
        };
        let below = i64::try_from(below).unwrap_or(i64::MAX);
        let gone = tx
            .query_one(sql::TRIM_CHANGED_BELOW, &[&view.name(), &below])
            .await
            .map_err(unavailable)?;
        let deleted = gone.get::<_, i64>(0) as u64;
        // The newest row deleted: positions before it lose a key they need.
        if let Some(newest) = gone.get::<_, Option<i64>>(1) {
            tx.execute(sql::RAISE_CATCH_UP_SINCE, &[&view.name(), &newest])
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Some((deleted, head.next_from(trim::BATCH))))
    }
}

/// The model of `view` (see [`duality_core::derive`]) over its documents
/// and at its revision, read in one snapshot (once, at start).
async fn load_model(pool: &Pool, view: View) -> Result<duality_core::derive::Model, Error> {
    let load = async {
        let mut client = pooled(pool).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(unavailable)?;
        let revision = tx
            .query_opt(sql::REVISION, &[&view.name()])
            .await
            .map_err(unavailable)?
            .map_or(0, |r| r.get::<_, i64>(0) as u64);
        let model = writer::read_model(&tx, view, revision)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(model)
    };
    tokio::time::timeout(SCAN_TIMEOUT, load)
        .await
        .map_err(|_| unavailable_msg("reading a view's model did not finish in time"))?
}

/// Bounds a read in time: a database that stopped answering is a 503.
async fn bounded<R>(read: impl Future<Output = Result<R, Error>>) -> Result<R, Error> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| unavailable_msg("the database did not answer in time"))?
}

pub(crate) fn parse_doc(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .map_err(|e| unavailable_msg(format!("a stored document is not JSON: {e}")))
}

impl Store for PgStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn shared(&self) -> bool {
        true
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Committed, Error>> {
        Box::pin(async move {
            crate::store::served(&self.registry, &write)?;
            let (reply, answer) = oneshot::channel();
            self.jobs
                .send(writer::Job { write, reply })
                .await
                .map_err(|_| unavailable_msg("the writer stopped"))?;
            answer
                .await
                .map_err(|_| unavailable_msg("the writer stopped"))?
        })
    }

    fn snapshot(&self, view: View) -> BoxFuture<'_, Result<Snapshot, Error>> {
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

    fn scan(&self, view: View) -> BoxFuture<'_, Result<(u64, Chunks), Error>> {
        Box::pin(async move {
            let scan = async {
                let mut client = self.client().await?;
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(unavailable)?;
                let revision = tx
                    .query_opt(sql::REVISION, &[&view.name()])
                    .await
                    .map_err(unavailable)?
                    .map_or(0, |r| r.get::<_, i64>(0) as u64);
                let rows = tx
                    .query_raw(sql::SCAN, &[view.name()])
                    .await
                    .map_err(unavailable)?;
                futures_util::pin_mut!(rows);
                let mut builder = chunks::Builder::default();
                while let Some(row) = rows.next().await {
                    let row = row.map_err(unavailable)?;
                    builder
                        .push(row.get(0), row.get(1), row.get::<_, i64>(2) as u64)
                        .map_err(unavailable_msg)?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok((revision, builder.finish()))
            };
            tokio::time::timeout(SCAN_TIMEOUT, scan)
                .await
                .map_err(|_| unavailable_msg("reading the view did not finish in time"))?
        })
    }

    fn doc(&self, view: View, key: String) -> BoxFuture<'_, Result<Option<Value>, Error>> {
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
    ) -> BoxFuture<'_, Result<EventsPage, Error>> {
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
                        prior: row.get(4),
                    });
                }
            }
            Ok(page)
        }))
    }

    fn changed(&self, view: View, after: u64) -> BoxFuture<'_, Result<Option<ChangedKeys>, Error>> {
        Box::pin(bounded(async move {
            let mut client = self.client().await?;
            // One snapshot for the bound and the rows: a trim between them
            // could otherwise delete rows this position needs.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(unavailable)?;
            let since = tx
                .query_one(sql::CATCH_UP_SINCE, &[&view.name()])
                .await
                .map_err(unavailable)?
                .get::<_, i64>(0) as u64;
            if !duality_core::catch_up::covers(since, after) {
                return Ok(None);
            }
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let rows = tx
                .query(sql::CHANGED_AFTER, &[&view.name(), &after])
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            let keys = rows
                .into_iter()
                .map(|row| Changed {
                    key: row.get(0),
                    revision: row.get::<_, i64>(1) as u64,
                    deleted: row.get(2),
                })
                .collect();
            Ok(Some(ChangedKeys { since, keys }))
        }))
    }

    fn trim_changes(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>> {
        let cutoff = unix_ms(cutoff);
        Box::pin(async move {
            let mut deleted = 0;
            let views: Vec<View> = self.registry.views().collect();
            for view in views {
                let mut from = Some(0);
                while let Some(start) = from {
                    let batch = self.trim_changes_batch(view, cutoff, start);
                    let batch = tokio::time::timeout(READ_TIMEOUT, batch)
                        .await
                        .map_err(|_| unavailable_msg("trimming did not finish in time"))??;
                    let Some((n, next)) = batch else {
                        // Another process is trimming; it does the rest.
                        return Ok(deleted);
                    };
                    deleted += n;
                    from = next;
                }
            }
            Ok(deleted)
        })
    }

    fn view_meta(&self, view: View, name: String) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(bounded(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(sql::VIEW_META, &[&view.name(), &name])
                .await
                .map_err(unavailable)?;
            Ok(row.map(|r| r.get(0)))
        }))
    }

    fn set_view_meta(&self, change: MetaChange) -> BoxFuture<'_, Result<MetaSet, Error>> {
        Box::pin(async move {
            let set = async {
                let mut client = self.client().await?;
                let tx = client.transaction().await.map_err(unavailable)?;
                // The view's row, locked as every writer of the view locks
                // it: no write of any process commits until this one ends.
                let names = vec![change.view.name()];
                tx.execute(sql::ADD_VIEWS, &[&names])
                    .await
                    .map_err(unavailable)?;
                tx.query(sql::LOCK_VIEWS, &[&names])
                    .await
                    .map_err(unavailable)?;
                let stored: Option<String> = tx
                    .query_opt(sql::VIEW_META, &[&change.view.name(), &change.name])
                    .await
                    .map_err(unavailable)?
                    .map(|r| r.get(0));
                if stored != change.expected {
                    return Ok(MetaSet::Changed(stored));
                }
                if let Some(check) = &change.check {
                    let rows = tx
                        .query_raw(sql::SCAN, &[change.view.name()])
                        .await
                        .map_err(unavailable)?;
                    futures_util::pin_mut!(rows);
                    // Checked off the runtime, a page at a time: a check
                    // is the service's code and may take its time.
                    let mut page = Vec::with_capacity(CHECK_PAGE);
                    loop {
                        let row = rows.next().await.transpose().map_err(unavailable)?;
                        let done = row.is_none();
                        if let Some(row) = row {
                            page.push((row.get::<_, String>(0), row.get::<_, String>(1)));
                        }
                        if page.len() == CHECK_PAGE || (done && !page.is_empty()) {
                            let docs = std::mem::replace(&mut page, Vec::with_capacity(CHECK_PAGE));
                            let check = Arc::clone(check);
                            tokio::task::spawn_blocking(move || {
                                docs.iter()
                                    .try_for_each(|(key, doc)| check(key, &parse_doc(doc)?))
                            })
                            .await
                            .map_err(|e| unavailable_msg(e.to_string()))??;
                        }
                        if done {
                            break;
                        }
                    }
                }
                tx.execute(
                    sql::UPSERT_VIEW_META,
                    &[&change.view.name(), &change.name, &change.value],
                )
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(MetaSet::Stored)
            };
            tokio::time::timeout(SCAN_TIMEOUT, set)
                .await
                .map_err(|_| unavailable_msg("checking the view did not finish in time"))?
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(bounded(async move {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(unavailable)?;
            Ok(())
        }))
    }

    fn trim(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>> {
        let cutoff = unix_ms(cutoff);
        Box::pin(async move {
            let mut deleted = 0;
            let views: Vec<View> = self.registry.views().collect();
            for view in views {
                let mut from = Some(0);
                while let Some(start) = from {
                    let batch = self.trim_batch(view, cutoff, start);
                    let batch = tokio::time::timeout(READ_TIMEOUT, batch)
                        .await
                        .map_err(|_| unavailable_msg("trimming did not finish in time"))??;
                    let Some((n, next)) = batch else {
                        // Another process is trimming; it does the rest.
                        return Ok(deleted);
                    };
                    deleted += n;
                    from = next;
                }
            }
            let trim_keys = async {
                let client = self.client().await?;
                client
                    .execute(sql::TRIM_KEYS, &[&cutoff])
                    .await
                    .map_err(unavailable)
            };
            tokio::time::timeout(READ_TIMEOUT, trim_keys)
                .await
                .map_err(|_| unavailable_msg("trimming did not finish in time"))??;
            Ok(deleted)
        })
    }
}
