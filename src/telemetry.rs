//! Logs (`RUST_LOG`, default `info`) and the Prometheus recorder.
//!
//! The recorder keeps histogram samples until its upkeep folds them into
//! summaries; rendering `/metrics` does that too, but nothing guarantees
//! a scraper, so a thread runs the upkeep every [`UPKEEP_EVERY`] and
//! memory stays bounded either way.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber once; later calls do nothing.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// How often the recorder's upkeep runs.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Runs the recorder's upkeep forever, counting the runs (the count is
/// how an operator, or a test, sees that it runs).
fn upkeep(handle: PrometheusHandle) {
    loop {
        std::thread::sleep(UPKEEP_EVERY);
        handle.run_upkeep();
        metrics::counter!("duality_metrics_upkeep_total").increment(1);
    }
}

/// The process-wide Prometheus recorder (installed on first use; every
/// server in the process shares it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            let for_upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || upkeep(for_upkeep))
                .ok()?;
            metrics::describe_counter!("duality_writes_total", "Writes by outcome");
            metrics::describe_counter!("duality_events_total", "Events committed, by view");
            metrics::describe_gauge!("duality_subscribers", "Open stream subscriptions, by view");
            metrics::describe_counter!(
                "duality_metrics_upkeep_total",
                "Runs of the metrics recorder's upkeep (histogram samples folded)"
            );
            metrics::describe_gauge!("duality_connections", "Open HTTP connections");
            metrics::describe_counter!(
                "duality_connections_refused_total",
                "Connections answered 503 past --max-connections"
            );
            metrics::describe_histogram!(
                "duality_commit_batch_writes",
                "Writes committed per SQLite transaction (group commit)"
            );
            Some(handle)
        })
        .as_ref()
}
