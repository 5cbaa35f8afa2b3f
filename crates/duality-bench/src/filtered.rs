//! Scenario `filtered` (not part of `all`): subscribers that each follow
//! one key of a large view, as a page showing one customer does. The
//! persons view is loaded to `--persons` documents (a million by
//! default); then, each next to its reference in the same run:
//!
//! - `FEW` and then `MANY` subscribers, each on `/person-events?key=K` of
//!   its own random person, while `--rate` writes a second change random
//!   subscribed persons: deliveries lost, write → event latency, and the
//!   server's CPU time per write. Delivering a change should cost work for
//!   the subscribers it concerns, so the CPU per write at `MANY` should be
//!   about that at `FEW`;
//! - the unfiltered `fanout` measurement with `UNFILTERED` subscribers on
//!   the same server and rate: the filtered p99 against it;
//! - server RSS per idle subscriber, `MANY` filtered against `MANY`
//!   unfiltered, each on a fresh small server;
//! - `GET /persons?key=K` requests/s on the large view against `GET
//!   /persons` of a view holding one person.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::follow::{Change, collect, listen_all};
use super::load::{Target, load, targets};
use super::paced::{Paced, send_paced};
use super::reads::{Reads, hammer};
use super::server::Server;
use super::writes::{person, round2};
use super::{BenchArgs, Report};

/// The smaller number of filtered subscribers.
const FEW: u64 = 100;
/// The larger number of filtered subscribers, and of idle subscribers.
const MANY: u64 = 10_000;
/// Unfiltered subscribers of the reference fan-out.
const UNFILTERED: u64 = 1_000;
/// How long subscribers may take to receive the last events.
const GRACE: Duration = Duration::from_secs(5);

/// A small deterministic generator (splitmix64): the same keys every run.
struct Keys(u64);

impl Keys {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    }

    /// `n` distinct person ids in `1..=of`.
    fn distinct(&mut self, n: u64, of: u64) -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u64) < n.min(of) {
            let id = self.next(of) + 1;
            if seen.insert(id) {
                out.push(id);
            }
        }
        out
    }
}

/// What one subscriber heard: `(revision, the key its patch names, when)`.
type Heard = Vec<(u64, String, Instant)>;

fn heard(seen: &mut Heard, c: Change<'_>) -> u64 {
    {
        let key = serde_json::from_str::<serde_json::Map<String, Value>>(c.data)
            .ok()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        seen.push((c.revision, key, c.at));
    }
    c.revision
}

/// One filtered phase's figures.
struct Phase {
    subscribers: u64,
    writes: u64,
    write_errors: u64,
    lost: u64,
    unexpected: u64,
    out_of_order: u64,
    stream_errors: u64,
    latency: hdrhistogram::Histogram<u64>,
    cpu_ms_per_write: f64,
    connect_seconds: f64,
    first_error: Option<String>,
}

impl Phase {
    fn p99(&self) -> f64 {
        super::ms(self.latency.value_at_quantile(0.99))
    }

    fn text(&self) -> String {
        let (_, latency) = super::latency(&self.latency);
        let mut text = format!(
            "{} subscribers, one key each (open in {:.1} s): {} writes, {} errors; \
             lost {}, unexpected {}, out of order {}, stream errors {}\n    \
             write -> event: {latency}\n    server CPU per write: {:.3} ms",
            self.subscribers,
            self.connect_seconds,
            self.writes,
            self.write_errors,
            self.lost,
            self.unexpected,
            self.out_of_order,
            self.stream_errors,
            self.cpu_ms_per_write,
        );
        if let Some(e) = &self.first_error {
            text.push_str(&format!("\n    first error: {e}"));
        }
        text
    }

    fn json(&self) -> Value {
        let (latency, _) = super::latency(&self.latency);
        json!({
            "subscribers": self.subscribers,
            "writes": self.writes,
            "write_errors": self.write_errors,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "out_of_order": self.out_of_order,
            "stream_errors": self.stream_errors,
            "latency": latency,
            "server_cpu_ms_per_write": (self.cpu_ms_per_write * 1000.0).round() / 1000.0,
            "connect_seconds": round2(self.connect_seconds),
        })
    }
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let server = Server::start_on("filtered", args.db.as_deref()).await?;
    let loaded = load(
        &server,
        "persons",
        "/persons",
        args.persons,
        Arc::new(person),
    )
    .await?;
    let mut keys = Keys(7);
    let few = phase(args, &server, keys.distinct(FEW, args.persons)).await?;
    let many = phase(args, &server, keys.distinct(MANY, args.persons)).await?;
    let mut unfiltered_args = args.clone();
    unfiltered_args.subscribers = UNFILTERED;
    let unfiltered = super::fanout::measure(
        &unfiltered_args,
        std::slice::from_ref(&server),
        "fanout, unfiltered, same server",
    )
    .await?;
    let unfiltered_p99 = unfiltered.json["latency"]["p99_ms"]
        .as_f64()
        .ok_or("the fanout report has no p99")?;

