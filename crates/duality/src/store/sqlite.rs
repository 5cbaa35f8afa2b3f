//! The SQLite store: a dedicated writer thread with group commit, plus a
//! small pool of read connections.
//!
//! Writes queue on a bounded channel. The writer thread takes every write
//! that is waiting (up to [`MAX_BATCH`]), runs each inside its own savepoint
//! of one `BEGIN IMMEDIATE` transaction, and commits the batch with a single
//! fsync (`synchronous=FULL`). Each write still gets its own revisions and
//! events; a write that fails is rolled back to its savepoint without
//! disturbing the others. Only after the commit are the events published and
//! the writes acknowledged, so an acknowledged write is durable and a
//! subscriber never sees an event that could still roll back.
//!
//! A batch made only of derived writes ([`Write::derived`]: the dashboard,
//! composed from the backends' committed events) is the one exception: it
//! commits with `synchronous=NORMAL` and is published at once, so a
//! backend change reaches the dashboard's subscribers after one fsync, not
//! two. Its log frames are in the kernel's page cache, safe from the
//! process's death; they reach the disk with the next commit or checkpoint
//! (every [`CHECKPOINT_EVERY`]). Only a new boot of the machine can lose
//! them, and then subscribers could have seen revisions that are gone, so
//! the store records the boot it runs in until it is closed cleanly, and a
//! start in another boot after an unclean stop gives the database a new
//! epoch: consumers start over from a snapshot instead of following a
//! history that changed (docs/PROTOCOL.md, "Epochs").
//!
//! The writer also keeps the models of the views that have derived views
//! (see [`duality_core::derive`]): loaded from the file when the store
//! opens, moved by each write of a batch before the next one runs, and
//! moved back if the batch does not commit. Being the file's only writer,
//! it never has to catch them up with anyone else's commits.
//!
//! Readers use separate connections (WAL lets them read while the writer
//! writes). An in-memory database has only the writer's connection, so its
//! reads run on the writer thread too.

use duality_core::Error;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use super::Location;
use super::{
    Changed, ChangedKeys, Committed, Event, EventsPage, MetaChange, MetaSet, Publish, Snapshot,
    Store, new_epoch, trim, unix_ms,
};
use duality_core::View;
use duality_core::derive::{Model, Models};
use duality_core::idempotency::Outcome;
use duality_core::view::Registry;
use duality_core::write::{Missing, Plan, Source, Write};
use duality_core::{Chunks, DocText, chunks};

