//! A view's documents as chunks of pre-serialised JSON: the compact,
//! persistent form that every snapshot shares.
//!
//! The view `{k1: d1, k2: d2, …}` is kept in key order as a sequence of
//! chunks. A chunk holds the members `"k1":d1,"k2":d2` of a run of keys as
//! one byte buffer, exactly as they appear in the view's JSON text, plus
//! where each member's document starts and ends. The chunks sit in a
//! persistent ordered map (keyed by each chunk's first key), so:
//!
//! - cloning [`Chunks`] (taking a snapshot) is O(1) and shares every chunk;
//! - changing one document copies only its chunk (a few KiB) and the
//!   O(log n) path to it; every other chunk, with its serialised and
//!   compressed bytes, is shared with older snapshots;
//! - the whole view's JSON is the chunks' buffers joined by commas.
//!
//! Pure: no I/O, no locking.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use super::body::Deflated;

/// A chunk is split in two once its text grows past this many bytes.
pub const SPLIT_AT: usize = 32 * 1024;
/// Chunks built from a sorted load are filled up to this many bytes.
pub const FILL_TO: usize = 16 * 1024;

/// One member of a chunk: its key and where its document lies in the text.
#[derive(Debug, Clone)]
struct Entry {
    key: Box<str>,
    /// The whole member `"key":doc` within the chunk's text.
    member: Range<u32>,
    /// Where the document starts within the member's range.
    doc_start: u32,
}

/// A run of consecutive members, serialised once.
#[derive(Debug)]
pub struct Chunk {
    /// `"k1":d1,"k2":d2`: the members joined by commas, no braces.
    text: Bytes,
    entries: Vec<Entry>,
    /// The text deflated, computed once by the first gzip reader.
    pub(crate) deflated: OnceLock<Deflated>,
}

impl Chunk {
    /// Builds a chunk from members in key order: `(key, document JSON)`.
    fn build<'a>(members: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Chunk {
        let mut text = BytesMut::new();
        let mut entries = Vec::new();
        for (key, doc) in members {
            if !entries.is_empty() {
                text.extend_from_slice(b",");
            }
            let start = text.len();
            // Serialising a string cannot fail.
            let quoted = serde_json::to_string(key).unwrap_or_default();
            text.extend_from_slice(quoted.as_bytes());
            text.extend_from_slice(b":");
            let doc_start = text.len();
            text.extend_from_slice(doc);
            entries.push(Entry {
                key: key.into(),
                member: start as u32..text.len() as u32,
                doc_start: doc_start as u32,
            });
        }
        Chunk {
            text: text.freeze(),
            entries,
            deflated: OnceLock::new(),
        }
    }

    /// The members as JSON text (no braces).
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// How many documents the chunk holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chunk holds no document.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn first_key(&self) -> &str {
        self.entries.first().map_or("", |e| &e.key)
    }

    fn doc_bytes(&self, e: &Entry) -> &[u8] {
        &self.text[e.doc_start as usize..e.member.end as usize]
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    fn members(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| (&*e.key, self.doc_bytes(e)))
    }

    /// The documents of this chunk as `(key, JSON text)`, in key order.
    pub fn docs(&self) -> impl Iterator<Item = (&str, &str)> {
        // Every document was stored from a `&str`, so the slices are UTF-8.
        self.members()
            .map(|(k, d)| (k, std::str::from_utf8(d).unwrap_or("null")))
    }
}

