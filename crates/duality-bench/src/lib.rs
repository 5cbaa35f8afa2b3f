//! `duality bench`: a bounded load generator for this very binary.
//!
//! Each scenario starts the server as a child process (`duality serve` on a
//! free port of 127.0.0.1, with a fresh durable SQLite file in a temporary
//! directory), so that the load generator is a separate process and the
//! server's memory can be read from `/proc/<pid>/status`. The child is
//! killed and the directory removed when the scenario ends, also on error.
//! With `--db postgres://...` the servers use that database instead, and
//! `--processes N` starts N of them on it, with writers, subscribers and
//! writes spread over them round-robin (so events cross processes).
//!
//! - `writes`: concurrent connections `POST /persons` for a fixed time:
//!   durable writes per second and latency per write.
//! - `fanout`: subscribers on `/person-events` while one task writes at a
//!   fixed rate: latency from a write's request to each subscriber's
//!   receipt of its event, losses and order.
//! - `idle`: server RSS per idle subscriber.
//! - `dashboard`: the Aggregate Pattern end to end: subscribers on
//!   `/aggregates/dashboard-events` of a server with the demo data while
//!   one task posts incidents: latency from a backend write to the
//!   dashboard event that shows it; then the same with the services split
//!   over two processes.
//! - `dashboard-reads`: `GET /aggregates/dashboard` requests per second
//!   next to `GET /aggregates/dashboard/composed`, which calls both
//!   backends and composes on every request.
//! - `large-persons` and `large-dashboard` (not part of `all`): views at
//!   real size, loaded through the API, each figure measured next to its
//!   reference in the same run (see their modules).
//!
//! - `collection` (not part of `all`): `writes` and `fanout` against a
//!   `--collection`, next to the same load on persons.
//! - `derived` (not part of `all`): writes and write-to-event latency on a
//!   collection of a million documents, without and with derived views.
//!
//! - `filtered` (not part of `all`): subscribers of one key each of a
//!   large view; cost per write at 100 and 10,000 of them (see its module).
//!
//! - `half-open` (not part of `all`): connections that each send half a
//!   request header and stall, and a normal client probing meanwhile.
//!
//! - `poll` (not part of `all`): clients following by long-poll while one
//!   task writes at a fixed rate, against as many SSE subscribers under the
//!   same writes (see its module).
//!
//! - `catch-up` (not part of `all`): a consumer away longer than retention
//!   on a view at real size: the bytes and time of its catch-up against
//!   reloading the snapshot (see its module).
//!
//! Every scenario prints a short human report and one JSON line.

mod catch_up;
mod collection;
mod dashboard;
mod derived;
mod fanout;
mod filtered;
mod follow;
mod halfopen;
mod idle;
mod large_dashboard;
mod large_persons;
mod load;
mod paced;
mod poll;
mod reads;
mod server;
mod writes;

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::Value;

use duality::settings::parse_duration;

/// The `duality bench` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,

    /// How long the `writes`, `fanout`, `poll` and `dashboard` scenarios write, and
    /// `dashboard-reads` reads each path (at most 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Subscribers opened by the `fanout` and `idle` scenarios (and the
    /// long-poll clients of `poll`, next to as many SSE subscribers).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subscribers: u64,

    /// Writes per second in the `fanout` and `poll` scenarios.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rate: u64,

    /// Concurrent connections (one writer or reader each) in the `writes`
    /// and `dashboard-reads` scenarios.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_024))]
    pub connections: u64,

    /// Subscribers on the dashboard stream in the `dashboard` scenario.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub dashboard_subscribers: u64,

    /// Incident writes per second in the `dashboard` scenario.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub dashboard_rate: u64,

    /// The servers' database: a SQLite file or a `postgres://` URL (default:
    /// a fresh SQLite file per scenario). A PostgreSQL database is shared by
    /// every scenario; give an empty one.
    #[arg(long)]
    pub db: Option<String>,

    /// Persons loaded by the `large-persons`, `large-dashboard` and
    /// `catch-up` scenarios.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub persons: u64,

    /// Customers loaded by the `large-dashboard` scenario.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,

    /// Incidents loaded by the `large-dashboard` scenario.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub incidents: u64,

    /// Documents loaded into the collection by the `derived` scenario.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub documents: u64,

    /// Groups those documents are spread over in the `derived` scenario.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub groups: u64,

    /// Server processes on that database (more than 1 needs PostgreSQL):
    /// writers, subscribers and writes are spread over them round-robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub processes: u64,

    /// Stalled connections opened by the `half-open` scenario.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub half_open: u64,

    /// `--max-connections` for the server of the `half-open` scenario
    /// (default: the server's own default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// The `duality` binary to measure (default: this one). Another build,
    /// of an older commit say, then runs under the same load generator, so
    /// the two can be compared alternately on one machine.
    #[arg(long, value_name = "PATH")]
    pub server: Option<std::path::PathBuf>,
}

