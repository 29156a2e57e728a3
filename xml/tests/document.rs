//! Whole-document parsing (config and spool files): spans, comments, the
//! prolog and epilog, and error positions.

use switchboard_xml::{ns, parse_document, DocumentError, Element, Limits, Node, Span, XmlError};

fn parse(doc: &str) -> Result<Element, DocumentError> {
    parse_document(doc.as_bytes(), Limits::default())
}

/// Parses `doc`, expecting a failure; returns (line, col, error).
fn fail(doc: &str) -> (u32, u32, XmlError) {
    let e = parse(doc).expect_err("expected an error");
    (e.line, e.col, e.error)
}

fn span(line: u32, col: u32) -> Span {
    Span { line, col }
}

const CONFIG: &str = "\u{feff}<?xml version='1.0' encoding='UTF-8'?>
<!-- Switchboard configuration -->
<config xmlns='urn:switchboard:spool:1'>
  <!-- the served domain -->
  <host name='example.com'>
    <tls cert='/etc/cert.pem'/>\t<admin>alice@example.com</admin>
  </host>
  <café prix='€'><x:y xmlns:x='urn:x'/></café>
</config>
<!-- trailing comment -->
";

#[test]
fn config_with_comments_and_spans() {
    let root = parse(CONFIG).unwrap();
    assert!(root.is("config", ns::SPOOL));
    assert_eq!(root.span, span(3, 1));
    let host = root.get_child("host", ns::SPOOL).unwrap();
    assert_eq!(host.span, span(5, 3));
    assert_eq!(host.attr("name"), Some("example.com"));
    let tls = host.get_child("tls", ns::SPOOL).unwrap();
    assert_eq!(tls.span, span(6, 5));
    let admin = host.get_child("admin", ns::SPOOL).unwrap();
    assert_eq!(admin.span, span(6, 33));
    assert_eq!(admin.text(), "alice@example.com");
    // Columns count characters, not bytes.
    let cafe = root.get_child("café", ns::SPOOL).unwrap();
    assert_eq!(cafe.span, span(8, 3));
    assert_eq!(cafe.attr("prix"), Some("€"));
    assert_eq!(cafe.get_child("y", "urn:x").unwrap().span, span(8, 18));
}

#[test]
fn whitespace_text_is_kept_and_comments_are_dropped() {
    let root = parse("<a>\n  <!-- c -->\n  <b/>\n</a>").unwrap();
    assert_eq!(
        root.children,
        vec![
            Node::Text("\n  \n  ".into()),
            Node::Element(Element::new("b", "")),
            Node::Text("\n".into()),
        ]
    );
}

#[test]
fn minimal_documents() {
    assert_eq!(parse("<a/>").unwrap(), Element::new("a", ""));
    assert_eq!(parse("  <a></a>  ").unwrap(), Element::new("a", ""));
    assert_eq!(parse("<a/>").unwrap().span, span(1, 1));
    assert_eq!(parse("\r\n\r\n <a/>").unwrap().span, span(3, 2));
    assert_eq!(parse("\r\r<a/>").unwrap().span, span(3, 1));
}

#[test]
fn restricted_constructs_with_positions() {
    let (l, c, e) = fail("<?xml version='1.0'?>\n<!DOCTYPE config [<!ENTITY x 'y'>]>\n<config/>");
    assert_eq!((l, c), (2, 1));
    assert!(matches!(e, XmlError::RestrictedXml(_)));
    let (l, c, e) = fail("<config>\n  <?php echo 1; ?>\n</config>");
    assert_eq!((l, c), (2, 3));
    assert!(matches!(e, XmlError::RestrictedXml(_)));
    let (l, c, e) = fail("<!-- c -->\n<?xml version='1.0'?><a/>");
    assert_eq!((l, c), (2, 1));
    assert!(matches!(e, XmlError::RestrictedXml(_)));
    let (_, _, e) = fail("<a/><?pi?>");
    assert!(matches!(e, XmlError::RestrictedXml(_)));
}

