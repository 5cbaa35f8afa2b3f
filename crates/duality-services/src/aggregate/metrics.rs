//! The metrics the aggregates service records, described at start with the
//! engine's.

use duality::telemetry::{Kind, Metric};

/// Every metric of the aggregates service.
pub const METRICS: &[Metric] = &[
    (
        "duality_dashboard_stale_compositions_total",
        Kind::Counter,
        "Dashboard compositions not stored because a newer dashboard already was",
    ),
    (
        "duality_dashboard_unchanged_compositions_total",
        Kind::Counter,
        "Dashboard compositions not written because this process, the database's only writer, stored the same one last",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_the_built_in_services_record_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (unlisted, seen) = duality::telemetry::unlisted_metrics(&src, METRICS);
        assert!(unlisted.is_empty(), "not in METRICS: {unlisted:?}");
        assert!(seen >= METRICS.len(), "only {seen} calls found");
    }
}
