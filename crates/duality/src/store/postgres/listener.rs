//! Cross-process delivery: LISTEN/NOTIFY as the wake-up, the outbox as the
//! truth.
//!
//! Every committed write NOTIFYs `view:revision` inside its transaction, so
//! the notification goes out at commit. Each process keeps one dedicated
//! connection LISTENing; a notification only says "this view reached this
//! revision". The [`Publisher`] then reads the events after its per-view
//! cursor ("published up to") from the outbox and publishes them to the hub
//! in revision order, so each event is published once and in order whatever
//! order notifications and local commits arrive in.
//!
//! Writers of a view serialise on the view's row and allocate revisions
//! inside the transaction, so when revision `r` is committed every revision
//! below it is committed too: reading `cursor+1 ..= r` never misses one that
//! is still in flight.
//!
//! If the LISTEN connection is lost, the listener reconnects with backoff,
//! LISTENs again and then reads every view's current revision (catch-up),
//! so a notification sent while it was away is never needed.

use duality_core::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::sql;
use super::{READ_TIMEOUT, describe, pooled, unavailable, unavailable_msg};
use crate::store::Publish;
use duality_core::View;
use duality_core::view::Registry;

/// Events read from the outbox per round trip when publishing.
const PAGE: i64 = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the LISTEN connection is checked with a query, to notice a
/// connection that died without being closed.
const PING: Duration = Duration::from_secs(5);

/// Publishes committed events to this process's hub, once and in order.
pub struct Publisher {
    hub: Arc<dyn Publish>,
    pool: Pool,
    /// Per view: the newest revision published to the hub (or skipped
    /// because retention deleted it first).
    cursors: HashMap<View, tokio::sync::Mutex<u64>>,
    /// Per view: the newest revision known to be committed and not yet
    /// published. Coalesces bursts of notifications.
    pending: Mutex<HashMap<View, u64>>,
    wake: Notify,
}

impl Publisher {
    /// The views this process serves.
    pub fn registry(&self) -> &Registry {
        self.hub.registry()
    }

    pub fn new(hub: Arc<dyn Publish>, pool: Pool) -> Publisher {
        let cursors = hub
            .registry()
            .views()
            .map(|v| (v, tokio::sync::Mutex::new(0)))
            .collect();
        Publisher {
            hub,
            pool,
            cursors,
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }
    }

    /// Starts `view` at `revision`, committed before this process started:
    /// nothing up to it is published (streams read it from the outbox).
    pub async fn start_at(&self, view: View, revision: u64) {
        let mut cursor = self.cursors[&view].lock().await;
        *cursor = (*cursor).max(revision);
        self.hub.observe(view, revision);
    }

    /// Tells the hub that `view` reached `revision`, before its events are
    /// published (for snapshots: a writer reads its own writes).
    pub fn observe(&self, view: View, revision: u64) {
        self.hub.observe(view, revision);
    }

    /// Notes that `view` is committed up to `revision`; the worker publishes.
    pub fn want(&self, view: View, revision: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            let entry = pending.entry(view).or_default();
            *entry = (*entry).max(revision);
        }
        self.wake.notify_one();
    }

    /// Publishes this process's own commit of `revision` (with its patch),
    /// after anything before it that is not published yet.
    pub async fn local(&self, view: View, revision: u64, patch: &str, prior: &str) {
        let mut cursor = self.cursors[&view].lock().await;
        if *cursor >= revision {
            return;
        }
        if *cursor + 1 < revision
            && let Err(e) = self.fill(view, &mut cursor, revision - 1).await
        {
            tracing::warn!(%view, revision, error = %e, "publishing later");
            drop(cursor);
            self.want(view, revision);
            return;
        }
        if *cursor + 1 == revision {
            self.hub.publish(view, revision, patch, Some(prior));
            *cursor = revision;
        }
    }

    /// Publishes the committed events after `cursor` up to `up_to`. Events
    /// that retention already deleted are skipped: subscribers that need
    /// them find the hole in the outbox and get a reset.
    async fn fill(&self, view: View, cursor: &mut u64, up_to: u64) -> Result<(), Error> {
        while *cursor < up_to {
            let rows = tokio::time::timeout(READ_TIMEOUT, async {
                let client = pooled(&self.pool).await?;
                let stmt = client
                    .prepare_cached(sql::EVENTS_AFTER)
                    .await
                    .map_err(unavailable)?;
                client
                    .query(
                        &stmt,
                        &[&view.name(), &(*cursor as i64), &(up_to as i64), &PAGE],
                    )
                    .await
                    .map_err(unavailable)
            })
            .await
            .map_err(|_| unavailable_msg("reading the outbox timed out"))??;
            if rows.is_empty() {
                // Trimmed before this process published them.
                *cursor = up_to;
                self.hub.observe(view, up_to);
                break;
            }
            for row in rows {
                let revision = row.get::<_, i64>(0) as u64;
                let patch: &str = row.get(1);
                let prior: Option<&str> = row.get(2);
                self.hub.publish(view, revision, patch, prior);
                *cursor = revision;
            }
        }
        Ok(())
    }

    /// Publishes whatever is pending, forever; retries with backoff while
    /// the database cannot be read.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            self.wake.notified().await;
            let batch: Vec<(View, u64)> = match self.pending.lock() {
                Ok(mut pending) => pending.drain().collect(),
                Err(_) => return,
            };
            let mut failed = false;
            for (view, revision) in batch {
                let mut cursor = self.cursors[&view].lock().await;
                if *cursor >= revision {
                    continue;
                }
                if let Err(e) = self.fill(view, &mut cursor, revision).await {
                    tracing::warn!(%view, revision, error = %e, "cannot publish yet; retrying");
                    drop(cursor);
                    failed = true;
                    self.want(view, revision);
                }
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                backoff = MIN_BACKOFF;
            }
        }
    }
}

