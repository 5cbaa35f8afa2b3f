//! Scenario `fanout`: subscribers on `/person-events`, then one task that
//! writes at a fixed rate. Latency is from a write's request being sent to
//! a subscriber receiving that write's event, over every (subscriber,
//! event) pair.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::follow::{arrivals, collect, listen_all};
use super::paced::{Paced, post_paced};
use super::server::Server;
use super::writes::{met, round2};
use super::{BenchArgs, Report};

const TARGET_P99_MS: f64 = 40.0;
/// How long subscribers may take to receive the last events after the
/// last write was acknowledged.
const GRACE: Duration = Duration::from_secs(5);
/// Subscriber connections share this many clients.
const CLIENTS: usize = 16;
/// At most this many subscriptions are being opened at once.
const CONNECTING: usize = 64;

/// Opens `n` streams of `path` (e.g. `/person-events?revision=7`) and
/// returns once every one has answered 200. Each stream is its own connection; the few
/// clients they share keep no idle connections, so no pool limit applies.
pub(super) async fn subscribe(
    server: &Server,
    path: &str,
    n: u64,
) -> Result<Vec<reqwest::Response>, String> {
    subscribe_each(server, vec![path.to_string(); n as usize]).await
}

/// Opens one stream of each of `paths`, as [`subscribe`] does.
pub(super) async fn subscribe_each(
    server: &Server,
    paths: Vec<String>,
) -> Result<Vec<reqwest::Response>, String> {
    let n = paths.len();
    let clients = (0..CLIENTS)
        .map(|_| super::client(0))
        .collect::<Result<Vec<_>, _>>()?;
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut opening = JoinSet::new();
    for (i, path) in paths.iter().enumerate() {
        let request = clients[i % CLIENTS].get(server.url(path));
        let gate = Arc::clone(&gate);
        opening.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let response = tokio::time::timeout(Duration::from_secs(10), request.send())
                .await
                .map_err(|_| "no answer within 10 s".to_string())?
                .map_err(|e| e.to_string())?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(format!("answered {}", response.status()));
            }
            Ok(response)
        });
    }
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = opening.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(response) => open.push(response),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(open),
        Some(e) => Err(format!(
            "{failed} of {n} subscriptions failed to open; the first: {e}"
        )),
    }
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let servers = Server::start_many("fanout", args.db.as_deref(), args.processes).await?;
    let report = measure(args, &servers, "fanout").await?;
    for server in servers {
        server.stop().await?;
    }
    Ok(report)
}

/// Subscribers on `/person-events` of `servers` from the next revision,
/// then paced writes to them; `name` starts the report's text.
pub(super) async fn measure(
    args: &BenchArgs,
    servers: &[Server],
    name: &str,
) -> Result<Report, String> {
    let writer = super::client(16)?;
    let current = writer
        .get(servers[0].url("/persons"))
        .send()
        .await
        .map_err(|e| format!("GET /persons: {e}"))?;
    let from = super::revision(&current)? + 1;
    drop(current);

    let connecting = Instant::now();
    // Subscribers are spread over the server processes.
    let mut streams = Vec::with_capacity(args.subscribers as usize);
    let n = servers.len() as u64;
    for (i, server) in servers.iter().enumerate() {
        let share = args.subscribers / n + u64::from((i as u64) < args.subscribers % n);
        if share > 0 {
            let path = format!("/person-events?revision={from}");
            streams.extend(subscribe(server, &path, share).await?);
        }
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let (control, listeners) = listen_all(streams, from, arrivals).await;

    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let meter = super::CpuMeter::start_all(&pids)?;
    // Writes go round-robin to the processes, so with more than one, most
    // events reach most subscribers from another process.
    let urls: Vec<String> = servers.iter().map(|s| s.url("/persons")).collect();
    let Paced {
        sent_at,
        ack,
        errors: write_errors,
        mut first_error,
        seconds: writing_seconds,
    } = post_paced(&writer, args.rate, args.duration, |i| {
        let url = urls[i as usize % urls.len()].clone();
        (url, format!(r#"{{"name":"f{i}","city":"c{}"}}"#, i % 50))
    })
    .await?;
    let cpu = meter.finish()?;
    let last = sent_at.keys().copied().max().unwrap_or(from - 1);
    let (heard, drain_ms) = collect(listeners, &control, last, GRACE).await?;

    let mut latency = super::histogram()?;
    let (mut received, mut out_of_order, mut unknown) = (0u64, 0u64, 0u64);
    let mut stream_errors = 0u64;
    for h in &heard {
        out_of_order += h.out_of_order;
        if let Some(e) = &h.error {
            stream_errors += 1;
            first_error.get_or_insert_with(|| e.clone());
        }
        for (revision, at) in &h.seen {
            match sent_at.get(revision) {
                Some(sent) => {
                    received += 1;
                    latency.saturating_record(super::micros(at.saturating_duration_since(*sent)));
                }
                None => unknown += 1,
            }
        }
    }
    let written = sent_at.len() as u64;
    let expected = written * args.subscribers;
    let lost = expected.saturating_sub(received);
    let p99 = super::ms(latency.value_at_quantile(0.99));
    let good = p99 <= TARGET_P99_MS && lost == 0 && out_of_order == 0 && write_errors == 0;
    let (latency_json, latency_text) = super::latency(&latency);
    let (ack_json, ack_text) = super::latency(&ack);
    let mut text = format!(
        "{name}: {} subscribers on {} {} server process(es) (all open in {connect_seconds:.1} s), {written} writes in \
         {writing_seconds:.1} s ({:.0}/s), {write_errors} write errors\n  \
         write -> event received: {latency_text} (target p99 <= {TARGET_P99_MS} ms: {})\n  \
         lost {lost} of {expected}, out of order {out_of_order}, unexpected {unknown}, \
         stream errors {stream_errors}; all delivered {drain_ms:.0} ms after the last ack\n  \
         write acknowledged: {ack_text}\n  \
         while writing, {}",
        args.subscribers,
        args.processes,
        args.db_kind(),
        written as f64 / writing_seconds,
        met(good),
        cpu.text(),
    );
    if let Some(e) = &first_error {
        text.push_str(&format!("\n  first error: {e}"));
    }
    let json = json!({
        "scenario": "fanout",
        "subscribers": args.subscribers,
        "db": args.db_kind(),
        "processes": args.processes,
        "rate": args.rate,
        "writes": written,
        "write_errors": write_errors,
        "seconds": round2(writing_seconds),
        "latency": latency_json,
        "ack_latency": ack_json,
        "expected_events": expected,
        "lost": lost,
        "out_of_order": out_of_order,
        "stream_errors": stream_errors,
        "drain_ms": drain_ms.round(),
        "cpu": cpu.json(),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": good,
    });
    Ok(Report { text, json })
}
