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
//! Each member also keeps the revision of the view that last changed its
//! document (8 bytes beside its offsets, never in the text), so a
//! document's `ETag` is answered from the copy in O(log n) like the
//! document itself.
//!
//! Pure: no I/O, no locking.

use std::ops::{Bound, Range};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::deflate::Deflated;

/// A chunk is split in two once its text grows past this many bytes.
pub const SPLIT_AT: usize = 32 * 1024;
/// Chunks built from a sorted load are filled up to this many bytes.
pub const FILL_TO: usize = 16 * 1024;

/// Where one member of a chunk lies.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Where its key ends in the chunk's `keys`; it starts where the
    /// previous member's ends.
    key_end: u32,
    /// Where the member `"key":doc` starts in the chunk's text; it ends
    /// one byte (the comma) before the next member starts.
    member_start: u32,
    /// Where its document starts in the chunk's text.
    doc_start: u32,
    /// The revision of the view that last changed the document.
    revision: u64,
}

/// A run of consecutive members, serialised once.
///
/// The keys sit in one string and the members' positions in one vector of
/// plain offsets, so a chunk costs a handful of allocations whatever it
/// holds, and an edit copies the untouched members as byte ranges instead
/// of serialising them again.
#[derive(Debug)]
pub struct Chunk {
    /// `"k1":d1,"k2":d2`: the members joined by commas, no braces.
    text: Bytes,
    /// The keys, unescaped, one after the other.
    keys: Box<str>,
    slots: Box<[Slot]>,
    /// The text deflated, computed once by the first gzip reader.
    pub(crate) deflated: OnceLock<Deflated>,
}

impl Chunk {
    /// The members as JSON text (no braces).
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// How many documents the chunk holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the chunk holds no document.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn key_start(&self, i: usize) -> usize {
        i.checked_sub(1)
            .map_or(0, |p| self.slots[p].key_end as usize)
    }

    fn key(&self, i: usize) -> &str {
        &self.keys[self.key_start(i)..self.slots[i].key_end as usize]
    }

    fn member_end(&self, i: usize) -> usize {
        self.slots
            .get(i + 1)
            .map_or(self.text.len(), |next| next.member_start as usize - 1)
    }

    fn doc_bytes(&self, i: usize) -> &[u8] {
        &self.text[self.slots[i].doc_start as usize..self.member_end(i)]
    }

    fn doc_str(&self, i: usize) -> &str {
        // Every document was stored from a `&str`, so the slices are UTF-8.
        std::str::from_utf8(self.doc_bytes(i)).unwrap_or("null")
    }

    fn first_key(&self) -> &str {
        if self.is_empty() { "" } else { self.key(0) }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The documents of this chunk as `(key, JSON text)`, in key order.
    pub fn docs(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.len()).map(|i| (self.key(i), self.doc_str(i)))
    }

    /// The documents of this chunk as `(key, JSON text, revision that last
    /// changed it)`, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        (0..self.len()).map(|i| (self.key(i), self.doc_str(i), self.slots[i].revision))
    }
}

/// Writes a chunk member by member: new members are serialised, runs of
/// an existing chunk's members are copied as they are.
#[derive(Default)]
struct ChunkWriter {
    text: BytesMut,
    keys: String,
    slots: Vec<Slot>,
}

impl ChunkWriter {
    fn with_capacity(text: usize, keys: usize, members: usize) -> ChunkWriter {
        ChunkWriter {
            text: BytesMut::with_capacity(text),
            keys: String::with_capacity(keys),
            slots: Vec::with_capacity(members),
        }
    }

    fn separate(&mut self) {
        if !self.slots.is_empty() {
            self.text.extend_from_slice(b",");
        }
    }

    /// Appends the member `"key":doc`, last changed at `revision`.
    fn push(&mut self, key: &str, doc: &[u8], revision: u64) {
        self.separate();
        let member_start = self.text.len() as u32;
        // Serialising a string cannot fail.
        let quoted = serde_json::to_string(key).unwrap_or_default();
        self.text.extend_from_slice(quoted.as_bytes());
        self.text.extend_from_slice(b":");
        let doc_start = self.text.len() as u32;
        self.text.extend_from_slice(doc);
        self.keys.push_str(key);
        self.slots.push(Slot {
            key_end: self.keys.len() as u32,
            member_start,
            doc_start,
            revision,
        });
    }

