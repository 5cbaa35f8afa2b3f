//! Scenario `derived` (not part of `all`): what derived views (docs/ARCHITECTURE.md, "Derived views")
//! cost a collection's writes, on a collection of `--documents` (1,000,000
//! by default) spread over `--groups` (100,000) groups.
//!
//! 1. A server with the collection alone (`--collection bench`) is loaded
//!    through `PUT /collections/bench/items/{key}`; then `--connections`
//!    writers update random documents back to back for `--duration`
//!    (writes/s), and one writer updates at `--rate` while
//!    `--subscribers` follow the collection's stream (write → event p99).
//! 2. The same database is served again with a configuration file that
//!    adds two derived views of it: a group-by with a sum and a max, and a
//!    top-10 of the groups by that sum. The start builds both from the
//!    million documents. Then the same two measurements, the paced writes
//!    followed on the collection's stream and on the group-by's at once.
//!
//! Each update moves its document to another group with a new amount, so
//! it changes two groups: every write is one event of the group-by, whose
//! revision is the collection's moved by a fixed offset, which is how an
//! event is matched to its write. Targets (issue 25): writes/s with the
//! derived views at least 0.8 × without; write → group-by event p99 at
//! most 1.2 × write → collection event p99.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::follow::{arrivals, collect, listen_all};
use super::load::Target;
use super::server::Server;
use super::writes::{Flood, round2};
use super::{BenchArgs, Report};

const ITEMS: &str = "/collections/bench/items";
const STREAM: &str = "/collections/bench/events";
const GROUPS_VIEW: &str = "/derived/by-group";
const GROUPS_STREAM: &str = "/derived/by-group/events";
/// Writers that load the documents.
const LOADERS: u64 = 64;
const GRACE: Duration = Duration::from_secs(5);
/// How long a load may take.
const LOAD_LIMIT: Duration = Duration::from_secs(1800);

/// The configuration file of the second server.
fn config(groups_top: usize) -> String {
    format!(
        "[collections.bench]\n\n\
         [derived.by-group]\nfrom = \"bench\"\ngroup_by = \"/group\"\n\
         sum = {{ total = \"/amount\" }}\nmax = {{ largest = \"/amount\" }}\n\n\
         [derived.top]\nfrom = \"bench\"\ngroup_by = \"/group\"\n\
         sum = {{ total = \"/amount\" }}\ntop = {{ by = \"total\", limit = {groups_top} }}\n"
    )
}

/// Document `key` as write `i` leaves it: in a group drawn from `(key,
/// i)`, with the amount `i`, which no earlier write gave it: so every
/// write changes the document's group or its group's sum.
fn document(key: u64, i: u64, groups: u64) -> String {
    let group = mix(key ^ i.rotate_left(32)) % groups;
    format!(r#"{{"group":"g{group}","amount":{i},"note":"document {key}"}}"#)
}

/// SplitMix64's finaliser: spreads consecutive inputs over all groups.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One `PUT` of document `key`; answers the collection's revision.
async fn put(client: &reqwest::Client, base: &str, key: u64, body: String) -> Result<u64, String> {
    let url = format!("{base}/d{key}");
    let response = client
        .put(&url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("PUT {url} answered {}", response.status()));
    }
    let revision = super::revision(&response)?;
    response.bytes().await.map_err(|e| e.to_string())?;
    Ok(revision)
}

