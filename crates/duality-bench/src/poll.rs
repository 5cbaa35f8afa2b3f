//! Scenario `poll`: clients following `/person-events` by long-poll
//! (`?mode=poll&after=R`, each one requesting the `next` its answer names)
//! while one task writes at a fixed rate, measured against the same number
//! of SSE subscribers under the same writes in the same run (the `fanout`
//! measurement, on a server of its own).
//!
//! Latency is from a write's request being sent to a client receiving the
//! answer that holds its change, over every (client, change) pair. A change
//! no client received is lost; the report also counts the poll requests,
//! since each answer after a wake is a request the client makes again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::follow::{Control, collect};
use super::paced::{Paced, post_paced};
use super::server::Server;
use super::writes::{met, round2};
use super::{BenchArgs, Report};

/// Poll p99 at most this many times SSE's.
const TARGET_RATIO: f64 = 2.0;
/// How long clients may take to receive the last changes after the last
/// write was acknowledged.
const GRACE: Duration = Duration::from_secs(10);
/// Poll clients share this many HTTP clients (each keeps its connections).
const CLIENTS: usize = 16;
/// At most this many first polls are being sent at once.
const CONNECTING: usize = 64;
/// How long a poll waits at the head (the server's default).
const WAIT_SECONDS: u64 = 20;

/// A poll answer, as the protocol defines it.
#[derive(Deserialize)]
struct Page {
    changes: Vec<PolledChange>,
    next: String,
}

#[derive(Deserialize)]
struct PolledChange {
    revision: u64,
}

/// What one poll client saw.
#[derive(Default)]
struct Polled {
    /// The first arrival of each revision.
    seen: Vec<(u64, Instant)>,
    out_of_order: u64,
    requests: u64,
    error: Option<String>,
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let reference = Server::start_on("poll-sse", args.db.as_deref()).await?;
    let sse = super::fanout::measure(
        args,
        std::slice::from_ref(&reference),
        "poll, the SSE reference",
    )
    .await?;
    reference.stop().await?;
    println!("{}", sse.text);
    let server = Server::start_on("poll", args.db.as_deref()).await?;
    let report = measure(args, &server, &sse).await;
    server.stop().await?;
    report
}