    /// Appends `from`'s members `range`, copying their bytes.
    fn copy(&mut self, from: &Chunk, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.separate();
        let text_from = from.slots[range.start].member_start as usize;
        let text_to = from.member_end(range.end - 1);
        let key_from = from.key_start(range.start);
        let key_to = from.slots[range.end - 1].key_end as usize;
        // Offsets only grow by what precedes the run here, less what
        // preceded it there.
        let text_shift = self.text.len() as i64 - text_from as i64;
        let key_shift = self.keys.len() as i64 - key_from as i64;
        self.text.extend_from_slice(&from.text[text_from..text_to]);
        self.keys.push_str(&from.keys[key_from..key_to]);
        let moved = |offset: u32, shift: i64| (offset as i64 + shift) as u32;
        self.slots.extend(from.slots[range].iter().map(|s| Slot {
            key_end: moved(s.key_end, key_shift),
            member_start: moved(s.member_start, text_shift),
            doc_start: moved(s.doc_start, text_shift),
            revision: s.revision,
        }));
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn last_key(&self) -> Option<&str> {
        let last = self.slots.len().checked_sub(1)?;
        let from = last
            .checked_sub(1)
            .map_or(0, |p| self.slots[p].key_end as usize);
        Some(&self.keys[from..self.slots[last].key_end as usize])
    }

    fn bytes(&self) -> usize {
        self.text.len()
    }

    fn finish(self) -> Chunk {
        Chunk {
            text: self.text.freeze(),
            keys: self.keys.into_boxed_str(),
            slots: self.slots.into_boxed_slice(),
            deflated: OnceLock::new(),
        }
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
    /// (`(key, document JSON, revision that last changed it)`); unsorted or
    /// repeated keys are refused.
    pub fn from_sorted<K, D>(docs: impl IntoIterator<Item = (K, D, u64)>) -> Result<Chunks, String>
    where
        K: AsRef<str>,
        D: AsRef<str>,
    {
        let mut builder = Builder::default();
        for (key, doc, revision) in docs {
            builder.push(key.as_ref(), doc.as_ref(), revision)?;
        }
        Ok(builder.finish())
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
        self.chunks
            .range::<_, str>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .or_else(|| self.chunks.iter().next())
    }

    /// The document at `key`, as JSON text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_at(key).map(|(doc, _)| doc)
    }

    /// The document at `key`, as JSON text, with the revision of the view
    /// that last changed it.
    pub fn get_at(&self, key: &str) -> Option<(&str, u64)> {
        let (_, chunk) = self.home(key)?;
        let at = chunk.find(key).ok()?;
        Some((chunk.doc_str(at), chunk.slots[at].revision))
    }

    /// Sets (`Some`) or removes (`None`) the document at `key`, a change
    /// made by the view's `revision`. Only the chunk that holds it is
    /// rebuilt, by copying its other members' bytes.
    pub fn set(&mut self, key: &str, doc: Option<&str>, revision: u64) {
        let Some((first, chunk)) = self.home(key).map(|(f, c)| (f.clone(), Arc::clone(c))) else {
            if let Some(doc) = doc {
                let mut w = ChunkWriter::default();
                w.push(key, doc.as_bytes(), revision);
                self.insert_built(w.finish());
            }
            return;
        };
        let n = chunk.len();
        let extra = doc.map_or(0, |d| key.len() * 2 + d.len() + 4);
        let mut w = ChunkWriter::with_capacity(
            chunk.text.len() + extra,
            chunk.keys.len() + key.len(),
            n + 1,
        );
        match (chunk.find(key), doc) {
            (Ok(at), Some(doc)) => {
                w.copy(&chunk, 0..at);
                w.push(key, doc.as_bytes(), revision);
                w.copy(&chunk, at + 1..n);
            }
            (Ok(at), None) => {
                w.copy(&chunk, 0..at);
                w.copy(&chunk, at + 1..n);
            }
            (Err(at), Some(doc)) => {
                w.copy(&chunk, 0..at);
                w.push(key, doc.as_bytes(), revision);
                w.copy(&chunk, at..n);
            }
            (Err(_), None) => return,
        }
        self.chunks.remove(&first);
        self.len -= n;
        self.bytes -= chunk.text.len();
        if w.len() == 0 {
            return;
        }
        let whole = w.finish();
        if whole.text.len() <= SPLIT_AT || whole.len() < 2 {
            self.insert_built(whole);
        } else {
            let mid = whole.len() / 2;
            for range in [0..mid, mid..whole.len()] {
                let mut half = ChunkWriter::default();
                half.copy(&whole, range);
                self.insert_built(half.finish());
            }
        }
    }

    fn insert_built(&mut self, chunk: Chunk) {
        self.len += chunk.len();
        self.bytes += chunk.text.len();
        self.chunks
            .insert(chunk.first_key().into(), Arc::new(chunk));
    }

    fn last_key(&self) -> Option<&str> {
        let chunk = self.chunks.values().next_back()?;
        chunk.len().checked_sub(1).map(|i| chunk.key(i))
    }

    /// Every document as `(key, JSON text)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.chunks.values().flat_map(|c| c.docs())
    }

    /// Every document as `(key, JSON text, revision that last changed it)`,
    /// in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.chunks.values().flat_map(|c| c.entries())
    }
}

/// Builds [`Chunks`] from documents that arrive in ascending key order, as
/// a store reads them at start, without holding them all twice.
#[derive(Default)]
pub struct Builder {
    done: Chunks,
    pending: ChunkWriter,
}

