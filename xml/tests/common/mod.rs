//! Helpers shared by the integration tests: feeding a parser and collecting
//! its events.

#![allow(dead_code)] // each test binary uses a different subset

use switchboard_xml::{Event, Limits, StreamParser, XmlError};

/// A typical client stream header, with an XML declaration.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' \
     xml:lang='en'>";

/// Drains every event currently available.
pub fn drain(p: &mut StreamParser, out: &mut Vec<Event>) -> Result<(), XmlError> {
    while let Some(ev) = p.next_event()? {
        out.push(ev);
    }
    Ok(())
}

/// Feeds `input` in the given chunk boundaries, draining after each feed.
pub fn parse_chunks(chunks: &[&[u8]], limits: Limits) -> Result<Vec<Event>, XmlError> {
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c)?;
        drain(&mut p, &mut out)?;
    }
    Ok(out)
}

pub fn parse(input: &[u8]) -> Result<Vec<Event>, XmlError> {
    parse_chunks(&[input], Limits::default())
}

/// Feeds one byte at a time.
pub fn parse_bytewise(input: &[u8]) -> Result<Vec<Event>, XmlError> {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    parse_chunks(&chunks, Limits::default())
}

/// The stanzas of a stream made of [`HEADER`] and `body`.
pub fn stanzas(body: &str) -> Result<Vec<switchboard_xml::Element>, XmlError> {
    let input = format!("{HEADER}{body}");
    Ok(parse(input.as_bytes())?
        .into_iter()
        .filter_map(|e| match e {
            Event::Stanza(el) => Some(el),
            _ => None,
        })
        .collect())
}

/// The only stanza of a stream made of [`HEADER`] and `body`.
pub fn stanza(body: &str) -> switchboard_xml::Element {
    let mut all = stanzas(body).expect("parses");
    assert_eq!(all.len(), 1, "expected exactly one stanza");
    all.pop().unwrap()
}

/// The error a stream made of [`HEADER`] and `body` fails with.
pub fn stanza_error(body: &str) -> XmlError {
    stanzas(body).expect_err("expected an error")
}

/// The error a raw stream fails with.
pub fn error(input: &str) -> XmlError {
    parse(input.as_bytes()).expect_err("expected an error")
}
