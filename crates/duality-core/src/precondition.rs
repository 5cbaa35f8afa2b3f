//! Conditional requests on one document (RFC 9110, section 13):
//! `If-Match` and `If-None-Match`, as pure values.
//!
//! A document's entity tag is `"EPOCH-REVISION"`: the database's epoch and
//! the revision of its view that last changed the document. Revisions only
//! grow within an epoch, so the tag changes with every change of the
//! document and never comes back; a tag of another epoch (another
//! database, or one that started over) matches nothing.
//!
//! The headers are parsed at the edge into [`Preconditions`], and checked
//! by the write itself, inside its transaction, against the revision it
//! reads there ([`Draft::doc_revision`](crate::write::Draft::doc_revision)):
//! a concurrent writer cannot slip in between the check and the write.
//! A refused condition is a `412` and the write changes nothing.
//!
//! The order is RFC 9110's (section 13.2.2): `If-Match` first, then
//! `If-None-Match`. A read whose `If-None-Match` matches is answered `304`;
//! a write, `412`.

use crate::error::Error;

/// The entity tag of a document last changed at `revision` in the
/// database of `epoch`, quotes included (as the `ETag` header carries it).
pub fn etag(epoch: &str, revision: u64) -> String {
    format!("\"{epoch}-{revision}\"")
}

/// One entity tag of a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    /// `W/` was given: a weak tag never matches in `If-Match`.
    weak: bool,
    /// The opaque tag, quotes included.
    opaque: String,
}

/// What a header lists: `*` (any current document) or entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tags {
    Any,
    List(Vec<Tag>),
}

/// What one header line may hold, as a regular expression (for the
/// OpenAPI document): `*`, or a list of entity tags (`"…"` or `W/"…"`, of
/// visible ASCII but `"`) separated by commas, with optional spaces or
/// tabs around them. As RFC 9110 (5.6.1) asks of a recipient, empty list
/// elements are ignored, and an empty line is an empty list (which no
/// document matches). [`Tags::parse`] takes exactly this.
pub const PATTERN: &str =
    r#"^[ \t,]*(\*|(W/)?"[\x21\x23-\x7e]*"([ \t]*,[ \t,]*(W/)?"[\x21\x23-\x7e]*")*)?[ \t,]*$"#;

/// Strips spaces, tabs and commas (empty list elements) at the start.
fn skip_separators(mut text: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', rest @ ..] = text {
        text = rest;
    }
    text
}

/// Strips spaces and tabs (HTTP's optional white space) at the start.
fn skip_ows(mut text: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = text {
        text = rest;
    }
    text
}

/// Reads one entity tag at the start of `text`: the tag, and what follows.
fn entity_tag(text: &[u8]) -> Option<(Tag, &[u8])> {
    let (weak, quoted) = match text.strip_prefix(b"W/") {
        Some(after) => (true, after),
        None => (false, text),
    };
    let inner = quoted.strip_prefix(b"\"")?;
    let end = inner.iter().position(|&b| b == b'"')?;
    let opaque = &inner[..end];
    // etagc, in its ASCII part: %x21 / %x23-7E (RFC 9110, 8.8.3).
    if !opaque
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b))
    {
        return None;
    }
    let tag = Tag {
        weak,
        opaque: format!("\"{}\"", String::from_utf8_lossy(opaque)),
    };
    Some((tag, &inner[end + 1..]))
}

impl Tags {
    /// Parses the values of one header: each line [`PATTERN`]; `*` stands
    /// alone, on a line of its own, and with no tag in another line.
    fn parse<'a>(name: &str, values: impl IntoIterator<Item = &'a [u8]>) -> Result<Tags, Error> {
        let bad = || {
            Error::Invalid(format!(
                "{name}: expected `*` or entity tags such as \"abc-1\" (quoted, comma-separated)"
            ))
        };
        let mut tags = Vec::new();
        let mut any = false;
        for value in values {
            let mut rest = skip_separators(value);
            if let Some(after) = rest.strip_prefix(b"*") {
                if !skip_separators(after).is_empty() {
                    return Err(bad());
                }
                any = true;
                continue;
            }
            while !rest.is_empty() {
                let (tag, after) = entity_tag(rest).ok_or_else(bad)?;
                tags.push(tag);
                let after = skip_ows(after);
                if !(after.is_empty() || after.starts_with(b",")) {
                    return Err(bad());
                }
                rest = skip_separators(after);
            }
        }
        match (any, tags.is_empty()) {
            (true, false) => Err(Error::Invalid(format!(
                "{name}: `*` stands alone, without entity tags"
            ))),
            (true, true) => Ok(Tags::Any),
            (false, _) => Ok(Tags::List(tags)),
        }
    }

    /// Whether the tags match the current document's tag (`None`: there
    /// is no document); `strong` compares as `If-Match` does.
    fn matches(&self, current: Option<&str>, strong: bool) -> bool {
        let Some(current) = current else {
            return false;
        };
        match self {
            Tags::Any => true,
            Tags::List(tags) => tags
                .iter()
                .any(|t| t.opaque == current && !(strong && t.weak)),
        }
    }
}

