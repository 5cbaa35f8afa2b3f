//! The aggregates service (README, "The Aggregate Pattern"): the dashboard as a live view composed
//! from the customers and incidents services by service chaining.
//!
//! Two [`Follower`]s follow the backends' views through their HTTP APIs (or
//! the in-process router) and feed every change into one [`Composer`],
//! which keeps the dashboard's ordered read models current in O(log n) per
//! change. Whenever either backend changes, the dashboard is composed from
//! those (the first five of each order) and written to this service's own
//! store as the `dashboard` view; the write path turns that
//! into the minimal merge patch, or no event at all. Bursts coalesce: the
//! composer always reads the newest copies. Nothing is composed until both
//! copies have loaded once, so after a restart with a backend down the
//! dashboard keeps its last stored state, marked stale. Each write records
//! the backend revisions it was composed from and is refused if the stored
//! dashboard is newer, so processes sharing a database never move it
//! backwards ([`composed_from`](super::composed_from)). Where this process
//! is the database's only writer (SQLite), nobody needs that record, and a
//! composition equal to the one it stored last is not written at all: a
//! backend change that leaves the lists as they were costs the writer
//! nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::composed_from::{Basis, Position};
use super::dashboard::{Composer, Composition};
use super::{CUSTOMERS, DASHBOARD, INCIDENTS};
use duality::App;
use duality::client::{Follower, Health, Observer, Options, Transport, ViewCopy};
use duality::{View, Write};

/// The aggregates service's two followers of the backends, feeding the
/// dashboard's composer; their health marks the dashboard stale.
pub struct Upstreams {
    /// Follows the customers service's `customers` view.
    pub customers: Follower,
    /// Follows the incidents service's `incidents` view.
    pub incidents: Follower,
}

impl Upstreams {
    /// Starts following both backends and composing the dashboard.
    pub fn start(
        app: App,
        customers: Arc<dyn Transport>,
        incidents: Arc<dyn Transport>,
        options: Options,
    ) -> Arc<Upstreams> {
        let composer = Arc::new(Mutex::new(Composing::default()));
        // The followers keep no copy: the composer keeps the few fields it
        // composes from, so memory does not grow with the backends' views.
        let options = Options {
            keep_copy: false,
            ..options
        };
        let follow = |transport, view: View, side| {
            let feed = Feed {
                composer: Arc::clone(&composer),
                side,
            };
            Follower::spawn_observed(
                transport,
                view.snapshot_path(),
                view.stream_path(),
                options.clone(),
                Some(Arc::new(feed)),
            )
        };
        let upstreams = Upstreams {
            customers: follow(customers, CUSTOMERS, Side::Customers),
            incidents: follow(incidents, INCIDENTS, Side::Incidents),
        };
        tokio::spawn(mark_stale(
            app.clone(),
            upstreams.customers.watch_health(),
            upstreams.incidents.watch_health(),
        ));
        let shutdown = app.shutdown();
        tokio::spawn(compose_forever(
            app,
            composer,
            upstreams.customers.watch(),
            upstreams.incidents.watch(),
            shutdown,
        ));
        Arc::new(upstreams)
    }

    /// True if either backend cannot be followed right now.
    pub fn stale(&self) -> bool {
        !(self.customers.health().live && self.incidents.health().live)
    }

    /// Each upstream's state, for `/healthz`.
    pub fn report(&self) -> Value {
        let one = |f: &Follower| {
            let health = f.health();
            let revision = f.with(|c| c.revision);
            json!({
                "source": f.source(),
                "stale": !health.live,
                "revision": revision,
                "error": health.error.as_ref().map(ToString::to_string),
            })
        };
        json!({"customers": one(&self.customers), "incidents": one(&self.incidents)})
    }
}

/// The write that makes the stored dashboard equal `docs`, composed from
/// the backend positions `basis`. It writes nothing (no event) if the
/// stored dashboard was composed from newer positions (see
/// [`composed_from`](super::composed_from)); its output says
/// whether it wrote.
pub fn store_dashboard(docs: Map<String, Value>, basis: Basis) -> Write {
    Write::new(&[DASHBOARD], move |d| {
        if basis.is_older_than(&Basis::recorded(d)?) {
            return Ok(Value::Bool(false));
        }
        basis.record(d);
        for (key, doc) in &docs {
            d.put(DASHBOARD, key.clone(), doc.clone())?;
        }
        Ok(Value::Bool(true))
    })
    .derived()
}

