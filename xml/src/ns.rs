//! Namespace URIs used across the project, in one place so that a typo is a
//! compile error rather than a silent mismatch.

pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 7395 WebSocket framing (`<open/>`, `<close/>`).
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
/// Server Dialback elements (XEP-0220), `db:` on the wire.
pub const DIALBACK: &str = "jabber:server:dialback";
/// The stream feature announcing dialback with error support (XEP-0220 §2.4).
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const PING: &str = "urn:xmpp:ping";
pub const VERSION: &str = "jabber:iq:version";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const REGISTER: &str = "jabber:iq:register";
pub const DELAY: &str = "urn:xmpp:delay";
/// The namespace of Switchboard's own spool and config documents.
pub const SPOOL: &str = "urn:switchboard:spool:1";
pub const DATA_FORMS: &str = "jabber:x:data";
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";
pub const GATEWAY: &str = "jabber:iq:gateway";
pub const SEARCH: &str = "jabber:iq:search";
pub const OOB: &str = "jabber:x:oob";
