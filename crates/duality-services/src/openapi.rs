//! What the built-in services share to document their own paths in the
//! OpenAPI document: operations of the usual shapes (create, patch,
//! delete, read), the string and id patterns the services check, and the
//! schema of a snapshot of documents by key. The engine's module holds only
//! what it documents for every view.

use serde_json::{Value, json};

use duality::domain::idempotency::MAX_KEY_LEN;
use duality::domain::precondition::PATTERN;
pub use duality::http::openapi::{closed, error, revision_header, schema, unavailable};

/// A string with at least one character that is not white space, as the
/// server checks it (Rust's `char::is_whitespace`, the Unicode White_Space
/// property, spelled out so every regex dialect reads it the same).
const NON_BLANK: &str =
    r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A UUID in its hyphenated form, the only form ids are accepted in.
pub const UUID: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A string that is not blank, as the services check it.
pub fn text() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": NON_BLANK})
}

/// A required JSON request body.
pub fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// The answers every request with a JSON body can get besides its own.
pub fn body_errors(responses: &mut Value) {
    responses["413"] = error("The body is larger than 1 MiB.");
    responses["415"] = error("The body is not sent as `Content-Type: application/json`.");
}

/// The `Idempotency-Key` header of a creating request.
pub fn idempotency_key() -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
           "description": "Makes the request at most once: a repeat with the same key and body answers the first outcome (status, body, Location, X-Revision) and writes nothing. Keys are kept as long as events (the retention time).",
           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LEN, "pattern": "^[\\x21-\\x7e]+$"}})
}

/// The `If-Match` header of a conditional request.
pub fn if_match() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false,
           "description": "Do it only if the current ETag is one of these (`*`: if it exists); else 412 and nothing changes. Checked in the write's transaction.",
           "schema": {"type": "string", "pattern": PATTERN}})
}

/// The `If-None-Match` header of a conditional request.
pub fn if_none_match() -> Value {
    json!({"name": "If-None-Match", "in": "header", "required": false,
           "description": "Do it only if the current ETag is none of these (`*`: if it does not exist, so a PUT creates only); else 412 for a write, 304 for a read.",
           "schema": {"type": "string", "pattern": PATTERN}})
}

/// The `ETag` header of an answer about one document: the database's
/// epoch and the revision that last changed it.
pub fn etag_header() -> Value {
    json!({"required": true, "description": "\"EPOCH-REVISION\": the revision that last changed it",
           "schema": {"type": "string"}})
}

/// A creating `POST`: its answers and its `Idempotency-Key`.
pub fn create_op(tag: &str, summary: &str, body: Value, created: Value, location: &str) -> Value {
    let mut responses = json!({
        "201": {"description": "Created",
                "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write")),
                            "Location": {"required": true, "description": location, "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": created}}},
        "400": error("The body or the Idempotency-Key is invalid."),
        "409": error("A request with this Idempotency-Key is still being handled."),
        "422": error("This Idempotency-Key was already used with another body."),
        "503": unavailable()
    });
    body_errors(&mut responses);
    json!({"tags": [tag], "summary": summary, "parameters": [idempotency_key()],
           "requestBody": json_body(body), "responses": responses})
}

/// A merge-patching `PATCH` of one item.
pub fn patch_op(tag: &str, summary: &str, id: &Value, body: Value, after: Value) -> Value {
    let mut responses = json!({
        "200": {"description": "After the patch",
                "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write"))},
                "content": {"application/json": {"schema": after}}},
        "400": error("The patch or the id is invalid."),
        "404": error("No such id."),
        "503": unavailable()
    });
    body_errors(&mut responses);
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "requestBody": json_body(body), "responses": responses})
}

/// A `DELETE` of one item.
pub fn delete_op(tag: &str, summary: &str, id: &Value) -> Value {
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "responses": {"204": {"description": "Deleted",
                                 "headers": {"X-Revision": revision_header(true, &format!("The {tag} revision after the write"))}},
                         "400": error("Not a valid id."), "404": error("No such id."), "503": unavailable()}})
}

/// A `GET` of one item.
pub fn get_one(tag: &str, summary: &str, id: &Value, found: Value) -> Value {
    json!({"tags": [tag], "summary": summary, "parameters": [id],
           "responses": {"200": {"description": "Found", "content": {"application/json": {"schema": found}}},
                         "400": error("Not a valid id."), "404": error("No such id."), "503": unavailable()}})
}

/// A path item with one read-only `GET`.
pub fn read_op(tag: &str, summary: &str, params: Value, answer: Value, bad_param: bool) -> Value {
    let mut responses = json!({
        "200": {"description": summary, "content": {"application/json": {"schema": answer}}},
        "503": unavailable()
    });
    if bad_param {
        responses["400"] = error("Invalid parameter.");
    }
    json!({"get": {"tags": [tag], "summary": summary, "parameters": params, "responses": responses}})
}

/// A merge patch of an item whose fields are all required: any subset of
/// them, none `null`.
pub fn patch_of(properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

/// A snapshot of documents by key, keys matching `keys` if given.
pub fn keyed(keys: Option<&str>, item: &str) -> Value {
    let mut map = json!({"type": "object", "additionalProperties": schema(item)});
    if let Some(pattern) = keys {
        map["propertyNames"] = json!({"pattern": pattern});
    }
    map
}

#[cfg(test)]
mod tests {
    use crate::{aggregate, persons};

    #[test]
    fn every_view_names_its_snapshot_schema_and_no_name_is_used_twice() {
        let mut names = std::collections::HashSet::new();
        for own in [
            persons::openapi::persons(),
            persons::openapi::locations(),
            aggregate::openapi::customers(),
            aggregate::openapi::incidents(),
            aggregate::openapi::dashboard(),
        ] {
            assert!(names.insert(own.name));
            for (name, _) in own.parts {
                assert!(names.insert(name), "{name} twice");
            }
        }
        for engine in ["Error", "Gone"] {
            assert!(names.insert(engine), "{engine} is the engine's");
        }
    }
}