/// Keeps the dashboard's stale mark (the `stale`/`fresh` events on its
/// stream) in step with the followers' health.
async fn mark_stale(
    app: App,
    mut customers: watch::Receiver<Health>,
    mut incidents: watch::Receiver<Health>,
) {
    let mut shutdown = app.shutdown();
    loop {
        let lost: Vec<&str> = [("customers", &customers), ("incidents", &incidents)]
            .into_iter()
            .filter(|(_, h)| !h.borrow().live)
            .map(|(name, _)| name)
            .collect();
        let mark = (!lost.is_empty()).then(|| json!({ "upstreams": lost }).to_string());
        // The dashboard is this service's own view: always served here.
        if let Err(e) = app.set_stale(DASHBOARD, mark) {
            tracing::error!(error = %e, "cannot mark the dashboard stale");
            return;
        }
        tokio::select! {
            changed = customers.changed() => if changed.is_err() { return },
            changed = incidents.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// The composer and the backend positions its read models reflect, under
/// one lock: a composition and the basis recorded with it always match.
#[derive(Default)]
struct Composing {
    composer: Composer,
    customers: Option<Position>,
    incidents: Option<Position>,
}

/// What the compose loop does next.
enum Next {
    /// A backend has not loaded yet: nothing to compose from.
    Wait,
    /// The lists are as this process stored them last: nothing to write.
    Unchanged,
    /// Write this composition, made from these backend positions.
    Write(Composition, Basis),
}

impl Composing {
    /// The dashboard and what it was composed from, once both backends
    /// have loaded, unless it equals `stored`.
    fn next(&self, stored: Option<&Composition>) -> Next {
        let (Some(customers), Some(incidents)) = (self.customers, self.incidents) else {
            return Next::Wait;
        };
        if stored.is_some_and(|stored| self.composer.composes(stored)) {
            return Next::Unchanged;
        }
        let basis = Basis {
            customers,
            incidents,
        };
        Next::Write(self.composer.compose(), basis)
    }
}

#[derive(Clone, Copy)]
enum Side {
    Customers,
    Incidents,
}

/// Feeds one backend's changes into the shared composer, before the
/// follower's watchers (the compose loop) wake.
struct Feed {
    composer: Arc<Mutex<Composing>>,
    side: Side,
}

impl Feed {
    /// Applies `f` to the composer and moves this side's position to
    /// `revision` (of `epoch`, or of the epoch it had), in one lock.
    fn with(&self, revision: u64, epoch: Option<&str>, f: impl FnOnce(&mut Composer)) {
        let mut composing = self.composer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut composing.composer);
        let position = match self.side {
            Side::Customers => &mut composing.customers,
            Side::Incidents => &mut composing.incidents,
        };
        *position = match (epoch, *position) {
            (Some(epoch), _) => Some(Position::new(epoch, revision)),
            (None, Some(known)) => Some(Position { revision, ..known }),
            (None, None) => None,
        };
    }
}

impl Observer for Feed {
    fn loaded(&self, view: &Map<String, Value>, revision: u64, epoch: &str) {
        self.with(revision, Some(epoch), |c| match self.side {
            Side::Customers => c.load_customers(view),
            Side::Incidents => c.load_incidents(view),
        });
    }

    fn patched(&self, patch: &Map<String, Value>, revision: u64) {
        self.with(revision, None, |c| match self.side {
            Side::Customers => c.patch_customers(patch),
            Side::Incidents => c.patch_incidents(patch),
        });
    }
}

async fn compose_forever(
    app: App,
    composer: Arc<Mutex<Composing>>,
    mut customers: watch::Receiver<ViewCopy>,
    mut incidents: watch::Receiver<ViewCopy>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The last composition this process stored, where it is the database's
    // only writer: composing it again (a backend change that leaves the
    // lists as they were) needs no write at all. Where other processes
    // write too, every composition is written, so that the basis it
    // records keeps theirs from storing an older one.
    let mut stored: Option<Composition> = None;
    let sole_writer = !app.store_is_shared();
    loop {
        let next = {
            let c = customers.borrow_and_update();
            let i = incidents.borrow_and_update();
            let ready = c.loaded && i.loaded;
            drop((c, i));
            if ready {
                let composing = composer.lock().unwrap_or_else(|p| p.into_inner());
                composing.next(stored.as_ref())
            } else {
                Next::Wait
            }
        };
        match next {
            Next::Wait => {}
            Next::Unchanged => {
                metrics::counter!("duality_dashboard_unchanged_compositions_total").increment(1);
            }
            Next::Write(composition, basis) => {
                let docs = composition.docs();
                let kept = sole_writer.then_some(composition);
                match write_dashboard(&app, docs, basis).await {
                    Ok(written) => stored = kept.filter(|_| written),
                    Err(e) => {
                        stored = None;
                        tracing::warn!(error = %e, "could not store the dashboard; retrying");
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                }
            }
        }
        tokio::select! {
            changed = customers.changed() => if changed.is_err() { return },
            changed = incidents.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Stores one composition; answers false if a newer dashboard was stored
/// already (nothing written, no event).
async fn write_dashboard(
    app: &App,
    docs: Map<String, Value>,
    basis: Basis,
) -> Result<bool, duality::Error> {
    let committed = app.write(store_dashboard(docs, basis)).await?;
    let written = committed.output != Value::Bool(false);
    if !written {
        metrics::counter!("duality_dashboard_stale_compositions_total").increment(1);
        tracing::debug!("a newer dashboard is stored; this composition was not written");
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality::domain::write::MemorySource;

    fn at(customers: u64, incidents: u64) -> Basis {
        Basis {
            customers: Position::new("c", customers),
            incidents: Position::new("i", incidents),
        }
    }

    fn volume(v: u64) -> Map<String, Value> {
        let mut docs = Map::new();
        docs.insert("volume".into(), json!(v));
        docs
    }

    #[test]
    fn a_composition_from_older_revisions_writes_nothing_and_a_newer_one_writes() {
        let mut store = MemorySource::default();
        let (out, plan) = store.run(&store_dashboard(volume(30), at(1, 3))).unwrap();
        assert_eq!((out, plan.changes.len()), (json!(true), 1));

        let (out, plan) = store.run(&store_dashboard(volume(20), at(1, 2))).unwrap();
        assert_eq!(out, json!(false));
        assert!(plan.changes.is_empty() && plan.counters.is_empty());
        assert_eq!(store.view(DASHBOARD), json!({"volume": 30}));

        let (out, plan) = store.run(&store_dashboard(volume(40), at(1, 4))).unwrap();
        assert_eq!((out, plan.revision(DASHBOARD)), (json!(true), Some(2)));
        assert_eq!(store.view(DASHBOARD), json!({"volume": 40}));
    }
}
