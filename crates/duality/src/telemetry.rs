//! Logs (`RUST_LOG`, default `info`) and the Prometheus recorder.
//!
//! Every metric the engine records is listed in [`METRICS`] with its help
//! text, and every metric a service records in the list it hands to
//! [`Service::metrics`](crate::Service::metrics); both are described when
//! the server starts, so each family on `/metrics` has a `# HELP` line.
//! [`unlisted_metrics`] is the check a crate's test runs over its sources.
//!
//! Histograms are rendered as Prometheus histograms (cumulative `_bucket`
//! series), not as summaries: a summary's quantiles cover only a sliding
//! window of recent samples and go empty after an idle period, while
//! buckets keep counting, so Prometheus computes quantiles over any window
//! (`histogram_quantile(0.99, rate(..._bucket[5m]))`). The recorder still
//! needs its upkeep to fold samples into the buckets; rendering `/metrics`
//! does that too, but nothing guarantees a scraper, so a thread runs the
//! upkeep every [`UPKEEP_EVERY`] and memory stays bounded either way.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A number that only goes up.
    Counter,
    /// A number that goes up and down.
    Gauge,
    /// A distribution of observed values, in buckets.
    Histogram,
}

/// One metric: name, kind, help text.
pub type Metric = (&'static str, Kind, &'static str);

/// Every metric the engine records.
pub const METRICS: &[Metric] = &[
    (
        "duality_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, route template (\"unmatched\" for no route) and status; a stream counts when it starts",
    ),
    (
        "duality_http_request_duration_seconds",
        Kind::Histogram,
        "Time until the answer's head is ready, by method, route template and status (for a stream: the time to open it, not how long it stays open)",
    ),
    (
        "duality_writes_total",
        Kind::Counter,
        "Write requests (POST, PUT, PATCH, DELETE) by outcome: committed, replayed, or why refused",
    ),
    (
        "duality_events_total",
        Kind::Counter,
        "Events published to this process's subscribers, by view",
    ),
    (
        "duality_subscribers",
        Kind::Gauge,
        "Open stream subscriptions, by view",
    ),
    (
        "duality_stream_resets_total",
        Kind::Counter,
        "Streams ended with a reset event (their next revision can no longer be sent), by view",
    ),
    (
        "duality_view_catch_ups_total",
        Kind::Counter,
        "Reads that brought a view's in-memory copy up to date from the store (its publish was late), by view",
    ),
    (
        "duality_snapshot_build_seconds",
        Kind::Histogram,
        "Time to build a snapshot answer body (once per revision), by whether it is gzipped",
    ),
    (
        "duality_events_trimmed_total",
        Kind::Counter,
        "Events deleted by retention",
    ),
    (
        "duality_changed_keys_trimmed_total",
        Kind::Counter,
        "Changed-key rows of catch-up deleted past --catch-up-horizon",
    ),
    (
        "duality_catch_ups_total",
        Kind::Counter,
        "Positions older than the retained events answered with one catch-up patch instead of 410, by view",
    ),
    (
        "duality_metrics_upkeep_total",
        Kind::Counter,
        "Runs of the metrics recorder's upkeep (histogram samples folded)",
    ),
    ("duality_connections", Kind::Gauge, "Open HTTP connections"),
    (
        "duality_connections_refused_total",
        Kind::Counter,
        "Connections answered 503 past --max-connections",
    ),
    (
        "duality_sqlite_wal_frames",
        Kind::Gauge,
        "SQLite: WAL frames not yet copied into the database file after the last checkpoint",
    ),
    (
        "duality_sqlite_commits_total",
        Kind::Counter,
        "SQLite commits by flush: waited for the disk, or deferred (derived views only)",
    ),
    (
        "duality_commit_batch_writes",
        Kind::Histogram,
        "Writes committed per store transaction (group commit)",
    ),
    (
        "duality_pg_write_loads",
        Kind::Histogram,
        "PostgreSQL writer: read rounds a write needed before it could run",
    ),
    (
        "duality_pg_listener_reconnects_total",
        Kind::Counter,
        "PostgreSQL event listener reconnections",
    ),
];

/// Bucket bounds of histograms in seconds (1 ms to 10 s).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of histograms that count things (writes per batch, ...).
const COUNTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Runs the recorder's upkeep forever, counting the runs (the count is
/// how an operator, or a test, sees that it runs).
fn upkeep(handle: PrometheusHandle) {
    loop {
        std::thread::sleep(UPKEEP_EVERY);
        handle.run_upkeep();
        metrics::counter!("duality_metrics_upkeep_total").increment(1);
    }
}

/// Describes `metrics` (their `# HELP` lines); the engine's own are
/// described when the recorder is installed.
pub fn describe(metrics: &[Metric]) {
    for &(name, kind, help) in metrics {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// The recorder's builder: every histogram with buckets.
fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    let mut builder = PrometheusBuilder::new().set_buckets(SECONDS)?;
    for &(name, kind, _) in METRICS {
        if kind == Kind::Histogram && !name.ends_with("_seconds") {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), COUNTS)?;
        }
    }
    Ok(builder)
}

/// The process-wide Prometheus recorder (installed on first use; every
/// server in the process shares it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = builder().ok()?.install_recorder().ok()?;
            let for_upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || upkeep(for_upkeep))
                .ok()?;
            describe(METRICS);
            Some(handle)
        })
        .as_ref()
}

/// The metric names recorded in `source` (the first string literal of
/// each `metrics::counter!` / `gauge!` / `histogram!` call).
fn recorded(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for call in [
        "metrics::counter!(",
        "metrics::gauge!(",
        "metrics::histogram!(",
    ] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            let name: String = rest
                .strip_prefix('"')
                .unwrap_or_default()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

fn sources(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((path.clone(), text));
            }
        }
    }
}

/// The metrics recorded (by the `counter!`, `gauge!` and `histogram!` macros) in the
/// Rust sources under `dir` that `listed` does not name, each with its
/// file; and how many recording calls were found. A crate's test asserts
/// that the first is empty, so no metric goes undescribed.
pub fn unlisted_metrics(dir: &std::path::Path, listed: &[Metric]) -> (Vec<String>, usize) {
    let mut files = Vec::new();
    sources(dir, &mut files);
    let mut seen = 0;
    let mut unlisted = Vec::new();
    for (path, source) in &files {
        for name in recorded(source) {
            seen += 1;
            if !listed.iter().any(|(n, _, _)| *n == name) {
                unlisted.push(format!("{name} ({})", path.display()));
            }
        }
    }
    (unlisted, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_recorded_in_the_source_is_listed_with_its_kind_and_help() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (unlisted, seen) = unlisted_metrics(&src, METRICS);
        assert!(unlisted.is_empty(), "not in METRICS: {unlisted:?}");
        assert!(seen >= METRICS.len(), "only {seen} calls found");
        assert!(METRICS.iter().all(|(_, _, help)| !help.is_empty()));
    }
}
