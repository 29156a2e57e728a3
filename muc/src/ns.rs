//! The namespaces group chat speaks, in one place (the general ones come
//! from `switchboard_xml::ns`).

pub use switchboard_xml::ns::*;

/// XEP-0045: the join element `<x/>` and the service feature.
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const MUC_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const MUC_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const MUC_REQUEST: &str = "http://jabber.org/protocol/muc#request";
pub const MUC_REGISTER: &str = "http://jabber.org/protocol/muc#register";
pub const MUC_UNIQUE: &str = "http://jabber.org/protocol/muc#unique";
pub const MUC_STABLE_ID: &str = "http://jabber.org/protocol/muc#stable_id";
pub const MUC_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
/// XEP-0249 direct invitations.
pub const CONFERENCE: &str = "jabber:x:conference";
/// XEP-0421 occupant identifiers.
pub const OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
/// XEP-0359 unique and stable stanza ids.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0313 message archive management.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059 result set management.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0297 stanza forwarding.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0425 moderation, current and previous versions.
pub const MODERATE: &str = "urn:xmpp:message-moderate:1";
pub const MODERATE_0: &str = "urn:xmpp:message-moderate:0";
/// XEP-0424 retraction, current and previous versions.
pub const RETRACT: &str = "urn:xmpp:message-retract:1";
pub const RETRACT_0: &str = "urn:xmpp:message-retract:0";
/// XEP-0422 fastening (the wrapper of moderation version 0).
pub const FASTEN: &str = "urn:xmpp:fasten:0";
/// XEP-0054 vCards (the room's avatar).
pub const VCARD: &str = "vcard-temp";
/// XEP-0153 avatar hash in presence.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0085 chat states (allowed without a body).
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
