//! Logs (`RUST_LOG`, default `info`) and the Prometheus recorder.

use std::sync::OnceLock;

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

/// The process-wide Prometheus recorder (installed on first use; every
/// server in the process shares it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            metrics::describe_counter!("duality_writes_total", "Writes by outcome");
            metrics::describe_counter!("duality_events_total", "Events committed, by view");
            metrics::describe_gauge!("duality_subscribers", "Open stream subscriptions, by view");
            metrics::describe_histogram!(
                "duality_commit_batch_writes",
                "Writes committed per SQLite transaction (group commit)"
            );
            Some(handle)
        })
        .as_ref()
}
