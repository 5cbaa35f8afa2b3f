//! Scenario `large-dashboard`: the Aggregate Pattern at real size
//! (`--customers`, 100,000 by default, and `--incidents`, 1,000,000),
//! loaded through the API into one server with every service, each figure
//! next to its reference measured in the same run. `--persons` (1,000,000)
//! persons are loaded first, so that the restart reads a file holding a
//! million persons and a million incidents:
//!
//! - incident write → dashboard event latency with
//!   `--dashboard-subscribers` at `--dashboard-rate` (the `dashboard`
//!   measurement);
//! - `GET /customers/top/5` requests/s against `GET /aggregates/dashboard`;
//! - the time from a restart on the same file to the first `GET /incidents`
//!   (the process serves nothing before every view is loaded), and to the
//!   first `GET /aggregates/dashboard` that is no longer stale (the
//!   aggregates service has loaded both backends' views and follows them);
//! - incident writes/s with the aggregates service running, against the
//!   same file restarted with `--services customers,incidents`: [`PAIRS`]
//!   pairs of rounds, alternating, each round on a process just restarted
//!   (the process that did the loading has a heap and a log of its own);
//!   the figure is the median of the pairs'
//!   ratios, so that one round at a slow moment of a shared machine
//!   (single rounds vary by ±15 % here) does not decide it.
//!
//! The loaded incidents spread over every customer with amounts below
//! 1,000, so the `dashboard` measurement's bench customer still leads the
//! volume list from its first write on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::load::{Target, VIEWS, json_bytes, load, targets};
use super::reads::{Load, Reads, hammer};
use super::server::{Batches, Server};
use super::writes::{Body, Flood, flood, round2};
use super::{BenchArgs, Cpu, CpuMeter, Report};

const TARGET_P99_MS: f64 = 10.0;

/// Pairs of incident floods, one with every service and one with the
/// backends only.
const PAIRS: usize = 3;

/// The body of customer `i`: 11 scorings, 50 countries.
fn customer(i: u64) -> String {
    json!({
        "name": format!("Customer {i:07}"),
        "city": format!("City {}", i % 500),
        "country": format!("C{}", i % 50),
        "scoring": i % 11,
    })
    .to_string()
}