/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// How often committed WAL frames are copied into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// How many writes may wait for the writer before senders wait too.
const QUEUE: usize = 8192;
/// Read connections for a database file.
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS views (view TEXT PRIMARY KEY, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS view_meta (
    view TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (view, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS docs (
    view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (view, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    view TEXT NOT NULL, revision INTEGER NOT NULL, patch TEXT NOT NULL,
    created_ms INTEGER NOT NULL, prior TEXT,
    PRIMARY KEY (view, revision)) WITHOUT ROWID;
DROP INDEX IF EXISTS events_by_time;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, outcome TEXT NOT NULL,
    created_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency (created_ms);
";

type Exec = Box<dyn FnOnce(&mut Connection) + Send>;
type Reply = oneshot::Sender<Result<Committed, Error>>;

enum Job {
    Write(Write, Reply),
    /// Anything else that must run on the writer's connection: trims, and
    /// all reads of an in-memory database.
    Exec(Exec),
    /// The process is done with the store: flush everything and stop
    /// deferring flushes (see [`Store::close`]).
    Close(oneshot::Sender<Result<(), Error>>),
}

/// A [`Store`](crate::store::Store) on SQLite: one writer thread that
/// group-commits, and a pool of reader connections for a file.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    /// `None` for an in-memory database: reads then go to the writer.
    readers: Option<Arc<ReadPool>>,
    epoch: String,
    /// Dropped with the store, which ends the checkpoint thread.
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
    /// The views this process serves (what retention trims).
    registry: Registry,
}

struct ReadPool {
    /// Idle connections; a permit from `permits` guarantees one is here.
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::store_unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    /// Blocks: call it off the async runtime.
    pub fn open(location: &Location, hub: Arc<dyn Publish>) -> Result<SqliteStore, Error> {
        let conn = match location {
            Location::File(path) => Connection::open(path),
            Location::Memory => Connection::open_in_memory(),
        }
        .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        if let Location::File(_) = location {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(unavailable)?;
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        add_prior_column(&conn).map_err(unavailable)?;
        add_changed_keys(&conn).map_err(unavailable)?;
        add_doc_revision_column(&conn).map_err(unavailable)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
            [new_epoch()],
        )
        .map_err(unavailable)?;
        let boot = match location {
            Location::File(_) => super::boot::id(),
            Location::Memory => None,
        };
        if let Some(boot) = &boot
            && start_deferring(&conn, boot).map_err(unavailable)?
        {
            tracing::warn!(
                "the machine restarted since this database was last used and it was not \
                 closed cleanly: the last dashboard revisions may be lost, so the database \
                 starts a new epoch and consumers start over from a snapshot"
            );
        }
        let epoch: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .map_err(unavailable)?;
        {
            let mut stmt = conn
                .prepare("SELECT view, revision FROM views")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(unavailable)?;
            for row in rows {
                let (name, revision) = row.map_err(unavailable)?;
                if let Some(view) = hub.registry().get(&name) {
                    hub.observe(view, revision as u64);
                }
            }
        }
        let readers = match location {
            Location::File(path) => {
                let mut idle = Vec::with_capacity(READERS);
                for _ in 0..READERS {
                    let reader = Connection::open(path).map_err(unavailable)?;
                    reader
                        .busy_timeout(std::time::Duration::from_secs(5))
                        .map_err(unavailable)?;
                    reader
                        .pragma_update(None, "query_only", "ON")
                        .map_err(unavailable)?;
                    idle.push(reader);
                }
                Some(Arc::new(ReadPool {
                    idle: Mutex::new(idle),
                    permits: Semaphore::new(READERS),
                }))
            }
            Location::Memory => None,
        };
        let checkpoints = match location {
            Location::File(path) => {
                let checkpointer = Connection::open(path).map_err(unavailable)?;
                checkpointer
                    .busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(unavailable)?;
                let (stop, stopped) = std::sync::mpsc::channel::<()>();
                std::thread::Builder::new()
                    .name("duality-sqlite-checkpoints".into())
                    .spawn(move || checkpoint_loop(checkpointer, stopped))
                    .map_err(unavailable)?;
                Some(stop)
            }
            Location::Memory => None,
        };
        let mut models = Models::default();
        // This process is the file's only writer, and brings the derived
        // views up to date before it serves: they always equal the models.
        models.trust(true);
        for view in hub.registry().views().filter(|v| Models::modeled(*v)) {
            models.insert(view, load_model(&conn, view).map_err(unavailable)?);
        }
        let (jobs, rx) = mpsc::channel(QUEUE);
        let registry = hub.registry().clone();
        std::thread::Builder::new()
            .name("duality-sqlite-writer".into())
            .spawn(move || Writer::new(conn, hub, boot.is_some(), models).run(rx))
            .map_err(unavailable)?;
        Ok(SqliteStore {
            jobs,
            readers,
            epoch,
            _checkpoints: checkpoints,
            registry,
        })
    }

    /// Runs `f` on a read connection (or, in memory, on the writer's).
    async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let permit = pool.permits.acquire().await.map_err(unavailable)?;
                let mut conn = pool
                    .idle
                    .lock()
                    .map_err(|_| unavailable("read pool poisoned"))?
                    .pop()
                    .ok_or_else(|| unavailable("no idle read connection"))?;
                // The place goes back with the connection, from the read
                // itself: a caller dropped while it runs (a client that
                // hung up) must not let another reader in before it is idle.
                permit.forget();
                let pool = Arc::clone(pool);
                tokio::task::spawn_blocking(move || {
                    let result = f(&mut conn);
                    if let Ok(mut idle) = pool.idle.lock() {
                        idle.push(conn);
                        pool.permits.add_permits(1);
                    }
                    result
                })
                .await
                .map_err(unavailable)?
                .map_err(unavailable)
            }
            None => self.on_writer(f).await?.map_err(unavailable),
        }
    }

    /// Runs `f` on the writer's connection, between write batches.
    async fn on_writer<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Exec(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.jobs
            .send(job)
            .await
            .map_err(|_| unavailable("writer stopped"))?;
        rx.await.map_err(|_| unavailable("writer stopped"))
    }
}

impl Store for SqliteStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn shared(&self) -> bool {
        false
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Committed, Error>> {
        Box::pin(async move {
            super::served(&self.registry, &write)?;
            let (reply, answer) = oneshot::channel();
            self.jobs
                .send(Job::Write(write, reply))
                .await
                .map_err(|_| unavailable("writer stopped"))?;
            answer.await.map_err(|_| unavailable("writer stopped"))?
        })
    }

