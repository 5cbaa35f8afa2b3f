//! The write path: group commit on one connection per process.
//!
//! Writes queue for this process's writer task, which takes every write that
//! is waiting (up to [`MAX_BATCH`]) and runs them, one after the other, in
//! one transaction:
//!
//! 1. lock the rows in `views` of every view the batch declares (`SELECT
//!    ... FOR UPDATE`, one fixed order), so writers of a view serialise,
//!    across processes too, and never deadlock; the locked rows give the
//!    current revisions;
//! 2. run each pure [`Write`] over an overlay of what the batch has loaded
//!    and what the writes before it in the batch changed; each read it
//!    cannot answer yet ([`Missing`]) is loaded and the write runs again
//!    (writes are pure, so a re-run is harmless). A write that is refused
//!    (400, 404) changes nothing and does not disturb the others;
//! 3. save the batch's documents, events, revisions (allocated under the
//!    lock: gapless, never a sequence) and counters, NOTIFY `view:revision`
//!    for each changed view, and commit with one WAL flush.
//!
//! Only then are the events published, in revision order, and the writes
//! answered.
//!
//! The writer keeps the models of the views that have derived views (see
//! [`duality_core::derive`]). Other processes write those views too, so
//! after step 1 each model is caught up to the revision just locked, from
//! the events committed since (or loaded again from the view's documents
//! if they are gone); in step 2 each write moves it before the next one
//! runs; an attempt that does not commit moves it back. Without batching, writers of a view would each hold its lock
//! across their own commit's flush, one flush per write.

use duality_core::Error;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::{Pool, Transaction};
use futures_util::future::{BoxFuture, try_join_all};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;

use super::listener::{self, Publisher};
use super::{WRITE_TIMEOUT, pooled, sql, unavailable, unavailable_msg};
use crate::store::{Committed, unix_ms};
use duality_core::View;
use duality_core::derive::{Model, Models};
use duality_core::idempotency::Outcome;
use duality_core::write::{Missing, Plan, Source, Write};

/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How many writes may wait for the writer before senders wait too.
pub const QUEUE: usize = 8192;
/// Attempts for a batch that failed before its commit for a reason that a
/// retry can fix (a deadlock, a connection that was closed while idle).
const ATTEMPTS: u32 = 3;
/// The most rounds of reads one write may need (a guard against a write
/// that never stops asking).
const MAX_ROUNDS: usize = 100_000;
/// How many writes of a batch (from the one that is waiting) contribute
/// their guessed reads to each round of reads.
const LOOKAHEAD: usize = MAX_BATCH;
/// How many absent documents one write may be guessed past in one round.
const GUESSES: usize = 64;

pub type Reply = oneshot::Sender<Result<Committed, Error>>;

pub struct Job {
    pub write: Write,
    pub reply: Reply,
}

/// Runs every write of this process, keeping `models`; ends when the
/// store is dropped.
pub async fn run(
    pool: Pool,
    publisher: Arc<Publisher>,
    mut jobs: mpsc::Receiver<Job>,
    mut models: Models,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&pool, &publisher, batch, &mut models).await;
    }
}

