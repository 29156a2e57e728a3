//! How a stream's XML is framed on the wire, chosen by the driver: one
//! long document per direction on a TCP (or TLS) connection (RFC 6120), or
//! one complete element per WebSocket message with `<open/>` and
//! `<close/>` around the session (RFC 7395). The negotiation and the
//! stanzas are the same either way; only these bytes differ.
//!
//! Output: every call returns the bytes of one top-level unit (a header,
//! a stanza, a features element, an error, a close), so a WebSocket
//! driver sends each as one message and a TCP driver may concatenate them.
//!
//! Input: [`Deframer`] turns received bytes into the parser's events —
//! for TCP by the incremental stream parser, for WebSocket by parsing each
//! message as one document (two elements in one message are refused as
//! not well-formed, as RFC 7395 §3.3.3 requires).

use std::collections::VecDeque;

use switchboard_xml::stream::{open_framed, open_stream, StreamOpen, CLOSE_FRAMED, CLOSE_STREAM};
use switchboard_xml::{
    ns, parse_document, Element, Event, Limits, StreamHeader, StreamParser, XmlError,
};

use super::error::StreamError;

/// The framing of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6120 over TCP (or TLS): `<stream:stream>` … `</stream:stream>`.
    Stream,
    /// RFC 7395 over WebSocket: `<open/>`, one element per message,
    /// `<close/>`.
    WebSocket,
}

impl Framing {
    /// The opening header (or `<open/>`).
    pub fn open(self, h: &StreamOpen) -> Vec<u8> {
        match self {
            Framing::Stream => open_stream(h),
            Framing::WebSocket => open_framed(h),
        }
    }

    /// The closing tag (or `<close/>`).
    pub fn close(self) -> Vec<u8> {
        match self {
            Framing::Stream => CLOSE_STREAM.to_vec(),
            Framing::WebSocket => CLOSE_FRAMED.to_vec(),
        }
    }

    /// A stream-namespace element (`<stream:features>`, `<stream:error>`)
    /// with `children`. On a TCP stream the `stream:` prefix is declared by
    /// the header; in a WebSocket message it must be declared on the
    /// element itself.
    fn stream_element(self, name: &str, children: &[&Element]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"<stream:");
        out.extend_from_slice(name.as_bytes());
        if self == Framing::WebSocket {
            out.extend_from_slice(b" xmlns:stream='");
            out.extend_from_slice(ns::STREAM.as_bytes());
            out.push(b'\'');
        }
        out.push(b'>');
        for c in children {
            c.write_to(&mut out, None);
        }
        out.extend_from_slice(b"</stream:");
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
        out
    }

    /// `<stream:features>` with these children.
    pub fn features(self, features: &Element) -> Vec<u8> {
        let children: Vec<&Element> = features.elements().collect();
        self.stream_element("features", &children)
    }

    /// `<stream:error>` for this error (the close follows separately).
    pub fn error(self, err: &StreamError) -> Vec<u8> {
        let children = err.children();
        let refs: Vec<&Element> = children.iter().collect();
        self.stream_element("error", &refs)
    }

    /// A stanza in the stream's content namespace. On a TCP stream the
    /// namespace is the header's default and is not repeated; a WebSocket
    /// message stands alone, so it declares it.
    pub fn stanza(self, el: &Element, content_ns: &str) -> Vec<u8> {
        match self {
            Framing::Stream => el.to_bytes(Some(content_ns)),
            Framing::WebSocket => el.to_bytes(None),
        }
    }

    /// [`Framing::stanza`], appended to `out`.
    pub fn write_stanza(self, el: &Element, content_ns: &str, out: &mut Vec<u8>) {
        match self {
            Framing::Stream => el.write_to(out, Some(content_ns)),
            Framing::WebSocket => el.write_to(out, None),
        }
    }

    /// A negotiation element in its own namespace (`<proceed/>`,
    /// `<success/>`, …): the same bytes either way.
    pub fn nonza(self, el: &Element) -> Vec<u8> {
        el.to_bytes(None)
    }
}

/// Received bytes → parser events, for one framing.
pub struct Deframer {
    framing: Framing,
    /// The namespace stanzas are in: the header's default namespace on a
    /// TCP stream; the one each WebSocket message declares.
    content_ns: &'static str,
    parser: StreamParser,
    limits: Limits,
    /// WebSocket messages parsed and not yet taken.
    queued: VecDeque<Event>,
    dead: Option<XmlError>,
}

impl Deframer {
    pub fn new(framing: Framing, content_ns: &'static str, limits: Limits) -> Deframer {
        Deframer {
            framing,
            content_ns,
            parser: StreamParser::new(limits),
            limits,
            queued: VecDeque::new(),
            dead: None,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes from the peer: any piece of a TCP stream, or one whole
    /// WebSocket message.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), XmlError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        match self.framing {
            Framing::Stream => self.parser.feed(bytes),
            Framing::WebSocket => match self.message(bytes) {
                Ok(event) => {
                    self.queued.push_back(event);
                    Ok(())
                }
                Err(e) => {
                    self.dead = Some(e.clone());
                    Err(e)
                }
            },
        }
    }

