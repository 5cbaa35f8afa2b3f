//! Scenario `dashboard`: backend write → dashboard subscriber latency, the
//! Aggregate Pattern end to end.
//!
//! The server runs every service (the default `duality serve`) with
//! `--demo-data`; subscribers follow `/aggregates/dashboard-events` from the
//! next dashboard revision while one task posts incidents at a fixed rate.
//! Every incident names the same customer with the same large amount, so
//! each write makes that customer's `incidentVolume` (first on the
//! `customersWithHighestIncidentVolume` list) grow by one step: a dashboard
//! patch showing volume `k × AMOUNT` reflects the first `k` bench writes.
//! The dashboard's revisions are its own, so writes are matched to events
//! by that content, not by revision: write `k` is the one whose `POST`
//! answered incidents revision `base + k`. Latency = receipt of the first
//! dashboard event that reflects write `k` − the time write `k`'s request
//! was sent, over every (subscriber, write) pair. On a `--db` that an
//! earlier run already wrote to, the customer starts with the volume of
//! that run's writes; steps are counted from the volume the settled
//! dashboard shows.
//!
//! The same is then measured with the services split over two processes
//! (customers and incidents on one, the aggregates service on the other,
//! chaining over HTTP), on SQLite only.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::follow::{Change, collect, listen_all};
use super::paced::{Paced, post_paced};
use super::server::Server;
use super::writes::round2;
use super::{BenchArgs, Report};

/// The customer every bench incident names, and its amount: far above any
/// demo customer's volume, so that customer leads the volume list from the
/// first write on and each write shows as one more step of `AMOUNT`.
pub(super) const NAME: &str = "Bench Volume Leader";
pub(super) const AMOUNT: f64 = 1_000_000.0;
/// How long subscribers may take to see the last write after it was
/// acknowledged.
const GRACE: Duration = Duration::from_secs(5);

/// What one subscriber saw.
#[derive(Default)]
struct Heard {
    /// For each event that reflects new writes: how many bench writes it
    /// reflects in all, and when it arrived.
    steps: Vec<(u64, Instant)>,
    events: u64,
    /// Events that reflect no new bench write.
    unmatched: u64,
    /// Writes that arrived in an event together with an earlier write.
    coalesced: u64,
}

impl Heard {
    /// Records one dashboard event, where the bench customer's volume
    /// showed `before` writes when the run began; answers how many of this
    /// run's writes it has seen.
    fn record(&mut self, change: Change<'_>, before: u64) -> u64 {
        self.events += 1;
        let seen = self.steps.last().map_or(0, |(k, _)| *k);
        let patch: Value = serde_json::from_str(change.data).unwrap_or(Value::Null);
        match writes_shown(&patch).map(|shown| shown.saturating_sub(before)) {
            Some(k) if k > seen => {
                self.coalesced += k - seen - 1;
                self.steps.push((k, change.at));
                k
            }
            _ => {
                self.unmatched += 1;
                seen
            }
        }
    }
}

pub async fn run(args: &BenchArgs) -> Result<Vec<Report>, String> {
    let one = Server::start_with("dashboard", args.db.as_deref(), &["--demo-data".into()]).await?;
    let mut reports = vec![measure(args, &[&one], 0, 0, "one process").await?];
    one.stop().await?;
    if args.db.is_some() {
        println!("dashboard, two processes: skipped (measured on fresh SQLite files only)");
        return Ok(reports);
    }
    let backends = Server::start_with(
        "dashboard-backends",
        None,
        &[
            "--demo-data".into(),
            "--services".into(),
            "customers,incidents".into(),
        ],
    )
    .await?;
    let url = format!("http://{}", backends.addr);
    let aggregates = Server::start_with(
        "dashboard-aggregates",
        None,
        &[
            "--services".into(),
            "aggregates".into(),
            "--customers-url".into(),
            url.clone(),
            "--incidents-url".into(),
            url,
        ],
    )
    .await?;
    let split = measure(args, &[&backends, &aggregates], 0, 1, "two processes").await?;
    reports.push(split);
    backends.stop().await?;
    aggregates.stop().await?;
    Ok(reports)
}