    let one_key = format!("/persons?key={}", keys.next(args.persons) + 1);
    let key_reads = hammer(reads(args, &server, &one_key)).await?;
    server.stop().await?;

    let small = Server::start_on("filtered-small", None).await?;
    load(&small, "persons", "/persons", 1, Arc::new(person)).await?;
    let doc_reads = hammer(reads(args, &small, "/persons")).await?;
    let rss_unfiltered = idle_kib(&small, |_| "/person-events?revision=1".into()).await?;
    small.stop().await?;
    let fresh = Server::start_on("filtered-idle", None).await?;
    load(&fresh, "persons", "/persons", 1, Arc::new(person)).await?;
    let rss_filtered = idle_kib(&fresh, |i| format!("/person-events?revision=1&key={i}")).await?;
    fresh.stop().await?;

    let target = |name, value, limit, at_least| Target {
        name,
        value,
        limit,
        at_least,
    };
    let figures = [
        target(
            "server CPU per write, 10,000 filtered subscribers against 100",
            many.cpu_ms_per_write / few.cpu_ms_per_write.max(1e-9),
            2.0,
            false,
        ),
        target(
            "filtered p99 at 10,000 against unfiltered fanout p99 at 1,000",
            many.p99() / unfiltered_p99.max(1e-9),
            1.5,
            false,
        ),
        target(
            "RSS KiB per idle filtered subscriber minus unfiltered",
            rss_filtered - rss_unfiltered,
            2.0,
            false,
        ),
        target(
            "one-key GET on the large view against a one-document view (req/s)",
            key_reads.per_second() / doc_reads.per_second().max(1e-9),
            0.5,
            true,
        ),
    ];
    let good = many.lost == 0
        && few.lost == 0
        && many.unexpected == 0
        && few.unexpected == 0
        && figures.iter().all(|t| t.met());
    let (figures_json, figures_text) = targets(&figures);
    let text = format!(
        "filtered: {} persons on one server ({})\n  {}\n  {}\n  {}\n  {}\n  \
         one-key GET on the large view: {:.0} req/s; GET of a one-person view: {:.0} req/s\n  \
         RSS per idle subscriber: {rss_unfiltered:.2} KiB unfiltered, {rss_filtered:.2} KiB filtered\n{figures_text}",
        args.persons,
        args.db_kind(),
        loaded.text(),
        few.text(),
        many.text(),
        unfiltered.text,
        key_reads.per_second(),
        doc_reads.per_second(),
    );
    let json = json!({
        "scenario": "filtered",
        "persons": args.persons,
        "rate": args.rate,
        "db": args.db_kind(),
        "load": loaded.json(),
        "few": few.json(),
        "many": many.json(),
        "unfiltered_fanout": unfiltered.json,
        "one_key_reads_per_s": key_reads.per_second().round(),
        "one_doc_reads_per_s": doc_reads.per_second().round(),
        "rss_kib_per_idle_unfiltered": round2(rss_unfiltered),
        "rss_kib_per_idle_filtered": round2(rss_filtered),
        "targets": figures_json,
        "meets_target": good,
    });
    Ok(Report { text, json })
}

