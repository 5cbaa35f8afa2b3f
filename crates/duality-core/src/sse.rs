//! Server-Sent Events framing: a pure encoder, no I/O.
//!
//! Change events carry `id:` and `data:` and no `event:` name, so a plain
//! `EventSource.onmessage` receives them; control events (`snapshot`,
//! `reset`) are named. Every frame is built once into [`Bytes`] and can be
//! shared by all subscribers.

use bytes::{BufMut, Bytes, BytesMut};

/// A change event: `id: <revision>` and the merge patch as data.
pub fn change(revision: u64, data: &str) -> Bytes {
    frame(None, Some(revision), data)
}

/// A named control event (`snapshot`, `reset`), with an id if it has one.
pub fn named(name: &str, id: Option<u64>, data: &str) -> Bytes {
    frame(Some(name), id, data)
}

/// The head of a named event whose single-line data is sent after it in
/// pieces (a large snapshot): `event:`, `id:` and `data: `. The data must
/// hold no line break (compact JSON never does); [`END`] closes the event.
pub fn head(name: &str, id: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(name.len() + 40);
    buf.put_slice(b"event: ");
    buf.put_slice(one_line(name).as_bytes());
    buf.put_slice(b"\nid: ");
    buf.put_slice(id.to_string().as_bytes());
    buf.put_slice(b"\ndata: ");
    buf.freeze()
}

/// Closes an event opened with [`head`].
pub const END: &[u8] = b"\n\n";

/// A comment line: ignored by clients, keeps idle connections alive.
pub fn comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    buf.put_slice(b": ");
    buf.put_slice(one_line(text).as_bytes());
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// Appends a change event to `buf` (for catch-up pages sent as one chunk).
pub fn put_change(buf: &mut BytesMut, revision: u64, data: &str) {
    put_frame(buf, None, Some(&revision.to_string()), data);
}

/// Appends a named control event to `buf`, with an id if it has one.
pub fn put_named(buf: &mut BytesMut, name: &str, id: Option<u64>, data: &str) {
    let id = id.map(|id| id.to_string());
    put_frame(buf, Some(name), id.as_deref(), data);
}

/// Appends a named event whose id is any one-line text (a multiplexed
/// stream's list of positions, `a=12,b=7`); an empty id is sent as an
/// empty `id:` field, which clears the client's last event id.
pub fn put_with_id(buf: &mut BytesMut, name: &str, id: &str, data: &str) {
    put_frame(buf, Some(name), Some(id), data);
}

/// Appends the head of a named event with a text id, whose single-line
/// data is sent after it in pieces, as [`head`] does: `event:`, `id:` and
/// `data: ` (no space is added after it: the data follows at once).
pub fn put_head_with_id(buf: &mut BytesMut, name: &str, id: &str) {
    buf.put_slice(b"event: ");
    buf.put_slice(one_line(name).as_bytes());
    buf.put_slice(b"\nid: ");
    buf.put_slice(one_line(id).as_bytes());
    buf.put_slice(b"\ndata: ");
}

/// Appends a comment line to `buf`, as [`comment`] frames it.
pub fn put_comment(buf: &mut BytesMut, text: &str) {
    buf.put_slice(b": ");
    buf.put_slice(one_line(text).as_bytes());
    buf.put_slice(b"\n\n");
}

fn frame(name: Option<&str>, id: Option<u64>, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + 32);
    let id = id.map(|id| id.to_string());
    put_frame(&mut buf, name, id.as_deref(), data);
    buf.freeze()
}

fn put_frame(buf: &mut BytesMut, name: Option<&str>, id: Option<&str>, data: &str) {
    if let Some(name) = name {
        buf.put_slice(b"event: ");
        buf.put_slice(one_line(name).as_bytes());
        buf.put_u8(b'\n');
    }
    if let Some(id) = id {
        buf.put_slice(b"id: ");
        buf.put_slice(one_line(id).as_bytes());
        buf.put_u8(b'\n');
    }
    // A data line cannot hold a line break: each line is its own `data:`
    // field, and the client joins them with '\n' again.
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_has_an_id_and_data_and_no_name() {
        assert_eq!(
            &change(7, r#"{"1":null}"#)[..],
            b"id: 7\ndata: {\"1\":null}\n\n"
        );
    }

    #[test]
    fn a_named_event_comes_first_with_its_name() {
        assert_eq!(
            &named("reset", None, "{}")[..],
            b"event: reset\ndata: {}\n\n"
        );
        assert_eq!(
            &named("snapshot", Some(3), "{}")[..],
            b"event: snapshot\nid: 3\ndata: {}\n\n"
        );
    }

    #[test]
    fn multi_line_data_becomes_several_data_fields() {
        assert_eq!(&change(1, "a\nb")[..], b"id: 1\ndata: a\ndata: b\n\n");
    }

    #[test]
    fn a_comment_cannot_break_the_framing() {
        assert_eq!(&comment("keep\nalive")[..], b": keep alive\n\n");
    }

    #[test]
    fn pages_concatenate_frames() {
        let mut buf = BytesMut::new();
        put_change(&mut buf, 1, "{}");
        put_change(&mut buf, 2, "{}");
        assert_eq!(&buf[..], b"id: 1\ndata: {}\n\nid: 2\ndata: {}\n\n");
    }

    #[test]
    fn appended_events_frame_as_the_built_ones_and_a_text_id_stays_on_its_line() {
        let mut buf = BytesMut::new();
        put_named(&mut buf, "progress", Some(4), "{}");
        put_comment(&mut buf, "keep-alive");
        assert_eq!(
            &buf[..],
            [
                &named("progress", Some(4), "{}")[..],
                &comment("keep-alive")[..]
            ]
            .concat()
        );
        let mut buf = BytesMut::new();
        put_with_id(&mut buf, "change", "a=1,b\n=2", "{}");
        assert_eq!(&buf[..], b"event: change\nid: a=1,b =2\ndata: {}\n\n");
        let mut buf = BytesMut::new();
        put_head_with_id(&mut buf, "snapshot", "");
        buf.put_slice(b"{}");
        buf.put_slice(END);
        assert_eq!(&buf[..], b"event: snapshot\nid: \ndata: {}\n\n");
    }
}