/// One LISTEN connection. Dropping it closes the connection.
pub struct Session {
    client: tokio_postgres::Client,
    /// Says why the connection ended, when it does.
    lost: oneshot::Receiver<String>,
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// `view:revision`, as NOTIFYed by writers.
pub fn payload(view: View, revision: u64) -> String {
    format!("{}:{revision}", view.name())
}

fn parse_payload(registry: &Registry, payload: &str) -> Option<(View, u64)> {
    let (view, revision) = payload.split_once(':')?;
    Some((registry.get(view)?, revision.parse().ok()?))
}

fn listen_sql() -> String {
    format!("LISTEN {}", sql::CHANNEL)
}

/// Connects and LISTENs; notifications go to `publisher` from then on.
pub async fn listen(
    config: &tokio_postgres::Config,
    publisher: &Arc<Publisher>,
) -> Result<Session, Error> {
    let mut config = config.clone();
    config.application_name("duality listener");
    let (client, mut connection) = config.connect(NoTls).await.map_err(unavailable)?;
    let (lost_tx, lost) = oneshot::channel();
    let to = Arc::clone(publisher);
    let driver = tokio::spawn(async move {
        let why = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == sql::CHANNEL => {
                    match parse_payload(to.registry(), n.payload()) {
                        Some((view, revision)) => to.want(view, revision),
                        None => tracing::debug!(payload = n.payload(), "ignored notification"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break describe(&e),
                None => break "connection closed".to_string(),
            }
        };
        let _ = lost_tx.send(why);
    });
    let session = Session {
        client,
        lost,
        driver,
    };
    tokio::time::timeout(READ_TIMEOUT, session.client.batch_execute(&listen_sql()))
        .await
        .map_err(|_| unavailable_msg("LISTEN timed out"))?
        .map_err(unavailable)?;
    Ok(session)
}

/// Reads every view's revision and hands it to the publisher, which
/// publishes whatever this process has not published yet. Runs on a pooled
/// connection: the LISTEN connection only ever runs `LISTEN`.
async fn catch_up(publisher: &Publisher) -> Result<(), Error> {
    let rows = tokio::time::timeout(READ_TIMEOUT, async {
        let client = pooled(&publisher.pool).await?;
        client
            .query(sql::ALL_REVISIONS, &[])
            .await
            .map_err(unavailable)
    })
    .await
    .map_err(|_| unavailable_msg("catch-up timed out"))??;
    for row in rows {
        if let Some(view) = publisher.registry().get(row.get(0)) {
            publisher.want(view, row.get::<_, i64>(1) as u64);
        }
    }
    Ok(())
}

/// Serves `session` until it is lost; answers why.
async fn serve(session: &mut Session) -> String {
    let mut ping = tokio::time::interval(PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            why = &mut session.lost => return why.unwrap_or_else(|_| "connection task ended".into()),
            _ = ping.tick() => {
                // LISTEN again: a no-op that proves the connection works.
                match tokio::time::timeout(PING, session.client.batch_execute(&listen_sql())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return describe(&e),
                    Err(_) => return "the connection stopped answering".into(),
                }
            }
        }
    }
}

/// Keeps a LISTEN connection up for the life of the store: when it is lost,
/// reconnects with backoff and catches up from the outbox.
pub async fn listen_forever(
    config: tokio_postgres::Config,
    publisher: Arc<Publisher>,
    mut session: Session,
) {
    loop {
        let why = serve(&mut session).await;
        drop(session);
        tracing::warn!(reason = %why, "lost the LISTEN connection; reconnecting");
        let mut backoff = MIN_BACKOFF;
        session = loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let attempt = async {
                let session = listen(&config, &publisher).await?;
                catch_up(&publisher).await?;
                Ok::<_, Error>(session)
            };
            match attempt.await {
                Ok(session) => break session,
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN yet; retrying"),
            }
        };
        metrics::counter!("duality_pg_listener_reconnects_total").increment(1);
        tracing::info!("LISTEN connection restored; caught up from the outbox");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality_core::view::ViewSpec;

    #[test]
    fn payloads_round_trip_and_garbage_is_ignored() {
        static PERSONS: ViewSpec = ViewSpec::new("persons", "/persons", "/person-events");
        let view = View::of(&PERSONS);
        let registry = Registry::new([view]).unwrap();
        assert_eq!(
            parse_payload(&registry, &payload(view, 42)),
            Some((view, 42))
        );
        for bad in ["", "persons", "persons:", "persons:x", "nope:1", ":1"] {
            assert_eq!(parse_payload(&registry, bad), None, "{bad}");
        }
    }
}
