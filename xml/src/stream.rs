//! The one serializer of stream headers, for every stream Switchboard opens
//! or answers: client streams, component streams (XEP-0114), the notify
//! client's and the load generator's streams, and WebSocket framing
//! (RFC 7395).
//!
//! ```text
//! RFC 6120:  <?xml version='1.0'?><stream:stream xmlns='jabber:client'
//!              xmlns:stream='http://etherx.jabber.org/streams' id='…'
//!              from='example.org' version='1.0' xml:lang='en'>
//!            …  </stream:stream>
//! RFC 7395:  <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='…'
//!              from='example.org' version='1.0' xml:lang='en'/>
//!            …  <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>
//! ```

use crate::escape::escape_attr;
use crate::ns;

/// What an opening header carries (RFC 6120 §4.7).
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamOpen<'a> {
    /// The content namespace: `jabber:client`, `jabber:server` or
    /// `jabber:component:accept`. WebSocket framing has none on `<open/>`
    /// (each stanza declares its own).
    pub ns: &'a str,
    pub id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    /// `version='1.0'`; XEP-0114 component streams have none.
    pub version: bool,
    pub lang: Option<&'a str>,
    /// Further namespace declarations as (prefix, URI), such as
    /// `("db", "jabber:server:dialback")`.
    pub extra_ns: &'a [(&'a str, &'a str)],
}

impl StreamOpen<'_> {
    fn write_attrs(&self, out: &mut Vec<u8>) {
        for (name, value) in [
            ("id", self.id),
            ("from", self.from),
            ("to", self.to),
            ("version", self.version.then_some("1.0")),
            ("xml:lang", self.lang),
        ] {
            if let Some(v) = value {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"='");
                escape_attr(v, out);
                out.push(b'\'');
            }
        }
    }
}

/// The RFC 6120 header: an XML declaration and `<stream:stream …>`.
pub fn open_stream(h: &StreamOpen) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    escape_attr(h.ns, &mut out);
    out.extend_from_slice(b"' xmlns:stream='");
    out.extend_from_slice(ns::STREAM.as_bytes());
    out.push(b'\'');
    for (prefix, uri) in h.extra_ns {
        out.extend_from_slice(b" xmlns:");
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b"='");
        escape_attr(uri, &mut out);
        out.push(b'\'');
    }
    h.write_attrs(&mut out);
    out.push(b'>');
    out
}

/// The end of an RFC 6120 stream.
pub const CLOSE_STREAM: &[u8] = b"</stream:stream>";

/// The RFC 7395 `<open/>` element (the content namespace is left to each
/// stanza).
pub fn open_framed(h: &StreamOpen) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"<open xmlns='");
    out.extend_from_slice(ns::FRAMING.as_bytes());
    out.push(b'\'');
    h.write_attrs(&mut out);
    out.extend_from_slice(b"/>");
    out
}

/// The RFC 7395 `<close/>` element.
pub const CLOSE_FRAMED: &[u8] = b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_exactly_what_is_set_escaped() {
        let h = StreamOpen {
            ns: ns::CLIENT,
            id: Some("a'b"),
            from: Some("example.org"),
            version: true,
            lang: Some("en"),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(open_stream(&h)).unwrap(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='a&apos;b' \
             from='example.org' version='1.0' xml:lang='en'>"
        );
        assert_eq!(
            String::from_utf8(open_framed(&h)).unwrap(),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='a&apos;b' \
             from='example.org' version='1.0' xml:lang='en'/>"
        );
        let component = StreamOpen {
            ns: ns::COMPONENT_ACCEPT,
            to: Some("irc.example.org"),
            extra_ns: &[("db", "jabber:server:dialback")],
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(open_stream(&component)).unwrap(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='jabber:server:dialback' to='irc.example.org'>"
        );
    }

    #[test]
    fn what_is_written_parses_back() {
        let h = StreamOpen {
            ns: ns::CLIENT,
            id: Some("x<y"),
            to: Some("example.org"),
            version: true,
            ..Default::default()
        };
        let mut p = crate::StreamParser::new(crate::Limits::default());
        p.feed(&open_stream(&h)).unwrap();
        let Some(crate::Event::StreamOpen(head)) = p.next_event().unwrap() else {
            panic!("no header");
        };
        assert_eq!(head.default_ns.as_deref(), Some(ns::CLIENT));
        assert_eq!(head.attr("id"), Some("x<y"));
        assert_eq!(head.attr("version"), Some("1.0"));
        let open = crate::parse_document(&open_framed(&h), crate::Limits::default()).unwrap();
        assert!(open.is("open", ns::FRAMING));
        assert_eq!(open.attr("to"), Some("example.org"));
        let close = crate::parse_document(CLOSE_FRAMED, crate::Limits::default()).unwrap();
        assert!(close.is("close", ns::FRAMING));
    }
}