impl BenchArgs {
    fn postgres(&self) -> bool {
        self.db
            .as_deref()
            .is_some_and(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"))
    }

    /// `sqlite` or `postgres`, for the reports.
    pub(crate) fn db_kind(&self) -> &'static str {
        if self.postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// Which measurement `duality bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario but `half-open`, `collection` and the `large-*` ones, one
    /// after the other.
    All,
    /// Durable writes/s: concurrent writers posting persons back to back.
    Writes,
    /// Fan-out latency and losses: many subscribers while one task writes at a
    /// steady rate.
    Fanout,
    /// Server memory per idle subscriber.
    Idle,
    /// The Aggregate Pattern end to end: dashboard subscribers while incidents
    /// are posted, on one process and on two.
    Dashboard,
    /// Reads of the materialized dashboard against the baseline that composes
    /// it on every request.
    DashboardReads,
    /// Not part of `all`: a flood of stalled half-sent requests while a client
    /// probes the server.
    HalfOpen,
    /// Not part of `all`: writes and fan-out on a collection next to persons.
    Collection,
    /// Not part of `all`: writes and write-to-event latency on a collection
    /// of a million documents, without and with derived views (minutes).
    Derived,
    /// Not part of `all`: loads a million persons (minutes).
    LargePersons,
    /// Not part of `all`: 100 and 10,000 subscribers of one key each of a
    /// million persons (minutes).
    Filtered,
    /// Not part of `all`: loads 100,000 customers and a million incidents.
    LargeDashboard,
    /// Not part of `all`: clients following by long-poll against as many
    /// SSE subscribers, under the same writes.
    Poll,
    /// Not part of `all`: catch-up after retention on a view of `--persons`
    /// documents against reloading its snapshot (minutes).
    CatchUp,
}

/// What a scenario measured: lines for people, one JSON object for docs.
pub struct Report {
    /// The report for people, as printed lines.
    pub text: String,
    /// The same figures as one JSON object (for the benchmark docs).
    pub json: Value,
}

/// Runs the chosen scenarios one after the other.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.duration > Duration::from_secs(600) {
        return Err("--duration must be at most 10m".into());
    }
    if args.processes > 1 && !args.postgres() {
        return Err(
            "--processes above 1 needs --db postgres://...: the processes share one database"
                .into(),
        );
    }
    if large_scenario(args.scenario) && args.db.is_some() {
        return Err(
            "the large-* scenarios restart a server on its own fresh SQLite file: drop --db".into(),
        );
    }
    let exe = match &args.server {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => return Err(format!("--server {}: no such file", path.display())),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    println!(
        "duality bench: {} CPUs, {} MiB memory; server = {} serve (child process)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_kib().map_or(0, |k| k / 1024),
        exe.display(),
    );
    server::use_binary(exe);
    if args.scenario == Scenario::HalfOpen {
        let report = halfopen::run(&args).await?;
        println!("{}\n\n{}", report.text, report.json);
        return Ok(());
    }
    if args.scenario == Scenario::Collection {
        let report = collection::run(&args).await?;
        println!("{}\n\n{}", report.text, report.json);
        return Ok(());
    }
    if args.scenario == Scenario::Poll {
        let report = poll::run(&args).await?;
        println!("{}\n\n{}", report.text, report.json);
        return Ok(());
    }
    if args.scenario == Scenario::CatchUp {
        if args.db.is_some() {
            return Err("the catch-up scenario loads its own fresh SQLite file: drop --db".into());
        }
        let report = catch_up::run(&args).await?;
        println!("{}\n\n{}", report.text, report.json);
        return Ok(());
    }
    if args.scenario == Scenario::Derived {
        let report = derived::run(&args).await?;
        println!("{}\n\n{}", report.text, report.json);
        return Ok(());
    }
    let all = args.scenario == Scenario::All;
    let mut reports: Vec<Report> = Vec::new();
    for scenario in [
        Scenario::Writes,
        Scenario::Fanout,
        Scenario::Idle,
        Scenario::Dashboard,
        Scenario::DashboardReads,
        Scenario::LargePersons,
        Scenario::LargeDashboard,
        Scenario::Filtered,
    ] {
        if all && large_scenario(scenario) {
            continue;
        }
        if !all && args.scenario != scenario {
            continue;
        }
        let done = match scenario {
            Scenario::Writes => vec![writes::run(&args).await?],
            Scenario::Fanout => vec![fanout::run(&args).await?],
            Scenario::Idle => vec![idle::run(&args).await?],
            Scenario::Dashboard => dashboard::run(&args).await?,
            Scenario::LargePersons => vec![large_persons::run(&args).await?],
            Scenario::LargeDashboard => vec![large_dashboard::run(&args).await?],
            Scenario::Filtered => vec![filtered::run(&args).await?],
            _ => vec![reads::run(&args).await?],
        };
        for report in done {
            println!("{}", report.text);
            reports.push(report);
        }
    }
    println!();
    for report in &reports {
        println!("{}", report.json);
    }
    Ok(())
}

