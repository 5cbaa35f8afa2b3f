//! The aggregates service (SPEC §4): the dashboard as a live view composed
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
//! dashboard keeps its last stored state, marked stale.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::app::App;
use crate::client::{Follower, Health, Observer, Options, Transport, ViewCopy};
use crate::domain::dashboard::Composer;
use crate::domain::{View, Write};

pub struct Upstreams {
    pub customers: Follower,
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
        let composer = Arc::new(Mutex::new(Composer::default()));
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
            customers: follow(customers, View::Customers, Side::Customers),
            incidents: follow(incidents, View::Incidents, Side::Incidents),
        };
        tokio::spawn(mark_stale(
            app.clone(),
            upstreams.customers.watch_health(),
            upstreams.incidents.watch_health(),
        ));
        let shutdown = app.shutdown.clone();
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
                "error": health.error,
            })
        };
        json!({"customers": one(&self.customers), "incidents": one(&self.incidents)})
    }
}

/// The write that makes the stored dashboard equal `docs`.
pub fn store_dashboard(docs: Map<String, Value>) -> Write {
    Write::new(&[View::Dashboard], move |d| {
        for (key, doc) in &docs {
            d.put(View::Dashboard, key.clone(), doc.clone())?;
        }
        Ok(Value::Null)
    })
}

/// Keeps the dashboard's stale mark (the `stale`/`fresh` events on its
/// stream) in step with the followers' health.
async fn mark_stale(
    app: App,
    mut customers: watch::Receiver<Health>,
    mut incidents: watch::Receiver<Health>,
) {
    let mut shutdown = app.shutdown.clone();
    loop {
        let lost: Vec<&str> = [("customers", &customers), ("incidents", &incidents)]
            .into_iter()
            .filter(|(_, h)| !h.borrow().live)
            .map(|(name, _)| name)
            .collect();
        let mark = (!lost.is_empty()).then(|| json!({ "upstreams": lost }).to_string());
        app.hub.set_stale(View::Dashboard, mark);
        tokio::select! {
            changed = customers.changed() => if changed.is_err() { return },
            changed = incidents.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
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
    composer: Arc<Mutex<Composer>>,
    side: Side,
}

impl Feed {
    fn with(&self, f: impl FnOnce(&mut Composer)) {
        let mut composer = self.composer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut composer);
    }
}

impl Observer for Feed {
    fn loaded(&self, view: &Map<String, Value>) {
        self.with(|c| match self.side {
            Side::Customers => c.load_customers(view),
            Side::Incidents => c.load_incidents(view),
        });
    }

    fn patched(&self, patch: &Map<String, Value>) {
        self.with(|c| match self.side {
            Side::Customers => c.patch_customers(patch),
            Side::Incidents => c.patch_incidents(patch),
        });
    }
}

async fn compose_forever(
    app: App,
    composer: Arc<Mutex<Composer>>,
    mut customers: watch::Receiver<ViewCopy>,
    mut incidents: watch::Receiver<ViewCopy>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let composed = {
            let c = customers.borrow_and_update();
            let i = incidents.borrow_and_update();
            let ready = c.loaded && i.loaded;
            drop((c, i));
            ready.then(|| {
                let composer = composer.lock().unwrap_or_else(|p| p.into_inner());
                composer.compose()
            })
        };
        if let Some(docs) = composed
            && let Err(e) = app.write(store_dashboard(docs)).await
        {
            tracing::warn!(error = %e, "could not store the dashboard; retrying");
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        }
        tokio::select! {
            changed = customers.changed() => if changed.is_err() { return },
            changed = incidents.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}
