//! Filling a server with many documents through its HTTP API, and the
//! helpers the large-view scenarios share: the JSON size of every view and
//! the ratios they report.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::server::Server;
use super::writes::{Body, Flood, flood, met, round2};
use super::{Cpu, CpuMeter};

/// Writers that load the data, each on its own connection: enough for
/// group commit to fill its batches.
const CONNECTIONS: u64 = 64;
/// The snapshot paths of every view a default server holds.
pub(super) const VIEWS: [&str; 5] = [
    "/persons",
    "/locations",
    "/customers",
    "/incidents",
    "/aggregates/dashboard",
];
/// A load of a million documents takes about a minute here; give up after
/// this long.
const LIMIT: Duration = Duration::from_secs(1800);

/// How a load went.
pub(super) struct Loaded {
    pub what: String,
    pub count: u64,
    pub seconds: f64,
    pub cpu: Cpu,
}

impl Loaded {
    pub fn text(&self) -> String {
        format!(
            "loaded {} {} in {:.1} s ({:.0} writes/s); {}",
            self.count,
            self.what,
            self.seconds,
            self.count as f64 / self.seconds.max(1e-9),
            self.cpu.text()
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "documents": self.count,
            "seconds": round2(self.seconds),
            "writes_per_s": (self.count as f64 / self.seconds.max(1e-9)).round(),
            "cpu": self.cpu.json(),
        })
    }
}

/// POSTs `body(0)`, …, `body(count - 1)` to `path` of `server`; every write
/// must succeed, or the scenario would measure a view of another size.
pub(super) async fn load(
    server: &Server,
    what: &str,
    path: &str,
    count: u64,
    body: Body,
) -> Result<Loaded, String> {
    println!("loading {count} {what} through POST {path} ...");
    let meter = CpuMeter::start_all(&[server.pid])?;
    let urls = [server.url(path)];
    let done: Flood = flood(
        &urls,
        CONNECTIONS,
        Instant::now() + LIMIT,
        Some(count),
        body,
    )
    .await?;
    let cpu = meter.finish()?;
    if done.ok != count {
        return Err(format!(
            "loading {what}: {} of {count} writes succeeded ({} errors, the first: {})",
            done.ok,
            done.errors,
            done.first_error.unwrap_or_else(|| "none".into())
        ));
    }
    let loaded = Loaded {
        what: what.into(),
        count,
        seconds: done.seconds,
        cpu,
    };
    println!("  {}", loaded.text());
    Ok(loaded)
}

/// The identity JSON size in bytes of every snapshot path in `paths`.
pub(super) async fn json_bytes(server: &Server, paths: &[&str]) -> Result<u64, String> {
    let client = super::client(1)?;
    let mut total = 0;
    for path in paths {
        let body = client
            .get(server.url(path))
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GET {path}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        total += body.len() as u64;
    }
    Ok(total)
}

/// One figure measured against its target: `value` compared with `limit`
/// (at least, or at most).
pub(super) struct Target {
    pub name: &'static str,
    pub value: f64,
    pub limit: f64,
    pub at_least: bool,
}

impl Target {
    pub fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }

    pub fn text(&self) -> String {
        let sign = if self.at_least { ">=" } else { "<=" };
        format!(
            "{}: {:.2} (target {sign} {:.2}: {})",
            self.name,
            self.value,
            self.limit,
            met(self.met())
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "value": round2(self.value),
            "target": round2(self.limit),
            "at_least": self.at_least,
            "met": self.met(),
        })
    }
}

/// The targets as a JSON object keyed by name, and as text lines.
pub(super) fn targets(targets: &[Target]) -> (Value, String) {
    let json = targets
        .iter()
        .map(|t| (t.name.to_string(), t.json()))
        .collect::<serde_json::Map<_, _>>();
    let text = targets
        .iter()
        .map(|t| format!("  {}", t.text()))
        .collect::<Vec<_>>()
        .join("\n");
    (Value::Object(json), text)
}
