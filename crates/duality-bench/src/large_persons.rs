//! Scenario `large-persons`: the persons view at real size (`--persons`,
//! 1,000,000 by default), loaded through `POST /persons`, each figure next
//! to its reference measured in the same run:
//!
//! - `GET /persons` requests/s while `--rate` writes/s change the view,
//!   against the same without writes;
//! - gzip `GET` requests/s against identity (once checked to decode to the
//!   identity body at the same revision);
//! - write → event p99 with `--subscribers` on this view (the `fanout`
//!   measurement), against a fresh server holding 1,000 persons;
//! - server RSS after loading and serving against the JSON size of every
//!   view, and the RSS added by 100 slow `?snapshot=true` subscribers
//!   (raw connections that send the request and never read);
//! - the time from a restart on the same file to the first `GET /persons`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::load::{Target, VIEWS, json_bytes, load, targets};
use super::paced::{Paced, post_paced};
use super::reads::{Load, Reads, hammer};
use super::server::Server;
use super::writes::{person, round2};
use super::{BenchArgs, Report};

/// Readers of the large snapshot, each on its own connection: few, since
/// each reads tens of MB per request.
const READERS: u64 = 4;
/// The persons of the reference view for the fan-out figure.
const SMALL: u64 = 1_000;
/// Slow `?snapshot=true` subscribers.
const SLOW: usize = 100;

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let mut server = Server::start_on("large-persons", args.db.as_deref()).await?;
    let loaded = load(
        &server,
        "persons",
        "/persons",
        args.persons,
        Arc::new(person),
    )
    .await?;
    let (bytes, gzip_bytes, same) = gzip_agrees(&server).await?;

    let reads = |gzip| Reads {
        server: &server,
        path: "/persons",
        connections: READERS,
        duration: args.duration,
        gzip,
    };
    let quiet = hammer(reads(false)).await?;
    let zipped = hammer(reads(true)).await?;
    let writer = super::client(4)?;
    let url = server.url("/persons");
    let first = args.persons;
    let (busy, paced) = tokio::join!(
        hammer(reads(false)),
        post_paced(&writer, args.rate, args.duration, |i| {
            (url.clone(), person(first + i))
        })
    );
    let (busy, paced): (Load, Paced) = (busy?, paced?);

    let json_size = json_bytes(&server, &VIEWS).await?;
    let rss = server.rss_kib()?;
    let hwm = server.status_kib("VmHWM:")?;
    let slow = slow_subscribers(&server, args.rate).await?;

    let large =
        super::fanout::measure(args, std::slice::from_ref(&server), "fanout, large view").await?;
    let reference = Server::start_on("large-persons-small", None).await?;
    load(&reference, "persons", "/persons", SMALL, Arc::new(person)).await?;
    let small = super::fanout::measure(
        args,
        std::slice::from_ref(&reference),
        "fanout, 1,000 persons",
    )
    .await?;
    reference.stop().await?;

    let restart = server.restart(&[], "/persons").await?;
    let rss_restarted = server.rss_kib()?;
    server.stop().await?;

    let p99 = |r: &Report| r.json["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let json_mib = json_size as f64 / (1024.0 * 1024.0);
    let checks = [
        Target {
            name: "reads with writes / without",
            value: busy.per_second() / quiet.per_second().max(1e-9),
            limit: 0.5,
            at_least: true,
        },
        Target {
            name: "gzip reads / identity reads",
            value: zipped.per_second() / quiet.per_second().max(1e-9),
            limit: 0.5,
            at_least: true,
        },
        Target {
            name: "fanout p99 large view / 1,000 persons",
            value: p99(&large) / p99(&small),
            limit: 1.2,
            at_least: false,
        },
        Target {
            name: "RSS MiB after loading and serving",
            value: mib(rss),
            limit: 3.0 * json_mib + 64.0,
            at_least: false,
        },
        Target {
            name: "RSS MiB added by 100 slow snapshot subscribers",
            value: mib(slow.added_kib),
            limit: 64.0,
            at_least: false,
        },
    ];
    let (targets_json, targets_text) = targets(&checks);
    let line = |name: &str, l: &Load| {
        let (_, latency) = super::latency(&l.latency);
        format!(
            "{name}: {:.1} requests/s ({} in {:.1} s, {} errors, {:.2} MiB each), {latency}\n    {}",
            l.per_second(),
            l.ok,
            l.seconds,
            l.errors,
            l.bytes as f64 / l.ok.max(1) as f64 / (1024.0 * 1024.0),
            l.cpu.text(),
        )
    };
    let (ack_json, ack_text) = super::latency(&paced.ack);
    let text = format!(
        "large-persons ({}): {}\n  \
         GET /persons: {bytes} bytes identity, {gzip_bytes} bytes gzip, gzip decodes to the identity body: {same}\n  \
         {READERS} readers, {:.0} s each:\n  {}\n  {}\n  {}\n    \
         {} writes during the reads ({} errors), acknowledged {ack_text}\n  \
         {}\n  {}\n  \
         server RSS {:.1} MiB (peak {:.1} MiB) after loading and serving; JSON of every view {json_mib:.1} MiB\n  \
         {SLOW} slow ?snapshot=true subscribers: RSS {:.1} -> {:.1} MiB (+{:.1} MiB) after {} writes; {} still open at the end\n  \
         restart on the same file: first GET /persons served {:.2} s after the process started; RSS then {:.1} MiB\n\
         {targets_text}",
        args.db_kind(),
        loaded.text(),
        args.duration.as_secs_f64(),
        line("identity, no writes", &quiet),
        line("gzip, no writes", &zipped),
        line(&format!("identity, {} writes/s", args.rate), &busy),
        paced.sent_at.len(),
        paced.errors,
        large.text,
        small.text,
        mib(rss),
        mib(hwm),
        mib(slow.before_kib),
        mib(slow.before_kib + slow.added_kib),
        mib(slow.added_kib),
        slow.writes,
        slow.open,
        restart.as_secs_f64(),
        mib(rss_restarted),
    );
    let json_of = |l: &Load| {
        let (latency, _) = super::latency(&l.latency);
        json!({
            "requests": l.ok,
            "errors": l.errors,
            "requests_per_s": round2(l.per_second()),
            "bytes_per_response": (l.bytes as f64 / l.ok.max(1) as f64).round(),
            "latency": latency,
            "cpu": l.cpu.json(),
        })
    };
    let json = json!({
        "scenario": "large-persons",
        "db": args.db_kind(),
        "persons": args.persons,
        "load": loaded.json(),
        "identity_bytes": bytes,
        "gzip_bytes": gzip_bytes,
        "gzip_decodes_to_identity": same,
        "readers": READERS,
        "reads_quiet": json_of(&quiet),
        "reads_gzip": json_of(&zipped),
        "reads_with_writes": json_of(&busy),
        "writes_during_reads": {"writes": paced.sent_at.len(), "errors": paced.errors, "rate": args.rate, "ack_latency": ack_json},
        "fanout_large": large.json,
        "fanout_small": small.json,
        "json_bytes_all_views": json_size,
        "rss_kib": rss,
        "hwm_kib": hwm,
        "slow_subscribers": {"count": SLOW, "rss_before_kib": slow.before_kib, "added_kib": slow.added_kib, "writes": slow.writes, "open_at_end": slow.open},
        "restart_first_snapshot_s": round2(restart.as_secs_f64()),
        "rss_after_restart_kib": rss_restarted,
        "targets": targets_json,
        "meets_targets": checks.iter().all(Target::met) && same,
    });
    Ok(Report { text, json })
}

