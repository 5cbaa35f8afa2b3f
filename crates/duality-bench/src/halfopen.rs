//! Scenario `half-open`: how many connections that each send half a
//! request header and stall the server survives while it still answers a
//! normal client.
//!
//! The bench opens `--half-open` such connections at once and keeps them
//! (it never reopens one the server closes), then probes with a normal
//! client every 100 ms for `--duration`: a fresh connection and
//! `GET /persons` with a 2 s timeout each. It reports what became of the
//! stalled connections (held by the server, answered `503` past
//! `--max-connections`, closed after the header timeout) and how the
//! probes fared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::server::Server;
use super::{BenchArgs, Report};

/// What became of one stalled connection.
enum Fate {
    /// Could not connect or send (the bench's or the kernel's limits).
    Failed,
    /// Answered `503`.
    Refused,
    /// Closed by the server without an answer, this long after it opened.
    Closed(Duration),
    /// Still open when the probing ended.
    Held,
}

async fn stall(
    addr: String,
    until: Instant,
    opening: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<()>,
) -> Fate {
    let connected = {
        let _turn = opening.acquire().await;
        match TcpStream::connect(&addr).await {
            Ok(mut stream) => stream
                .write_all(b"GET /persons HTTP/1.1\r\nHost: bench\r\nUser-Agent: stal")
                .await
                .map(|()| stream),
            Err(e) => Err(e),
        }
    };
    let _ = opened.send(());
    drop(opened);
    let Ok(mut stream) = connected else {
        return Fate::Failed;
    };
    let opened = Instant::now();
    let mut first = [0u8; 12];
    let read = tokio::time::timeout_at(until.into(), stream.read(&mut first)).await;
    match read {
        Err(_) => Fate::Held,
        Ok(Ok(n)) if n > 0 && first[..n].starts_with(b"HTTP/1.1 503") => Fate::Refused,
        Ok(_) => Fate::Closed(opened.elapsed()),
    }
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let mut flags = Vec::new();
    if let Some(max) = args.max_connections {
        flags.extend(["--max-connections".to_string(), max.to_string()]);
    }
    let server = Server::start_with("half-open", args.db.as_deref(), &flags).await?;
    let rss_before = server.rss_kib()?;
    let opened_at = Instant::now();
    // Every stalled connection is kept until the probing is over.
    let until = opened_at + args.duration + Duration::from_secs(20);
    // At most 256 connects in flight, so the listen backlog is no limit.
    let opening = Arc::new(Semaphore::new(256));
    let (opened, mut open) = mpsc::unbounded_channel();
    let mut stalled = JoinSet::new();
    for _ in 0..args.half_open {
        let task = stall(
            server.addr.clone(),
            until,
            Arc::clone(&opening),
            opened.clone(),
        );
        stalled.spawn(task);
    }
    drop(opened);
    // Wait until every connection is open (or failed).
    while open.recv().await.is_some() {}
    let open_after = opened_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_flooded = server.rss_kib()?;

    let client = super::client(0)?;
    let mut latency = super::histogram()?;
    let (mut ok, mut refused, mut failed, mut first_ok) = (0u64, 0u64, 0u64, None);
    let probing = Instant::now();
    while probing.elapsed() < args.duration {
        let sent = Instant::now();
        let answer = client
            .get(server.url("/persons"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(200) => {
                ok += 1;
                latency
                    .record(super::micros(sent.elapsed()).max(1))
                    .map_err(|e| format!("histogram: {e}"))?;
                first_ok.get_or_insert(probing.elapsed());
            }
            Ok(503) => refused += 1,
            _ => failed += 1,
        }
        tokio::time::sleep_until((sent + Duration::from_millis(100)).into()).await;
    }
    stalled.abort_all();
    let mut fates = (0u64, 0u64, 0u64, 0u64);
    let mut closed_after = super::histogram()?;
    // Aborted tasks (still reading at the end) count as held.
    while let Some(fate) = stalled.join_next().await {
        match fate.unwrap_or(Fate::Held) {
            Fate::Failed => fates.0 += 1,
            Fate::Refused => fates.1 += 1,
            Fate::Closed(after) => {
                fates.2 += 1;
                let _ = closed_after.record(super::micros(after).max(1));
            }
            Fate::Held => fates.3 += 1,
        }
    }
    server.stop().await?;

    let per_connection = (rss_flooded.saturating_sub(rss_before)) as f64
        / (args.half_open - fates.0 - fates.1).max(1) as f64;
    let (probe_json, probe_text) = super::latency(&latency);
    let closed_median = super::ms(closed_after.value_at_quantile(0.5)) / 1000.0;
    let text = format!(
        "half-open: {n} stalled connections opened in {open:.2} s ({failed_open} failed to open)\n\
         \x20 answered 503: {r}; closed by the server after the header timeout: {c} \
         (median {closed_median:.1} s after opening); still open: {h}\n\
         \x20 server RSS {before} -> {flooded} KiB ({per_connection:.1} KiB per held connection)\n\
         \x20 probes GET /persons every 100 ms for {d:?}: {ok} x 200, {refused} x 503, {failed} failed; \
         first 200 after {first:.2} s; 200s: {probe_text}",
        n = args.half_open,
        open = open_after.as_secs_f64(),
        failed_open = fates.0,
        r = fates.1,
        c = fates.2,
        h = fates.3,
        before = rss_before,
        flooded = rss_flooded,
        d = args.duration,
        first = first_ok.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    let json = json!({
        "scenario": "half-open",
        "half_open": args.half_open,
        "max_connections": args.max_connections,
        "failed_to_open": fates.0,
        "refused_503": fates.1,
        "closed_by_header_timeout": fates.2,
        "closed_median_s": closed_median,
        "still_open": fates.3,
        "rss_kib_per_held_connection": super::writes::round2(per_connection),
        "probes_ok": ok,
        "probes_503": refused,
        "probes_failed": failed,
        "first_ok_s": first_ok.map(|d| super::writes::round2(d.as_secs_f64())),
        "probe_latency": probe_json,
    });
    Ok(Report { text, json })
}
