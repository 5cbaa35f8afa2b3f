//! One run of text deflated on its own: a byte-aligned run of non-final
//! deflate blocks (a fresh compressor ending in a sync flush), with the
//! CRC-32 and length a gzip trailer needs. [`body`](crate::body) joins such
//! runs into one gzip member; [`chunks`](crate::chunks) keeps each chunk's.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// Compression level: fast, since each chunk is compressed once anyway and
/// a whole large view is compressed on the first gzip request.
const LEVEL: u32 = 4;

/// A run of text deflated on its own, with what the gzip trailer needs.
#[derive(Debug, Clone)]
pub struct Deflated {
    /// The deflated run, to be placed between a gzip header and trailer.
    pub bytes: Bytes,
    pub(crate) crc: crc32fast::Hasher,
    pub(crate) len: u64,
}

/// Deflates `text` as a byte-aligned run of non-final blocks.
pub fn deflate(text: &[u8]) -> Deflated {
    let mut compressor = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(text.len() / 4 + 64);
    loop {
        let read = compressor.total_in() as usize;
        // Deflating from memory into memory has no failure mode but an
        // output buffer that is too small, which the loop handles.
        let _ = compressor.compress_vec(&text[read..], &mut out, FlushCompress::Sync);
        if compressor.total_in() as usize == text.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(256));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(text);
    Deflated {
        bytes: Bytes::from(out),
        crc,
        len: text.len() as u64,
    }
}