/// What a conditional read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The conditions hold: send the document.
    Send,
    /// `If-None-Match` matched: `304 Not Modified`, no body.
    NotModified,
}

/// A request's `If-Match` and `If-None-Match`, for the database of one
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preconditions {
    epoch: String,
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

impl Preconditions {
    /// No condition: every check holds.
    pub fn none(epoch: &str) -> Preconditions {
        Preconditions {
            epoch: epoch.to_string(),
            if_match: None,
            if_none_match: None,
        }
    }

    /// Parses the values of the `If-Match` and `If-None-Match` headers (an
    /// empty list: the header was not sent). A malformed one is a `400`.
    pub fn parse<'a>(
        epoch: &str,
        if_match: &[&'a [u8]],
        if_none_match: &[&'a [u8]],
    ) -> Result<Preconditions, Error> {
        let header = |name: &str, values: &[&'a [u8]]| {
            (!values.is_empty())
                .then(|| Tags::parse(name, values.iter().copied()))
                .transpose()
        };
        Ok(Preconditions {
            epoch: epoch.to_string(),
            if_match: header("If-Match", if_match)?,
            if_none_match: header("If-None-Match", if_none_match)?,
        })
    }

    /// True if the request sent no condition.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Checks a write of `what` (a phrase such as `the document "k"`, for
    /// the message), whose current state was last changed at `current`
    /// (`None`: it does not exist): a condition that does not hold is a
    /// `412` saying which, and what the current tag is.
    pub fn check(&self, what: &str, current: Option<u64>) -> Result<(), Error> {
        match self.evaluate(current) {
            Ok(()) => Ok(()),
            Err(failed) => Err(Error::PreconditionFailed(self.why(failed, what, current))),
        }
    }

    /// Checks a read of `what`, which exists and was last changed at
    /// `current`: `If-Match` that does not hold is a `412`, an
    /// `If-None-Match` that matches answers [`Read::NotModified`].
    pub fn read(&self, what: &str, current: u64) -> Result<Read, Error> {
        match self.evaluate(Some(current)) {
            Ok(()) => Ok(Read::Send),
            Err(Failed::IfNoneMatch) => Ok(Read::NotModified),
            Err(failed) => Err(Error::PreconditionFailed(self.why(
                failed,
                what,
                Some(current),
            ))),
        }
    }

    fn evaluate(&self, current: Option<u64>) -> Result<(), Failed> {
        let tag = current.map(|r| etag(&self.epoch, r));
        if let Some(tags) = &self.if_match
            && !tags.matches(tag.as_deref(), true)
        {
            return Err(Failed::IfMatch);
        }
        if let Some(tags) = &self.if_none_match
            && tags.matches(tag.as_deref(), false)
        {
            return Err(Failed::IfNoneMatch);
        }
        Ok(())
    }

    fn why(&self, failed: Failed, what: &str, current: Option<u64>) -> String {
        match (failed, current) {
            (Failed::IfMatch, None) => format!("If-Match does not hold: {what} does not exist"),
            (Failed::IfMatch, Some(r)) => format!(
                "If-Match does not hold: {what} has changed; its ETag is now {}",
                etag(&self.epoch, r)
            ),
            (Failed::IfNoneMatch, _) => {
                let now = current.map_or(String::new(), |r| {
                    format!(" with the ETag {}", etag(&self.epoch, r))
                });
                format!("If-None-Match does not hold: {what} exists{now}")
            }
        }
    }
}

/// Which condition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    IfMatch,
    IfNoneMatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: &str = "e1";

    fn pre(if_match: Option<&str>, if_none_match: Option<&str>) -> Preconditions {
        let m: Vec<&[u8]> = if_match.iter().map(|v| v.as_bytes()).collect();
        let n: Vec<&[u8]> = if_none_match.iter().map(|v| v.as_bytes()).collect();
        Preconditions::parse(EPOCH, &m, &n).unwrap()
    }

    fn holds(p: &Preconditions, current: Option<u64>) -> bool {
        p.check("the document \"k\"", current).is_ok()
    }

    #[test]
    fn a_document_s_tag_is_its_epoch_and_the_revision_that_last_changed_it() {
        assert_eq!(etag("abc", 7), "\"abc-7\"");
    }

    #[test]
    fn if_match_holds_for_its_current_tag_or_star_and_an_existing_document() {
        let exact = pre(Some("\"e1-4\""), None);
        assert!(holds(&exact, Some(4)));
        assert!(!holds(&exact, Some(5)));
        assert!(!holds(&exact, None));
        let listed = pre(Some(" \"x\" , \"e1-5\""), None);
        assert!(holds(&listed, Some(5)));
        let star = pre(Some("*"), None);
        assert!(holds(&star, Some(1)));
        assert!(!holds(&star, None));
        let weak = pre(Some("W/\"e1-4\""), None);
        assert!(!holds(&weak, Some(4)), "If-Match compares strongly");
        let other_epoch = pre(Some("\"e2-4\""), None);
        assert!(!holds(&other_epoch, Some(4)));
        assert!(holds(&pre(None, None), None) && pre(None, None).is_empty());
    }

    #[test]
    fn if_none_match_star_creates_only_and_a_tag_refuses_that_version() {
        let star = pre(None, Some("*"));
        assert!(holds(&star, None));
        assert!(!holds(&star, Some(3)));
        let tag = pre(None, Some("W/\"e1-3\""));
        assert!(!holds(&tag, Some(3)), "If-None-Match compares weakly");
        assert!(holds(&tag, Some(4)));
        assert!(holds(&tag, None));
    }

    #[test]
    fn if_match_is_checked_before_if_none_match() {
        let both = pre(Some("\"e1-1\""), Some("*"));
        let Err(Error::PreconditionFailed(why)) = both.check("the document \"k\"", Some(2)) else {
            panic!("held");
        };
        assert!(why.starts_with("If-Match"), "{why}");
        assert!(why.contains("\"e1-2\""), "{why}");
        let Err(Error::PreconditionFailed(why)) = both.check("the document \"k\"", Some(1)) else {
            panic!("held");
        };
        assert!(why.starts_with("If-None-Match"), "{why}");
    }

    #[test]
    fn a_read_whose_if_none_match_matches_is_not_modified() {
        let p = pre(None, Some("\"e1-2\""));
        assert_eq!(p.read("it", 2), Ok(Read::NotModified));
        assert_eq!(p.read("it", 3), Ok(Read::Send));
        let m = pre(Some("\"e1-2\""), None);
        assert!(matches!(m.read("it", 3), Err(Error::PreconditionFailed(_))));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "e1-4",
            "\"e1-4",
            "*, \"e1-4\"",
            "\"a\" \"b\"",
            "\"a\"b",
            "W/e1",
            "\"a\u{7f}\"",
            "\"a\" *",
            "**",
            "* x",
        ] {
            let r = Preconditions::parse(EPOCH, &[bad.as_bytes()], &[]);
            assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
        }
        let comma_inside = pre(Some("\"a,b\", \"e1-1\""), None);
        assert!(holds(&comma_inside, Some(1)));
        let two_lines = Preconditions::parse(EPOCH, &[b"\"x\"", b"\"e1-2\""], &[]).unwrap();
        assert!(holds(&two_lines, Some(2)));
        // Empty list elements are ignored (RFC 9110, 5.6.1).
        let sparse = pre(Some(", \"x\",, \"e1-2\" ,"), None);
        assert!(holds(&sparse, Some(2)));
    }

    #[test]
    fn an_empty_list_matches_no_document() {
        let if_match = pre(Some(""), None);
        assert!(!holds(&if_match, Some(1)) && !holds(&if_match, None));
        let if_none_match = pre(None, Some(" , "));
        assert!(holds(&if_none_match, Some(1)) && holds(&if_none_match, None));
    }

    proptest::proptest! {
        #[test]
        fn the_parser_takes_exactly_the_lines_its_pattern_describes(
            line in "[ \t\"W/*,a1\\-\u{7f}é]{0,12}"
        ) {
            let pattern = regex::Regex::new(PATTERN).unwrap();
            let parsed = Preconditions::parse(EPOCH, &[line.as_bytes()], &[]);
            proptest::prop_assert_eq!(parsed.is_ok(), pattern.is_match(&line), "{:?}", line);
        }

        #[test]
        fn every_line_the_pattern_describes_is_taken(
            line in proptest::string::string_regex(&PATTERN[1..PATTERN.len() - 1]).unwrap()
        ) {
            let parsed = Preconditions::parse(EPOCH, &[line.as_bytes()], &[]);
            proptest::prop_assert!(parsed.is_ok(), "{:?}: {:?}", line, parsed);
        }
    }
}
