//! Stream-mode parsing: the stream root, stanzas, namespaces, the XMPP
//! restrictions and well-formedness errors, each with its exact variant.

mod common;

use common::*;
use switchboard_xml::{ns, Element, Event, Limits, Node, StreamParser, XmlError};

fn is_nwf(e: &XmlError) -> bool {
    matches!(e, XmlError::NotWellFormed(_))
}

// ---------------------------------------------------------------------------
// The stream root

#[test]
fn stream_header() {
    let evs = parse(HEADER.as_bytes()).unwrap();
    let [Event::StreamOpen(h)] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, ns::STREAM);
    assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
    assert_eq!(h.attr("to"), Some("example.com"));
    assert_eq!(h.attr("version"), Some("1.0"));
    assert_eq!(h.attr("xml:lang"), Some("en"));
    // Namespace declarations are not attributes.
    assert_eq!(h.attrs.len(), 3);
    assert_eq!(h.attr("xmlns"), None);
}

#[test]
fn stream_header_without_declaration_or_default_namespace() {
    let evs = parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>").unwrap();
    let [Event::StreamOpen(h)] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(h.default_ns, None);
    // An unprefixed root in the streams namespace is the same element.
    let evs = parse(b"<stream xmlns='http://etherx.jabber.org/streams'>").unwrap();
    assert!(matches!(&evs[..], [Event::StreamOpen(h)] if h.ns == ns::STREAM));
}

#[test]
fn stream_header_with_bom_and_whitespace() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(HEADER.as_bytes());
    assert!(matches!(parse(&input).unwrap()[..], [Event::StreamOpen(_)]));
    let input = format!("\n  {}", &HEADER[21..]); // no declaration
    assert!(matches!(
        parse(input.as_bytes()).unwrap()[..],
        [Event::StreamOpen(_)]
    ));
}

#[test]
fn wrong_root_is_invalid_namespace() {
    for input in [
        "<stream:stream xmlns:stream='urn:wrong'>",
        "<stream xmlns='jabber:client'>",
        "<stream>",
        "<foo xmlns='http://etherx.jabber.org/streams'>",
        "<s:features xmlns:s='http://etherx.jabber.org/streams'>",
        "<message xmlns='jabber:client'/>",
    ] {
        assert!(
            matches!(error(input), XmlError::InvalidNamespace(_)),
            "{input}: {:?}",
            error(input)
        );
    }
}

#[test]
fn undeclared_root_prefix_is_not_well_formed() {
    assert!(is_nwf(&error("<stream:stream xmlns='jabber:client'>")));
}

#[test]
fn text_before_root_is_not_well_formed() {
    assert!(is_nwf(&error("hello <stream:stream>")));
}

#[test]
fn self_closed_root_opens_and_closes() {
    let evs = parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>").unwrap();
    assert!(matches!(
        evs[..],
        [Event::StreamOpen(_), Event::StreamClose]
    ));
}

#[test]
fn stream_close() {
    let evs = parse(format!("{HEADER}<presence/> </stream:stream>\n").as_bytes()).unwrap();
    assert!(matches!(
        evs[..],
        [Event::StreamOpen(_), Event::Stanza(_), Event::StreamClose]
    ));
}

#[test]
fn data_after_close_is_not_well_formed() {
    assert!(is_nwf(&stanza_error("</stream:stream><presence/>")));
    assert!(is_nwf(&stanza_error("</stream:stream>junk")));
    assert!(is_nwf(&stanza_error("</stream:stream></stream:stream>")));
}

#[test]
fn mismatched_end_tags_are_not_well_formed() {
    assert!(is_nwf(&stanza_error("<message><body></message></body>")));
    assert!(is_nwf(&stanza_error("<message></message ></stream>")));
    assert!(is_nwf(&stanza_error("</stream:streamx>")));
    // Same namespace, different prefix: still a different name.
    assert!(is_nwf(&stanza_error(
        "<a:x xmlns:a='urn:x' xmlns:b='urn:x'></b:x>"
    )));
    assert!(is_nwf(&error("</stream:stream>")));
}

#[test]
fn end_tag_may_have_trailing_whitespace() {
    let el = stanza("<message><body>x</body \n></message\t>");
    assert_eq!(el.child_text("body", ns::CLIENT).as_deref(), Some("x"));
}

