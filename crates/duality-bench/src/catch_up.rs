//! Scenario `catch-up` (not part of `all`): what a consumer that was away
//! longer than retention costs, with catch-up against reloading the view.
//!
//! The persons view is loaded at real size (`--persons`, 1,000,000 by
//! default) on a server that keeps events for two seconds. A consumer's
//! position is taken, 1,000 persons spread over the view are changed, and
//! retention deletes their events. Then, each measured several times and
//! the median kept: the catch-up of that position on the stream (the bytes
//! up to the end of its `catch-up` event, and the time to receive them), as
//! a poll (one `compacted` change), and the snapshot a consumer would
//! reload without it, identity and gzip.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::load::{Target, load, targets};
use super::server::Server;
use super::writes::{person, round2};
use super::{BenchArgs, Report};

/// The documents changed while the consumer is away.
const CHANGED: u64 = 1_000;
/// How long the server keeps events: short, so the position falls out.
const RETENTION: &str = "2s";
/// Catch-up bytes at most this percentage of the snapshot's.
const TARGET_PERCENT: f64 = 2.0;
/// Each figure is the median of this many requests.
const TRIES: usize = 5;
/// Connections that change the documents.
const WRITERS: usize = 16;

/// A poll answer holding one catch-up.
#[derive(Deserialize)]
struct Page {
    changes: Vec<Compacted>,
}

#[derive(Deserialize)]
struct Compacted {
    revision: u64,
    patch: Map<String, Value>,
    #[serde(default)]
    compacted: bool,
}

/// One request's size and time.
#[derive(Debug, Clone, Copy)]
struct Took {
    bytes: u64,
    seconds: f64,
}

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let flags = ["--retention".to_string(), RETENTION.to_string()];
    let server = Server::start_with("catch-up", None, &flags).await?;
    let loaded = load(
        &server,
        "persons",
        "/persons",
        args.persons,
        Arc::new(person),
    )
    .await?;
    let client = super::client(WRITERS)?;
    let position = revision_of(&client, &server).await?;

    // 1,000 persons, spread over the view, change while the consumer is away.
    let ids: Vec<u64> = (0..CHANGED.min(args.persons))
        .map(|k| 1 + k * args.persons / CHANGED.min(args.persons))
        .collect();
    let changing = Instant::now();
    let mut patches = futures_util::stream::iter(ids.iter().map(|id| {
        let request = client
            .patch(server.url(&format!("/persons/{id}")))
            .header("content-type", "application/json")
            .body(format!(r#"{{"city":"moved-{id}"}}"#));
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            if response.status() == reqwest::StatusCode::OK {
                Ok(())
            } else {
                Err(format!("PATCH answered {}", response.status()))
            }
        }
    }))
    .buffer_unordered(WRITERS);
    while let Some(done) = patches.next().await {
        done.map_err(|e| format!("changing a person: {e}"))?;
    }
    drop(patches);
    let change_seconds = changing.elapsed().as_secs_f64();
    let current = revision_of(&client, &server).await?;
    let trimmed = until_trimmed(&client, &server, position).await?;

    let mut stream = Vec::new();
    let mut polled = Vec::new();
    let mut identity = Vec::new();
    let mut gzip = Vec::new();
    for _ in 0..TRIES {
        stream.push(catch_up_on_the_stream(&server, position, current, ids.len()).await?);
        polled.push(catch_up_by_poll(&server, position, current, ids.len()).await?);
        identity.push(snapshot(&server, false).await?);
        gzip.push(snapshot(&server, true).await?);
    }
    server.stop().await?;
    let (stream, polled) = (median(&mut stream), median(&mut polled));
    let (identity, gzip) = (median(&mut identity), median(&mut gzip));

    let checks = [
        Target {
            name: "catch-up bytes, % of the snapshot's",
            value: 100.0 * stream.bytes as f64 / identity.bytes as f64,
            limit: TARGET_PERCENT,
            at_least: false,
        },
        Target {
            name: "catch-up bytes, % of the gzip snapshot's",
            value: 100.0 * stream.bytes as f64 / gzip.bytes as f64,
            limit: TARGET_PERCENT,
            at_least: false,
        },
    ];
    let (targets_json, targets_text) = targets(&checks);
    let good = checks.iter().all(Target::met);
    let line =
        |what: &str, t: Took| format!("{what}: {} bytes in {:.1} ms", t.bytes, t.seconds * 1000.0);
    let text = format!(
        "catch-up: {} persons, {} of them changed in {change_seconds:.1} s while a consumer at \
         revision {position} was away (now {current}); its events were deleted {trimmed:.1} s \
         after the last change (--retention {RETENTION})\n  {}\n  {}\n  {}\n  {}\n  {}\n  \
         medians of {TRIES} requests; {}",
        args.persons,
        ids.len(),
        line("catch-up on the stream (to the end of its event)", stream),
        line("catch-up by poll (one compacted change)", polled),
        line("reloading the snapshot (identity)", identity),
        line("reloading the snapshot (gzip)", gzip),
        targets_text.trim_start(),
        loaded.text(),
    );
    let took = |t: Took| json!({"bytes": t.bytes, "ms": round2(t.seconds * 1000.0)});
    let json = json!({
        "scenario": "catch-up",
        "documents": args.persons,
        "changed": ids.len(),
        "retention": RETENTION,
        "load": loaded.json(),
        "catch_up_stream": took(stream),
        "catch_up_poll": took(polled),
        "snapshot_identity": took(identity),
        "snapshot_gzip": took(gzip),
        "tries": TRIES,
        "targets": targets_json,
        "meets_targets": good,
    });
    Ok(Report { text, json })
}