async fn commit_batch(pool: &Pool, publisher: &Publisher, batch: Vec<Job>, models: &mut Models) {
    metrics::histogram!("duality_commit_batch_writes").record(batch.len() as f64);
    let writes: Vec<&Write> = batch.iter().map(|job| &job.write).collect();
    let mut attempt = 1;
    let outcome = loop {
        let mut applied = Vec::new();
        let outcome = tokio::time::timeout(
            WRITE_TIMEOUT,
            try_batch(pool, &writes, models, &mut applied),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failed::Commit(unavailable_msg(
                "the database did not answer in time",
            )))
        });
        if outcome.is_err() {
            // Committed or not (a failed commit may have committed), the
            // models go back to where they were: the next batch catches
            // them up from the outbox if it did.
            for plan in applied.iter().rev() {
                models.undo(plan);
            }
        }
        match outcome {
            Err(Failed::Before { error, retry: true }) if attempt < ATTEMPTS => {
                attempt += 1;
                tracing::debug!(%error, attempt, "retrying a batch of writes");
            }
            other => break other,
        }
    };
    match outcome {
        Ok(done) => {
            // As in the SQLite store, writers hear first (fanning out to
            // many subscribers takes milliseconds); the hub knows the new
            // revisions before they do, so their next snapshot has them.
            for (view, revision, _, _) in &done.events {
                publisher.observe(*view, *revision);
            }
            for (job, answer) in batch.into_iter().zip(done.answers) {
                let _ = job.reply.send(answer);
            }
            for (view, revision, patch, prior) in &done.events {
                publisher.local(*view, *revision, patch, prior).await;
            }
        }
        Err(Failed::Before { error, .. } | Failed::Commit(error)) => {
            tracing::warn!(%error, writes = batch.len(), "a batch of writes failed");
            for job in batch {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

/// A committed batch: each write's answer, and the events in commit order.
struct Done {
    answers: Vec<Result<Committed, Error>>,
    /// View, revision, patch, and the documents it replaced.
    events: Vec<(View, u64, String, String)>,
}

/// One attempt at a batch: one transaction, committed or rolled back.
/// The plans that moved `models` are kept in `applied`, for the caller to
/// move them back if the attempt fails.
async fn try_batch(
    pool: &Pool,
    writes: &[&Write],
    models: &mut Models,
    applied: &mut Vec<Plan>,
) -> Result<Done, Failed> {
    let mut client = pooled(pool).await.map_err(Failed::final_before)?;
    let tx = client.transaction().await?;
    let views: BTreeSet<View> = writes.iter().flat_map(|w| w.views()).copied().collect();
    let mut loaded = Loaded::default();
    lock_views(&tx, &views, &mut loaded).await?;
    catch_up(&tx, &views, &loaded, models).await?;
    let mut changes = Changes {
        locked: loaded.revisions.clone(),
        ..Changes::default()
    };
    let mut answers = Vec::with_capacity(writes.len());
    for (i, write) in writes.iter().enumerate() {
        let mut rounds = 0;
        let answer = loop {
            match write.execute_with(&loaded, models) {
                Ok((output, plan)) => {
                    loaded.apply(&plan);
                    changes.add(&plan);
                    let committed = Committed {
                        output,
                        revisions: plan.revisions.clone(),
                        replayed: plan.replayed,
                    };
                    if plan.changes.iter().any(|c| models.get(c.view).is_some()) {
                        models.apply(&plan);
                        applied.push(plan);
                    }
                    break Ok(committed);
                }
                Err(Error::Missing(missing)) if rounds < MAX_ROUNDS => {
                    rounds += 1;
                    let wanted = foresee(missing, &writes[i..], &loaded, models);
                    loaded.load_all(&tx, wanted).await?;
                }
                Err(Error::Missing(m)) => {
                    break Err(Error::internal(format!(
                        "a write asked for more than {MAX_ROUNDS} reads (last {m:?})"
                    )));
                }
                Err(refused) => break Err(refused),
            }
        };
        metrics::histogram!("duality_pg_write_loads").record(rounds as f64);
        answers.push(answer);
    }
    if !changes.is_empty() {
        persist(&tx, &changes, unix_ms(SystemTime::now())).await?;
    }
    tx.commit()
        .await
        .map_err(|e| Failed::Commit(unavailable(e)))?;
    Ok(Done {
        answers,
        events: changes.events,
    })
}

/// What to load in one round trip: `missing`, and a guess of what this
/// write and the next ones of the batch will read after it. The guess runs
/// them on a copy of the batch's state in which every document not loaded
/// yet is taken to be absent (counters and revisions are not guessed: the
/// write waits for them). A wrong guess costs another round; a read that
/// turns out unneeded is harmless: the real runs use only loaded values.
/// The models are those before the write that is waiting: later writes'
/// derived documents may be guessed from a model that is one write behind.
fn foresee(missing: Missing, writes: &[&Write], loaded: &Loaded, models: &Models) -> Vec<Missing> {
    let mut wanted = vec![missing.clone()];
    let mut seen: HashSet<Missing> = HashSet::from([missing]);
    let mut guess = loaded.clone();
    for write in writes.iter().take(LOOKAHEAD) {
        for _ in 0..GUESSES {
            match write.execute_with(&guess, models) {
                Ok((_, plan)) => {
                    guess.apply(&plan);
                    break;
                }
                Err(Error::Missing(m)) => {
                    if seen.insert(m.clone()) {
                        wanted.push(m.clone());
                    }
                    match m {
                        Missing::Doc(view, key) => {
                            guess.docs.insert((view, key), None);
                        }
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
    }
    wanted
}

/// Why an attempt at a batch failed, and so whether to try again.
enum Failed {
    /// Before the commit: nothing was committed; `retry` if a new attempt
    /// may succeed.
    Before { error: Error, retry: bool },
    /// At the commit: it may or may not have committed.
    Commit(Error),
}

impl Failed {
    fn final_before(error: Error) -> Failed {
        Failed::Before {
            error,
            retry: false,
        }
    }
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Failed {
        Failed::Before {
            retry: retryable(&e),
            error: unavailable(e),
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

/// Locks the views' rows and notes their revisions.
async fn lock_views(
    tx: &Transaction<'_>,
    views: &BTreeSet<View>,
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
        let name: &str = row.get(0);
        if let Some(view) = views.iter().find(|v| v.name() == name) {
            loaded.revisions.insert(*view, row.get::<_, i64>(1) as u64);
        }
    }
    Ok(())
}

/// Events read per round trip when catching a model up.
const CATCH_UP_PAGE: i64 = 1024;

/// Brings the model of each locked view that has one to the revision it
/// was locked at: from the events committed since by other processes (or
/// by this one, in a batch whose commit failed but went through), or, if
/// the outbox no longer has them, from the view's documents.
async fn catch_up(
    tx: &Transaction<'_>,
    views: &BTreeSet<View>,
    loaded: &Loaded,
    models: &mut Models,
) -> Result<(), Failed> {
    for &view in views.iter().filter(|v| Models::modeled(**v)) {
        let Some(&locked) = loaded.revisions.get(&view) else {
            continue;
        };
        let mut behind = match models.revision(view) {
            Some(at) => at < locked,
            None => false,
        };
        while behind {
            let at = models.revision(view).unwrap_or(locked);
            let page = tx.prepare_cached(sql::EVENTS_AFTER).await?;
            let rows = tx
                .query(
                    &page,
                    &[&view.name(), &(at as i64), &(locked as i64), &CATCH_UP_PAGE],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let revision = row.get::<_, i64>(0) as u64;
                if let Err(why) = models.follow(view, revision, row.get(1), row.get(2)) {
                    tracing::info!(%view, %why, "loading a model again");
                    models.forget(view);
                    break;
                }
            }
            behind = models.revision(view).is_some_and(|at| at < locked);
        }
        if models.revision(view) != Some(locked) {
            models.insert(view, read_model(tx, view, locked).await?);
        }
    }
    Ok(())
}

/// The model of `view` over its documents as `tx` sees them, at
/// `revision` (the caller's read of it in the same snapshot, or under its
/// lock).
pub async fn read_model(
    tx: &Transaction<'_>,
    view: View,
    revision: u64,
) -> Result<Model, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let mut model = Model::start(view, revision);
    let rows = tx.query_raw(sql::SCAN, &[view.name()]).await?;
    futures_util::pin_mut!(rows);
    while let Some(row) = rows.next().await {
        let row = row?;
        match serde_json::from_str::<Value>(row.get(1)) {
            Ok(doc) => model.add(row.get(0), &doc),
            Err(e) => {
                let key: &str = row.get(0);
                tracing::error!(%view, key, error = %e, "a stored document is not JSON; left out of the model");
            }
        }
    }
    Ok(model)
}

/// What a batch has read so far, plus what its writes changed: the state
/// the next write of the batch sees.
#[derive(Default, Clone)]
struct Loaded {
    revisions: HashMap<View, u64>,
    /// Each document, with the revision that last changed it.
    docs: HashMap<(View, String), Option<(Value, u64)>>,
    counters: HashMap<String, u64>,
    outcomes: HashMap<String, Option<Outcome>>,
}

impl Loaded {
    /// Loads committed values for `wanted`, pipelined in one round trip.
    /// What the batch already has (loaded or changed by its writes) wins.
    async fn load_all(&mut self, tx: &Transaction<'_>, wanted: Vec<Missing>) -> Result<(), Failed> {
        let prepared = try_join_all(
            [sql::DOC, sql::LOCK_COUNTER, sql::REVISION, sql::OUTCOME]
                .map(|q| tx.prepare_cached(q)),
        )
        .await?;
        let [doc, counter, revision, outcome] = &prepared[..] else {
            unreachable!("four statements were prepared");
        };
        let reads = wanted.iter().map(|missing| async move {
            match missing {
                Missing::Doc(view, key) => tx.query_opt(doc, &[&view.name(), key]).await,
                Missing::Counter(name) => tx.query_opt(counter, &[name]).await,
                Missing::Revision(view) => tx.query_opt(revision, &[&view.name()]).await,
                Missing::Key(key) => tx.query_opt(outcome, &[key]).await,
            }
        });
        let rows = try_join_all(reads).await?;
        for (missing, row) in wanted.into_iter().zip(rows) {
            match missing {
                Missing::Doc(view, key) => {
                    let doc = row
                        .map(|r| {
                            let doc = super::parse_doc(r.get(0))?;
                            Ok((doc, r.get::<_, i64>(1) as u64))
                        })
                        .transpose()
                        .map_err(Failed::final_before)?;
                    self.docs.entry((view, key)).or_insert(doc);
                }
                Missing::Counter(name) => {
                    let next = row.map_or(1, |r| r.get::<_, i64>(0) as u64);
                    self.counters.entry(name).or_insert(next);
                }
                Missing::Revision(view) => {
                    let revision = row.map_or(0, |r| r.get::<_, i64>(0) as u64);
                    self.revisions.entry(view).or_insert(revision);
                }
                Missing::Key(key) => {
                    let outcome = match row {
                        None => None,
                        Some(r) => Some(Outcome::decode(r.get(0), r.get(1)).ok_or_else(|| {
                            Failed::final_before(unavailable_msg(format!(
                                "the stored outcome of {key} is unreadable"
                            )))
                        })?),
                    };
                    self.outcomes.entry(key).or_insert(outcome);
                }
            }
        }
        Ok(())
    }

    /// Makes a planned write visible to the next writes of the batch.
    fn apply(&mut self, plan: &Plan) {
        for change in &plan.changes {
            for (key, doc) in &change.rows {
                let doc = doc.clone().map(|doc| (doc, change.revision));
                self.docs.insert((change.view, key.clone()), doc);
            }
            self.revisions.insert(change.view, change.revision);
        }
        for (name, next) in &plan.counters {
            self.counters.insert(name.clone(), *next);
        }
        if let Some((key, outcome)) = &plan.remember {
            self.outcomes.insert(key.clone(), Some(outcome.clone()));
        }
    }
}

impl Source for Loaded {
    fn doc(&self, view: View, key: &str) -> Result<Option<Value>, Missing> {
        match self.docs.get(&(view, key.to_string())) {
            Some(doc) => Ok(doc.as_ref().map(|(doc, _)| doc.clone())),
            None => Err(Missing::Doc(view, key.into())),
        }
    }

    fn doc_revision(&self, view: View, key: &str) -> Result<Option<u64>, Missing> {
        match self.docs.get(&(view, key.to_string())) {
            Some(doc) => Ok(doc.as_ref().map(|(_, revision)| *revision)),
            None => Err(Missing::Doc(view, key.into())),
        }
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

    fn outcome(&self, scoped_key: &str) -> Result<Option<Outcome>, Missing> {
        self.outcomes
            .get(scoped_key)
            .cloned()
            .ok_or_else(|| Missing::Key(scoped_key.into()))
    }
}

/// Everything a batch saves: the final state of each touched document,
/// counter and view, and every event in order.
#[derive(Default)]
struct Changes {
    /// The revisions of the locked views when the batch began.
    locked: HashMap<View, u64>,
    /// Each document's new text and the revision that changed it.
    docs: BTreeMap<(View, String), Option<(String, u64)>>,
    counters: BTreeMap<String, u64>,
    revisions: BTreeMap<View, u64>,
    /// View, revision, patch, and the documents it replaced.
    events: Vec<(View, u64, String, String)>,
    /// Per changed document, the revision of its last change in the batch
    /// and whether that deleted it (catch-up's rows).
    changed: BTreeMap<(View, String), (u64, bool)>,
    /// Idempotency keys to store: scoped key, fingerprint, outcome text.
    keys: Vec<(String, String, String)>,
}

impl Changes {
    fn add(&mut self, plan: &Plan) {
        for change in &plan.changes {
            for (key, doc) in &change.rows {
                self.docs.insert(
                    (change.view, key.clone()),
                    doc.as_ref().map(|doc| (doc.to_string(), change.revision)),
                );
                self.changed
                    .insert((change.view, key.clone()), (change.revision, doc.is_none()));
            }
            self.revisions.insert(change.view, change.revision);
            self.events.push((
                change.view,
                change.revision,
                change.patch.to_string(),
                serde_json::to_string(&change.prior).unwrap_or_else(|_| "{}".into()),
            ));
        }
        for (name, next) in &plan.counters {
            self.counters.insert(name.clone(), *next);
        }
        if let Some((key, outcome)) = &plan.remember {
            self.keys
                .push((key.clone(), outcome.fingerprint.clone(), outcome.encode()));
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.counters.is_empty() && self.keys.is_empty()
    }
}

/// Saves a batch and NOTIFYs the changed views, as a fixed number of
/// pipelined statements whatever the batch's size.
async fn persist(tx: &Transaction<'_>, changes: &Changes, now: i64) -> Result<(), Failed> {
    let (mut up_views, mut up_keys, mut up_docs) = (Vec::new(), Vec::new(), Vec::new());
    let mut up_revisions: Vec<i64> = Vec::new();
    let (mut del_views, mut del_keys) = (Vec::new(), Vec::new());
    for ((view, key), doc) in &changes.docs {
        match doc {
            Some((doc, revision)) => {
                up_views.push(view.name());
                up_keys.push(key.as_str());
                up_docs.push(doc.as_str());
                up_revisions.push(*revision as i64);
            }
            None => {
                del_views.push(view.name());
                del_keys.push(key.as_str());
            }
        }
    }
    let (mut ch_views, mut ch_keys) = (Vec::new(), Vec::new());
    let (mut ch_revisions, mut ch_deleted) = (Vec::new(), Vec::new());
    for ((view, key), (revision, deleted)) in &changes.changed {
        ch_views.push(view.name());
        ch_keys.push(key.as_str());
        ch_revisions.push(*revision as i64);
        ch_deleted.push(*deleted);
    }
    let ev_views: Vec<&str> = changes.events.iter().map(|e| e.0.name()).collect();
    let ev_revisions: Vec<i64> = changes.events.iter().map(|e| e.1 as i64).collect();
    let ev_patches: Vec<&str> = changes.events.iter().map(|e| e.2.as_str()).collect();
    let ev_priors: Vec<&str> = changes.events.iter().map(|e| e.3.as_str()).collect();
    let views: Vec<&str> = changes.revisions.keys().map(|v| v.name()).collect();
    let to: Vec<i64> = changes.revisions.values().map(|r| *r as i64).collect();
    let from: Vec<i64> = changes
        .revisions
        .keys()
        .map(|v| changes.locked.get(v).copied().unwrap_or(0) as i64)
        .collect();
    let payloads: Vec<String> = changes
        .revisions
        .iter()
        .map(|(v, r)| listener::payload(*v, *r))
        .collect();
    let counter_names: Vec<&str> = changes.counters.keys().map(String::as_str).collect();
    let counter_next: Vec<i64> = changes.counters.values().map(|n| *n as i64).collect();
    let key_names: Vec<&str> = changes.keys.iter().map(|(k, _, _)| k.as_str()).collect();
    let key_prints: Vec<&str> = changes.keys.iter().map(|(_, f, _)| f.as_str()).collect();
    let key_outcomes: Vec<&str> = changes.keys.iter().map(|(_, _, o)| o.as_str()).collect();

    let prepared = try_join_all(
        [
            sql::UPSERT_DOCS,
            sql::DELETE_DOCS,
            sql::INSERT_EVENTS,
            sql::ADVANCE_VIEWS,
            sql::UPSERT_COUNTERS,
            sql::NOTIFY,
            sql::INSERT_KEYS,
            sql::UPSERT_CHANGED,
        ]
        .map(|q| tx.prepare_cached(q)),
    )
    .await?;
    let [
        upsert,
        delete,
        insert,
        advance,
        counters,
        notify,
        keys,
        changed_keys,
    ] = &prepared[..]
    else {
        unreachable!("eight statements were prepared");
    };
    type Pending<'a> = BoxFuture<'a, Result<u64, tokio_postgres::Error>>;
    // Sent one after the other without waiting (pipelined), run in order.
    let mut statements: Vec<Pending<'_>> = Vec::new();
    if !up_views.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(upsert, &[&up_views, &up_keys, &up_docs, &up_revisions])
                .await
        }));
    }
    if !del_views.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(delete, &[&del_views, &del_keys]).await
        }));
    }
    if !ch_views.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(
                changed_keys,
                &[&ch_views, &ch_keys, &ch_revisions, &ch_deleted, &now],
            )
            .await
        }));
    }
    if !counter_names.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(counters, &[&counter_names, &counter_next]).await
        }));
    }
    if !key_names.is_empty() {
        statements.push(Box::pin(async {
            tx.execute(keys, &[&key_names, &key_prints, &key_outcomes, &now])
                .await
        }));
    }
    let changed = views.len() as u64;
    if changed > 0 {
        statements.push(Box::pin(async {
            tx.execute(
                insert,
                &[&ev_views, &ev_revisions, &ev_patches, &now, &ev_priors],
            )
            .await
        }));
        statements.push(Box::pin(async { tx.execute(notify, &[&payloads]).await }));
        statements.push(Box::pin(async {
            tx.execute(advance, &[&views, &to, &from]).await
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
