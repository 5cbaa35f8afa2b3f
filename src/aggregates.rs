//! The aggregates service (SPEC §4): the dashboard as a live view composed
//! from the customers and incidents services by service chaining.
//!
//! Two [`Follower`]s keep copies of the backends' views through their HTTP
//! APIs (or the in-process router). Whenever either copy changes, the
//! dashboard is composed again (a pure function) and written to this
//! service's own store as the `dashboard` view; the write path turns that
//! into the minimal merge patch, or no event at all. Bursts coalesce: the
//! composer always reads the newest copies. Nothing is composed until both
//! copies have loaded once, so after a restart with a backend down the
//! dashboard keeps its last stored state, marked stale.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::app::App;
use crate::client::{Follower, Options, Transport, ViewCopy};
use crate::domain::{View, Write, dashboard};

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
        let follow = |transport, view: View| {
            Follower::spawn(
                transport,
                view.snapshot_path(),
                view.stream_path(),
                options.clone(),
            )
        };
        let upstreams = Upstreams {
            customers: follow(customers, View::Customers),
            incidents: follow(incidents, View::Incidents),
        };
        let shutdown = app.shutdown.clone();
        tokio::spawn(compose_forever(
            app,
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

async fn compose_forever(
    app: App,
    mut customers: watch::Receiver<ViewCopy>,
    mut incidents: watch::Receiver<ViewCopy>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let composed = {
            let c = customers.borrow_and_update();
            let i = incidents.borrow_and_update();
            (c.loaded && i.loaded).then(|| dashboard::compose(&c.doc, &i.doc))
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