#[test]
fn error_positions() {
    // Undefined entity: points at the `&`.
    let (l, c, e) = fail("<config>\n  <name>caf&eacute;</name>\n</config>");
    assert_eq!((l, c), (2, 12));
    assert!(matches!(e, XmlError::NotWellFormed(_)));
    // In an attribute value.
    let (l, c, _) = fail("<config>\n <a v='x&y;'/></config>");
    assert_eq!((l, c), (2, 9));
    // Mismatched end tag: points at its `<`.
    let (l, c, e) = fail("<config>\n  <a>\n  </b>\n</config>");
    assert_eq!((l, c), (3, 3));
    assert!(matches!(e, XmlError::NotWellFormed(_)));
    // Undeclared prefix: the start tag.
    let (l, c, _) = fail("<config>\n\n      <x:a/></config>");
    assert_eq!((l, c), (3, 7));
    // Non-ASCII before the error on the same line.
    let (l, c, _) = fail("<a>ééé\u{1}</a>");
    assert_eq!((l, c), (1, 7));
    // Invalid UTF-8.
    let (l, c, _) = parse_document(b"<a>\n ab\xff</a>", Limits::default())
        .map(|_| ())
        .map_err(|e| (e.line, e.col, e.error))
        .unwrap_err();
    assert_eq!((l, c), (2, 4));
}

#[test]
fn structure_errors() {
    for (doc, pos) in [
        ("", (1, 1)),
        ("   \n", (2, 1)),
        ("<!-- only a comment -->", (1, 24)),
        ("text<a/>", (1, 1)),
        ("<a/>text", (1, 5)),
        ("<a/><b/>", (1, 5)),
        ("<a/>\n</a>", (2, 1)),
        ("<a>", (1, 4)),
        ("<a><b></b>", (1, 11)),
        ("<a", (1, 1)),
        ("<a><!-- x", (1, 4)),
        ("<a><!-- a -- b --></a>", (1, 4)),
        ("<a><!-- a ---></a>", (1, 4)),
        ("<a><![CDATA[x</a>", (1, 4)),
        ("<a>&amp</a>", (1, 4)),
        ("<?xml version='1.0'", (1, 1)),
        ("<a/>\u{feff}", (1, 5)),
    ] {
        let (l, c, e) = fail(doc);
        assert!(matches!(e, XmlError::NotWellFormed(_)), "{doc:?}: {e:?}");
        assert_eq!((l, c), pos, "{doc:?}");
    }
}

#[test]
fn documents_in_other_encodings_are_refused_as_such() {
    let (l, c, e) = fail("<?xml version='1.0' encoding='ISO-8859-1'?>\n<a/>");
    assert!(matches!(e, XmlError::UnsupportedEncoding(_)), "{e:?}");
    assert_eq!((l, c), (1, 1));
    assert!(e.detail().contains("ISO-8859-1"), "{e:?}");
    let utf16: Vec<u8> = "\u{feff}<a/>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let e = parse_document(&utf16, Limits::default()).unwrap_err();
    assert!(matches!(e.error, XmlError::UnsupportedEncoding(_)), "{e:?}");
}

#[test]
fn serialized_elements_are_well_formed_whatever_their_text() {
    // Text an element was built with may hold characters XML forbids (an
    // error message quoting a client's bytes: found by fuzzing the client
    // stream machine). They go out as U+FFFD, never as themselves.
    let el = Element::new("error", "urn:x")
        .with_attr("a", "x\0y\u{FFFF}")
        .with_text("name `i\0\0d` \x07\x1b[0m");
    let bytes = el.to_bytes(None);
    let back = parse_document(&bytes, Limits::default()).expect("well-formed");
    assert_eq!(back.attr("a"), Some("x\u{FFFD}y\u{FFFD}"));
    assert_eq!(back.text(), "name `i\u{FFFD}\u{FFFD}d` \u{FFFD}\u{FFFD}[0m");
}

#[test]
fn document_limits() {
    let lim = Limits {
        max_stanza_bytes: 20,
        max_depth: 2,
        max_attrs: 1,
    };
    assert!(parse_document(b"<a><b x='1'/></a>", lim).is_ok());
    let e = parse_document(b"<a><b x='1'/>     </a>", lim).unwrap_err();
    assert!(matches!(e.error, XmlError::PolicyViolation(_)));
    let e = parse_document(b"<a>\n<b><c/></b></a>", lim).unwrap_err();
    assert!(matches!(e.error, XmlError::PolicyViolation(_)));
    assert_eq!((e.line, e.col), (2, 4));
    let e = parse_document(b"<a x='1' y='2'/>", lim).unwrap_err();
    assert!(matches!(e.error, XmlError::PolicyViolation(_)));
}

#[test]
fn any_root_name_is_fine_in_documents() {
    let root = parse("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>").unwrap();
    assert!(root.is("stream", ns::STREAM));
    let root = parse("<message xmlns='jabber:client'><body>x</body></message>").unwrap();
    assert_eq!(root.child_text("body", ns::CLIENT).as_deref(), Some("x"));
}

#[test]
fn display_of_document_errors() {
    let e = parse("<a>\n&x;</a>").unwrap_err();
    assert!(e.to_string().starts_with("2:1: "), "{e}");
}
