use std::time::Instant;
use switchboard_xml::{Event, Limits, StreamParser, parse_document};
#[test]
#[ignore]
fn perf() {
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
    let stanza = "<message to='juliet@capulet.example/balcony' from='romeo@montague.example/orchard' type='chat' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague? &amp; caf\u{e9}</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>";
    let n: usize = std::env::var("N").map(|v| v.parse().unwrap()).unwrap_or(200_000);
    let mut input = header.as_bytes().to_vec();
    for _ in 0..n { input.extend_from_slice(stanza.as_bytes()); }
    for chunk in [4096usize] {
        let t = Instant::now();
        let mut p = StreamParser::new(Limits::default());
        let mut count = 0;
        for c in input.chunks(chunk) {
            p.feed(c).unwrap();
            while let Some(ev) = p.next_event().unwrap() { if let Event::Stanza(_) = ev { count += 1; } }
        }
        let dt = t.elapsed();
        assert_eq!(count, n);
        eprintln!("chunk {chunk}: {:?} for {} MB -> {:.0} MB/s, {:.0} stanzas/s", dt, input.len()/1_000_000, input.len() as f64 / dt.as_secs_f64() / 1e6, n as f64 / dt.as_secs_f64());
    }
    if n < 200_000 { return; }
    // big text stanza in small pieces
    let big = format!("{header}<message><body>{}</body></message>", "abc&amp;d\u{e9}f ".repeat(20_000));
    let t = Instant::now();
    for _ in 0..20 {
        let mut p = StreamParser::new(Limits::default());
        for c in big.as_bytes().chunks(1024) { p.feed(c).unwrap(); while p.next_event().unwrap().is_some() {} }
    }
    eprintln!("big text 20x{}KB: {:?}", big.len()/1024, t.elapsed());
    // big attribute (long tag) in small pieces
    let big = format!("{header}<message a='{}'/>", "x".repeat(250_000));
    let t = Instant::now();
    for _ in 0..20 {
        let mut p = StreamParser::new(Limits::default());
        for c in big.as_bytes().chunks(512) { p.feed(c).unwrap(); while p.next_event().unwrap().is_some() {} }
    }
    eprintln!("long tag 20x{}KB in 512B pieces: {:?}", big.len()/1024, t.elapsed());
    let doc = format!("<root>{}</root>", stanza.repeat(1000).replace("><", ">\n<"));
    let t = Instant::now();
    for _ in 0..20 { parse_document(doc.as_bytes(), Limits{max_stanza_bytes: 1<<30, ..Limits::default()}).unwrap(); }
    eprintln!("document 20x{}KB: {:?}", doc.len()/1024, t.elapsed());
}
#[test]
#[ignore]
fn perf_baseline() {
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
    let stanza = "<message to='juliet@capulet.example/balcony' from='romeo@montague.example/orchard' type='chat' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague? &amp; caf\u{e9}</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>";
    let n = 200_000;
    let mut input = header.as_bytes().to_vec();
    for _ in 0..n { input.extend_from_slice(stanza.as_bytes()); }
    let t = Instant::now();
    let mut r = quick_xml::Reader::from_reader(&input[..]);
    let mut k = 0usize;
    loop {
        match r.read_event().unwrap() {
            quick_xml::events::Event::Start(s) | quick_xml::events::Event::Empty(s) => { for a in s.attributes() { k += a.unwrap().value.len(); } }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    eprintln!("quick-xml raw: {:?} ({k})", t.elapsed());
    let t = Instant::now();
    let mut v = Vec::new();
    for _ in 0..n {
        let el = switchboard_xml::Element::new("message", "jabber:client").with_attr("to", "juliet@capulet.example/balcony").with_attr("from", "romeo@montague.example/orchard").with_attr("type", "chat").with_attr("id", "ktx72v49").with_attr("xml:lang", "en")
          .with_child(switchboard_xml::Element::new("body", "jabber:client").with_text("Art thou not Romeo, and a Montague? & caf\u{e9}"))
          .with_child(switchboard_xml::Element::new("thread", "jabber:client").with_text("e0ffe42b28561960c6b12b944a092794b9683a38"))
          .with_child(switchboard_xml::Element::new("active", "http://jabber.org/protocol/chatstates"));
        v.push(el);
        if v.len() > 100 { v.clear(); }
    }
    eprintln!("building elements: {:?}", t.elapsed());
}