// ---------------------------------------------------------------------------
// Stanzas

#[test]
fn simple_stanza() {
    let el = stanza(
        "<message to='juliet@example.com' type=\"chat\"><body>hi &amp; bye</body></message>",
    );
    let expected = Element::new("message", ns::CLIENT)
        .with_attr("to", "juliet@example.com")
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text("hi & bye"));
    assert_eq!(el, expected);
}

#[test]
fn several_stanzas_in_one_read_and_keepalives() {
    let all = stanzas(" \n<presence/>\t<iq id='1'/> \r\n <message/>   ").unwrap();
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["presence", "iq", "message"]);
}

#[test]
fn whitespace_inside_stanzas_is_kept() {
    let el = stanza("<message>\n  <body> a </body>\n</message>");
    assert_eq!(el.children.len(), 3);
    assert_eq!(el.children[0], Node::Text("\n  ".into()));
    assert_eq!(el.child_text("body", ns::CLIENT).as_deref(), Some(" a "));
}

#[test]
fn text_between_stanzas_is_bad_format() {
    for body in [
        "hello",
        "<presence/>x",
        " &#32;",
        " &amp;",
        "<![CDATA[x]]>",
        "<presence/> . <presence/>",
    ] {
        assert!(
            matches!(stanza_error(body), XmlError::BadFormat(_)),
            "{body}: {:?}",
            stanza_error(body)
        );
    }
}

#[test]
fn cdata_sections() {
    let el = stanza("<body>a<![CDATA[<b>&amp;]]]]><![CDATA[>]]>c</body>");
    assert_eq!(el.text(), "a<b>&amp;]]>c");
    // Adjacent text and CDATA form one node.
    assert_eq!(el.children.len(), 1);
    assert!(is_nwf(&stanza_error("<body><![CDAT[x]]></body>")));
}

#[test]
fn line_ends_are_normalized() {
    let el = stanza("<body a='1\r\n2\r3\n4\t5'>x\r\ny\rz&#13;</body>");
    assert_eq!(el.text(), "x\ny\nz\r");
    assert_eq!(el.attr("a"), Some("1 2 3 4 5"));
    let el = stanza("<body a='&#9;&#10;&#13;'/>");
    assert_eq!(el.attr("a"), Some("\t\n\r"));
}

// ---------------------------------------------------------------------------
// Namespaces

#[test]
fn prefixed_stanza() {
    let el = stanza(
        "<c:message xmlns:c='jabber:client' to='a@b'><c:body>hi</c:body><x xmlns='urn:x'/></c:message>",
    );
    assert!(el.is("message", ns::CLIENT));
    assert_eq!(el.attr("to"), Some("a@b"));
    assert_eq!(el.attrs.len(), 1);
    assert!(el.get_child("body", ns::CLIENT).is_some());
    // Unprefixed children inherit the stream's default namespace unless
    // they declare their own.
    assert!(el.get_child("x", "urn:x").is_some());
}

#[test]
fn unprefixed_elements_inherit_the_default_namespace() {
    let el = stanza(
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item/></query><ping xmlns='urn:xmpp:ping'/><error/></iq>",
    );
    assert!(el.is("iq", ns::CLIENT));
    let q = el.get_child("query", "jabber:iq:roster").unwrap();
    assert!(q.get_child("item", "jabber:iq:roster").is_some());
    assert!(el.get_child("ping", ns::PING).is_some());
    assert!(el.get_child("error", ns::CLIENT).is_some());
}

#[test]
fn default_namespace_can_be_undeclared() {
    let el = stanza("<message><x xmlns=''><y/></x></message>");
    let x = el.get_child("x", "").unwrap();
    assert!(x.get_child("y", "").is_some());
}

#[test]
fn prefix_scoping_and_rebinding() {
    let el = stanza("<p:a xmlns:p='urn:1'><p:b xmlns:p='urn:2'><p:c/></p:b><p:d/></p:a>");
    assert!(el.is("a", "urn:1"));
    let b = el.get_child("b", "urn:2").unwrap();
    assert!(b.get_child("c", "urn:2").is_some());
    assert!(el.get_child("d", "urn:1").is_some());
    // The binding ended with <p:a>.
    assert!(is_nwf(&stanza_error("<p:a xmlns:p='urn:1'/><p:b/>")));
}