/// Opens one subscriber on the key of each of `ids`, then changes random
/// ones of those persons at `--rate` for `--duration`.
async fn phase(args: &BenchArgs, server: &Server, ids: Vec<u64>) -> Result<Phase, String> {
    let writer = super::client(16)?;
    let current = writer
        .get(server.url("/persons?key=1"))
        .send()
        .await
        .map_err(|e| format!("GET /persons: {e}"))?;
    let from = super::revision(&current)? + 1;
    drop(current);
    let connecting = Instant::now();
    let paths = ids
        .iter()
        .map(|id| format!("/person-events?revision={from}&key={id}"))
        .collect();
    let streams = super::fanout::subscribe_each(server, paths).await?;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let (control, listeners) = listen_all(streams, from, heard).await;

    let targets: Vec<u64> = {
        let mut pick = Keys(ids.len() as u64);
        let writes = (args.rate as f64 * args.duration.as_secs_f64())
            .round()
            .max(1.0) as u64;
        (0..writes)
            .map(|_| ids[pick.next(ids.len() as u64) as usize])
            .collect()
    };
    let base = server.url("/persons/");
    let started = super::servers_cpu_seconds(&[server.pid.to_string()])?;
    let Paced {
        sent_at,
        errors: write_errors,
        mut first_error,
        ..
    } = send_paced(
        &writer,
        args.rate,
        args.duration,
        reqwest::Method::PATCH,
        |i| {
            let id = targets[i as usize % targets.len()];
            (format!("{base}{id}"), format!(r#"{{"name":"w{i}"}}"#))
        },
    )
    .await?;
    let cpu_seconds = super::servers_cpu_seconds(&[server.pid.to_string()])? - started;
    let last = sent_at.keys().copied().max().unwrap_or(from - 1);
    let (heard, _) = collect(listeners, &control, last, GRACE).await?;

    // Which person each acknowledged write changed: its revision's patch
    // must reach that person's subscriber, and no other.
    let changed: HashMap<u64, String> = {
        let client = super::client(1)?;
        let mut changed = HashMap::new();
        let url = server.url(&format!(
            "/person-events?mode=poll&wait=0&after={}",
            from - 1
        ));
        let mut next = url;
        while changed.len() < sent_at.len() {
            let page: Value = client
                .get(&next)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("polling the changes: {e}"))?
                .json()
                .await
                .map_err(|e| format!("polling the changes: {e}"))?;
            let changes = page["changes"].as_array().ok_or("a poll without changes")?;
            for c in changes {
                let revision = c["revision"].as_u64().ok_or("a change without revision")?;
                if let Some(key) = c["patch"].as_object().and_then(|m| m.keys().next()) {
                    changed.insert(revision, key.clone());
                }
            }
            let more = page["next"].as_str().ok_or("a poll without next")?;
            if changes.is_empty() && revision_of(more) >= last {
                break;
            }
            next = server.url(more);
        }
        changed
    };

    let mut latency = super::histogram()?;
    let (mut received, mut unexpected, mut out_of_order, mut stream_errors) = (0, 0, 0, 0);
    for h in &heard {
        if let Some(e) = &h.error {
            stream_errors += 1;
            first_error.get_or_insert_with(|| e.clone());
        }
        let mut last = 0;
        for (revision, key, at) in &h.seen {
            // A filtered stream's ids skip; only one that does not grow
            // is out of order (and not counted as received).
            if *revision <= last {
                out_of_order += 1;
                continue;
            }
            last = *revision;
            match (sent_at.get(revision), changed.get(revision)) {
                (Some(sent), Some(k)) if k == key => {
                    received += 1;
                    latency.saturating_record(super::micros(at.saturating_duration_since(*sent)));
                }
                _ => unexpected += 1,
            }
        }
    }
    let writes = sent_at.len() as u64;
    Ok(Phase {
        subscribers: ids.len() as u64,
        writes,
        write_errors,
        lost: writes.saturating_sub(received),
        unexpected,
        out_of_order,
        stream_errors,
        latency,
        cpu_ms_per_write: 1000.0 * cpu_seconds / writes.max(1) as f64,
        connect_seconds,
        first_error,
    })
}

/// `--connections` readers of `path` for `--duration`.
fn reads<'a>(args: &BenchArgs, server: &'a Server, path: &'a str) -> Reads<'a> {
    Reads {
        server,
        path,
        connections: args.connections,
        duration: args.duration,
        gzip: false,
    }
}

/// The `after` of a poll's `next` URL.
fn revision_of(next: &str) -> u64 {
    next.split(['?', '&'])
        .find_map(|p| p.strip_prefix("after="))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Server RSS per idle subscriber (KiB): `MANY` streams on `path(i)`.
async fn idle_kib(server: &Server, path: impl Fn(u64) -> String) -> Result<f64, String> {
    let warm = super::fanout::subscribe(server, &path(1), 1).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    let streams = super::fanout::subscribe_each(server, (1..=MANY).map(path).collect()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    drop(streams);
    Ok((after as f64 - before as f64) / MANY as f64)
}