    /// One WebSocket message as an event.
    fn message(&self, bytes: &[u8]) -> Result<Event, XmlError> {
        let el = parse_document(bytes, self.limits).map_err(|e| e.error)?;
        if el.ns == ns::FRAMING {
            return match el.name.as_str() {
                // The content namespace is implied for `<open/>`: stanzas
                // declare it themselves (RFC 7395 §3.3.2).
                "open" => Ok(Event::StreamOpen(StreamHeader {
                    name: "stream".into(),
                    ns: ns::STREAM.into(),
                    default_ns: Some(self.content_ns.into()),
                    attrs: el
                        .attrs
                        .iter()
                        .filter(|(k, _)| k != "xmlns")
                        .cloned()
                        .collect(),
                })),
                "close" => Ok(Event::StreamClose),
                other => Err(XmlError::NotWellFormed(format!(
                    "<{other}/> is not an RFC 7395 framing element"
                ))),
            };
        }
        Ok(Event::Stanza(el))
    }

    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        match self.framing {
            Framing::Stream => self.parser.next_event(),
            Framing::WebSocket => Ok(self.queued.pop_front()),
        }
    }

    /// A stream restart (after STARTTLS or SASL): whatever was received
    /// before it is dropped.
    pub fn reset(&mut self) {
        self.parser.reset();
        self.queued.clear();
    }

    /// Gives back buffer memory while idle.
    pub fn shrink_if_idle(&mut self) {
        self.parser.shrink_if_idle();
        if self.queued.is_empty() && self.queued.capacity() > 0 {
            self.queued = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_messages_are_whole_elements_and_declare_their_namespaces() {
        let mut d = Deframer::new(Framing::WebSocket, ns::CLIENT, Limits::default());
        d.feed(
            b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
        )
        .unwrap();
        let Some(Event::StreamOpen(h)) = d.next_event().unwrap() else {
            panic!("no open");
        };
        assert_eq!(h.attr("to"), Some("example.org"));
        assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
        d.feed(b"<message xmlns='jabber:client' to='a@example.org'><body>hi</body></message>")
            .unwrap();
        let Some(Event::Stanza(m)) = d.next_event().unwrap() else {
            panic!("no stanza");
        };
        assert!(m.is("message", ns::CLIENT));
        d.feed(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
            .unwrap();
        assert_eq!(d.next_event().unwrap(), Some(Event::StreamClose));

        let f = Framing::WebSocket;
        assert_eq!(
            String::from_utf8(f.stanza(&m, ns::CLIENT)).unwrap(),
            "<message xmlns=\"jabber:client\" to=\"a@example.org\"><body>hi</body></message>"
        );
        let feats = Element::new("features", ns::STREAM).with_child(Element::new("bind", ns::BIND));
        let bytes = f.features(&feats);
        let parsed = parse_document(&bytes, Limits::default()).unwrap();
        assert!(parsed.is("features", ns::STREAM));
        assert!(parsed.get_child("bind", ns::BIND).is_some());
        let err = parse_document(
            &f.error(&StreamError::with_text("host-unknown", "no")),
            Limits::default(),
        )
        .unwrap();
        assert!(err.is("error", ns::STREAM));
        assert!(err.get_child("host-unknown", ns::STREAMS).is_some());
    }

    #[test]
    fn two_stanzas_in_one_websocket_message_are_not_well_formed() {
        let mut d = Deframer::new(Framing::WebSocket, ns::CLIENT, Limits::default());
        let e = d
            .feed(b"<message xmlns='jabber:client'/><message xmlns='jabber:client'/>")
            .unwrap_err();
        assert_eq!(e.condition(), "not-well-formed");
        // Dead from then on.
        assert!(d.feed(b"<presence xmlns='jabber:client'/>").is_err());
    }

    #[test]
    fn tcp_framing_omits_the_default_namespace() {
        let f = Framing::Stream;
        let m = Element::new("message", ns::CLIENT).with_attr("to", "a@b");
        assert_eq!(
            String::from_utf8(f.stanza(&m, ns::CLIENT)).unwrap(),
            "<message to=\"a@b\"/>"
        );
        assert_eq!(f.close(), b"</stream:stream>");
        let mut d = Deframer::new(Framing::Stream, ns::CLIENT, Limits::default());
        d.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x'><presence/>")
            .unwrap();
        assert!(matches!(
            d.next_event().unwrap(),
            Some(Event::StreamOpen(_))
        ));
        assert!(matches!(d.next_event().unwrap(), Some(Event::Stanza(_))));
    }
}
