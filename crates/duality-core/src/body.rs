//! A snapshot's body, identity and gzip, assembled from shared chunks.
//!
//! The identity body is `{`, the chunks' texts joined by `,`, and `}`: a
//! list of [`Bytes`] that point into the chunks, so no request copies the
//! view. The gzip body uses the same trick one level down. Each chunk is
//! deflated once, on its own (a fresh compressor ending in a sync flush, so
//! its output is a byte-aligned run of non-final deflate blocks that needs
//! nothing before it). Concatenating those runs, closing with an empty
//! final block and framing them with a gzip header and trailer gives one
//! valid gzip member; the trailer's CRC-32 is combined from the chunks'
//! CRCs. A write therefore compresses only the chunk it changed.
//!
//! Pure: no I/O. [`PiecesBody`] streams a list to hyper without copying.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::chunks::Chunks;
use crate::deflate::{Deflated, deflate};

/// Bodies up to this size are sent as one contiguous buffer.
const CONTIGUOUS_UP_TO: u64 = 64 * 1024;
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final block with fixed Huffman codes: ends the deflate stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// A body as a list of shared buffers.
#[derive(Debug, Default)]
pub struct Pieces {
    /// The buffers, in order.
    pub parts: Vec<Bytes>,
    /// Their total length in bytes.
    pub len: u64,
}

impl Pieces {
    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len() as u64;
            self.parts.push(part);
        }
    }

    /// Small bodies become one buffer: one write, as before chunking.
    fn compact(self) -> Pieces {
        if self.len > CONTIGUOUS_UP_TO || self.parts.len() < 2 {
            return self;
        }
        let mut one = BytesMut::with_capacity(self.len as usize);
        for p in &self.parts {
            one.extend_from_slice(p);
        }
        Pieces {
            len: self.len,
            parts: vec![one.freeze()],
        }
    }

    /// The whole body in one buffer (for tests and small callers).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }
}

/// The view as JSON text: `{`, the chunks joined by `,`, `}`.
pub fn identity(docs: &Chunks) -> Pieces {
    let mut pieces = Pieces::default();
    pieces.push(Bytes::from_static(b"{"));
    for (i, chunk) in docs.chunks().enumerate() {
        if i > 0 {
            pieces.push(Bytes::from_static(b","));
        }
        pieces.push(chunk.text().clone());
    }
    pieces.push(Bytes::from_static(b"}"));
    pieces.compact()
}

/// The view's JSON text as one gzip member. Deflates each chunk that no
/// earlier snapshot deflated; the rest is shared.
pub fn gzip(docs: &Chunks) -> Pieces {
    static OPEN: std::sync::OnceLock<Deflated> = std::sync::OnceLock::new();
    static COMMA: std::sync::OnceLock<Deflated> = std::sync::OnceLock::new();
    static CLOSE: std::sync::OnceLock<Deflated> = std::sync::OnceLock::new();
    let open = OPEN.get_or_init(|| deflate(b"{"));
    let comma = COMMA.get_or_init(|| deflate(b","));
    let close = CLOSE.get_or_init(|| deflate(b"}"));

    let mut pieces = Pieces::default();
    pieces.push(Bytes::from_static(&GZIP_HEADER));
    let mut crc = crc32fast::Hasher::new();
    let mut len: u64 = 0;
    let mut put = |pieces: &mut Pieces, d: &Deflated| {
        pieces.push(d.bytes.clone());
        crc.combine(&d.crc);
        len += d.len;
    };
    put(&mut pieces, open);
    for (i, chunk) in docs.chunks().enumerate() {
        if i > 0 {
            put(&mut pieces, comma);
        }
        put(
            &mut pieces,
            chunk.deflated.get_or_init(|| deflate(chunk.text())),
        );
    }
    put(&mut pieces, close);
    pieces.push(Bytes::from_static(&FINAL_BLOCK));
    let mut trailer = Vec::with_capacity(8);
    trailer.extend_from_slice(&crc.finalize().to_le_bytes());
    trailer.extend_from_slice(&(len as u32).to_le_bytes());
    pieces.push(Bytes::from(trailer));
    pieces.compact()
}

/// Streams shared pieces as an HTTP body with an exact length.
pub struct PiecesBody {
    pieces: Arc<Pieces>,
    next: usize,
}

impl PiecesBody {
    /// A body that sends `pieces` from the first one on.
    pub fn new(pieces: Arc<Pieces>) -> Self {
        PiecesBody { pieces, next: 0 }
    }
}

impl http_body::Body for PiecesBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let at = self.next;
        match self.pieces.parts.get(at).cloned() {
            Some(part) => {
                self.next += 1;
                Poll::Ready(Some(Ok(Frame::data(part))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.pieces.parts.len()
    }

    fn size_hint(&self) -> SizeHint {
        let sent: u64 = self.pieces.parts[..self.next.min(self.pieces.parts.len())]
            .iter()
            .map(|p| p.len() as u64)
            .sum();
        SizeHint::with_exact(self.pieces.len - sent)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    fn view(n: usize) -> Chunks {
        let docs: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("{i:07}"),
                    format!(r#"{{"name":"n{i}","city":"c{}"}}"#, i % 7),
                )
            })
            .collect();
        Chunks::from_sorted(docs.iter().map(|(k, d)| (k, d, 1))).unwrap()
    }

    #[test]
    fn identity_and_gzip_bodies_are_the_same_json_at_every_size() {
        for n in [0, 1, 3, 2_000, 40_000] {
            let mut docs = view(n);
            let plain = identity(&docs).to_vec();
            let parsed: serde_json::Value = serde_json::from_slice(&plain).unwrap();
            assert_eq!(parsed.as_object().unwrap().len(), n);
            let zipped = gzip(&docs).to_vec();
            assert_eq!(gunzip(&zipped), plain, "n = {n}");
            // After a write, only the changed chunk is compressed again and
            // the result still decodes to the new identity body.
            docs.set("0000001", Some(r#"{"name":"changed"}"#), 2);
            docs.set("zzz", Some("[]"), 2);
            assert_eq!(gunzip(&gzip(&docs).to_vec()), identity(&docs).to_vec());
        }
    }

    #[test]
    fn a_large_body_shares_the_chunks_instead_of_copying_them() {
        let docs = view(40_000);
        let body = identity(&docs);
        assert!(body.parts.len() > 3);
        let first_chunk = docs.chunks().next().unwrap().text();
        assert!(
            body.parts
                .iter()
                .any(|p| p.as_ptr() == first_chunk.as_ptr())
        );
        assert_eq!(body.len, body.to_vec().len() as u64);
    }

    #[test]
    fn compression_actually_compresses() {
        let docs = view(40_000);
        assert!(gzip(&docs).len * 3 < identity(&docs).len);
    }
}
