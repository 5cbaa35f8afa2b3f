//! `/metrics` scraped from the engine serving the test service: requests by
//! route template and status with latency buckets, write requests by
//! outcome (refused ones too), a `# HELP` for every family (the engine's
//! and the service's own), buckets that outlast an idle period.
//!
//! Every server in this test process shares one recorder, so the checks
//! compare before and after, or look for series only this test makes.

use std::time::Duration;

use crate::common::{TestServer, notes, spawn_default};
use serde_json::json;

async fn scrape(server: &TestServer) -> String {
    let r = server.get("/metrics").await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the series `name` whose labels include all of `labels`
/// (`key="value"` pairs), summed over the series that match.
fn value(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, number)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.iter().all(|l| rest.contains(l)) {
            continue;
        }
        let n: f64 = number.parse().unwrap();
        found = Some(found.unwrap_or(0.0) + n);
    }
    found
}

#[tokio::test]
async fn requests_are_counted_and_timed_by_route_template_and_status_never_by_raw_path() {
    let server = spawn_default().await;
    let r = server.post("/notes", json!({"text": "Ann"})).await;
    assert_eq!(r.status(), 201);
    let id: u64 = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(server.get(&format!("/notes/{id}")).await.status(), 200);
    }
    assert_eq!(server.get("/notes/987654").await.status(), 404);
    assert_eq!(server.get("/no/such/route/4242").await.status(), 404);

    let page = scrape(&server).await;
    let template = r#"route="/notes/{key}""#;
    let ok = value(
        &page,
        "duality_http_requests_total",
        &[r#"method="GET""#, template, r#"status="200""#],
    );
    assert!(ok.is_some_and(|n| n >= 3.0), "{page}");
    let missing = value(
        &page,
        "duality_http_requests_total",
        &[r#"method="GET""#, template, r#"status="404""#],
    );
    assert!(missing.is_some_and(|n| n >= 1.0), "{page}");
    // Buckets of the template: cumulative, the last (+Inf) holds them all.
    let buckets: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("duality_http_request_duration_seconds_bucket{"))
        .filter(|l| l.contains(template) && l.contains(r#"status="200""#))
        .collect();
    assert!(buckets.len() > 5, "{page}");
    let all = value(
        &page,
        "duality_http_request_duration_seconds_bucket",
        &[template, r#"status="200""#, r#"le="+Inf""#],
    );
    assert!(all.is_some_and(|n| n >= 3.0), "{page}");
    // No raw path becomes a label; a request to no route gets one label.
    for raw in [
        format!("/notes/{id}\""),
        "/notes/987654".into(),
        "/no/such".into(),
    ] {
        assert!(!page.contains(&raw), "{raw} is a label:\n{page}");
    }
    let unmatched = value(
        &page,
        "duality_http_requests_total",
        &[r#"route="unmatched""#, r#"status="404""#],
    );
    assert!(unmatched.is_some_and(|n| n >= 1.0), "{page}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn methods_a_client_invents_share_one_label_and_add_no_series() {
    let server = spawn_default().await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let r = client
            .request(method, server.url("/notes"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let page = scrape(&server).await;
    assert!(!page.contains("INVENTED"), "{page}");
    let other = value(
        &page,
        "duality_http_requests_total",
        &[r#"method="other""#, r#"route="/notes""#],
    );
    assert!(other.is_some_and(|n| n >= 5.0), "{page}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_is_counted_when_it_starts_while_it_is_still_open() {
    let server = spawn_default().await;
    let labels = [
        r#"method="GET""#,
        r#"route="/tag-events""#,
        r#"status="200""#,
    ];
    let before = value(
        &scrape(&server).await,
        "duality_http_requests_total",
        &labels,
    );
    let _open = server.subscribe("/tag-events", &[]).await;
    let page = scrape(&server).await;
    let after = value(&page, "duality_http_requests_total", &labels);
    assert!(
        after.unwrap_or(0.0) >= before.unwrap_or(0.0) + 1.0,
        "{before:?} then {after:?}:\n{page}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn refused_writes_are_counted_with_their_outcome() {
    let server = spawn_default().await;
    let outcome = |o: &'static str| format!("outcome=\"{o}\"");
    let count = |page: &str, o: &'static str| {
        value(page, "duality_writes_total", &[&outcome(o)]).unwrap_or(0.0)
    };
    let before = scrape(&server).await;

    // A blank text: the body is JSON but not a note.
    let r = server.post("/notes", json!({"text": " "})).await;
    assert_eq!(r.status(), 400);
    // Not sent as JSON.
    let r = server
        .client
        .post(server.url("/notes"))
        .header("content-type", "text/plain")
        .body("{\"text\":\"Ann\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // No such note.
    let r = server.send("DELETE", "/notes/424242", None).await;
    assert_eq!(r.status(), 404);
    // One that works, then its replay under the same key.
    for _ in 0..2 {
        let r = server
            .client
            .post(server.url("/notes"))
            .header("idempotency-key", "metrics-replay-key")
            .json(&json!({"text": "Bo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    let after = scrape(&server).await;
    for (o, at_least) in [
        ("invalid", 1.0),
        ("unsupported_media_type", 1.0),
        ("not_found", 1.0),
        ("committed", 1.0),
        ("replayed", 1.0),
    ] {
        assert!(
            count(&after, o) >= count(&before, o) + at_least,
            "{o}: {} then {}:\n{after}",
            count(&before, o),
            count(&after, o)
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_metric_family_on_the_page_has_a_help_line() {
    let server = spawn_default().await;
    server.post("/notes", json!({"text": "Ann"})).await;
    let _open = server.subscribe("/note-events", &[]).await;
    server.get("/notes").await;
    let page = scrape(&server).await;
    let typed: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for family in [
        "duality_http_requests_total",
        "duality_http_request_duration_seconds",
        "duality_writes_total",
        "duality_subscribers",
        "duality_connections",
        notes::POSTED,
    ] {
        assert!(typed.contains(&family), "no {family} on:\n{page}");
    }
    for family in &typed {
        let help = format!("# HELP {family} ");
        assert!(
            page.lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len()),
            "{family} has no HELP line:\n{page}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn latency_buckets_are_still_on_the_page_after_an_idle_period() {
    let server = spawn_default().await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    // Several upkeep runs with nothing recorded on this route.
    tokio::time::sleep(duality::telemetry::UPKEEP_EVERY * 4 + Duration::from_millis(500)).await;
    let page = scrape(&server).await;
    let route = r#"route="/readyz""#;
    let inf = value(
        &page,
        "duality_http_request_duration_seconds_bucket",
        &[route, r#"le="+Inf""#],
    );
    assert!(inf.is_some_and(|n| n >= 1.0), "{page}");
    let count = value(
        &page,
        "duality_http_request_duration_seconds_count",
        &[route],
    );
    assert_eq!(inf, count, "{page}");
    // Histograms, not windowed summaries that empty when idle.
    assert!(
        !page
            .lines()
            .any(|l| l.starts_with("duality_") && l.contains("quantile=")),
        "{page}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn writes_refused_at_the_edge_are_counted_too() {
    let server = crate::common::spawn(duality::Config {
        write_token: vec![duality::settings::parse_token("metrics-write-token").unwrap()],
        ..duality::Config::ephemeral()
    })
    .await;
    let count = |page: &str, o: &str| {
        value(page, "duality_writes_total", &[&format!("outcome=\"{o}\"")]).unwrap_or(0.0)
    };
    let before = scrape(&server).await;
    // No token.
    let r = server.post("/notes", json!({"text": "Ann"})).await;
    assert_eq!(r.status(), 401);
    // The token, but from a page of another origin.
    let r = server
        .client
        .post(server.url("/notes"))
        .bearer_auth("metrics-write-token")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"text": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let after = scrape(&server).await;
    for o in ["unauthorized", "forbidden_origin"] {
        assert!(
            count(&after, o) >= count(&before, o) + 1.0,
            "{o}: {} then {}:\n{after}",
            count(&before, o),
            count(&after, o)
        );
    }
    server.stop().await.unwrap();
}