/// Fetches `GET /persons` identity and gzip at the same revision; answers
/// both sizes and whether the gzip body decodes to the identity body.
async fn gzip_agrees(server: &Server) -> Result<(u64, u64, bool), String> {
    let client = super::client(1)?;
    let get = |gzip: bool| {
        let mut request = client
            .get(server.url("/persons"))
            .timeout(Duration::from_secs(120));
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        async move {
            let response = request
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("GET /persons: {e}"))?;
            let revision = super::revision(&response)?;
            let encoding = response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_string();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("GET /persons: {e}"))?;
            Ok::<_, String>((revision, encoding, body))
        }
    };
    let (revision, _, identity) = get(false).await?;
    let (zipped_revision, encoding, zipped) = get(true).await?;
    if encoding != "gzip" {
        return Err(format!(
            "GET /persons with Accept-Encoding: gzip answered Content-Encoding {encoding}"
        ));
    }
    let mut decoded = Vec::with_capacity(identity.len());
    let same = flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut decoded)
        .is_ok()
        && revision == zipped_revision
        && decoded == identity;
    Ok((identity.len() as u64, zipped.len() as u64, same))
}

/// What the slow subscribers cost.
struct Slow {
    before_kib: u64,
    added_kib: u64,
    /// Writes made while they were open, so events queue up for them too.
    writes: u64,
    /// Connections the server had not closed at the end.
    open: usize,
}

/// Opens [`SLOW`] raw connections that ask for `?snapshot=true` and never
/// read, then writes `rate` persons (about a second's worth); answers the
/// largest RSS growth seen.
async fn slow_subscribers(server: &Server, rate: u64) -> Result<Slow, String> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    let request = format!(
        "GET /person-events?snapshot=true HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    let mut sockets = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut socket = TcpStream::connect(&server.addr)
            .await
            .map_err(|e| format!("cannot connect a slow subscriber: {e}"))?;
        socket
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("a slow subscriber cannot send its request: {e}"))?;
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut peak = server.rss_kib()?;
    let writer = super::client(4)?;
    let url = server.url("/persons");
    let paced = post_paced(&writer, rate, Duration::from_secs(1), |i| {
        (
            url.clone(),
            format!(r#"{{"name":"slow{i}","city":"slow"}}"#),
        )
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    peak = peak.max(server.rss_kib()?);
    let open = sockets.iter().filter(|s| still_open(s)).count();
    drop(sockets);
    Ok(Slow {
        before_kib: before,
        added_kib: peak.saturating_sub(before),
        writes: paced.sent_at.len() as u64,
        open,
    })
}

/// False when the server closed `socket` (it reads as ended or reset).
fn still_open(socket: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    match socket.try_read(&mut probe) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}
