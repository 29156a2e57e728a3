//! A stanza classified once: its kind, its type as an enum, its addresses
//! parsed, and the class of its addressee. Everything after classification
//! (the routing table's hooks, delivery) reads these fields instead of
//! re-reading attributes as strings.

use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use crate::lifecycle::{Guard, Tracker};
pub use crate::stanza::Kind;
use crate::stanza::StanzaError;

/// A message's `type` (RFC 6121 §5.2.2). A missing or unknown type is
/// `normal`, as the RFC says a receiver must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Normal,
    Chat,
    Groupchat,
    Headline,
    Error,
}

impl MessageType {
    pub fn parse(attr: Option<&str>) -> MessageType {
        match attr {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        }
    }
}

/// A presence's `type` (RFC 6121 §4.7.1); no `type` is `Available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceType {
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
    /// A value RFC 6121 does not define. It travels like available
    /// presence, as it always has here; the addressee's client decides.
    Other,
}

impl PresenceType {
    pub fn parse(attr: Option<&str>) -> PresenceType {
        match attr {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscribe,
            Some("subscribed") => PresenceType::Subscribed,
            Some("unsubscribe") => PresenceType::Unsubscribe,
            Some("unsubscribed") => PresenceType::Unsubscribed,
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(_) => PresenceType::Other,
        }
    }

    /// The four subscription types (RFC 6121 §3), which change rosters.
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed
        )
    }

    /// The wire form, for stanzas the server builds.
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            PresenceType::Available | PresenceType::Other => return None,
            PresenceType::Unavailable => "unavailable",
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            PresenceType::Unsubscribed => "unsubscribed",
            PresenceType::Probe => "probe",
            PresenceType::Error => "error",
        })
    }
}

/// An IQ's `type` (RFC 6120 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

impl IqType {
    /// `None` for anything RFC 6120 does not define (a `bad-request`).
    pub fn parse(attr: Option<&str>) -> Option<IqType> {
        match attr {
            Some("get") => Some(IqType::Get),
            Some("set") => Some(IqType::Set),
            Some("result") => Some(IqType::Result),
            Some("error") => Some(IqType::Error),
            _ => None,
        }
    }

    /// A request, which must be answered (get or set).
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

/// A stanza's kind and type together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaType {
    Message(MessageType),
    Presence(PresenceType),
    Iq(IqType),
}

impl StanzaType {
    pub fn kind(self) -> Kind {
        match self {
            StanzaType::Message(_) => Kind::Message,
            StanzaType::Presence(_) => Kind::Presence,
            StanzaType::Iq(_) => Kind::Iq,
        }
    }

    /// Reads an element's kind and type; a bad-request error for an IQ
    /// without a valid type, and `None` for anything that is no stanza.
    pub fn of(el: &Element) -> Option<Result<StanzaType, StanzaError>> {
        Some(Ok(match Kind::of(el)? {
            Kind::Message => StanzaType::Message(MessageType::parse(el.attr("type"))),
            Kind::Presence => StanzaType::Presence(PresenceType::parse(el.attr("type"))),
            Kind::Iq => match IqType::parse(el.attr("type")) {
                Some(t) => StanzaType::Iq(t),
                None => {
                    return Some(Err(StanzaError::bad_request()
                        .with_text("IQ 'type' must be get, set, result or error")))
                }
            },
        }))
    }
}

