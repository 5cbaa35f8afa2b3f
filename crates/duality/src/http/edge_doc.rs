//! The edge in the OpenAPI document: what tokens and origins add to every
//! operation, for the server as it runs (a `401` is documented only where
//! this server asks for a token), so the document stays exact whatever
//! the flags.

use serde_json::{Map, Value, json};

use super::auth::{self, Needs};

fn error(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// Adds the answers and parameters of the edge to `doc`'s operations.
pub fn annotate(doc: &mut Value, needs: Needs, streams: &[&str]) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let write = matches!(method.as_str(), "post" | "patch" | "put" | "delete");
            let read = method == "get" && !auth::is_public(path);
            let guarded = (write && needs.write) || (read && needs.read);
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if write {
                responses.entry("403").or_insert_with(|| {
                    error("A write from a page of another origin (allowed only with --cors-allow-writes)")
                });
            }
            if !guarded {
                continue;
            }
            responses.entry("401").or_insert_with(|| {
                error("A missing or wrong bearer token (WWW-Authenticate: Bearer)")
            });
            let stream = streams.contains(&path.as_str());
            operation["security"] = if stream {
                json!([{"bearer": []}, {"accessToken": []}])
            } else {
                json!([{"bearer": []}])
            };
        }
    }
    if needs.read || needs.write {
        let components = doc
            .as_object_mut()
            .map(|d| d.entry("components").or_insert_with(|| json!({})));
        if let Some(Value::Object(components)) = components {
            let schemes = components
                .entry("securitySchemes")
                .or_insert_with(|| Value::Object(Map::new()));
            schemes["bearer"] = json!({"type": "http", "scheme": "bearer"});
            schemes["accessToken"] = json!({
                "type": "apiKey", "in": "query", "name": "access_token",
                "description": "Streams only, for EventSource, which cannot send headers."
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({"paths": {
            "/persons": {"get": {"responses": {"200": {}}}, "post": {"responses": {"201": {}}}},
            "/person-events": {"get": {"responses": {"200": {}}}},
            "/healthz": {"get": {"responses": {"200": {}}}}
        }})
    }

    #[test]
    fn tokens_are_documented_only_where_this_server_asks_for_them() {
        let mut open = doc();
        annotate(&mut open, Needs::default(), &["/person-events"]);
        assert!(
            open["paths"]["/persons"]["post"]["responses"]
                .get("401")
                .is_none()
        );
        assert!(
            open["paths"]["/persons"]["post"]["responses"]
                .get("403")
                .is_some()
        );
        assert!(open.get("components").is_none());

        let mut guarded = doc();
        let needs = Needs {
            read: true,
            write: true,
        };
        annotate(&mut guarded, needs, &["/person-events"]);
        let paths = &guarded["paths"];
        for op in [
            &paths["/persons"]["get"],
            &paths["/persons"]["post"],
            &paths["/person-events"]["get"],
        ] {
            assert!(op["responses"].get("401").is_some(), "{op}");
        }
        assert_eq!(
            paths["/person-events"]["get"]["security"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(paths["/healthz"]["get"]["responses"].get("401").is_none());
        assert_eq!(
            guarded["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
