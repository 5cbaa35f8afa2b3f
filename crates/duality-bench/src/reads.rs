//! Scenario `dashboard-reads`: `GET /aggregates/dashboard` (the stored
//! view, served from the snapshot cache) next to
//! `GET /aggregates/dashboard/composed` (calls both backends and composes
//! on every request: the baseline), one after the other on the same server
//! with the demo data, each with N connections for a fixed time.

use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::server::Server;
use super::writes::round2;
use super::{BenchArgs, Cpu, Report};

/// What one path measured.
pub(super) struct Load {
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub bytes: u64,
    pub latency: Histogram<u64>,
    pub cpu: Cpu,
    pub first_error: Option<String>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let server = Server::start_with(
        "dashboard-reads",
        args.db.as_deref(),
        &["--demo-data".into()],
    )
    .await?;
    let client = super::client(1)?;
    super::dashboard::settled(&client, &server).await?;
    let stored = body(&client, &server, "/aggregates/dashboard").await?;
    let composed = body(&client, &server, "/aggregates/dashboard/composed").await?;
    let agree = stored == composed;

    let read = |path| Reads {
        server: &server,
        path,
        connections: args.connections,
        duration: args.duration,
        gzip: false,
    };
    let view = hammer(read("/aggregates/dashboard")).await?;
    let baseline = hammer(read("/aggregates/dashboard/composed")).await?;
    server.stop().await?;

    let ratio = view.per_second() / baseline.per_second().max(1e-9);
    let line = |name: &str, l: &Load| {
        let (_, latency) = super::latency(&l.latency);
        format!(
            "{name}: {} requests in {:.1} s = {:.0} requests/s, {} errors, {:.1} KiB each\n    \
             latency: {latency}\n    {}",
            l.ok,
            l.seconds,
            l.per_second(),
            l.errors,
            l.bytes as f64 / l.ok.max(1) as f64 / 1024.0,
            l.cpu.text(),
        )
    };
    let mut text = format!(
        "dashboard-reads: {} connections, {:.0} s per path, one server with the demo data ({})\n  \
         {}\n  {}\n  the stored view serves {ratio:.1}x the requests of composing on request; \
         both answered the same dashboard before the load: {agree}",
        args.connections,
        args.duration.as_secs_f64(),
        args.db_kind(),
        line("GET /aggregates/dashboard (stored view)", &view),
        line("GET /aggregates/dashboard/composed (baseline)", &baseline),
    );
    if let Some(e) = view.first_error.as_ref().or(baseline.first_error.as_ref()) {
        text.push_str(&format!("\n  first error: {e}"));
    }
    let json_of = |l: &Load| {
        let (latency, _) = super::latency(&l.latency);
        json!({
            "requests": l.ok,
            "errors": l.errors,
            "seconds": round2(l.seconds),
            "requests_per_s": l.per_second().round(),
            "bytes_per_response": (l.bytes as f64 / l.ok.max(1) as f64).round(),
            "latency": latency,
            "cpu": l.cpu.json(),
        })
    };
    let json = json!({
        "scenario": "dashboard-reads",
        "db": args.db_kind(),
        "connections": args.connections,
        "stored": json_of(&view),
        "composed": json_of(&baseline),
        "ratio": round2(ratio),
        "same_dashboard": agree,
    });
    Ok(Report { text, json })
}

async fn body(client: &reqwest::Client, server: &Server, path: &str) -> Result<Value, String> {
    client
        .get(server.url(path))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("GET {path}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {path}: {e}"))
}

/// Which reads [`hammer`] sends.
pub(super) struct Reads<'a> {
    pub server: &'a Server,
    pub path: &'a str,
    pub connections: u64,
    pub duration: Duration,
    /// Ask for `Accept-Encoding: gzip` (the body is counted as sent, not
    /// decoded).
    pub gzip: bool,
}

/// `connections` connections, each sending `GET path` back to back for
/// `duration`, reading every body to its end without keeping it.
pub(super) async fn hammer(reads: Reads<'_>) -> Result<Load, String> {
    let server = reads.server;
    let meter = super::CpuMeter::start_all(&[server.pid])?;
    let start = Instant::now();
    let deadline = start + reads.duration;
    let mut readers = JoinSet::new();
    for _ in 0..reads.connections {
        // One client per reader: each keeps its own connection.
        let client = super::client(1)?;
        let url = server.url(reads.path);
        let gzip = reads.gzip;
        let latency = super::histogram()?;
        readers.spawn(async move {
            let mut load = (latency, 0u64, 0u64, 0u64, None::<String>);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut request = client.get(&url).timeout(Duration::from_secs(60));
                if gzip {
                    request = request.header("accept-encoding", "gzip");
                }
                let outcome = match request.send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => drain(r).await,
                    Ok(r) => Err(format!("GET {} answered {}", r.url().path(), r.status())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(n) => {
                        load.0.saturating_record(super::micros(sent.elapsed()));
                        load.1 += 1;
                        load.3 += n;
                    }
                    Err(e) => {
                        load.2 += 1;
                        load.4.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            load
        });
    }
    let mut load = Load {
        ok: 0,
        errors: 0,
        seconds: 0.0,
        bytes: 0,
        latency: super::histogram()?,
        cpu: Cpu::default(),
        first_error: None,
    };
    while let Some(joined) = readers.join_next().await {
        let (latency, ok, errors, bytes, error) =
            joined.map_err(|e| format!("a reader task failed: {e}"))?;
        load.latency
            .add(&latency)
            .map_err(|e| format!("histogram: {e}"))?;
        load.ok += ok;
        load.errors += errors;
        load.bytes += bytes;
        load.first_error = load.first_error.or(error);
    }
    load.seconds = start.elapsed().as_secs_f64();
    load.cpu = meter.finish()?;
    Ok(load)
}

/// Reads a body to its end; answers its length.
async fn drain(response: reqwest::Response) -> Result<u64, String> {
    let mut chunks = response.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = chunks.next().await {
        n += chunk.map_err(|e| e.to_string())?.len() as u64;
    }
    Ok(n)
}