#[test]
fn namespaced_attributes() {
    let el = stanza(
        "<message xml:lang='fr' xmlns:e='urn:ext' e:hint='x' hint='y'><body xml:lang='de'/></message>",
    );
    assert_eq!(el.attr("xml:lang"), Some("fr"));
    assert_eq!(el.attr("{urn:ext}hint"), Some("x"));
    assert_eq!(el.attr("hint"), Some("y"));
    assert_eq!(el.attrs.len(), 3);
    let body = el.first_element().unwrap();
    assert_eq!(body.attr("xml:lang"), Some("de"));
}

#[test]
fn undeclared_prefixes_are_not_well_formed() {
    for body in [
        "<x:message/>",
        "<message y:a='1'/>",
        "<message><x:body/></message>",
        "<message xmlns:x=''/>",
        "<xmlns:message/>",
        "<message xmlns:xmlns='urn:x'/>",
        "<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
        "<message xmlns:xml='urn:x'/>",
    ] {
        assert!(
            is_nwf(&stanza_error(body)),
            "{body}: {:?}",
            stanza_error(body)
        );
    }
}

#[test]
fn duplicate_attributes_are_not_well_formed() {
    for body in [
        "<message to='a' to='b'/>",
        "<message xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:t='2'/>",
        "<message xmlns='urn:a' xmlns='urn:b'/>",
        "<message xmlns:a='urn:a' xmlns:a='urn:b'/>",
        "<message xml:lang='en' xml:lang='fr'/>",
    ] {
        assert!(
            is_nwf(&stanza_error(body)),
            "{body}: {:?}",
            stanza_error(body)
        );
    }
    // Same local name in different namespaces is fine.
    let el = stanza("<message xmlns:a='urn:a' t='0' a:t='1'/>");
    assert_eq!(el.attrs.len(), 2);
}

// ---------------------------------------------------------------------------
// Restricted XML

#[test]
fn restricted_constructs() {
    for input in [
        format!("<!DOCTYPE stream>{HEADER}"),
        format!("{HEADER}<!DOCTYPE x>"),
        format!("{HEADER}<!ENTITY x 'y'>"),
        format!("{HEADER}<message><!ENTITY x 'y'></message>"),
        format!("<?php x?>{HEADER}"),
        format!("{HEADER}<?pi data?>"),
        format!("{HEADER}<message><?pi?></message>"),
        format!("{HEADER}<!-- c -->"),
        format!("{HEADER}<message><!-- c --></message>"),
        format!("<!-- c -->{HEADER}"),
        // A declaration anywhere but at the very start is a PI.
        format!("{HEADER}<?xml version='1.0'?>"),
        format!(" {HEADER}"),
        format!("<?xml-stylesheet href='x'?>{}", &HEADER[21..]),
    ] {
        let err = error(&input);
        assert!(
            matches!(err, XmlError::RestrictedXml(_)),
            "{input}: {err:?}"
        );
    }
}

#[test]
fn restricted_constructs_are_refused_early() {
    // No need to wait for the end of the comment or DOCTYPE.
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes()).unwrap();
    assert!(p.next_event().unwrap().is_some());
    p.feed(b"<!--").unwrap();
    assert!(matches!(p.next_event(), Err(XmlError::RestrictedXml(_))));
}

#[test]
fn malformed_markup() {
    for body in [
        "<!x>",
        "<!-x-->",
        "<message><!--x--></message>",
        "<1message/>",
        "<message 1a='x'/>",
        "< message/>",
        "<message a='1'b='2'/>",
        "<message a/>",
        "<message a=1/>",
        "<message a='1' / >",
        "<message a=\"<\"/>",
        "<message></ message>",
        "<message/ >",
        "<>",
    ] {
        let err = stanza_error(body);
        // `<!--` on a stream is refused as restricted before anything else.
        if body.contains("<!--") {
            assert!(matches!(err, XmlError::RestrictedXml(_)), "{body}: {err:?}");
        } else {
            assert!(is_nwf(&err), "{body}: {err:?}");
        }
    }
}

