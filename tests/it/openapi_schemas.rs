//! The OpenAPI document describes what the views and lists really answer:
//! each snapshot and list has a named item schema in `components/schemas`
//! (keyed views as `additionalProperties` maps), no object in them is left
//! as a bare `{"type": "object"}`, and the documents the server answers
//! with the demo data have exactly the fields their schema names. The
//! document names its server relative to where it was fetched.

use duality_services::Builtin;
use duality_services::Settings;
use serde_json::{Value, json};

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Every object reachable from `schema` says what it holds.
fn check_described(doc: &Value, schema: &Value, at: &str, bare: &mut Vec<String>) {
    let s = resolve(doc, schema);
    if s.get("type") == Some(&json!("object")) {
        let props = s.get("properties").and_then(Value::as_object);
        let extra = s.get("additionalProperties").filter(|v| v.is_object());
        if props.is_none() && extra.is_none() {
            bare.push(at.to_string());
        }
        for (name, p) in props.into_iter().flatten() {
            check_described(doc, p, &format!("{at}.{name}"), bare);
        }
        if let Some(extra) = extra {
            check_described(doc, extra, &format!("{at}[*]"), bare);
        }
    }
    if let Some(items) = s.get("items") {
        check_described(doc, items, &format!("{at}[]"), bare);
    }
}

/// The fields of `value` are those `schema` names: every required one,
/// no other one (recursing into maps, arrays and objects).
fn check_fields(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let s = resolve(doc, schema);
    match value {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for key in map.keys() {
                    assert!(
                        props.contains_key(key),
                        "{at}: {key} is not in the schema {s}"
                    );
                }
                for key in s["required"].as_array().into_iter().flatten() {
                    let key = key.as_str().unwrap();
                    assert!(map.contains_key(key), "{at}: no {key} in {value}");
                }
                for (key, v) in map {
                    check_fields(doc, &props[key], v, &format!("{at}.{key}"));
                }
            } else {
                let extra = &s["additionalProperties"];
                assert!(
                    extra.is_object(),
                    "{at}: the schema {s} says nothing of {value}"
                );
                for (key, v) in map {
                    check_fields(doc, extra, v, &format!("{at}[{key}]"));
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_fields(doc, &s["items"], v, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn each_view_and_list_has_its_item_schema_and_the_demo_data_matches_it() {
    let server = crate::common::spawn(Settings {
        builtin: Builtin {
            demo_data: true,
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let doc = server.get_json("/openapi.json").await;
    let answer = |path: &str| {
        doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            .clone()
    };

    // Snapshots: a named component; a keyed view's is a map of items.
    for (path, keyed) in [
        ("/persons", true),
        ("/locations", true),
        ("/customers", true),
        ("/incidents", true),
        ("/aggregates/dashboard", false),
    ] {
        let schema = answer(path);
        let name = schema["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {schema}"));
        assert!(name.starts_with("#/components/schemas/"), "{path}: {name}");
        let view = resolve(&doc, &schema);
        if keyed {
            let item = &view["additionalProperties"];
            assert!(
                item["$ref"].is_string(),
                "{path}: items are not named: {view}"
            );
            assert!(
                resolve(&doc, item)["properties"].is_object(),
                "{path}: {item}"
            );
        }
    }
    let lists = [
        "/customers/items",
        "/customers/top/{limit}",
        "/customers/count",
        "/incidents/items",
        "/incidents/grouped-by-customer",
        "/aggregates/dashboard/composed",
    ];
    let mut bare = Vec::new();
    for path in [
        "/persons",
        "/locations",
        "/customers",
        "/incidents",
        "/aggregates/dashboard",
    ]
    .into_iter()
    .chain(lists)
    {
        check_described(&doc, &answer(path), path, &mut bare);
    }
    assert!(bare.is_empty(), "objects with no item schema: {bare:?}");

    // What the server answers has the fields its schema names.
    for (path, concrete) in [
        ("/persons", "/persons"),
        ("/locations", "/locations"),
        ("/customers", "/customers"),
        ("/incidents", "/incidents"),
        ("/aggregates/dashboard", "/aggregates/dashboard"),
        ("/customers/items", "/customers/items"),
        ("/customers/top/{limit}", "/customers/top/3"),
        ("/customers/count", "/customers/count"),
        ("/incidents/items", "/incidents/items"),
        (
            "/incidents/grouped-by-customer",
            "/incidents/grouped-by-customer",
        ),
    ] {
        let value = server.get_json(concrete).await;
        let empty = value.as_object().is_some_and(|m| m.is_empty())
            || value.as_array().is_some_and(|a| a.is_empty());
        assert!(!empty, "{concrete} is empty with the demo data");
        check_fields(&doc, &answer(path), &value, concrete);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_document_names_the_server_it_came_from_relatively() {
    let server = crate::common::spawn_default().await;
    let doc = server.get_json("/openapi.json").await;
    assert_eq!(doc["servers"][0]["url"], json!("/"), "{}", doc["servers"]);
    // Relative to where the document was fetched, it is this server.
    let base = reqwest::Url::parse(&server.url("/openapi.json"))
        .unwrap()
        .join(doc["servers"][0]["url"].as_str().unwrap())
        .unwrap();
    let r = server
        .client
        .get(base.join("healthz").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await.unwrap();
}

/// A built-in service that adds a route without describing it would leave
/// it in the document with only its path (`x-duality-undescribed`): every
/// route of every built-in service, those added at start included, is
/// described.
#[tokio::test]
async fn every_route_of_the_built_in_services_is_described() {
    let server = crate::common::spawn(Settings {
        builtin: Builtin {
            demo_data: true,
            collections: vec![duality_services::settings::parse_collection("notes").unwrap()],
            // Collections alone would run without the built-in services.
            services: Some(duality_services::settings::Services::all()),
            ..Builtin::default()
        },
        ..Settings::ephemeral()
    })
    .await;
    let doc: Value = server.get("/openapi.json").await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/persons",
        "/customers/items/{id}",
        "/customers/top/{limit}",
        "/incidents/grouped-by-customer",
        "/aggregates/dashboard/composed",
        "/collections/notes/items/{key}",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
    let undescribed: Vec<&String> = paths
        .iter()
        .filter(|(_, item)| item.get("x-duality-undescribed").is_some())
        .map(|(path, _)| path)
        .collect();
    assert!(undescribed.is_empty(), "undescribed: {undescribed:?}");
    server.stop().await.unwrap();
}