/// Every document of a view, in key order, as shared chunks.
#[derive(Clone, Default)]
pub struct Chunks {
    /// Chunks by their first key. No chunk is empty.
    chunks: imbl::OrdMap<Box<str>, Arc<Chunk>>,
    len: usize,
    bytes: usize,
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("docs", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Chunks {
    /// Builds the view from documents given in ascending key order
    /// (`(key, document JSON)`); unsorted or repeated keys are refused.
    pub fn from_sorted<K, D>(docs: impl IntoIterator<Item = (K, D)>) -> Result<Chunks, String>
    where
        K: AsRef<str>,
        D: AsRef<str>,
    {
        let mut builder = Builder::default();
        for (key, doc) in docs {
            builder.push(key.as_ref(), doc.as_ref())?;
        }
        Ok(builder.finish())
    }

    fn push_chunk<K: AsRef<str>, D: AsRef<str>>(&mut self, members: &[(K, D)]) {
        let chunk = Chunk::build(
            members
                .iter()
                .map(|(k, d)| (k.as_ref(), d.as_ref().as_bytes())),
        );
        self.insert_built(chunk);
    }

    /// How many documents the view has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no document.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The size of the members' text, without braces and separators.
    pub fn text_bytes(&self) -> usize {
        self.bytes
    }

    /// The chunks, in key order.
    pub fn chunks(&self) -> impl Iterator<Item = &Arc<Chunk>> {
        self.chunks.values()
    }

    /// The chunk that holds `key` or would hold it, with its map key.
    #[allow(clippy::borrowed_box)]
    fn home(&self, key: &str) -> Option<(&Box<str>, &Arc<Chunk>)> {
        let key: Box<str> = key.into();
        self.chunks
            .range(..=key)
            .next_back()
            .or_else(|| self.chunks.iter().next())
    }

    /// The document at `key`, as JSON text.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (_, chunk) = self.home(key)?;
        let at = chunk.find(key).ok()?;
        std::str::from_utf8(chunk.doc_bytes(&chunk.entries[at])).ok()
    }

    /// Sets (`Some`) or removes (`None`) the document at `key`; only the
    /// chunk that holds it is rebuilt.
    pub fn set(&mut self, key: &str, doc: Option<&str>) {
        let Some((first, chunk)) = self.home(key).map(|(f, c)| (f.clone(), Arc::clone(c))) else {
            if let Some(doc) = doc {
                self.push_chunk(&[(key, doc)]);
            }
            return;
        };
        let found = chunk.find(key);
        let mut members: Vec<(&str, &[u8])> = chunk.members().collect();
        match (found, doc) {
            (Ok(at), Some(doc)) => members[at] = (key, doc.as_bytes()),
            (Ok(at), None) => {
                members.remove(at);
            }
            (Err(at), Some(doc)) => members.insert(at, (key, doc.as_bytes())),
            (Err(_), None) => return,
        }
        self.chunks.remove(&first);
        self.len -= chunk.len();
        self.bytes -= chunk.text.len();
        if members.is_empty() {
            return;
        }
        let whole = Chunk::build(members.iter().copied());
        if whole.text.len() <= SPLIT_AT || members.len() < 2 {
            self.insert_built(whole);
        } else {
            let (left, right) = members.split_at(members.len() / 2);
            self.insert_built(Chunk::build(left.iter().copied()));
            self.insert_built(Chunk::build(right.iter().copied()));
        }
    }

    fn insert_built(&mut self, chunk: Chunk) {
        self.len += chunk.len();
        self.bytes += chunk.text.len();
        self.chunks
            .insert(chunk.first_key().into(), Arc::new(chunk));
    }

    /// Every document as `(key, JSON text)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.chunks.values().flat_map(|c| c.docs())
    }
}

/// Builds [`Chunks`] from documents that arrive in ascending key order, as
/// a store reads them at start, without holding them all twice.
#[derive(Default)]
pub struct Builder {
    done: Chunks,
    pending: Vec<(String, String)>,
    pending_bytes: usize,
}

impl Builder {
    /// Adds the next document; refuses a key not above the previous one.
    pub fn push(&mut self, key: &str, doc: &str) -> Result<(), String> {
        let last = self.pending.last().map(|(k, _)| k.as_str()).or_else(|| {
            self.done
                .chunks
                .values()
                .next_back()
                .and_then(|c| c.entries.last())
                .map(|e| &*e.key)
        });
        if last.is_some_and(|last| last >= key) {
            return Err(format!("keys out of order at `{key}`"));
        }
        self.pending_bytes += key.len() + doc.len() + 4;
        self.pending.push((key.to_string(), doc.to_string()));
        if self.pending_bytes >= FILL_TO {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.done.push_chunk(&self.pending);
            self.pending.clear();
            self.pending_bytes = 0;
        }
    }

