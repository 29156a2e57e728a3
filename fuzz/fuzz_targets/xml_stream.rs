//! The XML stream parser on arbitrary bytes in arbitrary pieces: it must
//! not panic, must stay within its limits, and must not depend on how the
//! bytes were split (the same events, and an error or not, as when they
//! come at once). The same bytes also go through the document parser.
//!
//! Input: one byte choosing the split ([`switchboard_fuzz::split`]), then
//! the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::split;
use switchboard_xml::{parse_document, Event, Limits, StreamParser, XmlError};

/// Every event the parser gives for `pieces`, and the error it stopped at.
fn events(pieces: &[&[u8]], limits: Limits) -> (Vec<Event>, Option<XmlError>) {
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = p.feed(piece) {
            return (out, Some(e));
        }
        loop {
            match p.next_event() {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(
            p.buffered_capacity() <= 2 * limits.max_stanza_bytes.max(4096),
            "the buffer grew past the limit: {}",
            p.buffered_capacity()
        );
        p.shrink_if_idle();
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let (whole, whole_err) = events(&[body], Limits::default());
    let (pieces, pieces_err) = events(&split(seed, body), Limits::default());
    assert_eq!(
        whole, pieces,
        "the events depend on how the bytes were split"
    );
    assert_eq!(
        whole_err.as_ref().map(XmlError::condition),
        pieces_err.as_ref().map(XmlError::condition),
        "the error depends on how the bytes were split: {whole_err:?} / {pieces_err:?}"
    );
    // Tight limits: only that they hold without a panic.
    let tight = Limits {
        max_stanza_bytes: 256,
        max_depth: 4,
        max_attrs: 4,
    };
    let _ = events(&split(seed, body), tight);
    let _ = parse_document(body, Limits::default());
    let _ = parse_document(body, tight);
});
