//! `Idempotency-Key` (docs/PROTOCOL.md, "Security model"): what a key is, and what is kept with it.
//!
//! A write made under a key stores, in the same transaction as its
//! documents and events, the key, a fingerprint of the request, and the
//! outcome its caller answered (the output and the revisions). A later write
//! under the same key does not run: with the same fingerprint it answers the
//! stored outcome and changes nothing; with another it is refused. Because
//! the key is stored with the write, this holds across processes on one
//! database and for a client that retries after a write that timed out but
//! committed.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The longest key a client may send.
pub const MAX_KEY_LEN: usize = 255;

/// A checked key, scoped to the route it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// `route key`: a key is only compared with keys sent to the same route.
    pub scoped: String,
    /// A digest of the request the key was sent with (route and body).
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// Checks a client's key (1 to [`MAX_KEY_LEN`] visible ASCII characters)
    /// and fingerprints the request. `body` is the parsed JSON body: two
    /// bodies that differ only in whitespace or member order are the same.
    pub fn new(key: &str, route: &str, body: &Value) -> Result<Self, String> {
        check(key)?;
        let mut digest = Sha256::new();
        digest.update(route.as_bytes());
        digest.update([0]);
        digest.update(body.to_string().as_bytes());
        let fingerprint = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(IdempotencyKey {
            scoped: format!("{route} {key}"),
            fingerprint,
        })
    }
}

/// Refuses a key that is empty, too long, or not visible ASCII.
pub fn check(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("Idempotency-Key must be visible ASCII (no spaces)".into());
    }
    Ok(())
}

/// What the first write under a key answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// A digest of the first request, so that a reuse of the key with another
    /// request is told apart from a retry.
    pub fingerprint: String,
    /// The answer body the first write produced, replayed on a retry.
    pub output: Value,
    /// Every view the write declared (by name), with its revision after
    /// the write.
    pub revisions: Vec<(String, u64)>,
}

impl Outcome {
    /// The outcome as stored (JSON text, without the fingerprint, which is
    /// stored in its own column).
    pub fn encode(&self) -> String {
        let revisions: Map<String, Value> = self
            .revisions
            .iter()
            .map(|(v, r)| (v.clone(), json!(r)))
            .collect();
        json!({"output": self.output, "revisions": revisions}).to_string()
    }

    /// Reads a stored outcome; `None` if the text is not one.
    pub fn decode(fingerprint: String, text: &str) -> Option<Outcome> {
        let mut stored: Value = serde_json::from_str(text).ok()?;
        let mut revisions = Vec::new();
        for (name, revision) in stored.get("revisions")?.as_object()? {
            revisions.push((name.clone(), revision.as_u64()?));
        }
        revisions.sort();
        Some(Outcome {
            fingerprint,
            output: stored.get_mut("output")?.take(),
            revisions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        let body = json!({});
        assert!(IdempotencyKey::new("a-Key_1.~", "/persons", &body).is_ok());
        assert!(IdempotencyKey::new(&"k".repeat(MAX_KEY_LEN), "/persons", &body).is_ok());
        for bad in ["", "a b", "é", "tab\tkey", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert!(
                IdempotencyKey::new(bad, "/persons", &body).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_fingerprint_ignores_member_order_but_not_values_or_routes() {
        let fp = |route, body: &str| {
            IdempotencyKey::new("k", route, &serde_json::from_str(body).unwrap())
                .unwrap()
                .fingerprint
        };
        let ann = fp("/persons", r#"{"name":"Ann","city":"Rome"}"#);
        assert_eq!(ann, fp("/persons", r#"{ "city":"Rome", "name":"Ann" }"#));
        assert_ne!(ann, fp("/persons", r#"{"name":"Ann","city":"Oslo"}"#));
        assert_ne!(
            ann,
            fp("/customers/items", r#"{"name":"Ann","city":"Rome"}"#)
        );
    }

    #[test]
    fn an_outcome_round_trips_through_its_stored_text() {
        let outcome = Outcome {
            fingerprint: "f".into(),
            output: json!({"id": 3, "name": "Ann"}),
            revisions: vec![("persons".into(), 7), ("locations".into(), 2)],
        };
        let mut back = Outcome::decode("f".into(), &outcome.encode()).unwrap();
        back.revisions.sort();
        let mut want = outcome.clone();
        want.revisions.sort();
        assert_eq!(back, want);
        assert_eq!(Outcome::decode("f".into(), "not json"), None);
    }
}