/// The dashboard once composed and no longer changing.
pub(super) struct Settled {
    pub revision: u64,
    /// The bench writes its volume list already shows (from an earlier
    /// run on the same `--db`), 0 on a fresh database.
    pub shown: u64,
}

/// True if a dashboard answer says it is not stale (`X-Stale: false`).
pub(super) fn fresh(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("x-stale")
        .is_some_and(|v| v == "false")
}

/// Waits until the dashboard has been composed from the demo data and has
/// stopped changing.
pub(super) async fn settled(client: &reqwest::Client, server: &Server) -> Result<Settled, String> {
    let url = server.url("/aggregates/dashboard");
    let mut last = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(response) = client.get(&url).send().await else {
            continue;
        };
        let fresh = fresh(&response);
        let revision = super::revision(&response)?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET /aggregates/dashboard: {e}"))?;
        let full = body["customerCount"].as_u64().unwrap_or(0) > 0
            && body["customersWithHighestIncidentVolume"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
        if fresh && full && last == Some(revision) {
            let shown = writes_shown(&body).unwrap_or(0);
            return Ok(Settled { revision, shown });
        }
        last = (fresh && full).then_some(revision);
    }
    Err("the dashboard was not composed from the demo data within 20 s".into())
}

/// Dashboard subscribers on `servers[front]` while incidents are posted to
/// `servers[backend]`; `mode` names the setup in the report.
pub(super) async fn measure(
    args: &BenchArgs,
    servers: &[&Server],
    backend: usize,
    front: usize,
    mode: &str,
) -> Result<Report, String> {
    let client = super::client(16)?;
    let Settled { revision, shown } = settled(&client, servers[front]).await?;
    let from = revision + 1;
    let current = client
        .get(servers[backend].url("/incidents"))
        .send()
        .await
        .map_err(|e| format!("GET /incidents: {e}"))?;
    let base = super::revision(&current)?;
    drop(current);

    let connecting = Instant::now();
    let path = format!("/aggregates/dashboard-events?revision={from}");
    let n = args.dashboard_subscribers;
    let streams = super::fanout::subscribe(servers[front], &path, n).await?;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let record = move |heard: &mut Heard, change: Change<'_>| heard.record(change, shown);
    let (control, listeners) = listen_all(streams, from, record).await;

    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let meter = super::CpuMeter::start_all(&pids)?;
    let url = servers[backend].url("/incidents/items");
    let body = json!({"amount": AMOUNT, "customerName": NAME, "category": "bench"}).to_string();
    let Paced {
        sent_at,
        ack,
        errors: write_errors,
        mut first_error,
        seconds: writing_seconds,
    } = post_paced(&client, args.dashboard_rate, args.duration, |_| {
        (url.clone(), body.clone())
    })
    .await?;
    // Write k is the one that made incidents revision base + k.
    let sent_at: HashMap<u64, Instant> = sent_at
        .into_iter()
        .map(|(revision, sent)| (revision.saturating_sub(base), sent))
        .collect();
    let cpu = meter.finish()?;
    let last = sent_at.keys().copied().max().unwrap_or(0);
    let (heard, drain_ms) = collect(listeners, &control, last, GRACE).await?;

    let mut latency = super::histogram()?;
    let (mut received, mut events, mut unmatched, mut coalesced) = (0u64, 0u64, 0u64, 0u64);
    let (mut out_of_order, mut stream_errors) = (0u64, 0u64);
    for h in &heard {
        events += h.seen.events;
        unmatched += h.seen.unmatched;
        coalesced += h.seen.coalesced;
        out_of_order += h.out_of_order;
        if let Some(e) = &h.error {
            stream_errors += 1;
            first_error.get_or_insert_with(|| e.clone());
        }
        let mut seen = 0;
        for &(k, at) in &h.seen.steps {
            for write in seen + 1..=k {
                if let Some(sent) = sent_at.get(&write) {
                    received += 1;
                    latency.saturating_record(super::micros(at.saturating_duration_since(*sent)));
                }
            }
            seen = k;
        }
    }
    let written = sent_at.len() as u64;
    let expected = written * n;
    let lost = expected.saturating_sub(received);
    let (latency_json, latency_text) = super::latency(&latency);
    let (ack_json, ack_text) = super::latency(&ack);
    let mut text = format!(
        "dashboard ({mode}, {}): {n} subscribers on /aggregates/dashboard-events (all open in \
         {connect_seconds:.1} s), {written} incident writes in {writing_seconds:.1} s ({:.0}/s), \
         {write_errors} write errors\n  \
         backend write -> dashboard event received: {latency_text}\n  \
         lost {lost} of {expected}; {events} dashboard events received for {expected} (subscriber, \
         write) pairs: {coalesced} writes shared an event with an earlier one, {unmatched} events \
         showed no new write, {out_of_order} out of order, stream errors {stream_errors}; all \
         delivered {drain_ms:.0} ms after the last ack\n  \
         incident write acknowledged: {ack_text}\n  \
         while writing, {}",
        args.db_kind(),
        written as f64 / writing_seconds,
        cpu.text(),
    );
    if let Some(e) = &first_error {
        text.push_str(&format!("\n  first error: {e}"));
    }
    let json = json!({
        "scenario": "dashboard",
        "mode": mode,
        "db": args.db_kind(),
        "subscribers": n,
        "rate": args.dashboard_rate,
        "writes": written,
        "write_errors": write_errors,
        "seconds": round2(writing_seconds),
        "latency": latency_json,
        "ack_latency": ack_json,
        "expected": expected,
        "lost": lost,
        "events": events,
        "coalesced_writes": coalesced,
        "unmatched_events": unmatched,
        "out_of_order": out_of_order,
        "stream_errors": stream_errors,
        "drain_ms": drain_ms.round(),
        "cpu": cpu.json(),
    });
    Ok(Report { text, json })
}

