//! Scenario `idle`: how much resident memory the server needs per open,
//! idle subscription.

use std::time::Duration;

use serde_json::json;

use super::server::Server;
use super::writes::{met, round2};
use super::{BenchArgs, Report};

const TARGET_KIB: f64 = 24.0;

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let server = Server::start_on("idle", args.db.as_deref()).await?;
    // Serve a snapshot and one stream first, so the baseline includes
    // what any first request allocates.
    let warm = super::fanout::subscribe(&server, "/person-events?revision=1", 1).await?;
    drop(warm);
    let client = super::client(1)?;
    client
        .get(server.url("/persons"))
        .send()
        .await
        .map_err(|e| format!("GET /persons: {e}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;

    let streams =
        super::fanout::subscribe(&server, "/person-events?revision=1", args.subscribers).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    let gauge = server
        .metric("duality_subscribers")
        .await?
        .into_iter()
        .find(|l| l.contains("persons"))
        .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()));
    drop(streams);
    server.stop().await?;

    let per = (after as f64 - before as f64) / args.subscribers as f64;
    let good = per <= TARGET_KIB;
    let mut text = format!(
        "idle: server RSS {before} KiB with no subscriber, {after} KiB with {} open: \
         {per:.1} KiB per idle subscriber (target <= {TARGET_KIB} KiB: {})",
        args.subscribers,
        met(good),
    );
    if let Some(g) = gauge {
        text.push_str(&format!(" [server counted {g:.0} subscribers]"));
    }
    let json = json!({
        "scenario": "idle",
        "subscribers": args.subscribers,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_subscriber": round2(per),
        "target_kib": TARGET_KIB,
        "meets_target": good,
    });
    Ok(Report { text, json })
}