/// The view's current revision, from a one-key snapshot (the revision is
/// the whole view's).
async fn revision_of(client: &reqwest::Client, server: &Server) -> Result<u64, String> {
    let response = client
        .get(server.url("/persons?key=1"))
        .send()
        .await
        .map_err(|e| format!("GET /persons?key=1: {e}"))?;
    super::revision(&response)
}

/// Waits until retention deleted the event after `position`: a poll from
/// it is then a catch-up. Answers how long that took.
async fn until_trimmed(
    client: &reqwest::Client,
    server: &Server,
    position: u64,
) -> Result<f64, String> {
    let started = Instant::now();
    let url = server.url(&format!("/person-events?mode=poll&after={position}&wait=0"));
    while started.elapsed() < Duration::from_secs(120) {
        let page: Page = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GET {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if page.changes.first().is_some_and(|c| c.compacted) {
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("retention did not delete the events within 120 s".into())
}

/// A stream from `position`: the bytes up to the end of its first event,
/// which must be the `catch-up` to `current` with `changed` persons.
async fn catch_up_on_the_stream(
    server: &Server,
    position: u64,
    current: u64,
    changed: usize,
) -> Result<Took, String> {
    let client = super::client(0)?;
    let started = Instant::now();
    let response = client
        .get(server.url("/person-events"))
        .header("last-event-id", position.to_string())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("the stream from {position}: {e}"))?;
    let mut body = response.bytes_stream();
    let mut received: Vec<u8> = Vec::new();
    let end = loop {
        if let Some(at) = received.windows(2).position(|w| w == b"\n\n") {
            break at + 2;
        }
        match body.next().await {
            Some(Ok(chunk)) => received.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(format!("the stream from {position}: {e}")),
            None => return Err(format!("the stream from {position} ended")),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let event = std::str::from_utf8(&received[..end]).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        event
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
    };
    if field("event: ") != "catch-up" || field("id: ") != current.to_string() {
        return Err(format!(
            "expected a catch-up to {current}, got: {}",
            event.chars().take(200).collect::<String>()
        ));
    }
    let patch: Map<String, Value> =
        serde_json::from_str(field("data: ")).map_err(|e| format!("the catch-up: {e}"))?;
    if patch.len() != changed {
        return Err(format!(
            "the catch-up holds {} persons, not the {changed} changed",
            patch.len()
        ));
    }
    Ok(Took {
        bytes: end as u64,
        seconds,
    })
}

/// A poll from `position`: one compacted change to `current`.
async fn catch_up_by_poll(
    server: &Server,
    position: u64,
    current: u64,
    changed: usize,
) -> Result<Took, String> {
    let client = super::client(0)?;
    let started = Instant::now();
    let body = client
        .get(server.url(&format!("/person-events?mode=poll&after={position}")))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("the poll from {position}: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("the poll from {position}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let page: Page = serde_json::from_slice(&body).map_err(|e| format!("the poll: {e}"))?;
    match &page.changes[..] {
        [one] if one.compacted && one.revision == current && one.patch.len() == changed => {}
        _ => {
            return Err(format!(
                "the poll from {position} was not one compacted change to {current}"
            ));
        }
    }
    Ok(Took {
        bytes: body.len() as u64,
        seconds,
    })
}

/// `GET /persons`, identity or gzip, read to its end.
async fn snapshot(server: &Server, gzip: bool) -> Result<Took, String> {
    let client = super::client(0)?;
    let mut request = client
        .get(server.url("/persons"))
        .timeout(Duration::from_secs(120));
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let started = Instant::now();
    let body = request
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("GET /persons: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("GET /persons: {e}"))?;
    Ok(Took {
        bytes: body.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The median by time (sizes hardly vary).
fn median(tries: &mut [Took]) -> Took {
    tries.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    tries[tries.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_request_by_time() {
        let took = |seconds| Took { bytes: 1, seconds };
        let mut tries = [took(3.0), took(1.0), took(9.0), took(2.0), took(4.0)];
        assert_eq!(median(&mut tries).seconds, 3.0);
    }
}