#[test]
fn bad_xml_declarations() {
    for decl in [
        "<?xml?>",
        "<?xml version='2.0'?>",
        "<?xml encoding='UTF-8' version='1.0'?>",
    ] {
        let err = error(&format!("{decl}{}", &HEADER[21..]));
        assert!(is_nwf(&err), "{decl}: {err:?}");
    }
}

// ---------------------------------------------------------------------------
// Encodings: UTF-8 only (RFC 6120 §11.6), anything else is
// unsupported-encoding (§4.9.3.22)

fn is_unsupported_encoding(e: &XmlError) -> bool {
    matches!(e, XmlError::UnsupportedEncoding(_)) && e.condition() == "unsupported-encoding"
}

#[test]
fn a_declared_encoding_other_than_utf8_is_unsupported() {
    for decl in [
        "<?xml version='1.0' encoding='ISO-8859-1'?>",
        "<?xml version='1.0' encoding='UTF-16'?>",
        "<?xml version=\"1.0\" encoding=\"us-ascii\"?>",
        "<?xml version='1.0' encoding='UTF8'?>",
    ] {
        let input = format!("{decl}{}", &HEADER[21..]);
        let err = error(&input);
        assert!(is_unsupported_encoding(&err), "{decl}: {err:?}");
        let err = parse_bytewise(input.as_bytes()).unwrap_err();
        assert!(
            is_unsupported_encoding(&err),
            "{decl} byte by byte: {err:?}"
        );
    }
}

#[test]
fn utf8_is_accepted_in_any_case_or_left_unsaid() {
    for decl in [
        "<?xml version='1.0' encoding='UTF-8'?>",
        "<?xml version='1.0' encoding='utf-8'?>",
        "<?xml version='1.0' encoding='Utf-8' standalone='yes'?>",
        "<?xml version='1.0'?>",
        "",
    ] {
        let input = format!("{decl}{}<presence/>", &HEADER[21..]);
        let evs = parse_bytewise(input.as_bytes()).unwrap();
        assert!(
            matches!(evs[..], [Event::StreamOpen(_), Event::Stanza(_)]),
            "{decl}: {evs:?}"
        );
    }
}

