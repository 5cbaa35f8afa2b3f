//! Writes at a fixed rate, each timed from its request to its answer.

use std::collections::HashMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// What the writes did.
pub(super) struct Paced {
    /// When each write was sent, by the `X-Revision` it answered.
    pub sent_at: HashMap<u64, Instant>,
    /// Time from sending to the `201`, in microseconds.
    pub ack: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// How long the writing took.
    pub seconds: f64,
}

/// `rate` POSTs a second for `duration` (at least one); `request(i)` gives
/// the URL and JSON body of write `i`. Each must answer `201`.
pub(super) async fn post_paced(
    client: &reqwest::Client,
    rate: u64,
    duration: Duration,
    request: impl Fn(u64) -> (String, String),
) -> Result<Paced, String> {
    send_paced(client, rate, duration, reqwest::Method::POST, request).await
}

/// As [`post_paced`], with `method` (a `POST` must answer `201`, anything
/// else `200`).
pub(super) async fn send_paced(
    client: &reqwest::Client,
    rate: u64,
    duration: Duration,
    method: reqwest::Method,
    request: impl Fn(u64) -> (String, String),
) -> Result<Paced, String> {
    let want = if method == reqwest::Method::POST {
        reqwest::StatusCode::CREATED
    } else {
        reqwest::StatusCode::OK
    };
    let writes = ((rate as f64) * duration.as_secs_f64()).round().max(1.0) as u64;
    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut posts = JoinSet::new();
    for i in 0..writes {
        pace.tick().await;
        let (url, body) = request(i);
        let post = client
            .request(method.clone(), &url)
            .header("content-type", "application/json")
            .body(body);
        posts.spawn(async move {
            let sent = Instant::now();
            let response = tokio::time::timeout(Duration::from_secs(10), post.send())
                .await
                .map_err(|_| "no answer within 10 s".to_string())?
                .map_err(|e| e.to_string())?;
            let acked = sent.elapsed();
            if response.status() != want {
                return Err(format!("{url} answered {}", response.status()));
            }
            Ok((super::revision(&response)?, sent, acked))
        });
    }
    let mut paced = Paced {
        sent_at: HashMap::with_capacity(writes as usize),
        ack: super::histogram()?,
        errors: 0,
        first_error: None,
        seconds: 0.0,
    };
    while let Some(joined) = posts.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((revision, sent, acked)) => {
                paced.sent_at.insert(revision, sent);
                paced.ack.saturating_record(super::micros(acked));
            }
            Err(e) => {
                paced.errors += 1;
                paced.first_error.get_or_insert(e);
            }
        }
    }
    paced.seconds = started.elapsed().as_secs_f64();
    Ok(paced)
}