/// The scenarios that load a view at real size; `all` leaves them out.
fn large_scenario(scenario: Scenario) -> bool {
    matches!(
        scenario,
        Scenario::LargePersons | Scenario::LargeDashboard | Scenario::Filtered
    )
}

/// A latency histogram in microseconds, from 1 µs to 10 minutes.
fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds, rounded to 0.01.
fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

/// p50, p99 and max of `h` in milliseconds, as JSON fields and as text.
fn latency(h: &Histogram<u64>) -> (Value, String) {
    let (p50, p99, max) = (
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
    (
        serde_json::json!({"p50_ms": p50, "p99_ms": p99, "max_ms": max, "samples": h.len()}),
        format!(
            "p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({} samples)",
            h.len()
        ),
    )
}

/// A client for 127.0.0.1 only: no proxy, bounded connect time.
fn client(idle_per_host: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(idle_per_host)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The `X-Revision` header of a response.
fn revision(response: &reqwest::Response) -> Result<u64, String> {
    response
        .headers()
        .get("x-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{} answered without X-Revision", response.url()))
}

/// User + system CPU seconds of a process (`self` or a pid).
fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th and stime the 13th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| "unexpected /proc stat format".to_string())
    };
    // USER_HZ is 100 on every Linux this runs on.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn servers_cpu_seconds(pids: &[String]) -> Result<f64, String> {
    pids.iter().map(|p| cpu_seconds(p)).sum()
}

/// CPU seconds of the whole machine from the first line of /proc/stat:
/// busy (user, nice, system, irq, softirq), and stolen (time the
/// hypervisor gave this VM's CPUs to another machine).
fn machine_cpu_seconds() -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string("/proc/stat")
        .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
    busy_and_stolen(&stat)
}

/// Busy and stolen seconds from the text of /proc/stat (100 ticks a
/// second).
fn busy_and_stolen(stat: &str) -> Result<(f64, f64), String> {
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or("unexpected /proc/stat format")?
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    let steal = fields.get(7).copied().unwrap_or(0.0);
    Ok((busy / 100.0, steal / 100.0))
}

/// CPU used by the server, by this load generator and by anything else on
/// the machine (other processes skew the figures: the report says so).
struct CpuMeter {
    /// The server processes (their CPU is summed).
    pids: Vec<String>,
    start: std::time::Instant,
    server: f64,
    own: f64,
    busy: f64,
    steal: f64,
}

