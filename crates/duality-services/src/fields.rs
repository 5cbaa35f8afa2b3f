//! Field validation shared by the entity modules: typed readers over a JSON
//! object that produce a clear 400 message.

use serde_json::{Map, Value};

use duality::Error;

/// A `400` fault carrying `msg` as the client's error message.
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// The body as a JSON object's fields, or a `400` if it is anything else.
pub fn object(body: &Value) -> Result<&Map<String, Value>, Error> {
    body.as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))
}

/// Refuses any field not in `known`.
pub fn only_known(fields: &Map<String, Value>, known: &[&str]) -> Result<(), Error> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "unknown field `{unknown}`, expected one of: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A required, non-empty string.
pub fn text(field: &str, value: Option<&Value>) -> Result<String, Error> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("{field} must not be empty"))),
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

/// A required integer in `min..=max`. As in JSON Schema, a number with a
/// zero fractional part (`8.0`) is an integer.
pub fn integer(field: &str, value: Option<&Value>, min: i64, max: i64) -> Result<i64, Error> {
    let out_of_range = || invalid(format!("{field} must be an integer from {min} to {max}"));
    match value {
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if (min..=max).contains(&i) => Ok(i),
            (None, Some(x)) if x.fract() == 0.0 && (min as f64..=max as f64).contains(&x) => {
                Ok(x as i64)
            }
            _ => Err(out_of_range()),
        },
        Some(_) => Err(out_of_range()),
    }
}

/// Parses a path segment that must be a decimal integer of at least `min`
/// (digits only: no sign, no spaces).
pub fn path_integer(raw: &str, min: u64) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|n| *n >= min)
}

/// A required finite number ≥ 0.
pub fn amount(field: &str, value: Option<&Value>) -> Result<f64, Error> {
    match value {
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(invalid(format!("{field} must be a number ≥ 0"))),
        },
        Some(_) => Err(invalid(format!("{field} must be a number ≥ 0"))),
    }
}

/// Parses a path id that must be a UUID in its hyphenated form (as ids are
/// made and documented); answers it in canonical (lower-case) form.
pub fn uuid(raw: &str) -> Result<String, Error> {
    Some(raw)
        .filter(|r| r.len() == 36)
        .ok_or(())
        .and_then(|r| uuid::Uuid::try_parse(r).map_err(|_| ()))
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
) -> Result<Map<String, Value>, Error> {
    let fields = object(patch)?;
    only_known(fields, known)?;
    if let Some((k, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(invalid(format!("{k} is required and cannot be removed")));
    }
    let mut doc = current.clone();
    duality::merge::apply(&mut doc, patch);
    match doc {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("the body must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_whole_float_is_an_integer_as_in_json_schema() {
        assert_eq!(integer("s", Some(&json!(8.0)), 0, 10), Ok(8));
        assert_eq!(integer("s", Some(&json!(8)), 0, 10), Ok(8));
        for bad in [
            json!(8.5),
            json!(11.0),
            json!(-1.0),
            json!(1e300),
            json!("8"),
        ] {
            assert!(integer("s", Some(&bad), 0, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_integers_are_digits_only() {
        assert_eq!(path_integer("42", 1), Some(42));
        assert_eq!(path_integer("18446744073709551615", 1), Some(u64::MAX));
        for bad in ["", "+5", "-1", " 5", "0", "5.0", "18446744073709551616"] {
            assert_eq!(path_integer(bad, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_are_uuids_in_their_hyphenated_form_only() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(uuid(id).as_deref(), Ok(id));
        assert_eq!(uuid(&id.to_uppercase()).as_deref(), Ok(id));
        for bad in [
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0cg",
        ] {
            assert!(uuid(bad).is_err(), "{bad}");
        }
    }
}
