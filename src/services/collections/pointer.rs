//! Failing locations in error messages, as JSON Pointers (RFC 6901: `~`
//! is written `~0`, `/` is `~1`, and the empty string `""` is the whole
//! document, while `/` is the member with the empty key).
//!
//! Messages quote the pointer as a JSON string, so the root and keys with
//! spaces or colons read unambiguously.

use serde_json::Value;

/// `pointer` as a JSON string, for a message.
pub fn quoted(pointer: &str) -> String {
    Value::String(pointer.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_quoted_as_the_empty_string() {
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted("/a~1b"), r#""/a~1b""#);
    }
}
