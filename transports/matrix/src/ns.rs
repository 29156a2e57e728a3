//! The XMPP namespaces the transport speaks beyond those of
//! `switchboard_xml::ns`.

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
pub const MARKERS: &str = "urn:xmpp:chat-markers:0";
pub const CORRECT: &str = "urn:xmpp:message-correct:0";
pub const REPLY: &str = "urn:xmpp:reply:0";
pub const FALLBACK: &str = "urn:xmpp:fallback:0";
pub const REACTIONS: &str = "urn:xmpp:reactions:0";
pub const RETRACT: &str = "urn:xmpp:message-retract:1";
pub const MODERATE: &str = "urn:xmpp:message-moderate:1";
pub const STANZA_ID: &str = "urn:xmpp:sid:0";
pub const MAM: &str = "urn:xmpp:mam:2";
pub const RSM: &str = "http://jabber.org/protocol/rsm";
pub const FORWARD: &str = "urn:xmpp:forward:0";
pub const CARBONS: &str = "urn:xmpp:carbons:2";
pub const CONFERENCE: &str = "jabber:x:conference";
pub const NICK: &str = "http://jabber.org/protocol/nick";
pub const HINTS: &str = "urn:xmpp:hints";
pub const ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