/// `text` in UTF-16, with or without a byte order mark.
fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
    for u in units {
        out.extend(if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

#[test]
fn utf16_streams_are_an_unsupported_encoding() {
    for big_endian in [true, false] {
        for bom in [true, false] {
            let input = utf16(HEADER, big_endian, bom);
            let err = parse(&input).unwrap_err();
            assert!(
                is_unsupported_encoding(&err),
                "big-endian {big_endian}, BOM {bom}: {err:?}"
            );
            // However the first bytes are split.
            let err = parse_bytewise(&input).unwrap_err();
            assert!(is_unsupported_encoding(&err), "{err:?}");
        }
    }
    let err = parse(b"\xFF\xFE").unwrap_err();
    assert!(err.detail().contains("little-endian"), "{err:?}");
    let err = parse(b"\xFE\xFF").unwrap_err();
    assert!(err.detail().contains("big-endian"), "{err:?}");
}

#[test]
fn the_first_bytes_are_judged_only_once_they_decide() {
    // A lone `<` or a byte order mark's first byte waits for the next one.
    for first in [
        &b"<"[..],
        b"\xFE",
        b"\xFF",
        b"\xEF",
        b"\xEF\xBB",
        b"a",
        b" ",
    ] {
        let mut p = StreamParser::new(Limits::default());
        p.feed(first).unwrap();
        assert_eq!(p.next_event(), Ok(None), "{first:?}");
    }
    // A UTF-8 byte order mark is skipped, split or not.
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(HEADER.as_bytes());
    assert!(matches!(
        parse_bytewise(&input).unwrap()[..],
        [Event::StreamOpen(_)]
    ));
    // Any first byte waits: a zero after it makes the stream UTF-16 (found
    // by fuzzing: a lone first byte used to be judged at once).
    let whole = parse(b"\x08\x00").unwrap_err();
    let split = parse_bytewise(b"\x08\x00").unwrap_err();
    assert!(is_unsupported_encoding(&whole), "{whole:?}");
    assert_eq!(split, whole);
    // Once the check is done, a later zero byte is just not well-formed.
    assert!(is_nwf(&stanza_error("<message>\u{0}</message>")));
}

// ---------------------------------------------------------------------------
// Entities, references and characters

#[test]
fn predefined_entities_and_char_refs() {
    let el = stanza("<body a='&lt;&gt;&amp;&quot;&apos;&#x41;&#66;'>&lt;&gt;&amp;&quot;&apos;&#x1F600;&#233;</body>");
    assert_eq!(el.attr("a"), Some("<>&\"'AB"));
    assert_eq!(el.text(), "<>&\"'😀é");
}

#[test]
fn undefined_entities_and_bad_references_are_not_well_formed() {
    for body in [
        "<body>&nbsp;</body>",
        "<body a='&nbsp;'/>",
        "<body>&#0;</body>",
        "<body>&#x0;</body>",
        "<body>&#8;</body>",
        "<body>&#x1F;</body>",
        "<body>&#xD800;</body>",
        "<body>&#xDFFF;</body>",
        "<body>&#xFFFE;</body>",
        "<body>&#xFFFF;</body>",
        "<body>&#x110000;</body>",
        "<body>&#;</body>",
        "<body>&#x;</body>",
        "<body>&#xZZ;</body>",
        "<body>& </body>",
        "<body>AT&T</body>",
        "<body a='&amp'/>",
        "<body>&amp</body>",
    ] {
        assert!(
            is_nwf(&stanza_error(body)),
            "{body}: {:?}",
            stanza_error(body)
        );
    }
}

#[test]
fn raw_control_characters_are_not_well_formed() {
    for body in [
        "<body>\u{0}</body>",
        "<body>a\u{1}b</body>",
        "<body>\u{1b}</body>",
        "<body a='\u{7}'/>",
        "<body>\u{FFFE}</body>",
        "<body>]]></body>",
    ] {
        assert!(
            is_nwf(&stanza_error(body)),
            "{body:?}: {:?}",
            stanza_error(body)
        );
    }
    // Tab, LF and CR (normalized) are fine; so are DEL and C1 controls.
    let el = stanza("<body>\t\n\u{7f}\u{85}</body>");
    assert_eq!(el.text(), "\t\n\u{7f}\u{85}");
}

#[test]
fn invalid_utf8_is_not_well_formed() {
    for bad in [
        &b"<body>\xff</body>"[..],
        b"<body>\xc3</body>",
        b"<body>\xc3(</body>",
        b"<body>\xed\xa0\x80</body>",
        b"<body>\xc0\x80</body>",
        b"<body a='\xe9'/>",
        b"<b\xe9dy/>",
    ] {
        let mut input = HEADER.as_bytes().to_vec();
        input.extend_from_slice(bad);
        assert!(is_nwf(&parse(&input).unwrap_err()), "{bad:?}");
        assert!(is_nwf(&parse_bytewise(&input).unwrap_err()), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Incremental parsing

/// A stanza exercising every place a split can land: multibyte characters
/// (2, 3 and 4 bytes) in text, attributes and names, entities, character
/// references, CR LF, `]]` near `>`, CDATA, comments-free markup, prefixes.
const TRICKY: &str = "<c:message xmlns:c='jabber:client' to='r\u{e9}mi@example.com' \
    type=\"chat\" xml:lang='fr'>\r\n<c:body>caf\u{e9} &amp; \u{65e5}\u{672c} \u{1F600}&#x1F600;&#233;\r\n\
    ]]&gt; ]] ] &lt;tag&gt; &quot;q&quot; &apos;a&apos;\r</c:body>\
    <\u{e9}t\u{e9} xmlns='urn:\u{e9}' a='\u{1F600}&#9;x\r\ny'><![CDATA[<raw> \u{e9} ]] > ]]]]><![CDATA[>]]></\u{e9}t\u{e9}>\
    <thread xmlns='jabber:client'/></c:message>";

fn tricky_stream() -> Vec<u8> {
    format!("{HEADER}{TRICKY}<presence/></stream:stream>").into_bytes()
}

#[test]
fn tricky_stanza_parses() {
    let evs = parse(&tricky_stream()).unwrap();
    let Event::Stanza(el) = &evs[1] else {
        panic!("{evs:?}")
    };
    assert!(el.is("message", ns::CLIENT));
    assert_eq!(el.attr("to"), Some("r\u{e9}mi@example.com"));
    assert_eq!(el.attr("xml:lang"), Some("fr"));
    assert_eq!(
        el.child_text("body", ns::CLIENT).unwrap(),
        "caf\u{e9} & \u{65e5}\u{672c} \u{1F600}\u{1F600}\u{e9}\n]]> ]] ] <tag> \"q\" 'a'\n"
    );
    let ete = el.get_child("\u{e9}t\u{e9}", "urn:\u{e9}").unwrap();
    assert_eq!(ete.attr("a"), Some("\u{1F600}\tx y"));
    assert_eq!(ete.text(), "<raw> \u{e9} ]] > ]]>");
    assert!(el.get_child("thread", ns::CLIENT).is_some());
    assert!(matches!(
        evs[..],
        [_, _, Event::Stanza(_), Event::StreamClose]
    ));
}

#[test]
fn split_at_every_byte_boundary() {
    let input = tricky_stream();
    let whole = parse(&input).unwrap();
    for i in 0..=input.len() {
        let split = parse_chunks(&[&input[..i], &input[i..]], Limits::default()).unwrap();
        assert_eq!(split, whole, "split at {i}");
    }
}

#[test]
fn split_at_every_pair_of_boundaries_in_the_stanza() {
    let input = tricky_stream();
    let whole = parse(&input).unwrap();
    let start = HEADER.len();
    let end = start + TRICKY.len();
    for i in (start..end).step_by(3) {
        for j in (i..end).step_by(7) {
            let chunks = [&input[..i], &input[i..j], &input[j..]];
            assert_eq!(
                parse_chunks(&chunks, Limits::default()).unwrap(),
                whole,
                "{i}/{j}"
            );
        }
    }
}

#[test]
fn byte_by_byte() {
    let input = tricky_stream();
    assert_eq!(parse_bytewise(&input).unwrap(), parse(&input).unwrap());
}

#[test]
fn multibyte_character_split_across_feeds() {
    for text in ["\u{e9}", "\u{65e5}", "\u{1F600}"] {
        let input = format!("{HEADER}<body>{text}</body>");
        let bytes = input.as_bytes();
        let at = HEADER.len() + "<body>".len();
        for cut in at..at + text.len() {
            let evs = parse_chunks(&[&bytes[..cut], &bytes[cut..]], Limits::default()).unwrap();
            assert!(matches!(&evs[1], Event::Stanza(el) if el.text() == text));
        }
    }
}

#[test]
fn needs_more_bytes_returns_none() {
    let mut p = StreamParser::new(Limits::default());
    assert_eq!(p.next_event(), Ok(None));
    p.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"<message><body>hel").unwrap();
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"lo</bo").unwrap();
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"dy></message><pres").unwrap();
    let Ok(Some(Event::Stanza(el))) = p.next_event() else {
        panic!()
    };
    assert_eq!(el.child_text("body", ns::CLIENT).as_deref(), Some("hello"));
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"ence/>").unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::Stanza(_)))));
}