    fn snapshot(&self, view: View) -> BoxFuture<'_, Result<Snapshot, Error>> {
        Box::pin(self.read(move |conn| read_snapshot(conn, view)))
    }

    fn scan(&self, view: View) -> BoxFuture<'_, Result<(u64, Chunks), Error>> {
        Box::pin(self.read(move |conn| scan_view(conn, view)))
    }

    fn doc(&self, view: View, key: String) -> BoxFuture<'_, Result<Option<Value>, Error>> {
        Box::pin(self.read(move |conn| read_doc(conn, view, &key)))
    }

    fn events(
        &self,
        view: View,
        from: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<EventsPage, Error>> {
        Box::pin(self.read(move |conn| read_events(conn, view, from, limit)))
    }

    fn changed(&self, view: View, after: u64) -> BoxFuture<'_, Result<Option<ChangedKeys>, Error>> {
        Box::pin(self.read(move |conn| read_changed(conn, view, after)))
    }

    fn view_meta(&self, view: View, name: String) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(self.read(move |conn| read_view_meta(conn, view, &name)))
    }

    fn set_view_meta(&self, change: MetaChange) -> BoxFuture<'_, Result<MetaSet, Error>> {
        // On the writer's connection, between batches: no write interleaves.
        Box::pin(async move {
            self.on_writer(move |conn| set_view_meta(conn, &change))
                .await?
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))))
    }

    fn trim_changes(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>> {
        let cutoff = unix_ms(cutoff);
        Box::pin(async move {
            let mut deleted = 0;
            let views: Vec<View> = self.registry.views().collect();
            for view in views {
                let mut from = Some(0);
                while let Some(start) = from {
                    let (n, next) = self
                        .on_writer(move |conn| trim_changes_batch(conn, view, cutoff, start))
                        .await?
                        .map_err(unavailable)?;
                    deleted += n;
                    from = next;
                }
            }
            Ok(deleted)
        })
    }

    fn trim(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, Error>> {
        let cutoff = unix_ms(cutoff);
        Box::pin(async move {
            let mut deleted = 0;
            let views: Vec<View> = self.registry.views().collect();
            for view in views {
                // One batch per job: writes run between the batches.
                let mut from = Some(0);
                while let Some(start) = from {
                    let (n, next) = self
                        .on_writer(move |conn| trim_batch(conn, view, cutoff, start))
                        .await?
                        .map_err(unavailable)?;
                    deleted += n;
                    from = next;
                }
            }
            self.on_writer(move |conn| {
                conn.execute("DELETE FROM idempotency WHERE created_ms < ?1", [cutoff])
            })
            .await?
            .map_err(unavailable)?;
            Ok(deleted)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.jobs
                .send(Job::Close(reply))
                .await
                .map_err(|_| unavailable("writer stopped"))?;
            answer.await.map_err(|_| unavailable("writer stopped"))?
        })
    }
}

/// Deletes a prefix of the view's oldest [`trim::BATCH`] events from
/// revision `from` on (see [`trim`](super::trim)); answers how many, and
/// where the next batch starts if one may be due.
fn trim_batch(
    conn: &mut Connection,
    view: View,
    cutoff: i64,
    from: u64,
) -> rusqlite::Result<(u64, Option<u64>)> {
    let head = conn
        .prepare_cached(
            "SELECT MIN(CASE WHEN created_ms >= ?2 THEN revision END), MAX(revision), COUNT(*)
             FROM (SELECT revision, created_ms FROM events WHERE view = ?1 AND revision >= ?4
                   ORDER BY revision LIMIT ?3)",
        )?
        .query_row(
            params![view.name(), cutoff, trim::BATCH as i64, from as i64],
            |r| {
                Ok(trim::Head {
                    young: r.get::<_, Option<i64>>(0)?.map(|v| v as u64),
                    last: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                    count: r.get::<_, i64>(2)? as u64,
                })
            },
        )?;
    let Some(below) = head.delete_below() else {
        return Ok((0, None));
    };
    let deleted = conn
        .prepare_cached("DELETE FROM events WHERE view = ?1 AND revision < ?2")?
        .execute(params![view.name(), below as i64])?;
    Ok((deleted as u64, head.next_from(trim::BATCH)))
}

/// Deletes a prefix of the view's changed-key rows (the oldest
/// [`trim::BATCH`] from revision `from` on, by the rule of
/// [`trim`](super::trim) applied to when each row was written) and moves
/// the oldest position the rows answer for to the newest row deleted (a
/// position before it would miss that key), in one transaction.
fn trim_changes_batch(
    conn: &mut Connection,
    view: View,
    cutoff: i64,
    from: u64,
) -> rusqlite::Result<(u64, Option<u64>)> {
    let tx = conn.transaction()?;
    let head = tx
        .prepare_cached(
            "SELECT MIN(CASE WHEN changed_ms >= ?2 THEN revision END), MAX(revision), COUNT(*)
             FROM (SELECT revision, changed_ms FROM changed_keys WHERE view = ?1 AND revision >= ?4
                   ORDER BY revision LIMIT ?3)",
        )?
        .query_row(
            params![view.name(), cutoff, trim::BATCH as i64, from as i64],
            |r| {
                Ok(trim::Head {
                    young: r.get::<_, Option<i64>>(0)?.map(|v| v as u64),
                    last: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                    count: r.get::<_, i64>(2)? as u64,
                })
            },
        )?;
    let Some(below) = head.delete_below() else {
        return Ok((0, None));
    };
    // The newest row deleted: positions before it lose a key they need.
    let newest: Option<i64> = tx
        .prepare_cached("SELECT MAX(revision) FROM changed_keys WHERE view = ?1 AND revision < ?2")?
        .query_row(params![view.name(), below as i64], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok((0, None));
    };
    let deleted = tx
        .prepare_cached("DELETE FROM changed_keys WHERE view = ?1 AND revision < ?2")?
        .execute(params![view.name(), below as i64])?;
    tx.prepare_cached(
        "INSERT INTO catch_up_since (view, revision) VALUES (?1, ?2)
         ON CONFLICT (view) DO UPDATE SET revision = MAX(revision, excluded.revision)",
    )?
    .execute(params![view.name(), newest])?;
    tx.commit()?;
    Ok((deleted as u64, head.next_from(trim::BATCH)))
}

/// Records, durably, that commits of this boot may wait for their flush.
/// Answers whether the epoch was renewed: another boot recorded itself
/// and never closed the store, so some of its commits may be lost.
fn start_deferring(conn: &Connection, boot: &str) -> rusqlite::Result<bool> {
    let tx = conn.unchecked_transaction()?;
    let recorded: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'unflushed_boot'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let renew = recorded.is_some_and(|recorded| recorded != boot);
    if renew {
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'epoch'",
            [new_epoch()],
        )?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('unflushed_boot', ?1)",
        [boot],
    )?;
    tx.commit()?;
    Ok(renew)
}