/// Percentages of one core over the metered time.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: f64,
    own: f64,
    other: f64,
    /// Taken by the hypervisor for other machines: on a shared host it
    /// slows everything here without showing as any process's CPU.
    steal: f64,
}

impl CpuMeter {
    /// Meters the server processes `pids` together.
    fn start_all(pids: &[u32]) -> Result<CpuMeter, String> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let (busy, steal) = machine_cpu_seconds()?;
        Ok(CpuMeter {
            server: servers_cpu_seconds(&pids)?,
            own: cpu_seconds("self")?,
            busy,
            steal,
            start: std::time::Instant::now(),
            pids,
        })
    }

    fn finish(&self) -> Result<Cpu, String> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-3);
        let server = servers_cpu_seconds(&self.pids)? - self.server;
        let own = cpu_seconds("self")? - self.own;
        let (busy, steal) = machine_cpu_seconds()?;
        let (busy, steal) = (busy - self.busy, steal - self.steal);
        let pct = |x: f64| (100.0 * x / wall).round();
        Ok(Cpu {
            server: pct(server),
            own: pct(own),
            other: pct((busy - server - own).max(0.0)),
            steal: pct(steal.max(0.0)),
        })
    }
}

impl Cpu {
    fn text(&self) -> String {
        format!(
            "CPU (% of one core): server {:.0}, load generator {:.0}, rest of the machine {:.0}, stolen by the hypervisor {:.0}",
            self.server, self.own, self.other, self.steal
        )
    }

    fn json(&self) -> Value {
        serde_json::json!({
            "server_pct": self.server,
            "loadgen_pct": self.own,
            "other_pct": self.other,
            "steal_pct": self.steal,
        })
    }
}

fn mem_total_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    status_kib(&info, "MemTotal:")
}

/// A `Name:   123 kB` line of a /proc file.
fn status_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn stolen_time_is_counted_apart_from_busy_time() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  1000 20 300 9000 400 5 6 700 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let (busy, stolen) = busy_and_stolen(stat).unwrap();
        assert!((busy - 13.31).abs() < 1e-9, "{busy}");
        assert!((stolen - 7.0).abs() < 1e-9, "{stolen}");
        assert!(busy_and_stolen("intr 1 2 3\n").is_err());
    }

    #[test]
    fn defaults_match_the_targets_setup() {
        let a = Cmd::try_parse_from(["bench"]).unwrap().args;
        assert_eq!(a.scenario, Scenario::All);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!((a.subscribers, a.rate, a.connections), (1000, 100, 32));
        assert_eq!((a.dashboard_subscribers, a.dashboard_rate), (100, 50));
        assert_eq!(
            (a.persons, a.customers, a.incidents),
            (1_000_000, 100_000, 1_000_000)
        );
        let reads = Cmd::try_parse_from(["bench", "--scenario", "dashboard-reads"]).unwrap();
        assert_eq!(reads.args.scenario, Scenario::DashboardReads);
        assert!(Cmd::try_parse_from(["bench", "--subscribers", "0"]).is_err());
        assert!(Cmd::try_parse_from(["bench", "--scenario", "nope"]).is_err());
    }

    #[test]
    fn large_sizes_are_flags_and_stay_out_of_all() {
        let a = Cmd::try_parse_from(["bench", "--scenario", "large-persons", "--persons", "2000"])
            .unwrap()
            .args;
        assert_eq!((a.scenario, a.persons), (Scenario::LargePersons, 2000));
        let d = Cmd::try_parse_from([
            "bench",
            "--scenario",
            "large-dashboard",
            "--customers",
            "10",
        ])
        .unwrap()
        .args;
        assert_eq!((d.customers, d.incidents), (10, 1_000_000));
        assert!(Cmd::try_parse_from(["bench", "--persons", "0"]).is_err());
        assert!(large_scenario(Scenario::LargeDashboard));
        assert!(!large_scenario(Scenario::Fanout));
    }

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\tduality\nVmRSS:\t   12345 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(12345));
        assert_eq!(status_kib(status, "VmHWM:"), None);
        assert!(cpu_seconds("self").is_ok());
        assert_eq!(ms(1234), 1.23);
    }
}