#[test]
fn errors_are_sticky() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(format!("{HEADER}<message>&nbsp;</message>").as_bytes())
        .unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    let err = p.next_event().unwrap_err();
    assert!(is_nwf(&err));
    assert_eq!(p.next_event(), Err(err.clone()));
    assert_eq!(p.feed(b"<presence/>"), Err(err.clone()));
    assert_eq!(p.next_event(), Err(err));
}

#[test]
fn reset_starts_a_new_stream() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(
        format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><partial").as_bytes(),
    )
    .unwrap();
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    assert_eq!(evs.len(), 2);
    p.reset();
    assert_eq!(p.next_event(), Ok(None));
    // A fresh header, XML declaration included, is accepted again.
    p.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    // Reset also revives a dead parser.
    p.feed(b"junk").unwrap();
    assert!(p.next_event().is_err());
    p.reset();
    p.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
}

#[test]
fn shrink_if_idle_releases_the_buffer() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes()).unwrap();
    let big = format!("<message><body>{}</body></message>", "x".repeat(100_000));
    let bytes = big.as_bytes();
    // Arrives in two pieces, so the first sits in the buffer for a while.
    p.feed(&bytes[..60_000]).unwrap();
    p.feed(&bytes[60_000..]).unwrap();
    assert!(p.buffered_capacity() > 4096);
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    assert_eq!(evs.len(), 2);
    p.shrink_if_idle();
    assert_eq!(p.buffered_capacity(), 0);
    // Still usable afterwards.
    p.feed(b"<presence/>").unwrap();
    assert!(matches!(p.next_event(), Ok(Some(Event::Stanza(_)))));
}

