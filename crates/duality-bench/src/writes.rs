//! Scenario `writes`: N connections, one writer each, `POST /persons` as
//! fast as the server acknowledges, for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::server::Server;
use super::{BenchArgs, Report};

/// The target on a 2-core machine, load generator included.
const TARGET_PER_SECOND: f64 = 15_000.0;

/// What one writer did.
struct Writer {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// The JSON body of write `i`.
pub(super) type Body = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// What a flood of writes did.
pub(super) struct Flood {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Time from sending each write to its `201`, in microseconds.
    pub latency: Histogram<u64>,
    pub seconds: f64,
}

impl Flood {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }
}

/// `connections` connections, one writer each (spread over `urls`), POST
/// `body(i)` back to back until `deadline`, or until `count` writes were
/// sent when given. Each must answer `201`.
pub(super) async fn flood(
    urls: &[String],
    connections: u64,
    deadline: Instant,
    count: Option<u64>,
    body: Body,
) -> Result<Flood, String> {
    let start = Instant::now();
    let sequence = Arc::new(AtomicU64::new(0));
    let mut writers = JoinSet::new();
    for c in 0..connections {
        let url = urls[c as usize % urls.len().max(1)].clone();
        // One client per writer: each keeps its own connection.
        let client = super::client(1)?;
        let latency = super::histogram()?;
        let plan = Plan {
            deadline,
            count: count.unwrap_or(u64::MAX),
            sequence: Arc::clone(&sequence),
            body: Arc::clone(&body),
        };
        writers.spawn(write(client, url, plan, latency));
    }
    let mut flood = Flood {
        ok: 0,
        errors: 0,
        first_error: None,
        latency: super::histogram()?,
        seconds: 0.0,
    };
    while let Some(joined) = writers.join_next().await {
        let w = joined.map_err(|e| format!("a writer task failed: {e}"))?;
        flood
            .latency
            .add(&w.latency)
            .map_err(|e| format!("histogram: {e}"))?;
        flood.ok += w.ok;
        flood.errors += w.errors;
        flood.first_error = flood.first_error.or(w.first_error);
    }
    flood.seconds = start.elapsed().as_secs_f64();
    Ok(flood)
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let servers = Server::start_many("writes", args.db.as_deref(), args.processes).await?;
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let meter = super::CpuMeter::start_all(&pids)?;
    let urls: Vec<String> = servers.iter().map(|s| s.url("/persons")).collect();
    let Flood {
        ok,
        errors,
        first_error,
        latency,
        seconds: elapsed,
    } = flood(
        &urls,
        args.connections,
        Instant::now() + args.duration,
        None,
        Arc::new(person),
    )
    .await?;
    let cpu = meter.finish()?;
    let batches = servers[0].batches().await?;
    for server in servers {
        server.stop().await?;
    }

    let per_second = ok as f64 / elapsed;
    let (latency_json, latency_text) = super::latency(&latency);
    let mut text = format!(
        "writes: {} connections, {} {} server process(es), {elapsed:.1} s: {ok} durable writes = {per_second:.0} writes/s \
         (target >= {TARGET_PER_SECOND:.0}: {}), {errors} errors\n  latency per write: {latency_text}\n  \
         {}",
        args.connections,
        args.processes,
        args.db_kind(),
        met(per_second >= TARGET_PER_SECOND),
        cpu.text(),
    );
    text.push_str(&format!("\n  {}", batches.text()));
    if let Some(e) = &first_error {
        text.push_str(&format!("\n  first error: {e}"));
    }
    let json = json!({
        "scenario": "writes",
        "connections": args.connections,
        "db": args.db_kind(),
        "processes": args.processes,
        "seconds": round2(elapsed),
        "writes": ok,
        "writes_per_s": per_second.round(),
        "errors": errors,
        "latency": latency_json,
        "cpu": cpu.json(),
        "commit_batches": batches.json(),
        "target_writes_per_s": TARGET_PER_SECOND,
        "meets_target": per_second >= TARGET_PER_SECOND && errors == 0,
    });
    Ok(Report { text, json })
}

/// When a writer stops, and what it writes.
struct Plan {
    deadline: Instant,
    /// Writes to send in all, over every writer.
    count: u64,
    /// The next write's number, shared by every writer.
    sequence: Arc<AtomicU64>,
    body: Body,
}

/// The body of person write `i`: 50 cities.
pub(super) fn person(i: u64) -> String {
    format!(r#"{{"name":"n{i}","city":"c{}"}}"#, i % 50)
}

async fn write(
    client: reqwest::Client,
    url: String,
    plan: Plan,
    latency: Histogram<u64>,
) -> Writer {
    let mut w = Writer {
        latency,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    while Instant::now() < plan.deadline {
        let i = plan.sequence.fetch_add(1, Ordering::Relaxed);
        if i >= plan.count {
            break;
        }
        let body = (plan.body)(i);
        let sent = Instant::now();
        let answer = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        // Read the whole body so the connection is reused.
        let outcome = match answer {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                r.bytes().await.map(drop).map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("POST {} answered {}", r.url().path(), r.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                w.ok += 1;
                w.latency.saturating_record(super::micros(sent.elapsed()));
            }
            Err(e) => {
                w.errors += 1;
                w.first_error.get_or_insert(e);
                // Do not spin on a server that refuses.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    w
}

pub(super) fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "MISSED" }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
