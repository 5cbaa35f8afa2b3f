//! Scenario `collection` (not part of `all`): write and fan-out figures for
//! a `--collection` next to those for persons, with the same load shape,
//! each on a fresh server started with the same flags. Writes: N
//! connections write back to back (`POST /persons` against `PUT
//! /collections/bench/items/{key}`, a new key each, the same bodies: a
//! name only, so a write changes one view on both sides).
//! Fan-out: subscribers on `/person-events` against
//! `/collections/bench/events` while one task writes at a fixed rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::follow::{arrivals, collect, listen_all};
use super::server::Server;
use super::writes::{Flood, flood, round2};
use super::{BenchArgs, Report};

// Persons run next to the collection: a collection alone would be served
// without the other built-in services.
const FLAGS: [&str; 4] = ["--collection", "bench", "--services", "persons,collections"];
const ITEMS: &str = "/collections/bench/items";
const GRACE: Duration = Duration::from_secs(5);

async fn server(label: &str, args: &BenchArgs) -> Result<Server, String> {
    let flags: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
    Server::start_with(label, args.db.as_deref(), &flags).await
}

/// One `PUT` of a new document; `201` is success.
async fn put(client: &reqwest::Client, url: String, body: String) -> Result<u64, String> {
    let response = client
        .put(&url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::CREATED {
        return Err(format!("PUT {url} answered {}", response.status()));
    }
    let revision = super::revision(&response)?;
    response.bytes().await.map_err(|e| e.to_string())?;
    Ok(revision)
}

/// `connections` writers `PUT` new documents back to back until `deadline`.
async fn put_flood(base: &str, connections: u64, deadline: Instant) -> Result<Flood, String> {
    let start = Instant::now();
    let sequence = Arc::new(AtomicU64::new(0));
    let mut writers = JoinSet::new();
    for _ in 0..connections {
        let client = super::client(1)?;
        let (base, sequence) = (base.to_string(), Arc::clone(&sequence));
        let mut latency = super::histogram()?;
        writers.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                let i = sequence.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                match put(&client, format!("{base}/w{i}"), document(i)).await {
                    Ok(_) => {
                        ok += 1;
                        latency.saturating_record(super::micros(sent.elapsed()));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, errors, first_error, latency)
        });
    }
    let mut flood = Flood {
        ok: 0,
        errors: 0,
        first_error: None,
        latency: super::histogram()?,
        seconds: 0.0,
    };
    while let Some(joined) = writers.join_next().await {
        let (ok, errors, first_error, latency) = joined.map_err(|e| e.to_string())?;
        flood.ok += ok;
        flood.errors += errors;
        flood.first_error = flood.first_error.or(first_error);
        flood.latency.add(&latency).map_err(|e| e.to_string())?;
    }
    flood.seconds = start.elapsed().as_secs_f64();
    Ok(flood)
}

/// Subscribers on `stream`, then `rate` writes a second by `write(i)`
/// (which answers the revision it made): latency from each write's request
/// to each subscriber's receipt of its event.
async fn fan_out(
    args: &BenchArgs,
    server: &Server,
    snapshot: &str,
    stream: &str,
    write: impl Fn(u64) -> tokio::task::JoinHandle<Result<(u64, Instant), String>>,
) -> Result<(Histogram<u64>, u64, u64), String> {
    let current = super::client(1)?
        .get(server.url(snapshot))
        .send()
        .await
        .map_err(|e| format!("GET {snapshot}: {e}"))?;
    let from = super::revision(&current)? + 1;
    drop(current);
    let path = format!("{stream}?revision={from}");
    let streams = super::fanout::subscribe(server, &path, args.subscribers).await?;
    let (control, listeners) = listen_all(streams, from, arrivals).await;
    let writes = ((args.rate as f64) * args.duration.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut pending = Vec::with_capacity(writes as usize);
    for i in 0..writes {
        pace.tick().await;
        pending.push(write(i));
    }
    let mut sent_at = HashMap::new();
    let mut errors = 0;
    for handle in pending {
        match handle.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((revision, sent)) => {
                sent_at.insert(revision, sent);
            }
            Err(_) => errors += 1,
        }
    }
    let last = sent_at.keys().copied().max().unwrap_or(from - 1);
    let (heard, _) = collect(listeners, &control, last, GRACE).await?;
    let mut latency = super::histogram()?;
    let mut received = 0;
    for h in &heard {
        for (revision, at) in &h.seen {
            if let Some(sent) = sent_at.get(revision) {
                received += 1;
                latency.saturating_record(super::micros(at.saturating_duration_since(*sent)));
            }
        }
    }
    let lost = (sent_at.len() as u64 * args.subscribers).saturating_sub(received);
    Ok((latency, lost, errors))
}