/// The writer thread's connection and what it knows about flushing.
struct Writer {
    conn: Connection,
    hub: Arc<dyn Publish>,
    /// Whether a batch of derived writes may commit without waiting for
    /// its flush: from a file store's start (its boot recorded) until
    /// [`Job::Close`]; never in memory or where the boot is unknown.
    may_defer: bool,
    /// Whether the connection commits without waiting for the flush now
    /// (`synchronous=NORMAL`); `open` left it waiting (`FULL`).
    deferring: bool,
    /// The models of the views with derived views, at their committed
    /// revisions between batches.
    models: Models,
}

impl Writer {
    fn new(conn: Connection, hub: Arc<dyn Publish>, may_defer: bool, models: Models) -> Self {
        Writer {
            conn,
            hub,
            may_defer,
            deferring: false,
            models,
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Batch::default();
            batch.take(first);
            batch.drain(&mut rx);
            let Batch {
                writes,
                execs,
                closes,
            } = batch;
            if !writes.is_empty() {
                self.commit(writes);
            }
            for exec in execs {
                exec(&mut self.conn);
            }
            if !closes.is_empty() {
                let closed = self.close();
                for reply in closes {
                    let _ = reply.send(closed.clone());
                }
            }
        }
    }

    /// Commits a batch, without waiting for the flush if every write in it
    /// is derived and this store may defer.
    fn commit(&mut self, writes: Vec<(Write, Reply)>) {
        let defer = self.may_defer && writes.iter().all(|(w, _)| w.is_derived());
        match self.defer_flush(defer) {
            Ok(()) => commit_batch(
                &mut self.conn,
                writes,
                &*self.hub,
                self.deferring,
                &mut self.models,
            ),
            Err(e) => refuse(writes, &e),
        }
    }

    /// Sets whether the next commits wait for their flush.
    fn defer_flush(&mut self, defer: bool) -> rusqlite::Result<()> {
        if defer != self.deferring {
            let mode = if defer { "NORMAL" } else { "FULL" };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.deferring = defer;
        }
        Ok(())
    }

    /// Flushes every commit and takes the boot's record away, so a later
    /// start in another boot keeps the epoch. Writes after this wait for
    /// their flush.
    fn close(&mut self) -> Result<(), Error> {
        self.may_defer = false;
        self.defer_flush(false).map_err(unavailable)?;
        // A commit that waits for its flush flushes the whole log, the
        // deferred frames before it included.
        self.conn
            .execute("DELETE FROM meta WHERE key = 'unflushed_boot'", [])
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Answers every write of a batch that could not be committed.
fn refuse(writes: Vec<(Write, Reply)>, e: &dyn std::fmt::Display) {
    for (_, reply) in writes {
        let _ = reply.send(Err(unavailable(e)));
    }
}

/// Copies committed WAL frames into the database file every
/// [`CHECKPOINT_EVERY`], on its own connection, until the store is dropped.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its
/// threshold (a thousand frames), on the writer: that commit then waits
/// until every page those frames touched is written and synced into the
/// database file. With a large view the pages are spread all over the
/// file, so every hundredth write or so stalled, longer the larger the
/// file. These passive checkpoints never block the writer or the readers
/// and copy almost everything ahead of it; the writer's own checkpoint,
/// which is still what starts the log over (a checkpoint beside a busy
/// writer never catches up with it), is left with the last few frames.
fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((log, copied)) => {
                metrics::gauge!("duality_sqlite_wal_frames").set((log - copied).max(0) as f64);
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
        }
    }
}