/// The bodies of incidents spread over `customers` customers.
fn incidents(customers: u64) -> Body {
    Arc::new(move |i| {
        json!({
            "amount": (i * 7919 % 100_000) as f64 / 100.0,
            "customerName": format!("Customer {:07}", i * 7 % customers),
            "category": format!("cat{}", i % 20),
        })
        .to_string()
    })
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let mut server = Server::start_on("large-dashboard", None).await?;
    // So that the restart reads a file with `--persons` persons too.
    let persons = load(
        &server,
        "persons",
        "/persons",
        args.persons,
        Arc::new(super::writes::person),
    )
    .await?;
    let customers = load(
        &server,
        "customers",
        "/customers/items",
        args.customers,
        Arc::new(customer),
    )
    .await?;
    let loaded = load(
        &server,
        "incidents",
        "/incidents/items",
        args.incidents,
        incidents(args.customers),
    )
    .await?;

    let json_size = json_bytes(&server, &VIEWS).await?;
    let (rss, hwm) = (server.rss_kib()?, server.status_kib("VmHWM:")?);

    let latency = super::dashboard::measure(args, &[&server], 0, 0, "large, one process").await?;

    let reads = |path| Reads {
        server: &server,
        path,
        connections: args.connections,
        duration: args.duration,
        gzip: false,
    };
    let top = hammer(reads("/customers/top/5")).await?;
    let dashboard = hammer(reads("/aggregates/dashboard")).await?;

    // The two incident floods alternate, A B A B A B, each on a process
    // just restarted on the file, so that neither side gets the file, the
    // page cache, the disk or the heap in a better state.
    let restart = server.restart(&[], "/incidents").await?;
    let live_again = restart + until_fresh(&server).await?;
    let rss_restarted = server.rss_kib()?;
    let backends_only = ["--services".to_string(), "customers,incidents".to_string()];
    let mut restart_backends = Duration::ZERO;
    let (mut with_aggregates, mut without) = (Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        if pair > 0 {
            server.restart(&[], "/incidents").await?;
        }
        super::dashboard::settled(&super::client(1)?, &server).await?;
        with_aggregates.push(write_incidents(args, &server).await?);
        let took = server.restart(&backends_only, "/incidents").await?;
        if pair == 0 {
            restart_backends = took;
        }
        without.push(write_incidents(args, &server).await?);
    }
    server.stop().await?;

    let ratios: Vec<f64> = with_aggregates
        .iter()
        .zip(&without)
        .map(|((with, _, _), (without, _, _))| with.per_second() / without.per_second().max(1e-9))
        .collect();
    let pooled_ratio = pooled(&with_aggregates) / pooled(&without).max(1e-9);
    let p99 = latency.json["latency"]["p99_ms"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let checks = [
        Target {
            name: "incident write -> dashboard event p99 ms",
            value: p99,
            limit: TARGET_P99_MS,
            at_least: false,
        },
        Target {
            name: "incident writes/s with aggregates / without (median of pairs)",
            value: median(&ratios),
            limit: 0.8,
            at_least: true,
        },
        Target {
            name: "top/5 reads / dashboard reads",
            value: top.per_second() / dashboard.per_second().max(1e-9),
            limit: 0.5,
            at_least: true,
        },
    ];
    let (targets_json, targets_text) = targets(&checks);
    let line = |name: &str, l: &Load| {
        let (_, latency) = super::latency(&l.latency);
        format!(
            "{name}: {:.0} requests/s ({} errors, {} bytes each), {latency}\n    {}",
            l.per_second(),
            l.errors,
            l.bytes / l.ok.max(1),
            l.cpu.text(),
        )
    };
    let writes_line = |name: &str, rounds: &[(Flood, Cpu, Batches)]| {
        let mut text = format!(
            "{name}: {:.0} incident writes/s over {} rounds",
            pooled(rounds),
            rounds.len()
        );
        for (i, (f, cpu, batches)) in rounds.iter().enumerate() {
            let (_, latency) = super::latency(&f.latency);
            text.push_str(&format!(
                "\n    round {}: {:.0} writes/s ({} errors), {latency}\n      {}\n      {}",
                i + 1,
                f.per_second(),
                f.errors,
                cpu.text(),
                batches.text(),
            ));
        }
        text
    };
    let text = format!(
        "large-dashboard: {}\n  {}\n  {}\n  \
         server RSS {:.1} MiB (peak {:.1} MiB) after loading; JSON of every view {:.1} MiB\n  {}\n  \
         {} connections, {:.0} s each:\n  {}\n  {}\n  {}\n  {}\n  \
         each pair's ratio of writes/s: {}; pooled {:.2}\n  \
         restart on the same file: first GET /incidents served {:.2} s after the process started \
         (all services; RSS then {:.1} MiB), {:.2} s with --services customers,incidents; \
         the dashboard no longer stale {:.2} s after the start\n\
         {targets_text}",
        persons.text(),
        customers.text(),
        loaded.text(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        json_size as f64 / (1024.0 * 1024.0),
        latency.text,
        args.connections,
        args.duration.as_secs_f64(),
        line("GET /customers/top/5", &top),
        line("GET /aggregates/dashboard", &dashboard),
        writes_line("every service", &with_aggregates),
        writes_line("--services customers,incidents", &without),
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        pooled_ratio,
        restart.as_secs_f64(),
        rss_restarted as f64 / 1024.0,
        restart_backends.as_secs_f64(),
        live_again.as_secs_f64(),
    );
    let reads_json = |l: &Load| {
        let (latency, _) = super::latency(&l.latency);
        json!({
            "requests": l.ok,
            "errors": l.errors,
            "requests_per_s": l.per_second().round(),
            "latency": latency,
            "cpu": l.cpu.json(),
        })
    };
    let writes_json = |rounds: &[(Flood, Cpu, Batches)]| {
        let each: Vec<_> = rounds
            .iter()
            .map(|(f, cpu, batches)| {
                let (latency, _) = super::latency(&f.latency);
                json!({
                    "writes": f.ok,
                    "errors": f.errors,
                    "writes_per_s": f.per_second().round(),
                    "latency": latency,
                    "cpu": cpu.json(),
                    "commit_batches": batches.json(),
                })
            })
            .collect();
        json!({"writes_per_s": pooled(rounds).round(), "rounds": each})
    };
    let json = json!({
        "scenario": "large-dashboard",
        "customers": args.customers,
        "incidents": args.incidents,
        "persons": args.persons,
        "load_persons": persons.json(),
        "load_customers": customers.json(),
        "load_incidents": loaded.json(),
        "dashboard": latency.json,
        "reads_top5": reads_json(&top),
        "reads_dashboard": reads_json(&dashboard),
        "incident_writes_all_services": writes_json(&with_aggregates),
        "incident_writes_backends_only": writes_json(&without),
        "incident_writes_pair_ratios": ratios.iter().map(|r| round2(*r)).collect::<Vec<_>>(),
        "incident_writes_ratio_pooled": round2(pooled_ratio),
        "restart_first_snapshot_s": round2(restart.as_secs_f64()),
        "restart_backends_only_first_snapshot_s": round2(restart_backends.as_secs_f64()),
        "restart_dashboard_fresh_s": round2(live_again.as_secs_f64()),
        "rss_after_restart_kib": rss_restarted,
        "rss_after_load_kib": rss,
        "hwm_after_load_kib": hwm,
        "json_bytes_all_views": json_size,
        "targets": targets_json,
        "meets_targets": checks.iter().all(Target::met),
    });
    Ok(Report { text, json })
}

/// Writes/s over every round: all writes over all their time.
fn pooled(rounds: &[(Flood, Cpu, Batches)]) -> f64 {
    let writes: u64 = rounds.iter().map(|(f, _, _)| f.ok).sum();
    let seconds: f64 = rounds.iter().map(|(f, _, _)| f.seconds).sum();
    writes as f64 / seconds.max(1e-9)
}

/// How long from now until `GET /aggregates/dashboard` answers
/// `X-Stale: false`, polled every 20 ms.
async fn until_fresh(server: &Server) -> Result<Duration, String> {
    let client = super::client(1)?;
    let url = server.url("/aggregates/dashboard");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(response) = client.get(&url).send().await
            && super::dashboard::fresh(&response)
        {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the dashboard was still stale 60 s after the restart served".into())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `--connections` writers post incidents for `--duration`.
async fn write_incidents(
    args: &BenchArgs,
    server: &Server,
) -> Result<(Flood, Cpu, Batches), String> {
    let before = server.batches().await?;
    let meter = CpuMeter::start_all(&[server.pid])?;
    let urls = [server.url("/incidents/items")];
    let done = flood(
        &urls,
        args.connections,
        Instant::now() + args.duration,
        None,
        incidents(args.customers),
    )
    .await?;
    let cpu = meter.finish()?;
    Ok((done, cpu, server.batches().await?.since(&before)))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_pair_ratios_ignores_one_outlier() {
        assert_eq!(median(&[0.95, 0.75, 0.93]), 0.93);
        assert_eq!(median(&[2.17, 0.9, 0.95, 0.8]), 0.925);
        assert!(median(&[]).is_nan());
    }
}
