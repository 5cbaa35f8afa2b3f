//! Field validation shared by the entity modules: typed readers over a JSON
//! object that produce a clear 400 message.

use serde_json::{Map, Value};

use super::write::Fault;

pub fn invalid(msg: impl Into<String>) -> Fault {
    Fault::Invalid(msg.into())
}

pub fn object(body: &Value) -> Result<&Map<String, Value>, Fault> {
    body.as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))
}

/// Refuses any field not in `known`.
pub fn only_known(fields: &Map<String, Value>, known: &[&str]) -> Result<(), Fault> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "unknown field `{unknown}`, expected one of: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A required, non-empty string.
pub fn text(field: &str, value: Option<&Value>) -> Result<String, Fault> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("{field} must not be empty"))),
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

/// A required integer in `min..=max`.
pub fn integer(field: &str, value: Option<&Value>, min: i64, max: i64) -> Result<i64, Fault> {
    let out_of_range = || invalid(format!("{field} must be an integer from {min} to {max}"));
    match value {
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(i),
            _ => Err(out_of_range()),
        },
        Some(_) => Err(out_of_range()),
    }
}

/// A required finite number ≥ 0.
pub fn amount(field: &str, value: Option<&Value>) -> Result<f64, Fault> {
    match value {
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(invalid(format!("{field} must be a number ≥ 0"))),
        },
        Some(_) => Err(invalid(format!("{field} must be a number ≥ 0"))),
    }
}

/// Parses a path id that must be a UUID; answers it in canonical form.
pub fn uuid(raw: &str) -> Result<String, Fault> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| invalid(format!("id must be a UUID, got `{raw}`")))
}

/// Applies a merge patch to an entity after checking that it names only
/// known fields and removes none (every field of these entities is
/// required, so `null` is refused).
pub fn patched(
    current: &Value,
    patch: &Value,
    known: &[&str],
) -> Result<Map<String, Value>, Fault> {
    let fields = object(patch)?;
    only_known(fields, known)?;
    if let Some((k, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(invalid(format!("{k} is required and cannot be removed")));
    }
    let mut doc = current.clone();
    super::merge::apply(&mut doc, patch);
    match doc {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("the body must be a JSON object")),
    }
}
