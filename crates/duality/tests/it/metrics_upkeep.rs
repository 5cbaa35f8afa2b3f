//! docs/PROTOCOL.md, "Security model": metrics memory stays bounded whether or not `/metrics` is
//! scraped, because the recorder's upkeep runs on its own.

use std::time::{Duration, Instant};

use crate::common::spawn_default;

/// The value of the counter `name` in a Prometheus text page.
fn counter(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_recorder_upkeep_runs_without_anyone_scraping() {
    let server = spawn_default().await;
    let first = counter(
        &server.get("/metrics").await.text().await.unwrap(),
        "duality_metrics_upkeep_total",
    )
    .unwrap_or(0.0);
    // Nobody scrapes in between: only the upkeep thread moves the count.
    tokio::time::sleep(duality::telemetry::UPKEEP_EVERY * 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server.get("/metrics").await.text().await.unwrap();
        if counter(&page, "duality_metrics_upkeep_total").is_some_and(|n| n >= first + 2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the upkeep did not run: {page}");
        tokio::time::sleep(duality::telemetry::UPKEEP_EVERY).await;
    }
}