#[test]
fn shrink_if_idle_keeps_unconsumed_bytes() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes()).unwrap();
    p.feed(b"<message><body>").unwrap();
    p.feed(&[b'x'; 10_000]).unwrap();
    p.feed(b"</body></mess").unwrap();
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    p.shrink_if_idle();
    p.feed(b"age>").unwrap();
    drain(&mut p, &mut evs).unwrap();
    let Event::Stanza(el) = &evs[1] else { panic!() };
    assert_eq!(el.child_text("body", ns::CLIENT).unwrap().len(), 10_000);
}

// ---------------------------------------------------------------------------
// Limits

fn limits(bytes: usize) -> Limits {
    Limits {
        max_stanza_bytes: bytes,
        ..Limits::default()
    }
}

/// A `<message>` of exactly `len` bytes on the wire.
fn message_of(len: usize) -> String {
    let body = "x".repeat(len - "<message><body></body></message>".len());
    format!("<message><body>{body}</body></message>")
}

#[test]
fn stanza_at_the_limit_passes_one_more_byte_fails() {
    // The header counts against the limit too, so keep it below.
    let limit = 1_000;
    for chunk in [1, 7, 16, 100, 999, 1_000, 5_000] {
        let ok = format!(
            "{HEADER}{}{}<presence/>",
            message_of(limit),
            message_of(limit)
        );
        let chunks: Vec<&[u8]> = ok.as_bytes().chunks(chunk).collect();
        let evs = parse_chunks(&chunks, limits(limit)).unwrap_or_else(|e| panic!("{chunk}: {e:?}"));
        assert_eq!(evs.len(), 4, "{chunk}");

        let bad = format!("{HEADER}{}{}", message_of(limit), message_of(limit + 1));
        let chunks: Vec<&[u8]> = bad.as_bytes().chunks(chunk).collect();
        let mut p = StreamParser::new(limits(limit));
        let mut evs = Vec::new();
        let err = chunks
            .iter()
            .find_map(|c| p.feed(c).and_then(|_| drain(&mut p, &mut evs)).err())
            .unwrap_or_else(|| panic!("{chunk}: accepted"));
        assert!(
            matches!(err, XmlError::PolicyViolation(_)),
            "{chunk}: {err:?}"
        );
        // Everything before the offending stanza was delivered.
        assert_eq!(evs.len(), 2, "{chunk}");
    }
}

#[test]
fn many_small_stanzas_in_one_read_are_not_a_violation() {
    // The stanzas add up to far more than the limit, the caller does not
    // drain between reads: only the size of each stanza matters.
    let limit = 500;
    let mut p = StreamParser::new(limits(limit));
    p.feed(HEADER.as_bytes()).unwrap();
    let burst = message_of(400).repeat(10);
    p.feed(burst.as_bytes()).unwrap();
    p.feed(burst.as_bytes()).unwrap();
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    assert_eq!(evs.len(), 21);
    assert!(evs[1..]
        .iter()
        .all(|e| matches!(e, Event::Stanza(el) if el.text().is_empty())));
}

#[test]
fn huge_text_fails_on_feed_before_buffering_past_the_limit() {
    let limit = 10_000;
    let mut p = StreamParser::new(limits(limit));
    p.feed(HEADER.as_bytes()).unwrap();
    p.feed(b"<message><body>").unwrap();
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    let chunk = [b'a'; 100];
    let mut fed = "<message><body>".len();
    loop {
        match p.feed(&chunk) {
            Ok(()) => fed += chunk.len(),
            Err(e) => {
                assert!(matches!(e, XmlError::PolicyViolation(_)), "{e:?}");
                break;
            }
        }
        assert!(fed <= limit, "accepted {fed} bytes");
        drain(&mut p, &mut evs).unwrap();
        assert!(p.buffered_capacity() <= 2 * limit);
    }
    assert!(fed + chunk.len() > limit);
    assert!(matches!(p.next_event(), Err(XmlError::PolicyViolation(_))));
}

