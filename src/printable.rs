//! Text that clients stored, made safe to print on a terminal (docs/PROTOCOL.md, "Security model").
//!
//! A stored string can carry control characters: ANSI/OSC escape
//! sequences that retitle, recolour or rewrite an operator's terminal, C1
//! controls that some terminals obey as well, and bidirectional overrides
//! that make the text read differently from what it is. Every such
//! character is shown as an escape (`\u{1b}`) instead of being sent.

use std::fmt::Write;

/// True for characters a terminal may act on instead of showing: C0, DEL
/// and C1 controls, and the bidirectional formatting characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as `\u{hex}`.
pub fn escaped(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Serialized JSON with the unsafe characters that serde_json leaves as
/// they are (DEL, C1, bidirectional controls) written as `\uXXXX`. They
/// can only occur inside strings, where that escape means the same
/// character, so the document is unchanged for a JSON reader.
pub fn json_escaped(json: &str) -> String {
    if !json.chars().any(is_unsafe_in_json) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe_in_json(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unsafe characters other than the layout (`\n`, `\t`, `\r`) of pretty
/// JSON; serde_json already escapes the rest of C0 inside strings.
fn is_unsafe_in_json(c: char) -> bool {
    is_unsafe(c) && !matches!(c, '\n' | '\t' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_and_controls_are_shown_not_sent() {
        assert_eq!(escaped("Ann"), "Ann");
        assert_eq!(escaped("Zoë 日本"), "Zoë 日本");
        assert_eq!(escaped("\u{1b}]0;pwned\u{7}x"), "\\u{1b}]0;pwned\\u{7}x");
        assert_eq!(escaped("a\nb\tc\u{7f}"), "a\\u{a}b\\u{9}c\\u{7f}");
        assert_eq!(escaped("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escaped("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn json_stays_the_same_document_without_unsafe_characters() {
        let value = json!({"name": "\u{1b}[31mred\u{7f}\u{9b}\u{2066}", "ok": "Zoë"});
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_escaped(&pretty);
        assert!(!safe.chars().any(is_unsafe_in_json), "{safe}");
        assert!(safe.contains('\n'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}