/// The jobs the writer runs next: writes in one transaction, then the rest.
#[derive(Default)]
struct Batch {
    writes: Vec<(Write, Reply)>,
    execs: Vec<Exec>,
    closes: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Batch {
    fn take(&mut self, job: Job) {
        match job {
            Job::Write(w, reply) => self.writes.push((w, reply)),
            Job::Exec(f) => self.execs.push(f),
            Job::Close(reply) => self.closes.push(reply),
        }
    }

    /// Takes whatever else is waiting, up to [`MAX_BATCH`] jobs in all.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Job>) {
        while self.writes.len() + self.execs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => self.take(job),
                Err(_) => break,
            }
        }
    }
}

/// One committed event as the writer publishes it: its view, revision and
/// patch text, and the stored text of each document it changed.
struct Outgoing {
    view: View,
    revision: u64,
    patch: String,
    prior: String,
    docs: Vec<DocText>,
}

type Published = Vec<Outgoing>;

/// Commits `writes` in one transaction, then acknowledges and publishes
/// them; `deferred` says the connection commits without waiting for the
/// flush (counted apart in `duality_sqlite_commits_total`). Each write
/// that commits to its savepoint moves `models` before the next one runs;
/// if the batch does not commit, they are moved back.
fn commit_batch(
    conn: &mut Connection,
    writes: Vec<(Write, Reply)>,
    hub: &dyn Publish,
    deferred: bool,
    models: &mut Models,
) {
    metrics::histogram!("duality_commit_batch_writes").record(writes.len() as f64);
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return refuse(writes, &e),
    };
    let now = unix_ms(SystemTime::now());
    let mut published: Published = Vec::new();
    let mut answers = Vec::with_capacity(writes.len());
    let mut modelled: Vec<Plan> = Vec::new();
    for (write, reply) in writes {
        let answer = run_one(&mut tx, &write, now, models).map(|(committed, events, plan)| {
            published.extend(events);
            if let Some(plan) = plan {
                models.apply(&plan);
                modelled.push(plan);
            }
            committed
        });
        answers.push((reply, answer));
    }
    // Catch-up's rows for the whole batch, in its transaction: a document
    // written by several of its writes gets one row, its last change.
    let committed = match record_changed(&tx, &published, now) {
        Ok(()) => tx.commit(),
        Err(e) => {
            tracing::error!(error = %e, "recording the changed keys failed; the batch is not committed");
            drop(tx);
            Err(e)
        }
    };
    if committed.is_err() {
        for plan in modelled.iter().rev() {
            models.undo(plan);
        }
    }
    match committed {
        Ok(()) => {
            let flush = if deferred { "deferred" } else { "waited" };
            metrics::counter!("duality_sqlite_commits_total", "flush" => flush).increment(1);
            // Writers learn of their commit before subscribers do: fanning
            // out to many subscribers takes milliseconds. `observe` first,
            // so a writer's next snapshot read already sees its revision.
            for event in &published {
                hub.observe(event.view, event.revision);
            }
            for (reply, answer) in answers {
                let _ = reply.send(answer);
            }
            for event in &published {
                hub.publish_docs(
                    event.view,
                    event.revision,
                    &event.patch,
                    Some(&event.prior),
                    &event.docs,
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed");
            for (reply, answer) in answers {
                let _ = reply.send(answer.and(Err(unavailable(&e))));
            }
        }
    }
}

/// Runs one write inside its own savepoint of the batch transaction;
/// answers its plan too if it changed a view that `models` keeps.
fn run_one(
    tx: &mut rusqlite::Transaction<'_>,
    write: &Write,
    now: i64,
    models: &Models,
) -> Result<(Committed, Published, Option<Plan>), Error> {
    let sp = tx.savepoint().map_err(unavailable)?;
    let source = TxSource {
        conn: &sp,
        failure: RefCell::new(None),
    };
    let executed = write.execute_with(&source, models);
    if let Some(failure) = source.failure.into_inner() {
        return Err(Error::store_unavailable(failure));
    }
    // Every read of this source is answered (or failed above): a
    // `Missing` that escapes is the write's bug, answered as a 500.
    let (output, plan) = executed?;
    let events = persist(&sp, &plan, now).map_err(unavailable)?;
    sp.commit().map_err(unavailable)?;
    let committed = Committed {
        output,
        revisions: plan.revisions.clone(),
        replayed: plan.replayed,
    };
    let modelled = plan
        .changes
        .iter()
        .any(|c| models.get(c.view).is_some())
        .then_some(plan);
    Ok((committed, events, modelled))
}

fn persist(conn: &Connection, plan: &Plan, now: i64) -> rusqlite::Result<Published> {
    let mut events = Vec::with_capacity(plan.changes.len());
    for change in &plan.changes {
        let view = change.view.name();
        let mut docs = Vec::with_capacity(change.rows.len());
        for (key, doc) in &change.rows {
            let text = doc.as_ref().map(Value::to_string);
            match &text {
                Some(text) => conn
                    .prepare_cached(
                        "INSERT INTO docs (view, key, doc, revision) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (view, key) DO UPDATE
                         SET doc = excluded.doc, revision = excluded.revision",
                    )?
                    .execute(params![view, key, text, change.revision as i64])?,
                None => conn
                    .prepare_cached("DELETE FROM docs WHERE view = ?1 AND key = ?2")?
                    .execute(params![view, key])?,
            };
            docs.push((key.clone(), text));
        }
        let patch = change.patch.to_string();
        let prior = serde_json::to_string(&change.prior).unwrap_or_else(|_| "{}".into());
        let revision = change.revision as i64;
        conn.prepare_cached(
            "INSERT INTO events (view, revision, patch, created_ms, prior)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![view, revision, patch, now, prior])?;
        conn.prepare_cached(
            "INSERT INTO views (view, revision) VALUES (?1, ?2)
             ON CONFLICT (view) DO UPDATE SET revision = excluded.revision",
        )?
        .execute(params![view, revision])?;
        events.push(Outgoing {
            view: change.view,
            revision: change.revision,
            patch,
            prior,
            docs,
        });
    }
    for (name, next) in &plan.counters {
        conn.prepare_cached(
            "INSERT INTO counters (name, next) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET next = excluded.next",
        )?
        .execute(params![name, *next as i64])?;
    }
    if let Some((key, outcome)) = &plan.remember {
        conn.prepare_cached(
            "INSERT INTO idempotency (key, fingerprint, outcome, created_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![key, outcome.fingerprint, outcome.encode(), now])?;
    }
    Ok(events)
}

/// Records, for every document the committed writes of a batch changed,
/// the revision of its last change and whether it deleted it (catch-up's
/// rows, one per key: see [`Store::changed`]).
fn record_changed(conn: &Connection, published: &Published, now: i64) -> rusqlite::Result<()> {
    // In key order: the rows go into the table's B-tree in its order.
    let mut last: std::collections::BTreeMap<(View, &str), (u64, bool)> =
        std::collections::BTreeMap::new();
    for event in published {
        for (key, doc) in &event.docs {
            last.insert((event.view, key.as_str()), (event.revision, doc.is_none()));
        }
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO changed_keys (view, key, revision, deleted, changed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (view, key) DO UPDATE SET revision = excluded.revision,
            deleted = excluded.deleted, changed_ms = excluded.changed_ms",
    )?;
    for ((view, key), (revision, deleted)) in last {
        upsert.execute(params![view.name(), key, revision as i64, deleted, now])?;
    }
    Ok(())
}

/// A file written before events kept the documents they replaced gets the
/// column (its older events have none: see [`Event::prior`]).
fn add_prior_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'prior'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE events ADD COLUMN prior TEXT")?;
    }
    Ok(())
}

/// Creates the table of changed keys that catch-up reads (see
/// [`Store::changed`]). A database written before it existed gets it with
/// each view's current revision as the oldest position it answers for:
/// the keys changed before were never recorded.
fn add_changed_keys(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changed_keys'")?
        .exists([])?;
    if has {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TABLE changed_keys (
            view TEXT NOT NULL, key TEXT NOT NULL, revision INTEGER NOT NULL,
            deleted INTEGER NOT NULL, changed_ms INTEGER NOT NULL,
            PRIMARY KEY (view, key)) WITHOUT ROWID;
         CREATE INDEX changed_keys_by_revision ON changed_keys (view, revision);
         CREATE TABLE IF NOT EXISTS catch_up_since (
            view TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
         INSERT OR REPLACE INTO catch_up_since (view, revision)
            SELECT view, revision FROM views;",
    )?;
    tx.commit()
}

/// A file written before documents kept the revision that last changed
/// them gets the column, each document stamped with its view's current
/// revision: no later than its last change, and below every change to come,
/// so its `ETag` still changes with the document.
fn add_doc_revision_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('docs') WHERE name = 'revision'")?
        .exists([])?;
    if !has {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE docs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
             UPDATE docs SET revision =
                 COALESCE((SELECT revision FROM views WHERE views.view = docs.view), 0);
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Reads committed state inside the writing transaction. Database errors
/// cannot travel through [`Source`], so the first one is kept in `failure`
/// and the write is failed after it returns.
struct TxSource<'c> {
    conn: &'c Connection,
    failure: RefCell<Option<String>>,
}

impl TxSource<'_> {
    fn check<T>(&self, result: rusqlite::Result<T>, missing: Missing) -> Result<T, Missing> {
        result.map_err(|e| {
            self.failure.borrow_mut().get_or_insert(e.to_string());
            missing
        })
    }
}

impl Source for TxSource<'_> {
    fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing> {
        self.check(
            read_doc(self.conn, view, key),
            Missing::Doc(view, key.into()),
        )
    }

    fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Missing> {
        let revision = self
            .conn
            .prepare_cached("SELECT revision FROM docs WHERE view = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![view.name(), key], |r| r.get::<_, i64>(0))
                    .optional()
            });
        self.check(revision, Missing::Doc(view, key.into()))
            .map(|r| r.map(|r| r as u64))
    }

    fn counter(&self, name: &str) -> Result<u64, Missing> {
        let next = self
            .conn
            .prepare_cached("SELECT next FROM counters WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get::<_, i64>(0)).optional());
        self.check(next, Missing::Counter(name.into()))
            .map(|n| n.map_or(1, |n| n as u64))
    }

    fn revision(&self, view: View) -> Result<u64, Missing> {
        self.check(read_revision(self.conn, view), Missing::Revision(view))
    }

    fn outcome(&self, scoped_key: &str) -> Result<Option<Outcome>, Missing> {
        let stored = self
            .conn
            .prepare_cached("SELECT fingerprint, outcome FROM idempotency WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([scoped_key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
            });
        let stored = self.check(stored, Missing::Key(scoped_key.into()))?;
        match stored {
            None => Ok(None),
            Some((fingerprint, text)) => match Outcome::decode(fingerprint, &text) {
                Some(outcome) => Ok(Some(outcome)),
                None => {
                    self.failure
                        .borrow_mut()
                        .get_or_insert(format!("the stored outcome of {scoped_key} is unreadable"));
                    Err(Missing::Key(scoped_key.into()))
                }
            },
        }
    }
}

