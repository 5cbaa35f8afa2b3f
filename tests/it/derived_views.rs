//! Derived views (docs/ARCHITECTURE.md, "Derived views") over real HTTP and SSE: a group-by of a
//! collection, kept in the same write as each collection change, equal to
//! the same aggregate computed from the collection at every revision, on
//! SQLite and across two servers on one PostgreSQL database, and after a
//! restart.

use std::collections::BTreeMap;
use std::time::Duration;

use duality::settings::Database;
use duality::store::sqlite::Location;
use duality_services::derived::spec::DerivedTable;
use duality_services::derived::{DerivedSpec, Top};
use duality_services::settings::{Services, Settings, parse_collection};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Map, Value, json};

use crate::common::{Sse, TestServer, fold, revision_of, spawn};

/// A derived view from a table as the configuration file holds it.
fn derived(name: &str, table: Value) -> DerivedSpec {
    let table: DerivedTable = serde_json::from_value(table).unwrap();
    let collections: Vec<&str> = ["people", "t"].into();
    DerivedSpec::from_table(name, table, &collections).unwrap()
}

fn settings(db: Database, collections: &[&str], views: Vec<DerivedSpec>) -> Settings {
    let mut settings = Settings::ephemeral();
    settings.engine.db = db;
    settings.builtin.services = Some(Services::only(["collections"]));
    settings.builtin.collections = collections
        .iter()
        .map(|c| parse_collection(c).unwrap())
        .collect();
    settings.builtin.derived = views;
    settings
}

async fn write(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> u64 {
    let r = s.send(method, path, body).await;
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    revision_of(&r)
}

/// The snapshot of `path` and its revision.
async fn snapshot(s: &TestServer, path: &str) -> (u64, Value) {
    let r = s.get(path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    let revision = revision_of(&r);
    (revision, r.json().await.unwrap())
}

/// Reads changes until the one at `revision`; answers them all.
async fn changes_until(sse: &mut Sse, revision: u64) -> Vec<(u64, Value)> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(r, _)| *r < revision) {
        seen.push(sse.change().await);
    }
    seen
}

