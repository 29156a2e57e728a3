//! Property test: any element the server can build serializes to XML that
//! the parser reads back as an equal element, whether it arrives in one
//! piece or split anywhere, inside a stream or as a document.

mod common;

use common::{parse_chunks, HEADER};
use proptest::prelude::*;
use switchboard_xml::{parse_document, Element, Event, Limits, Node};

/// Names: ASCII and non-ASCII, with the characters allowed after the first.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_\u{e9}\u{65e5}][a-zA-Z0-9_.\u{e9}\u{65e5}\u{b7}-]{0,6}"
}

/// Namespace URIs, including characters that need escaping in attributes.
fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("jabber:client".to_string()),
        Just(String::new()),
        Just("urn:xmpp:ping".to_string()),
        "urn:[a-z&<>\"'\t\n\r}{\u{e9}]{1,8}",
    ]
}

/// Character data with everything that is special somewhere: markup
/// characters, both quotes, tab/LF/CR (and CR LF), `]]>`, non-ASCII of
/// every UTF-8 length.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z &<>\"'\t\n\r\\]\u{e9}\u{65e5}\u{1F600}]{1,16}",
        Just("]]>".to_string()),
        Just("\r\n".to_string()),
        Just(" ".to_string()),
    ]
}

fn attr_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => name().prop_filter("xmlns is a declaration", |n| n != "xmlns"),
        1 => Just("xml:lang".to_string()),
        1 => Just("xml:space".to_string()),
        2 => ("urn:[a-z}&\"\u{e9}]{1,6}", name()).prop_map(|(u, l)| format!("{{{u}}}{l}")),
    ]
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((attr_key(), prop_oneof![text(), Just(String::new())]), 0..4).prop_map(
        |mut v| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|(k, _)| seen.insert(k.clone()));
            v
        },
    )
}

fn leaf() -> impl Strategy<Value = Element> {
    (name(), namespace(), attrs()).prop_map(|(name, ns, attrs)| Element {
        name,
        ns,
        attrs,
        ..Default::default()
    })
}

/// Elements as the parser produces them: no empty text nodes and no two
/// text nodes in a row (those merge when parsed).
fn element() -> impl Strategy<Value = Element> {
    leaf().prop_recursive(4, 32, 5, |inner| {
        (
            leaf(),
            prop::collection::vec(
                prop_oneof![inner.prop_map(Node::Element), text().prop_map(Node::Text)],
                0..5,
            ),
        )
            .prop_map(|(mut el, children)| {
                for child in children {
                    match child {
                        Node::Element(e) => el.append_child(e),
                        Node::Text(t) => el.append_text(t),
                    }
                }
                el
            })
    })
}

proptest! {
    // 512 cases by default; `PROPTEST_CASES=…` runs more.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn stanza_round_trip(el in element(), split in any::<prop::sample::Index>()) {
        let wire = el.to_bytes(Some("jabber:client"));
        let mut input = HEADER.as_bytes().to_vec();
        input.extend_from_slice(&wire);

        let whole = parse_chunks(&[&input], Limits::default()).unwrap();
        prop_assert_eq!(whole.len(), 2);
        let Event::Stanza(parsed) = &whole[1] else { panic!("{whole:?}") };
        prop_assert_eq!(parsed, &el);
        // Parsed then serialized again: the same bytes.
        prop_assert_eq!(parsed.to_bytes(Some("jabber:client")), wire);

        let at = split.index(input.len() + 1);
        let split = parse_chunks(&[&input[..at], &input[at..]], Limits::default()).unwrap();
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn stanza_round_trip_bytewise(el in element()) {
        let mut input = HEADER.as_bytes().to_vec();
        el.write_to(&mut input, Some("jabber:client"));
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let evs = parse_chunks(&chunks, Limits::default()).unwrap();
        prop_assert_eq!(&evs[1], &Event::Stanza(el));
    }

    #[test]
    fn document_round_trip(el in element()) {
        let parsed = parse_document(&el.to_bytes(None), Limits::default()).unwrap();
        prop_assert_eq!(parsed, el);
    }
}