fn parse_doc(text: &str) -> rusqlite::Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn read_revision(conn: &Connection, view: View) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT revision FROM views WHERE view = ?1")?
        .query_row([view.name()], |r| r.get::<_, i64>(0))
        .optional()
        .map(|r| r.map_or(0, |r| r as u64))
}

fn read_doc(conn: &Connection, view: View, key: &str) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT doc FROM docs WHERE view = ?1 AND key = ?2")?
        .query_row(params![view.name(), key], |r| r.get(0))
        .optional()?;
    text.as_deref().map(parse_doc).transpose()
}

fn read_view_meta(conn: &Connection, view: View, name: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM view_meta WHERE view = ?1 AND name = ?2")?
        .query_row(params![view.name(), name], |r| r.get(0))
        .optional()
}

/// [`Store::set_view_meta`] in one transaction on the writer's connection.
fn set_view_meta(conn: &mut Connection, change: &MetaChange) -> Result<MetaSet, Error> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let stored = read_view_meta(&tx, change.view, &change.name).map_err(unavailable)?;
    if stored != change.expected {
        return Ok(MetaSet::Changed(stored));
    }
    if let Some(check) = &change.check {
        let mut stmt = tx
            .prepare_cached("SELECT key, doc FROM docs WHERE view = ?1 ORDER BY key")
            .map_err(unavailable)?;
        let mut rows = stmt.query([change.view.name()]).map_err(unavailable)?;
        while let Some(row) = rows.next().map_err(unavailable)? {
            let key = row
                .get_ref(0)
                .and_then(|k| Ok(k.as_str()?))
                .map_err(unavailable)?;
            let doc = row
                .get_ref(1)
                .and_then(|d| Ok(d.as_str()?))
                .map_err(unavailable)?;
            check(key, &parse_doc(doc).map_err(unavailable)?)?;
        }
    }
    tx.execute(
        "INSERT INTO view_meta (view, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (view, name) DO UPDATE SET value = excluded.value",
        params![change.view.name(), change.name, change.value],
    )
    .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(MetaSet::Stored)
}