/// The body of write `i`, the same for persons and the collection. A
/// person without a city changes the persons view alone, so each write
/// changes one view on both sides (a person with a city changes
/// `locations` too: two events, two fan-outs, which is not like for like).
fn document(i: u64) -> String {
    format!(r#"{{"name":"n{i}"}}"#)
}

fn ratio(collection: f64, persons: f64) -> f64 {
    round2(collection / persons.max(1e-9))
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let deadline = || Instant::now() + args.duration;
    let s = server("collection-persons-writes", args).await?;
    let persons = flood(
        &[s.url("/persons")],
        args.connections,
        deadline(),
        None,
        Arc::new(document),
    )
    .await?;
    s.stop().await?;
    let s = server("collection-writes", args).await?;
    let collection = put_flood(&s.url(ITEMS), args.connections, deadline()).await?;
    s.stop().await?;

    let s = server("collection-persons-fanout", args).await?;
    let writer = super::client(16)?;
    let url = s.url("/persons");
    let (persons_fan, persons_lost, persons_errors) =
        fan_out(args, &s, "/persons", "/person-events", |i| {
            let (w, url) = (writer.clone(), url.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let r = w
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(document(i))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status() != reqwest::StatusCode::CREATED {
                    return Err(format!("POST answered {}", r.status()));
                }
                Ok((super::revision(&r)?, sent))
            })
        })
        .await?;
    s.stop().await?;
    let s = server("collection-fanout", args).await?;
    let base = s.url(ITEMS);
    let (coll_fan, coll_lost, coll_errors) = fan_out(
        args,
        &s,
        "/collections/bench",
        "/collections/bench/events",
        |i| {
            let (w, url) = (writer.clone(), format!("{base}/f{i}"));
            tokio::spawn(async move {
                let sent = Instant::now();
                let body = document(i);
                Ok((put(&w, url, body).await?, sent))
            })
        },
    )
    .await?;
    s.stop().await?;

    let (pw, cw) = (persons.per_second(), collection.per_second());
    let p99 = |h: &Histogram<u64>| super::ms(h.value_at_quantile(0.99));
    let (pl, _) = super::latency(&persons_fan);
    let (cl, _) = super::latency(&coll_fan);
    let text = format!(
        "collection vs persons ({} {}, {} connections / {} subscribers at {}/s, {:?} each):\n  \
         writes: persons {pw:.0}/s ({} errors), collection {cw:.0}/s ({} errors): ratio {}\n  \
         fan-out p99: persons {:.2} ms (lost {persons_lost}, {persons_errors} write errors), \
         collection {:.2} ms (lost {coll_lost}, {coll_errors} write errors): ratio {}",
        args.processes,
        args.db_kind(),
        args.connections,
        args.subscribers,
        args.rate,
        args.duration,
        persons.errors,
        collection.errors,
        ratio(cw, pw),
        p99(&persons_fan),
        p99(&coll_fan),
        ratio(p99(&coll_fan), p99(&persons_fan)),
    );
    let json = json!({
        "scenario": "collection",
        "db": args.db_kind(),
        "connections": args.connections,
        "subscribers": args.subscribers,
        "rate": args.rate,
        "writes_per_s": {"persons": pw.round(), "collection": cw.round(), "ratio": ratio(cw, pw)},
        "fanout_latency": {"persons": pl, "collection": cl,
                           "p99_ratio": ratio(p99(&coll_fan), p99(&persons_fan))},
        "lost": {"persons": persons_lost, "collection": coll_lost},
    });
    Ok(Report { text, json })
}
