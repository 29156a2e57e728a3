//! criterion micro-benchmarks of the XML layer's hot paths: tokenizing a
//! typical chat message out of a client stream (the stream is opened once,
//! then the same stanza is fed and parsed over and over, as a session's
//! parser sees it), and serializing that message back to bytes.
//!
//! `cargo bench -p switchboard-xml` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use switchboard_xml::{Event, Limits, StreamParser};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// A one-to-one chat message as a client sends it: a 64-byte body, an id,
/// a chat state and a receipt request (what real clients add).
const MESSAGE: &[u8] =
    b"<message to='user1@localhost' type='chat' id='a8f3c2d1-5e6b-4c7a-9d0e-1f2a3b4c5d6e'>\
<body>Hello there, this is a typical 64-byte chat message body &amp; more</body>\
<active xmlns='http://jabber.org/protocol/chatstates'/>\
<request xmlns='urn:xmpp:receipts'/></message>";

/// A parser with the stream already open, as in an established session.
fn open_parser() -> StreamParser {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER).expect("header");
    match p.next_event().expect("header parses") {
        Some(Event::StreamOpen(_)) => {}
        _ => panic!("expected the stream header"),
    }
    p
}

fn parse_one(p: &mut StreamParser, bytes: &[u8]) -> switchboard_xml::Element {
    p.feed(bytes).expect("feed");
    match p.next_event().expect("parses") {
        Some(Event::Stanza(e)) => e,
        _ => panic!("expected a stanza"),
    }
}

fn tokenize(c: &mut Criterion) {
    let mut g = c.benchmark_group("xml");
    g.throughput(Throughput::Bytes(MESSAGE.len() as u64));
    g.bench_function("parse_message", |b| {
        let mut p = open_parser();
        b.iter(|| black_box(parse_one(&mut p, black_box(MESSAGE))))
    });
    // The same bytes arriving in 3 reads (a stanza split across TLS records).
    g.bench_function("parse_message_split3", |b| {
        let mut p = open_parser();
        let third = MESSAGE.len() / 3;
        b.iter(|| {
            p.feed(&MESSAGE[..third]).expect("feed");
            assert!(p.next_event().expect("ok").is_none());
            p.feed(&MESSAGE[third..2 * third]).expect("feed");
            assert!(p.next_event().expect("ok").is_none());
            black_box(parse_one(&mut p, &MESSAGE[2 * third..]))
        })
    });
    let mut p = open_parser();
    let element = parse_one(&mut p, MESSAGE);
    g.bench_function("serialize_message", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            black_box(&element).write_to(&mut out, Some("jabber:client"));
            black_box(out.len())
        })
    });
    g.bench_function("serialize_message_to_bytes", |b| {
        b.iter(|| black_box(black_box(&element).to_bytes(Some("jabber:client"))))
    });
    g.bench_function("clone_and_stamp_from", |b| {
        // What routing does to a stanza before serializing it: stamp `from`.
        b.iter_batched(
            || element.clone(),
            |mut e| {
                e.set_attr("from", "user0@localhost/load");
                black_box(e)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
