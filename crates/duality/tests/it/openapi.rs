//! `/openapi.json` documents what this process serves: every registered
//! view's snapshot and stream (and all of them over one connection, at
//! `/streams`), with no further code, and the service's own
//! routes as it describes them; nothing it does not serve.

use crate::common::spawn_default;
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_names_each_views_snapshot_and_stream() {
    let server = spawn_default().await;
    let doc: Value = server.get_json("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (snapshot, stream) in [("/notes", "/note-events"), ("/tags", "/tag-events")] {
        let get = &paths[snapshot]["get"];
        let ok = &get["responses"]["200"];
        for h in ["X-Revision", "X-Epoch", "ETag", "Link"] {
            assert!(ok["headers"].get(h).is_some(), "{h} of {snapshot}");
        }
        assert!(get["responses"].get("304").is_some(), "{snapshot}");
        let events = &paths[stream]["get"];
        assert!(
            events["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some(),
            "{stream}: {events}"
        );
        assert!(events["responses"].get("410").is_some(), "{stream}");
    }
    // Both views over one connection, by name.
    let multiplexed = &paths["/streams"]["get"];
    assert!(
        multiplexed["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "{multiplexed}"
    );
    let s = &multiplexed["parameters"][0];
    assert_eq!(s["name"], "s", "{s}");
    assert_eq!(
        s["schema"]["items"]["pattern"],
        "^[A-Za-z0-9_-]{1,32}:(notes|tags)$"
    );
    // The service's own routes, as it documents them.
    for method in ["get", "put", "delete"] {
        assert!(paths["/notes/{key}"].get(method).is_some(), "{method}");
    }
    assert!(paths["/notes"].get("post").is_some(), "POST beside GET");
    assert!(paths["/tags/{tag}/notes"].get("post").is_some());
    // The engine's probes, and nothing this process does not serve.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(paths.contains_key(path), "{path}");
    }
    for path in paths.keys() {
        assert!(
            !["/elsewhere", "/elsewhere-events"].contains(&path.as_str())
                && !path.starts_with("/person"),
            "{path} is documented but not served"
        );
    }
    // A route the service serves but does not describe is listed with
    // what its path says, and marked so.
    let undescribed = &paths["/elsewhere/{key}"];
    assert_eq!(undescribed["x-duality-undescribed"], true, "{undescribed}");
    assert_eq!(undescribed["parameters"][0]["name"], "key", "{undescribed}");
    assert!(undescribed.get("get").is_none(), "{undescribed}");
}