fn read_snapshot(conn: &mut Connection, view: View) -> rusqlite::Result<Snapshot> {
    let tx = conn.transaction()?;
    let revision = read_revision(&tx, view)?;
    let mut docs = Map::new();
    {
        let mut stmt = tx.prepare_cached("SELECT key, doc FROM docs WHERE view = ?1")?;
        let mut rows = stmt.query([view.name()])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let doc: String = row.get(1)?;
            docs.insert(key, parse_doc(&doc)?);
        }
    }
    tx.commit()?;
    Ok(Snapshot { revision, docs })
}

fn scan_view(conn: &mut Connection, view: View) -> rusqlite::Result<(u64, Chunks)> {
    let tx = conn.transaction()?;
    let revision = read_revision(&tx, view)?;
    let mut builder = chunks::Builder::default();
    {
        // The primary key orders keys bytewise, which is Rust's `str` order.
        let mut stmt =
            tx.prepare_cached("SELECT key, doc, revision FROM docs WHERE view = ?1 ORDER BY key")?;
        let mut rows = stmt.query([view.name()])?;
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_str()?;
            let doc = row.get_ref(1)?.as_str()?;
            let revision = row.get::<_, i64>(2)? as u64;
            builder.push(key, doc, revision).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })?;
        }
    }
    tx.commit()?;
    Ok((revision, builder.finish()))
}