/// How many bench writes a dashboard patch (or the whole dashboard)
/// reflects, if it shows the bench customer's volume.
fn writes_shown(patch: &Value) -> Option<u64> {
    patch["customersWithHighestIncidentVolume"]
        .as_array()?
        .iter()
        .find(|e| e["customerName"] == NAME)?["incidentVolume"]
        .as_f64()
        .map(|v| (v / AMOUNT).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_shows_how_many_bench_writes_it_reflects() {
        let patch = json!({"customersWithHighestIncidentVolume": [
            {"customerName": NAME, "incidentVolume": 3.0 * AMOUNT},
            {"customerName": "Ada Amsel", "incidentVolume": 12345.67},
        ]});
        assert_eq!(writes_shown(&patch), Some(3));
        assert_eq!(writes_shown(&json!({"customerCount": 41})), None);
        assert_eq!(
            writes_shown(&json!({"customersWithHighestIncidentVolume": []})),
            None
        );
    }

    #[test]
    fn writes_of_an_earlier_run_on_the_same_database_are_not_counted_again() {
        let shown = |k: u64| {
            json!({"customersWithHighestIncidentVolume": [
                {"customerName": NAME, "incidentVolume": k as f64 * AMOUNT},
            ]})
            .to_string()
        };
        let (first, second) = (shown(501), shown(502));
        let at = Instant::now();
        let change = |revision, data| Change {
            revision,
            fresh: true,
            data,
            at,
        };
        let mut heard = Heard::default();
        assert_eq!(heard.record(change(7, &first), 500), 1);
        assert_eq!(heard.record(change(8, &second), 500), 2);
        assert_eq!((heard.coalesced, heard.unmatched), (0, 0));
        assert_eq!(heard.steps.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2]);
    }
}