/// `args.subscribers` poll clients on `server` from its current revision,
/// then paced writes; compared with the SSE reference `sse`.
async fn measure(args: &BenchArgs, server: &Server, sse: &Report) -> Result<Report, String> {
    let writer = super::client(16)?;
    let current = writer
        .get(server.url("/persons"))
        .send()
        .await
        .map_err(|e| format!("GET /persons: {e}"))?;
    let after = super::revision(&current)?;
    drop(current);

    let clients = (0..CLIENTS)
        .map(|_| super::client(args.subscribers as usize / CLIENTS + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let (control, controlled) = watch::channel(Control::Running);
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let started = Arc::new(AtomicU64::new(0));
    let mut pollers = JoinSet::new();
    for i in 0..args.subscribers {
        pollers.spawn(poll_forever(
            clients[i as usize % CLIENTS].clone(),
            server.url(""),
            format!("/person-events?mode=poll&after={after}&wait={WAIT_SECONDS}"),
            after + 1,
            controlled.clone(),
            (Arc::clone(&gate), Arc::clone(&started)),
        ));
    }
    // Every client waiting at the head before the first write.
    let waiting = Instant::now();
    while started.load(Ordering::SeqCst) < args.subscribers || gate.available_permits() < CONNECTING
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connect_seconds = waiting.elapsed().as_secs_f64();

    let meter = super::CpuMeter::start_all(&[server.pid])?;
    let url = server.url("/persons");
    let Paced {
        sent_at,
        ack,
        errors: write_errors,
        mut first_error,
        seconds: writing_seconds,
    } = post_paced(&writer, args.rate, args.duration, |i| {
        (
            url.clone(),
            format!(r#"{{"name":"p{i}","city":"c{}"}}"#, i % 50),
        )
    })
    .await?;
    let cpu = meter.finish()?;
    let last = sent_at.keys().copied().max().unwrap_or(after);
    let (heard, drain_ms) = collect(pollers, &control, last, GRACE).await?;

    let mut latency = super::histogram()?;
    let (mut received, mut out_of_order, mut unknown) = (0u64, 0u64, 0u64);
    let (mut requests, mut client_errors) = (0u64, 0u64);
    for h in &heard {
        out_of_order += h.out_of_order;
        requests += h.requests;
        if let Some(e) = &h.error {
            client_errors += 1;
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
    let sse_p99 = sse.json["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    let ratio = p99 / sse_p99;
    let good = ratio <= TARGET_RATIO && lost == 0 && out_of_order == 0 && write_errors == 0;
    let (latency_json, latency_text) = super::latency(&latency);
    let (ack_json, ack_text) = super::latency(&ack);
    let sse_lost = sse.json["lost"].as_u64().unwrap_or(0);
    let mut text = format!(
        "poll: {} clients following by long-poll on 1 {} server (all waiting in \
         {connect_seconds:.1} s), {written} writes in {writing_seconds:.1} s ({:.0}/s), \
         {write_errors} write errors\n  \
         write -> change received: {latency_text}\n  \
         p99 against SSE's ({sse_p99:.2} ms, lost {sse_lost}): {ratio:.2}x (target <= \
         {TARGET_RATIO}x with nothing lost: {})\n  \
         lost {lost} of {expected}, out of order {out_of_order}, unexpected {unknown}, client \
         errors {client_errors}; all delivered {drain_ms:.0} ms after the last ack\n  \
         {requests} poll requests ({:.2} per delivered change)\n  \
         write acknowledged: {ack_text}\n  \
         while writing, {}",
        args.subscribers,
        args.db_kind(),
        written as f64 / writing_seconds,
        met(good),
        requests as f64 / received.max(1) as f64,
        cpu.text(),
    );
    if let Some(e) = &first_error {
        text.push_str(&format!("\n  first error: {e}"));
    }
    let json = json!({
        "scenario": "poll",
        "clients": args.subscribers,
        "db": args.db_kind(),
        "rate": args.rate,
        "writes": written,
        "write_errors": write_errors,
        "seconds": round2(writing_seconds),
        "latency": latency_json,
        "ack_latency": ack_json,
        "expected_changes": expected,
        "delivered": received,
        "lost": lost,
        "out_of_order": out_of_order,
        "client_errors": client_errors,
        "requests": requests,
        "drain_ms": drain_ms.round(),
        "cpu": cpu.json(),
        "sse": sse.json,
        "p99_vs_sse": round2(ratio),
        "target_ratio": TARGET_RATIO,
        "meets_target": good,
    });
    Ok(Report { text, json })
}

/// One client: polls `first`, then each answer's `next`, recording when
/// each revision arrived, until it has seen the last write `control`
/// announces, or is told to stop.
async fn poll_forever(
    client: reqwest::Client,
    base: String,
    first: String,
    from: u64,
    mut control: watch::Receiver<Control>,
    (gate, started): (Arc<Semaphore>, Arc<AtomicU64>),
) -> Polled {
    let mut polled = Polled::default();
    let (mut next_url, mut next, mut last) = (first, from, None);
    // The first poll holds a place among those connecting for a moment,
    // then waits at the head without one.
    if let Ok(permit) = gate.acquire_owned().await {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(permit);
        });
    }
    started.fetch_add(1, Ordering::SeqCst);
    loop {
        if last.is_some_and(|last| next > last) {
            break;
        }
        let request = client
            .get(format!("{base}{next_url}"))
            .timeout(Duration::from_secs(WAIT_SECONDS + 30))
            .send();
        let answer = async {
            let response = request.await.map_err(|e| e.to_string())?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(format!("a poll answered {}", response.status()));
            }
            response.json::<Page>().await.map_err(|e| e.to_string())
        };
        tokio::pin!(answer);
        // The poll stays in flight while the last write is announced; only
        // `Stop` (or the end of the run) drops it.
        let answer = loop {
            tokio::select! {
                answer = &mut answer => break Some(answer),
                changed = control.changed() => {
                    if changed.is_err() {
                        break None;
                    }
                    match *control.borrow_and_update() {
                        Control::Running => {}
                        Control::Last(l) => last = Some(l),
                        Control::Stop => break None,
                    }
                    if last.is_some_and(|last| next > last) {
                        break None;
                    }
                }
            }
        };
        let Some(answer) = answer else {
            break;
        };
        polled.requests += 1;
        let at = Instant::now();
        match answer {
            Ok(page) => {
                for change in &page.changes {
                    if change.revision != next {
                        polled.out_of_order += 1;
                    }
                    if change.revision >= next {
                        polled.seen.push((change.revision, at));
                        next = change.revision + 1;
                    }
                }
                next_url = page.next;
            }
            Err(e) => {
                polled.error = Some(e);
                break;
            }
        }
    }
    polled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_answer_gives_its_revisions_and_next() {
        let text = r#"{"epoch":"e","changes":[{"revision":4,"patch":{}},{"revision":5,"patch":{"a":1},"compacted":true}],"next":"/x?after=5"}"#;
        let page: Page = serde_json::from_str(text).unwrap();
        let revisions: Vec<u64> = page.changes.iter().map(|c| c.revision).collect();
        assert_eq!((revisions, page.next.as_str()), (vec![4, 5], "/x?after=5"));
    }
}