    /// Flushes what is pending and returns the built view.
    pub fn finish(mut self) -> Chunks {
        self.flush();
        self.done
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn whole(chunks: &Chunks) -> Value {
        let parts: Vec<&[u8]> = chunks.chunks().map(|c| &c.text()[..]).collect();
        let mut text = b"{".to_vec();
        text.extend_from_slice(&parts.join(&b","[..]));
        text.push(b'}');
        serde_json::from_slice(&text).expect("the joined chunks are JSON")
    }

    #[test]
    fn keys_that_need_escaping_survive_and_documents_read_back() {
        let mut c = Chunks::default();
        c.set("a\"b\\c\n", Some(r#"{"x":1}"#));
        c.set("ü", Some("[1,2]"));
        assert_eq!(c.get("a\"b\\c\n"), Some(r#"{"x":1}"#));
        assert_eq!(
            whole(&c),
            serde_json::json!({"a\"b\\c\n": {"x": 1}, "ü": [1, 2]})
        );
        c.set("ü", None);
        c.set("missing", None);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("ü"), None);
    }

    #[test]
    fn a_sorted_load_refuses_keys_out_of_order() {
        assert!(Chunks::from_sorted([("b", "1"), ("a", "2")]).is_err());
        assert!(Chunks::from_sorted([("a", "1"), ("a", "2")]).is_err());
        let c = Chunks::from_sorted([("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(c.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    }

    #[test]
    fn a_large_view_is_split_into_chunks_and_a_write_rebuilds_only_its_chunk() {
        let docs: Vec<(String, String)> = (0..20_000)
            .map(|i| (format!("{i:08}"), format!(r#"{{"name":"person {i}"}}"#)))
            .collect();
        let mut c = Chunks::from_sorted(docs.iter().map(|(k, d)| (k, d))).unwrap();
        assert!(c.chunks().count() > 10);
        let before = c.clone();
        c.set("00000500", Some(r#"{"name":"changed"}"#));
        let shared = c
            .chunks()
            .filter(|x| before.chunks().any(|y| Arc::ptr_eq(x, y)))
            .count();
        assert_eq!(shared, c.chunks().count() - 1);
        assert_eq!(before.get("00000500"), Some(r#"{"name":"person 500"}"#));
        assert_eq!(c.get("00000500"), Some(r#"{"name":"changed"}"#));
    }

    proptest! {
        #[test]
        fn chunks_always_equal_a_plain_map(
            ops in proptest::collection::vec(
                ("[a-e]{0,3}", proptest::option::of("[a-z]{0,400}".prop_map(|s| format!("\"{s}\"")))), 1..300)
        ) {
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            let mut c = Chunks::default();
            for (key, doc) in &ops {
                c.set(key, doc.as_deref());
                match doc {
                    Some(d) => { model.insert(key.clone(), d.clone()); }
                    None => { model.remove(key); }
                }
            }
            let got: Vec<(String, String)> =
                c.iter().map(|(k, d)| (k.to_string(), d.to_string())).collect();
            let want: Vec<(String, String)> = model.clone().into_iter().collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(c.len(), model.len());
            prop_assert!(c.chunks().all(|x| !x.is_empty()));
            let text: usize = c.chunks().map(|x| x.text().len()).sum();
            prop_assert_eq!(c.text_bytes(), text);
            let expected: serde_json::Map<String, Value> = model
                .iter()
                .map(|(k, d)| (k.clone(), serde_json::from_str(d).unwrap()))
                .collect();
            prop_assert_eq!(whole(&c), Value::Object(expected));
        }
    }
}