impl Builder {
    /// Adds the next document, last changed at `revision`; refuses a key
    /// not above the previous one.
    pub fn push(&mut self, key: &str, doc: &str, revision: u64) -> Result<(), String> {
        let last = self.pending.last_key().or_else(|| self.done.last_key());
        if last.is_some_and(|last| last >= key) {
            return Err(format!("keys out of order at `{key}`"));
        }
        self.pending.push(key, doc.as_bytes(), revision);
        if self.pending.bytes() >= FILL_TO {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        if self.pending.len() > 0 {
            let chunk = std::mem::take(&mut self.pending).finish();
            self.done.insert_built(chunk);
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
        c.set("a\"b\\c\n", Some(r#"{"x":1}"#), 1);
        c.set("ü", Some("[1,2]"), 2);
        assert_eq!(c.get("a\"b\\c\n"), Some(r#"{"x":1}"#));
        assert_eq!(
            whole(&c),
            serde_json::json!({"a\"b\\c\n": {"x": 1}, "ü": [1, 2]})
        );
        assert_eq!(c.get_at("ü"), Some(("[1,2]", 2)));
        c.set("ü", None, 3);
        c.set("missing", None, 4);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("ü"), None);
        assert_eq!(c.get_at("a\"b\\c\n"), Some((r#"{"x":1}"#, 1)));
    }

    #[test]
    fn a_sorted_load_refuses_keys_out_of_order() {
        assert!(Chunks::from_sorted([("b", "1", 1), ("a", "2", 1)]).is_err());
        assert!(Chunks::from_sorted([("a", "1", 1), ("a", "2", 1)]).is_err());
        let c = Chunks::from_sorted([("a", "1", 3), ("b", "2", 5)]).unwrap();
        assert_eq!(c.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        assert_eq!(
            c.entries().collect::<Vec<_>>(),
            [("a", "1", 3), ("b", "2", 5)]
        );
    }

    #[test]
    fn a_large_view_is_split_into_chunks_and_a_write_rebuilds_only_its_chunk() {
        let docs: Vec<(String, String)> = (0..20_000)
            .map(|i| (format!("{i:08}"), format!(r#"{{"name":"person {i}"}}"#)))
            .collect();
        let mut c = Chunks::from_sorted(docs.iter().map(|(k, d)| (k, d, 1))).unwrap();
        assert!(c.chunks().count() > 10);
        let before = c.clone();
        c.set("00000500", Some(r#"{"name":"changed"}"#), 2);
        let shared = c
            .chunks()
            .filter(|x| before.chunks().any(|y| Arc::ptr_eq(x, y)))
            .count();
        assert_eq!(shared, c.chunks().count() - 1);
        assert_eq!(before.get("00000500"), Some(r#"{"name":"person 500"}"#));
        assert_eq!(c.get_at("00000500"), Some((r#"{"name":"changed"}"#, 2)));
        assert_eq!(c.get_at("00000501"), Some((r#"{"name":"person 501"}"#, 1)));
    }

    proptest! {
        #[test]
        fn chunks_always_equal_a_plain_map_and_keep_each_document_s_revision(
            loaded in proptest::collection::btree_map("[a-e\"\\\\é]{0,3}", "[a-z]{0,400}".prop_map(|s| format!("\"{s}\"")), 0..200),
            ops in proptest::collection::vec(
                ("[a-e\"\\\\é]{0,3}", proptest::option::of("[a-z]{0,400}".prop_map(|s| format!("\"{s}\"")))), 1..300)
        ) {
            let mut model: std::collections::BTreeMap<String, (String, u64)> =
                loaded.iter().map(|(k, d)| (k.clone(), (d.clone(), 0))).collect();
            let mut c = Chunks::from_sorted(loaded.iter().map(|(k, d)| (k, d, 0))).unwrap();
            for (revision, (key, doc)) in (1..).zip(&ops) {
                c.set(key, doc.as_deref(), revision);
                match doc {
                    Some(d) => { model.insert(key.clone(), (d.clone(), revision)); }
                    None => { model.remove(key); }
                }
            }
            let got: Vec<(String, String, u64)> =
                c.entries().map(|(k, d, r)| (k.to_string(), d.to_string(), r)).collect();
            let want: Vec<(String, String, u64)> =
                model.iter().map(|(k, (d, r))| (k.clone(), d.clone(), *r)).collect();
            prop_assert_eq!(got, want);
            for (key, (doc, revision)) in &model {
                prop_assert_eq!(c.get_at(key), Some((doc.as_str(), *revision)));
            }
            prop_assert_eq!(c.len(), model.len());
            prop_assert!(c.chunks().all(|x| !x.is_empty()));
            let text: usize = c.chunks().map(|x| x.text().len()).sum();
            prop_assert_eq!(c.text_bytes(), text);
            let expected: serde_json::Map<String, Value> = model
                .iter()
                .map(|(k, (d, _))| (k.clone(), serde_json::from_str(d).unwrap()))
                .collect();
            prop_assert_eq!(whole(&c), Value::Object(expected));
        }
    }
}
