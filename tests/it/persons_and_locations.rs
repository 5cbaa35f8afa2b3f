//! README, "What it serves" over real HTTP: the reference sequence, row by row, on both the
//! aggregates and the streams.

use crate::common::{locations_of, revision_of, spawn_default};
use serde_json::{Value, json};

#[tokio::test]
async fn the_reference_sequence_gives_the_specified_views_events_and_revisions() {
    let server = spawn_default().await;
    let mut persons = server.subscribe("/person-events?revision=1", &[]).await;
    let mut locations = server.subscribe("/location-events?revision=1", &[]).await;

    // (method, path, body, persons view after, locations view after,
    //  persons event, locations event)
    type Row = (
        &'static str,
        &'static str,
        Option<Value>,
        Value,
        Value,
        Option<Value>,
        Option<Value>,
    );
    let rows: Vec<Row> = vec![
        (
            "POST",
            "/persons",
            Some(json!({"name":"Ann","city":"Rome"})),
            json!({"1":{"name":"Ann","city":"Rome"}}),
            json!({"Rome":{"total":1}}),
            Some(json!({"1":{"name":"Ann","city":"Rome"}})),
            Some(json!({"Rome":{"total":1}})),
        ),
        (
            "POST",
            "/persons",
            Some(json!({"name":"Bob"})),
            json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob"}}),
            json!({"Rome":{"total":1}}),
            Some(json!({"2":{"name":"Bob"}})),
            None,
        ),
        (
            "PATCH",
            "/persons/2",
            Some(json!({"city":"Rome"})),
            json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob","city":"Rome"}}),
            json!({"Rome":{"total":2}}),
            Some(json!({"2":{"city":"Rome"}})),
            Some(json!({"Rome":{"total":2}})),
        ),
        (
            "PATCH",
            "/persons/1",
            Some(json!({"city":null})),
            json!({"1":{"name":"Ann"},"2":{"name":"Bob","city":"Rome"}}),
            json!({"Rome":{"total":1}}),
            Some(json!({"1":{"city":null}})),
            Some(json!({"Rome":{"total":1}})),
        ),
        (
            "DELETE",
            "/persons/2",
            None,
            json!({"1":{"name":"Ann"}}),
            json!({}),
            Some(json!({"2":null})),
            Some(json!({"Rome":null})),
        ),
    ];
    let (mut p_rev, mut l_rev) = (0, 0);
    for (i, (method, path, body, p_view, l_view, p_event, l_event)) in rows.into_iter().enumerate()
    {
        let row = i + 1;
        let r = server.send(method, path, body).await;
        assert!(r.status().is_success(), "row {row}: {}", r.status());
        if let Some(expected) = p_event {
            p_rev += 1;
            assert_eq!(persons.change().await, (p_rev, expected), "row {row}");
        }
        if let Some(expected) = l_event {
            l_rev += 1;
            assert_eq!(locations.change().await, (l_rev, expected), "row {row}");
        }
        assert_eq!(revision_of(&r), p_rev, "X-Revision of row {row}");
        let p = server.get("/persons").await;
        assert_eq!(revision_of(&p), p_rev, "row {row}");
        assert_eq!(
            p.json::<Value>().await.unwrap(),
            p_view,
            "persons after row {row}"
        );
        let l = server.get("/locations").await;
        assert_eq!(revision_of(&l), l_rev, "row {row}");
        assert_eq!(
            l.json::<Value>().await.unwrap(),
            l_view,
            "locations after row {row}"
        );
    }
    assert_eq!((p_rev, l_rev), (5, 4));
    // Row 2 changed no location: nothing more is pending on that stream.
    assert!(
        locations
            .quiet_for(std::time::Duration::from_millis(200))
            .await
    );
}

#[tokio::test]
async fn writes_answer_the_specified_status_codes_headers_and_bodies() {
    let server = spawn_default().await;
    let r = server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/persons/1");
    assert_eq!(revision_of(&r), 1);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id":1,"name":"Ann","city":"Rome"})
    );

    assert_eq!(
        server.get_json("/persons/1").await,
        json!({"id":1,"name":"Ann","city":"Rome"})
    );
    assert_eq!(server.get("/persons/2").await.status(), 404);
    assert_eq!(server.get_json("/locations/Rome").await, json!({"total":1}));
    assert_eq!(server.get("/locations/Paris").await.status(), 404);

    let r = server
        .send("PATCH", "/persons/1", Some(json!({"name":"Anna"})))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(revision_of(&r), 2);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id":1,"name":"Anna","city":"Rome"})
    );

    let r = server.send("DELETE", "/persons/1", None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(revision_of(&r), 3);
    assert_eq!(
        server.send("DELETE", "/persons/1", None).await.status(),
        404
    );
    assert_eq!(
        server
            .send("PATCH", "/persons/1", Some(json!({})))
            .await
            .status(),
        404
    );

    // Ids are never reused, also not after a delete.
    let r = server.post("/persons", json!({"name":"Bob"})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["id"], json!(2));
}

#[tokio::test]
async fn a_write_that_changes_nothing_answers_the_current_revision_and_emits_no_event() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Rome"}))
        .await;
    let mut stream = server.subscribe("/person-events?revision=2", &[]).await;
    for body in [json!({}), json!({"name":"Ann"}), json!({"city":"Rome"})] {
        let r = server.send("PATCH", "/persons/1", Some(body.clone())).await;
        assert_eq!(r.status(), 200, "{body}");
        assert_eq!(revision_of(&r), 1, "{body}");
    }
    assert!(
        stream
            .quiet_for(std::time::Duration::from_millis(300))
            .await
    );
    let r = server
        .send("PATCH", "/persons/1", Some(json!({"name":"Anna"})))
        .await;
    assert_eq!(revision_of(&r), 2);
    assert_eq!(stream.change().await, (2, json!({"1":{"name":"Anna"}})));
}

#[tokio::test]
async fn moving_the_only_person_of_a_city_is_one_location_event() {
    let server = spawn_default().await;
    server
        .post("/persons", json!({"name":"Ann","city":"Paris"}))
        .await;
    let mut stream = server.subscribe("/location-events?revision=2", &[]).await;
    server
        .send("PATCH", "/persons/1", Some(json!({"city":"Oslo"})))
        .await;
    assert_eq!(
        stream.change().await,
        (2, json!({"Paris":null,"Oslo":{"total":1}}))
    );
    assert!(
        stream
            .quiet_for(std::time::Duration::from_millis(200))
            .await
    );
}

#[tokio::test]
async fn concurrent_writers_get_distinct_ids_and_exact_totals() {
    let server = std::sync::Arc::new(spawn_default().await);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let city = ["Rome", "Oslo", "Lima"][(t + i) % 3];
                let r = server
                    .post(
                        "/persons",
                        json!({"name": format!("p{t}-{i}"), "city": city}),
                    )
                    .await;
                assert_eq!(r.status(), 201);
                ids.push(r.json::<Value>().await.unwrap()["id"].as_u64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let persons = server.get_json("/persons").await;
    let locations = server.get_json("/locations").await;
    assert_eq!(locations, locations_of(&persons));
}
