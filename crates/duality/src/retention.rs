//! Retention: deletes events older than the retention time, and the
//! changed-key rows of catch-up older than its horizon, periodically. The
//! views themselves are never trimmed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

/// How often to trim for a given retention: often enough that an expired
/// event is gone within about a quarter of the retention time.
pub fn period(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// Starts the task that deletes events older than `retention`, and
/// changed-key rows older than `horizon`, every [`period`], until
/// `shutdown` flips.
pub fn spawn(
    store: Arc<dyn Store>,
    retention: Duration,
    horizon: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period(retention));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
                continue;
            };
            match store.trim(cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("duality_events_trimmed_total").increment(n);
                    tracing::debug!(events = n, "retention trimmed events");
                }
                Err(e) => tracing::warn!(error = %e, "retention trim failed"),
            }
            // A horizon longer than the clock has run trims nothing.
            let Some(cutoff) = SystemTime::now().checked_sub(horizon) else {
                continue;
            };
            match store.trim_changes(cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("duality_changed_keys_trimmed_total").increment(n);
                    tracing::debug!(rows = n, "the catch-up horizon trimmed changed keys");
                }
                Err(e) => tracing::warn!(error = %e, "catch-up horizon trim failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_retentions_trim_often_and_long_ones_not_too_often() {
        assert_eq!(period(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(period(Duration::from_millis(10)), Duration::from_millis(50));
        assert_eq!(period(Duration::from_secs(3600)), Duration::from_secs(30));
    }
}