/// `connections` writers `PUT` back to back until `deadline` or until
/// `count` writes were made: write `i` puts document `key(i)`.
async fn put_flood(
    base: &str,
    connections: u64,
    deadline: Instant,
    count: Option<u64>,
    key: impl Fn(u64) -> u64 + Send + Sync + Clone + 'static,
    groups: u64,
    first: u64,
) -> Result<Flood, String> {
    let start = Instant::now();
    let sequence = Arc::new(AtomicU64::new(0));
    let mut writers = JoinSet::new();
    for _ in 0..connections {
        let client = super::client(1)?;
        let (base, sequence, key) = (base.to_string(), Arc::clone(&sequence), key.clone());
        let mut latency = super::histogram()?;
        writers.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                let i = sequence.fetch_add(1, Ordering::Relaxed);
                if count.is_some_and(|n| i >= n) {
                    break;
                }
                let k = key(i);
                let sent = Instant::now();
                match put(&client, &base, k, document(k, first + i, groups)).await {
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

/// A key spread over `0..documents` for write `i`.
fn scattered(documents: u64) -> impl Fn(u64) -> u64 + Send + Sync + Clone + 'static {
    move |i| i.wrapping_mul(2_654_435_761) % documents
}

async fn current(server: &Server, path: &str) -> Result<u64, String> {
    let r = super::client(1)?
        .get(server.url(path))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    super::revision(&r)
}

/// The latency from each paced write to its event on each of `streams`
/// (a stream path, its snapshot path, and how its revisions relate to the
/// collection's: the same one, or moved by an offset measured at the
/// start).
async fn paced(
    args: &BenchArgs,
    server: &Server,
    streams: &[(&str, &str)],
    groups: u64,
    first: u64,
) -> Result<Vec<(Histogram<u64>, u64)>, String> {
    let base = current(server, "/collections/bench").await?;
    let mut followed = Vec::new();
    for (stream, snapshot) in streams {
        let from = current(server, snapshot).await? + 1;
        let path = format!("{stream}?revision={from}");
        let opened = super::fanout::subscribe(server, &path, args.subscribers).await?;
        let offset = from as i64 - (base as i64 + 1);
        followed.push((listen_all(opened, from, arrivals).await, offset));
    }
    let writes = ((args.rate as f64) * args.duration.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let writer = super::client(16)?;
    let items = server.url(ITEMS);
    let key = scattered(args.documents);
    let mut pending = Vec::with_capacity(writes as usize);
    for i in 0..writes {
        pace.tick().await;
        let (w, items, k) = (writer.clone(), items.clone(), key(first + i));
        pending.push(tokio::spawn(async move {
            let sent = Instant::now();
            let revision = put(&w, &items, k, document(k, first + i, groups)).await?;
            Ok::<_, String>((revision, sent))
        }));
    }
    let mut sent_at = HashMap::new();
    for handle in pending {
        let (revision, sent) = handle.await.map_err(|e| e.to_string())??;
        sent_at.insert(revision, sent);
    }
    let last = sent_at.keys().copied().max().unwrap_or(base);
    let mut figures = Vec::new();
    for ((control, listeners), offset) in followed {
        let (heard, _) = collect(listeners, &control, (last as i64 + offset) as u64, GRACE).await?;
        let mut latency = super::histogram()?;
        let mut received = 0;
        for h in &heard {
            for (revision, at) in &h.seen {
                if let Some(sent) = sent_at.get(&((*revision as i64 - offset) as u64)) {
                    received += 1;
                    latency.saturating_record(super::micros(at.saturating_duration_since(*sent)));
                }
            }
        }
        let lost = (sent_at.len() as u64 * args.subscribers).saturating_sub(received);
        figures.push((latency, lost));
    }
    Ok(figures)
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let (documents, groups) = (args.documents, args.groups);
    let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut server = Server::start_with(
        "derived",
        args.db.as_deref(),
        &flags(&["--collection", "bench"]),
    )
    .await?;
    println!("loading {documents} documents in {groups} groups through PUT {ITEMS}/{{key}} ...");
    let loaded = put_flood(
        &server.url(ITEMS),
        LOADERS,
        Instant::now() + LOAD_LIMIT,
        Some(documents),
        |i| i,
        groups,
        0,
    )
    .await?;
    if loaded.ok != documents {
        return Err(format!(
            "loading: {} of {documents} writes succeeded (first error: {})",
            loaded.ok,
            loaded.first_error.unwrap_or_default()
        ));
    }
    println!("  loaded in {:.1} s", loaded.seconds);
    let deadline = || Instant::now() + args.duration;
    let key = scattered(documents);
    let plain = put_flood(
        &server.url(ITEMS),
        args.connections,
        deadline(),
        None,
        key.clone(),
        groups,
        documents,
    )
    .await?;
    let mut next = documents + plain.ok + plain.errors + args.connections;
    let plain_paced = paced(
        args,
        &server,
        &[(STREAM, "/collections/bench")],
        groups,
        next,
    )
    .await?;
    next += args.rate * args.duration.as_secs().max(1) * 2;

    let file = server.dir().join("duality.toml");
    std::fs::write(&file, config(10))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let started = server
        .restart(&flags(&["--config", &file.to_string_lossy()]), GROUPS_VIEW)
        .await?;
    println!(
        "  started with the derived views in {:.1} s",
        started.as_secs_f64()
    );
    let derived = put_flood(
        &server.url(ITEMS),
        args.connections,
        deadline(),
        None,
        key,
        groups,
        next,
    )
    .await?;
    next += derived.ok + derived.errors + args.connections;
    let both = paced(
        args,
        &server,
        &[(STREAM, "/collections/bench"), (GROUPS_STREAM, GROUPS_VIEW)],
        groups,
        next,
    )
    .await?;
    let groups_now = super::load::json_bytes(&server, &[GROUPS_VIEW]).await?;
    server.stop().await?;

    let p99 = |h: &Histogram<u64>| super::ms(h.value_at_quantile(0.99));
    let (pw, dw) = (plain.per_second(), derived.per_second());
    let (collection_p99, groups_p99) = (p99(&both[0].0), p99(&both[1].0));
    let targets = [
        Target {
            name: "writes/s with derived views / without",
            value: round2(dw / pw.max(1e-9)),
            limit: 0.8,
            at_least: true,
        },
        Target {
            name: "write -> group-by event p99 / write -> collection event p99",
            value: round2(groups_p99 / collection_p99.max(1e-9)),
            limit: 1.2,
            at_least: false,
        },
    ];
    let text = format!(
        "derived views ({} documents, {} groups, {}; {} connections, {} subscribers at {}/s, {:?} each):\n  \
         loaded in {:.1} s; restarted with the derived views in {:.1} s (group-by view {} bytes)\n  \
         writes: without {pw:.0}/s ({} errors), with {dw:.0}/s ({} errors)\n  \
         write -> event p99: without derived views {:.2} ms (lost {}); with them, collection {:.2} ms (lost {}), group-by {:.2} ms (lost {})\n  \
         {}\n  {}",
        documents,
        groups,
        args.db_kind(),
        args.connections,
        args.subscribers,
        args.rate,
        args.duration,
        loaded.seconds,
        started.as_secs_f64(),
        groups_now,
        plain.errors,
        derived.errors,
        p99(&plain_paced[0].0),
        plain_paced[0].1,
        collection_p99,
        both[0].1,
        groups_p99,
        both[1].1,
        targets[0].text(),
        targets[1].text(),
    );
    let json = json!({
        "scenario": "derived",
        "db": args.db_kind(),
        "documents": documents,
        "groups": groups,
        "load_seconds": round2(loaded.seconds),
        "restart_seconds": round2(started.as_secs_f64()),
        "writes_per_s": {"without": pw.round(), "with": dw.round(), "ratio": targets[0].value},
        "write_to_event_p99_ms": {
            "without_derived": p99(&plain_paced[0].0),
            "collection": collection_p99,
            "group_by": groups_p99,
            "ratio": targets[1].value,
        },
        "targets_met": targets.iter().all(Target::met),
    });
    Ok(Report { text, json })
}