#[tokio::test]
async fn a_collection_of_persons_counted_by_city_replays_the_locations_events_event_for_event() {
    let mut with = Settings::ephemeral();
    with.builtin.collections = vec![parse_collection("people").unwrap()];
    with.builtin.derived = vec![derived(
        "cities",
        json!({"from": "people", "group_by": "/city", "count": "total"}),
    )];
    // The persons service beside the collection (which alone would be
    // served by default).
    with.builtin.services = Some(Services::all());
    let server = spawn(with).await;
    let mut locations = server.subscribe("/location-events?revision=1", &[]).await;
    let mut cities = server
        .subscribe("/derived/cities/events?revision=1", &[])
        .await;
    type Step = (&'static str, &'static str, &'static str, Option<Value>);
    // (method, seed path, collection path, body): the seed's reference
    // table (tests/it/persons_and_locations.rs), then moves between cities.
    let steps: Vec<Step> = vec![
        (
            "POST",
            "/persons",
            "/collections/people/items/1",
            Some(json!({"name":"Ann","city":"Rome"})),
        ),
        (
            "POST",
            "/persons",
            "/collections/people/items/2",
            Some(json!({"name":"Bob"})),
        ),
        (
            "PATCH",
            "/persons/2",
            "/collections/people/items/2",
            Some(json!({"city":"Rome"})),
        ),
        (
            "PATCH",
            "/persons/1",
            "/collections/people/items/1",
            Some(json!({"city":null})),
        ),
        ("DELETE", "/persons/2", "/collections/people/items/2", None),
        (
            "POST",
            "/persons",
            "/collections/people/items/3",
            Some(json!({"name":"Cy","city":"Paris"})),
        ),
        (
            "PATCH",
            "/persons/1",
            "/collections/people/items/1",
            Some(json!({"city":"Paris"})),
        ),
        (
            "PATCH",
            "/persons/3",
            "/collections/people/items/3",
            Some(json!({"city":"Oslo"})),
        ),
        (
            "PATCH",
            "/persons/3",
            "/collections/people/items/3",
            Some(json!({"name":"Cyd"})),
        ),
        (
            "PATCH",
            "/persons/1",
            "/collections/people/items/1",
            Some(json!({"city":"Oslo"})),
        ),
        ("DELETE", "/persons/3", "/collections/people/items/3", None),
    ];
    for (i, (method, seed, mine, body)) in steps.into_iter().enumerate() {
        write(&server, method, seed, body.clone()).await;
        let method = if method == "POST" { "PUT" } else { method };
        write(&server, method, mine, body).await;
        let (l_rev, l_view) = snapshot(&server, "/locations").await;
        let (c_rev, c_view) = snapshot(&server, "/derived/cities").await;
        assert_eq!((c_rev, &c_view), (l_rev, &l_view), "step {}", i + 1);
        if i == 4 {
            assert_eq!((c_rev, c_view), (4, json!({})), "after the reference table");
        }
    }
    let (last, _) = snapshot(&server, "/locations").await;
    let want = changes_until(&mut locations, last).await;
    assert_eq!(changes_until(&mut cities, last).await, want);
    assert_eq!(
        want[4..],
        [
            (5, json!({"Paris":{"total":1}})),
            (6, json!({"Paris":{"total":2}})),
            (7, json!({"Paris":{"total":1},"Oslo":{"total":1}})),
            (8, json!({"Paris":null,"Oslo":{"total":2}})),
            (9, json!({"Oslo":{"total":1}})),
        ]
    );
    assert!(cities.quiet_for(Duration::from_millis(200)).await);
    let openapi = server.get_json("/openapi.json").await;
    let doc = &openapi["paths"]["/derived/cities"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["additionalProperties"];
    assert_eq!(doc["properties"]["total"]["type"], "integer", "{doc}");
    assert!(openapi["paths"]["/derived/cities/events"].is_object());
}

// ------------------------------------------------- the property, over HTTP

/// The derived views of the property test, over the collection `t`.
fn views() -> Vec<DerivedSpec> {
    vec![
        derived(
            "by-g",
            json!({"from": "t", "group_by": "/g", "count": "n", "sum": {"s": "/v"},
                   "min": {"lo": "/v"}, "max": {"hi": "/v"}}),
        ),
        derived(
            "top-s",
            json!({"from": "t", "group_by": "/g", "count": "n", "sum": {"s": "/v"},
                   "top": {"by": "s", "limit": 3}}),
        ),
        derived(
            "top-n",
            json!({"from": "t", "group_by": "/g", "count": "n", "top": {"by": "n", "limit": 2}}),
        ),
        derived(
            "by-w",
            json!({"from": "t", "group_by": "/w", "max": {"hi": "/v"}, "min": {"lo": "/v"}}),
        ),
    ]
}

/// A number of the test's documents, for ordering: integers and floats
/// that are exact in binary, so a plain sum is exact too.
fn as_f64(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// The derived view `spec` computed from the collection's documents,
/// independently of the server's code.
fn expected(spec: &DerivedSpec, docs: &Map<String, Value>) -> Value {
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for doc in docs.values() {
        let key = match doc.pointer(spec.group_by.as_str()) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        groups.entry(key).or_default().push(doc);
    }
    let mut rows: Vec<(String, Map<String, Value>)> = Vec::new();
    for (key, members) in groups {
        let numbers = |pointer: &str| -> Vec<&Value> {
            members
                .iter()
                .filter_map(|d| d.pointer(pointer))
                .filter(|v| v.is_number())
                .collect()
        };
        let mut doc = Map::new();
        if let Some(count) = &spec.count {
            doc.insert(count.clone(), json!(members.len()));
        }
        for (member, pointer) in &spec.sum {
            let terms = numbers(pointer.as_str());
            let sum = if terms.iter().all(|t| t.is_i64()) {
                json!(terms.iter().map(|t| t.as_i64().unwrap()).sum::<i64>())
            } else {
                json!(terms.iter().map(|t| as_f64(t)).sum::<f64>())
            };
            doc.insert(member.clone(), sum);
        }
        for (member, pointer) in &spec.min {
            let least = numbers(pointer.as_str())
                .into_iter()
                .min_by(|a, b| as_f64(a).total_cmp(&as_f64(b)));
            if let Some(least) = least {
                doc.insert(member.clone(), least.clone());
            }
        }
        for (member, pointer) in &spec.max {
            let most = numbers(pointer.as_str())
                .into_iter()
                .max_by(|a, b| as_f64(a).total_cmp(&as_f64(b)));
            if let Some(most) = most {
                doc.insert(member.clone(), most.clone());
            }
        }
        rows.push((key, doc));
    }
    if let Some(Top { by, limit }) = &spec.top {
        rows.sort_by(|(ka, a), (kb, b)| as_f64(&b[by]).total_cmp(&as_f64(&a[by])).then(ka.cmp(kb)));
        rows.truncate(*limit);
        for (rank, (_, doc)) in rows.iter_mut().enumerate() {
            doc.insert("rank".into(), json!(rank + 1));
        }
    }
    Value::Object(
        rows.into_iter()
            .map(|(k, d)| (k, Value::Object(d)))
            .collect(),
    )
}

/// Every derived view of `server` equals the same aggregate of its
/// collection, read at the same revision of the collection.
async fn check_views(server: &TestServer, specs: &[DerivedSpec]) -> Result<(), String> {
    check_views_within(server, specs, 0).await
}

/// [`check_views`], trying `settle` more times: a server publishes other
/// servers' commits shortly after they commit, each view on its own.
async fn check_views_within(
    server: &TestServer,
    specs: &[DerivedSpec],
    settle: usize,
) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match check_once(server, specs).await {
            Err(e) if tries < settle => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

async fn check_once(server: &TestServer, specs: &[DerivedSpec]) -> Result<(), String> {
    for _ in 0..50 {
        let (before, docs) = snapshot(server, "/collections/t").await;
        let mut views = Vec::new();
        for spec in specs {
            views.push(snapshot(server, &spec.path()).await.1);
        }
        let (after, _) = snapshot(server, "/collections/t").await;
        if before != after {
            // Another server wrote in between: read again.
            continue;
        }
        let docs = docs.as_object().unwrap();
        for (spec, view) in specs.iter().zip(views) {
            let want = expected(spec, docs);
            if view != want {
                return Err(format!(
                    "{} at collection revision {before}: {view} instead of {want}",
                    spec.name
                ));
            }
        }
        return Ok(());
    }
    Err("the collection never stood still".into())
}

/// One write to the collection `t`: (method, key, body).
type Op = (&'static str, String, Option<Value>);

fn op() -> impl Strategy<Value = Op> {
    let key = (0..8usize).prop_map(|k| format!("k{k}"));
    let group = prop::sample::select(vec![
        json!("a"),
        json!("b"),
        json!("c"),
        json!(1),
        json!(true),
        Value::Null,
    ]);
    let number = prop::sample::select(vec![
        json!(1),
        json!(2),
        json!(5),
        json!(-3),
        json!(0.5),
        json!(2.25),
        json!("7"),
        Value::Null,
    ]);
    let body = (
        group.clone(),
        number,
        prop::sample::select(vec![json!(1), json!(2.5), json!(false), Value::Null]),
    )
        .prop_map(|(g, v, w)| {
            let mut doc = Map::new();
            for (name, value) in [("g", g), ("v", v), ("w", w)] {
                if !value.is_null() {
                    doc.insert(name.into(), value);
                }
            }
            doc
        });
    prop_oneof![
        4 => (key.clone(), body.clone()).prop_map(|(k, d)| ("PUT", k, Some(Value::Object(d)))),
        // A merge patch may remove members too.
        2 => (key.clone(), body, group).prop_map(|(k, mut d, g)| {
            if g.is_null() {
                d.insert("g".into(), Value::Null);
            }
            ("PATCH", k, Some(Value::Object(d)))
        }),
        1 => key.prop_map(|k| ("DELETE", k, None)),
    ]
}

/// Sends `op` (a PATCH or DELETE of a missing key is a 404 that changes
/// nothing).
async fn send(server: &TestServer, (method, key, body): &Op) {
    let r = server
        .send(method, &format!("/collections/t/items/{key}"), body.clone())
        .await;
    assert!(
        r.status().is_success() || r.status() == 404,
        "{method} {key}: {}",
        r.status()
    );
}

/// Each derived view's stream from its first revision folds into its
/// snapshot, with gapless ids.
async fn check_streams(server: &TestServer, specs: &[DerivedSpec]) {
    for spec in specs {
        let (revision, view) = snapshot(server, &spec.path()).await;
        if revision == 0 {
            assert_eq!(view, json!({}));
            continue;
        }
        let mut sse = server
            .subscribe(&format!("{}?revision=1", spec.events_path()), &[])
            .await;
        let changes = changes_until(&mut sse, revision).await;
        let ids: Vec<u64> = changes.iter().map(|(r, _)| *r).collect();
        assert_eq!(ids, (1..=revision).collect::<Vec<_>>(), "{}", spec.name);
        let patches: Vec<Value> = changes.into_iter().map(|(_, p)| p).collect();
        assert_eq!(fold(json!({}), &patches), view, "{}", spec.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_derived_view_equals_the_aggregate_of_the_collection_at_every_revision(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let specs = views();
            let server = spawn(settings(Database::Sqlite(Location::Memory), &["t"], specs.clone())).await;
            for op in &ops {
                send(&server, op).await;
                check_views(&server, &specs).await.map_err(TestCaseError::fail)?;
            }
            check_streams(&server, &specs).await;
            server.stop().await.unwrap();
            Ok::<(), TestCaseError>(())
        })?;
    }
}

// ------------------------------------------------ restarts and PostgreSQL

/// Random writes from a seed, without proptest (for the servers below).
fn ops_from(seed: u64, n: usize) -> Vec<Op> {
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &[seed as u8; 32],
        ),
    );
    let strategy = prop::collection::vec(op(), n);
    strategy.new_tree(&mut runner).unwrap().current()
}

#[tokio::test]
async fn after_a_restart_the_derived_views_are_rebuilt_from_the_collection_and_one_declared_since_is_filled()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = Database::Sqlite(Location::File(dir.path().join("d.db")));
    let specs = views();
    let server = spawn(settings(file.clone(), &["t"], specs.clone())).await;
    for op in ops_from(1, 80) {
        send(&server, &op).await;
    }
    check_views(&server, &specs).await.unwrap();
    let (top_revision, top) = snapshot(&server, "/derived/top-s").await;
    server.stop().await.unwrap();

    // The same declarations: nothing to rewrite, so no event.
    let server = spawn(settings(file.clone(), &["t"], specs.clone())).await;
    check_views(&server, &specs).await.unwrap();
    assert_eq!(
        snapshot(&server, "/derived/top-s").await,
        (top_revision, top)
    );
    for op in ops_from(2, 40) {
        send(&server, &op).await;
        check_views(&server, &specs).await.unwrap();
    }
    check_streams(&server, &specs).await;
    server.stop().await.unwrap();

    // A view declared since, and one whose declaration changed.
    let mut changed = specs.clone();
    changed[2] = derived(
        "top-n",
        json!({"from": "t", "group_by": "/w", "count": "n", "top": {"by": "n", "limit": 2}}),
    );
    changed.push(derived(
        "new",
        json!({"from": "t", "group_by": "/v", "count": "n"}),
    ));
    let (before, _) = snapshot_of_file(&file, &specs).await;
    let server = spawn(settings(file.clone(), &["t"], changed.clone())).await;
    check_views(&server, &changed).await.unwrap();
    let (after, _) = snapshot(&server, "/derived/top-n").await;
    assert_eq!(
        after,
        before + 1,
        "a changed declaration is rewritten in one event"
    );
    check_streams(&server, &changed).await;
    server.stop().await.unwrap();
}

/// The revision and document of `top-n` in the database `file`, read by
/// a server started and stopped for it.
async fn snapshot_of_file(file: &Database, specs: &[DerivedSpec]) -> (u64, Value) {
    let server = spawn(settings(file.clone(), &["t"], specs.to_vec())).await;
    let at = snapshot(&server, "/derived/top-n").await;
    server.stop().await.unwrap();
    at
}

#[tokio::test]
async fn two_servers_on_one_postgresql_database_keep_the_same_derived_views_and_a_restart_rebuilds_them()
 {
    let url = crate::common::pg::shared().database().await;
    let db = Database::Postgres(url.clone());
    let specs = views();
    let a = spawn(settings(db.clone(), &["t"], specs.clone())).await;
    let b = spawn(settings(db.clone(), &["t"], specs.clone())).await;
    // Writers on both servers at once, on the same keys and groups.
    let (wa, wb) = tokio::join!(
        async {
            for op in ops_from(3, 60) {
                send(&a, &op).await;
            }
        },
        async {
            for op in ops_from(4, 60) {
                send(&b, &op).await;
            }
        }
    );
    let ((), ()) = (wa, wb);
    let (last, _) = snapshot(&a, "/collections/t").await;
    for server in [&a, &b] {
        // Each server publishes the other's commits too; wait for them.
        for _ in 0..100 {
            if snapshot(server, "/collections/t").await.0 == last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        check_views_within(server, &specs, 200).await.unwrap();
        check_streams(server, &specs).await;
    }
    for spec in &specs {
        assert_eq!(
            snapshot(&a, &spec.path()).await,
            snapshot(&b, &spec.path()).await,
            "{}",
            spec.name
        );
    }
    // One server goes on alone, then a third starts on the database.
    b.stop().await.unwrap();
    for op in ops_from(5, 30) {
        send(&a, &op).await;
    }
    let c = spawn(settings(db.clone(), &["t"], specs.clone())).await;
    for op in ops_from(6, 30) {
        send(&c, &op).await;
        send(&a, &op).await;
    }
    let (last, _) = snapshot(&c, "/collections/t").await;
    for server in [&a, &c] {
        for _ in 0..100 {
            if snapshot(server, "/collections/t").await.0 >= last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        check_views_within(server, &specs, 200).await.unwrap();
        check_streams(server, &specs).await;
    }
    a.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_derived_view_is_filtered_and_long_polled_like_every_view() {
    let specs = views();
    let server = spawn(settings(Database::Sqlite(Location::Memory), &["t"], specs)).await;
    write(
        &server,
        "PUT",
        "/collections/t/items/k1",
        Some(json!({"g": "a", "v": 1})),
    )
    .await;
    write(
        &server,
        "PUT",
        "/collections/t/items/k2",
        Some(json!({"g": "b", "v": 2})),
    )
    .await;
    write(
        &server,
        "PUT",
        "/collections/t/items/k3",
        Some(json!({"g": "b", "v": 5})),
    )
    .await;
    let (_, only_a) = snapshot(&server, "/derived/by-g?key=a").await;
    assert_eq!(only_a, json!({"a": {"n": 1, "s": 1, "lo": 1, "hi": 1}}));
    let where_two = urlencode(r#"{"n":2}"#);
    let (_, pairs) = snapshot(&server, &format!("/derived/by-g?where={where_two}")).await;
    assert_eq!(pairs, json!({"b": {"n": 2, "s": 7, "lo": 2, "hi": 5}}));
    let r = server
        .get("/derived/by-g/events?mode=poll&after=1&wait=0")
        .await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let changes: Vec<(u64, Value)> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["revision"].as_u64().unwrap(), c["patch"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (2, json!({"b": {"n": 1, "s": 2, "lo": 2, "hi": 2}})),
            (3, json!({"b": {"n": 2, "s": 7, "hi": 5}})),
        ]
    );
    let r = server.get("/derived/by-g?nope=1").await;
    assert_eq!(r.status(), 400, "an unknown parameter");
    server.stop().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