#[test]
fn endless_tag_fails_on_feed() {
    let limit = 5_000;
    let mut p = StreamParser::new(limits(limit));
    p.feed(HEADER.as_bytes()).unwrap();
    let mut evs = Vec::new();
    drain(&mut p, &mut evs).unwrap();
    p.feed(b"<message to='").unwrap();
    let mut fed = 13;
    let err = loop {
        drain(&mut p, &mut evs).unwrap();
        match p.feed(&[b'x'; 64]) {
            Ok(()) => fed += 64,
            Err(e) => break e,
        }
        assert!(fed <= limit);
    };
    assert!(matches!(err, XmlError::PolicyViolation(_)));
    // One big read is refused without buffering it.
    let mut p = StreamParser::new(limits(limit));
    let mut endless = b"<stream:stream".to_vec();
    endless.resize(limit + 1, b'x');
    assert!(matches!(
        p.feed(&endless),
        Err(XmlError::PolicyViolation(_))
    ));
    assert!(p.buffered_capacity() <= 2 * limit);
    // Whitespace before the root is not part of any token: it is skipped,
    // not buffered, however much of it comes.
    let mut p = StreamParser::new(limits(limit));
    p.feed(&vec![b' '; 3 * limit]).unwrap();
    p.feed(&HEADER.as_bytes()[21..]).unwrap(); // no XML declaration after whitespace
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
}

#[test]
fn huge_stanza_fed_at_once() {
    let limit = 1_000;
    let input = format!(
        "{HEADER}<message><body>{}</body></message>",
        "y".repeat(2_000)
    );
    let mut p = StreamParser::new(limits(limit.max(HEADER.len())));
    p.feed(HEADER.as_bytes()).unwrap();
    assert!(p.next_event().unwrap().is_some());
    assert!(matches!(
        p.feed(&input.as_bytes()[HEADER.len()..]),
        Err(XmlError::PolicyViolation(_))
    ));
}

#[test]
fn nesting_depth() {
    let lim = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let ok = format!("{HEADER}<a><b><c/></b><b><c>x</c></b></a>");
    assert!(parse_chunks(&[ok.as_bytes()], lim).is_ok());
    for deep in ["<a><b><c><d/></c></b></a>", "<a><b><c><d>"] {
        let input = format!("{HEADER}{deep}");
        assert!(matches!(
            parse_chunks(&[input.as_bytes()], lim),
            Err(XmlError::PolicyViolation(_))
        ));
    }
}

#[test]
fn attribute_count() {
    let lim = Limits {
        max_attrs: 3,
        ..Limits::default()
    };
    const SHORT: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    let ok = format!("{SHORT}<a x='1' y='2' z='3'><b xmlns='urn:b' p='1' q='2'/></a>");
    assert_eq!(parse_chunks(&[ok.as_bytes()], lim).unwrap().len(), 2);
    for bad in [
        "<a w='0' x='1' y='2' z='3'/>",
        // Namespace declarations count.
        "<a xmlns='urn:a' x='1' y='2' z='3'/>",
        "<a><b xmlns:p='urn:p' p:x='1' x='2' y='3'/></a>",
    ] {
        let input = format!("{SHORT}{bad}");
        assert!(matches!(
            parse_chunks(&[input.as_bytes()], lim),
            Err(XmlError::PolicyViolation(_))
        ));
    }
    // The stream header is bounded too (it has 5 attributes).
    assert!(matches!(
        parse_chunks(&[HEADER.as_bytes()], lim),
        Err(XmlError::PolicyViolation(_))
    ));
}

#[test]
fn error_conditions() {
    assert_eq!(stanza_error("&").condition(), "bad-format");
    assert_eq!(stanza_error("<a>&x;</a>").condition(), "not-well-formed");
    assert_eq!(error("<!DOCTYPE x>").condition(), "restricted-xml");
    assert_eq!(error("<stream>").condition(), "invalid-namespace");
}