/// Whom a stanza is addressed to, as the routing table keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A local domain itself (any resource of it).
    Host,
    /// An account's bare JID on a local domain.
    Bare,
    /// A full JID on a local domain.
    Full,
    /// A service hostname, or any JID at it.
    Service,
    /// Any other domain.
    Remote,
    /// Presence without `to` from a client: for its roster to see
    /// (RFC 6121 §4.2.2). `to` is the sender's bare JID.
    Broadcast,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Host,
        Class::Bare,
        Class::Full,
        Class::Service,
        Class::Remote,
        Class::Broadcast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Host => "host",
            Class::Bare => "bare",
            Class::Full => "full",
            Class::Service => "service",
            Class::Remote => "remote",
            Class::Broadcast => "broadcast",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Who handed the stanza to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A bound client session (its id in the session table).
    Client { session: u64 },
    /// A hostname-addressed service, in-process or an external component.
    Service(Arc<str>),
    /// Another server, over a link authenticated for this domain.
    Remote(Arc<str>),
    /// The server itself: an account actor, a module, an admin task.
    Local,
    /// A stanza taken back from a session that ended or was given up on
    /// before it could be written, on its way again (to another resource
    /// or offline storage). Hooks that must act once per stanza (archive,
    /// carbons) have acted already and skip it.
    Redelivery,
}

/// A classified stanza on its way through the routing table.
#[derive(Debug, Clone)]
pub struct Stanza {
    pub el: Element,
    pub ty: StanzaType,
    pub from: Jid,
    /// The addressee, normalized; for [`Class::Broadcast`] the sender's
    /// bare JID (the element itself then has no `to`).
    pub to: Jid,
    pub class: Class,
    pub origin: Origin,
    /// Where work started for this stanza is counted: the sending
    /// client's session (which answers its next IQ only when that work is
    /// done), or the session whose work started this stanza in turn.
    /// `None` when nobody waits.
    pub pending: Option<Tracker>,
}

impl Stanza {
    pub fn kind(&self) -> Kind {
        self.ty.kind()
    }

    /// The presence type, if this is presence.
    pub fn presence_type(&self) -> Option<PresenceType> {
        match self.ty {
            StanzaType::Presence(t) => Some(t),
            _ => None,
        }
    }

    /// The message type, if this is a message.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.ty {
            StanzaType::Message(t) => Some(t),
            _ => None,
        }
    }

    /// The IQ type, if this is an IQ.
    pub fn iq_type(&self) -> Option<IqType> {
        match self.ty {
            StanzaType::Iq(t) => Some(t),
            _ => None,
        }
    }

    /// The IQ's payload (its one child element), if any.
    pub fn payload(&self) -> Option<&Element> {
        self.el.first_element()
    }

    /// Whether a local client sent it.
    pub fn from_client(&self) -> bool {
        matches!(self.origin, Origin::Client { .. })
    }

    /// A guard for work this stanza starts that outlives the hook (an
    /// actor storing it, say): hand it to the work and drop it when the
    /// stanza is delivered, stored durably or bounced.
    pub fn ticket(&self) -> Option<Guard> {
        self.pending.as_ref().map(Tracker::guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::ns;

    #[test]
    fn types_default_as_the_rfcs_say() {
        let m = Element::new("message", ns::CLIENT).with_attr("type", "nonsense");
        assert_eq!(
            StanzaType::of(&m).unwrap().unwrap(),
            StanzaType::Message(MessageType::Normal)
        );
        let p = Element::new("presence", ns::CLIENT);
        assert_eq!(
            StanzaType::of(&p).unwrap().unwrap(),
            StanzaType::Presence(PresenceType::Available)
        );
        let iq = Element::new("iq", ns::CLIENT).with_attr("type", "put");
        assert_eq!(
            StanzaType::of(&iq).unwrap().unwrap_err().condition,
            "bad-request"
        );
        let other = Element::new("starttls", ns::TLS);
        assert!(StanzaType::of(&other).is_none());
    }

    #[test]
    fn subscription_types_are_the_four() {
        let subs: Vec<_> = [
            "subscribe",
            "subscribed",
            "unsubscribe",
            "unsubscribed",
            "probe",
            "unavailable",
        ]
        .iter()
        .map(|t| PresenceType::parse(Some(t)).is_subscription())
        .collect();
        assert_eq!(subs, [true, true, true, true, false, false]);
        for t in ["unavailable", "subscribe", "probe", "error"] {
            assert_eq!(PresenceType::parse(Some(t)).as_str(), Some(t));
        }
    }
}