fn read_changed(
    conn: &mut Connection,
    view: View,
    after: u64,
) -> rusqlite::Result<Option<ChangedKeys>> {
    let tx = conn.transaction()?;
    let since = tx
        .prepare_cached("SELECT revision FROM catch_up_since WHERE view = ?1")?
        .query_row([view.name()], |r| r.get::<_, i64>(0))
        .optional()?
        .map_or(0, |r| r as u64);
    if !duality_core::catch_up::covers(since, after) {
        return Ok(None);
    }
    let mut keys = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT key, revision, deleted FROM changed_keys WHERE view = ?1 AND revision > ?2",
        )?;
        let mut rows = stmt.query(params![view.name(), after as i64])?;
        while let Some(row) = rows.next()? {
            keys.push(Changed {
                key: row.get(0)?,
                revision: row.get::<_, i64>(1)? as u64,
                deleted: row.get(2)?,
            });
        }
    }
    tx.commit()?;
    Ok(Some(ChangedKeys { since, keys }))
}

/// The model of `view` over its committed documents (see
/// [`duality_core::derive`]).
fn load_model(conn: &Connection, view: View) -> rusqlite::Result<Model> {
    let mut model = Model::start(view, read_revision(conn, view)?);
    let mut stmt = conn.prepare("SELECT key, doc FROM docs WHERE view = ?1")?;
    let mut rows = stmt.query([view.name()])?;
    while let Some(row) = rows.next()? {
        let key = row.get_ref(0)?.as_str()?;
        model.add(key, &parse_doc(row.get_ref(1)?.as_str()?)?);
    }
    Ok(model)
}

fn read_events(
    conn: &mut Connection,
    view: View,
    from: u64,
    limit: usize,
) -> rusqlite::Result<EventsPage> {
    let tx = conn.transaction()?;
    let current = read_revision(&tx, view)?;
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT MIN(revision) FROM events WHERE view = ?1")?
        .query_row([view.name()], |r| r.get(0))?;
    let mut events = Vec::new();
    if from <= current {
        let mut stmt = tx.prepare_cached(
            "SELECT revision, patch, prior FROM events WHERE view = ?1 AND revision >= ?2
             ORDER BY revision LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![view.name(), from as i64, limit as i64])?;
        while let Some(row) = rows.next()? {
            events.push(Event {
                revision: row.get::<_, i64>(0)? as u64,
                patch: row.get(1)?,
                prior: row.get(2)?,
            });
        }
    }
    tx.commit()?;
    Ok(EventsPage {
        events,
        oldest: oldest.map(|o| o as u64),
        current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere(Registry);

    impl Publish for Nowhere {
        fn registry(&self) -> &Registry {
            &self.0
        }
        fn observe(&self, _: View, _: u64) {}
        fn publish(&self, _: View, _: u64, _: &str, _: Option<&str>) {}
        fn publish_docs(&self, _: View, _: u64, _: &str, _: Option<&str>, _: &[DocText]) {}
    }

    /// A read that holds its connection for a while.
    fn slow(conn: &mut Connection) -> rusqlite::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        conn.query_row("SELECT 1", [], |_| Ok(()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_whose_caller_hung_up_keeps_its_place_until_its_connection_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("reads.db"));
        let hub = Arc::new(Nowhere(Registry::new([]).unwrap()));
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&location, hub))
            .await
            .unwrap()
            .unwrap();
        // Its caller gives up while the read still holds the connection.
        let dropped = tokio::time::timeout(std::time::Duration::from_millis(50), store.read(slow));
        assert!(dropped.await.is_err());
        // As many reads as there are connections, at once: each one waits
        // for a connection that is idle, none finds the pool empty.
        let reads: Vec<_> = (0..READERS).map(|_| store.read(slow)).collect();
        for read in futures_util::future::join_all(reads).await {
            read.unwrap();
        }
    }
}
