//! Message carbons (XEP-0280): a user's resources that asked for it get a
//! copy of the chats their other resources send and receive, so that every
//! device shows the whole conversation.
//!
//! - **Enabling** is per session: `<enable/>` and `<disable/>` IQs sent to
//!   one's own account (or to the server) set or clear [`Enabled`] in the
//!   session's `SessionExt`, answered at once on the router's thread so
//!   the state holds for everything routed after the answer. A client
//!   logging in with SASL2 may put `<enable/>` in its Bind 2 request
//!   (XEP-0386 §4.1); it takes effect as the session is bound, before
//!   anything is routed to it.
//! - **Sent** (`pre-message/…`): a message a client sends is copied,
//!   wrapped in `<sent><forwarded/></sent>`, to the sender's other
//!   carbons-enabled resources. A message to one's own account gets none:
//!   the received copies cover it.
//! - **Received** (`message/bare`, `message/full`): a message delivered to
//!   a user is copied, wrapped in `<received><forwarded/></received>`, to
//!   the user's carbons-enabled resources that RFC 6121 delivery does not
//!   give it to (`im::routes::recipients`). A message stored offline gets
//!   no copies: it is delivered later, once. The `<private/>` element is
//!   removed before delivery (§8).
//!
//! Which messages are copied follows XEP-0280 §6 (and Prosody's
//! mod_carbons): chats, normal messages with a body, bounces of what the
//! user sent to a bare JID, and the small IM payloads (chat states,
//! receipts, markers); never `<private/>` or XEP-0334 `<no-copy/>` ones,
//! groupchat, headlines, or anything a group chat room sent the user
//! (private messages included). A stanza the router re-routes because its
//! session ended (`Origin::Redelivery`) was copied already; a carbon copy
//! itself that comes back so is dropped, its session being gone.
//!
//! The archive's rows run before these (a higher priority), so copies
//! carry the archive's `<stanza-id/>`.

use switchboard_jid::Jid;
use switchboard_xml::Element;

use super::forward;
use super::hints;
use super::online::same_account;
use crate::routing::iq::Scope;
use crate::routing::stanza::{Class, IqType, Kind, MessageType, Origin, Stanza};
use crate::routing::table::{Event, Flow, TableBuilder};
use crate::routing::Router;
use crate::stanza::iq_result;

/// `urn:xmpp:carbons:2`.
pub const NS: &str = "urn:xmpp:carbons:2";
const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const RECEIPTS: &str = "urn:xmpp:receipts";
const MARKERS: &str = "urn:xmpp:chat-markers:0";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

const MODULE: &str = "carbons";
/// Below blocking and the archive, above delivery.
const PRIORITY: i32 = 20;

/// Set in a session's `SessionExt` while it has carbons enabled.
#[derive(Debug)]
pub struct Enabled;

pub fn register(setup: &mut super::Setup<'_>) {
    setup.iq.feature(Scope::Server, NS);
    let t: &mut TableBuilder = setup.table;
    // Bind 2 inline: the `<enable/>` of a SASL2 login's bind request.
    t.bind2_inline(NS);
    t.on_nonza(NS, MODULE, |_, session, el| {
        if el.name == "enable" {
            session.shared.ext.set(std::sync::Arc::new(Enabled));
        }
    });
    t.hook_each(
        &[
            Event::pre(Kind::Iq, Class::Bare),
            Event::pre(Kind::Iq, Class::Host),
        ],
        PRIORITY,
        MODULE,
        "<enable/> and <disable/> to one's own account or the server set the session's state, answered at once",
        |r, s| {
            if is_switch(&s) {
                switch(r, &s);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    t.hook_each(
        &[
            Event::pre(Kind::Message, Class::Bare),
            Event::pre(Kind::Message, Class::Full),
            Event::pre(Kind::Message, Class::Service),
            Event::pre(Kind::Message, Class::Remote),
        ],
        PRIORITY,
        MODULE,
        "an eligible message is copied (<sent/>) to the sender's other carbons-enabled resources",
        |r, s| {
            sent(r, &s);
            Flow::Next(s)
        },
    );
    t.hook_each(
        &[
            Event::at(Kind::Message, Class::Bare),
            Event::at(Kind::Message, Class::Full),
        ],
        PRIORITY,
        MODULE,
        "an eligible message is copied (<received/>) to the carbons-enabled resources delivery skips; <private/> is removed; a copy whose session ended is dropped",
        received,
    );
}

/// Whether `s` is an `<enable/>` or `<disable/>` set for the sender's own
/// account or server.
fn is_switch(s: &Stanza) -> bool {
    let own = match s.class {
        Class::Bare => same_account(&s.to, &s.from),
        Class::Host => s.to.domain() == s.from.domain(),
        _ => false,
    };
    own && s.iq_type() == Some(IqType::Set)
        && s.payload()
            .is_some_and(|p| p.ns == NS && matches!(p.name.as_str(), "enable" | "disable"))
}

/// Sets or clears the session's state and answers (XEP-0280 §4, §5:
/// repeating either is no error).
fn switch(r: &Router, s: &Stanza) {
    let enable = s.payload().is_some_and(|p| p.name == "enable");
    if let Some(session) = r.sessions().get(&s.from) {
        if enable {
            session.shared.ext.set(std::sync::Arc::new(Enabled));
        } else {
            session.shared.ext.remove::<Enabled>();
        }
    }
    let mut reply = iq_result(&s.el, None);
    reply.set_attr("from", s.to.to_string());
    r.reply(reply);
}

/// Whether a message is one carbons copy (XEP-0280 §6). `incoming` is
/// true for a message to the user, false for one the user sent.
pub fn eligible(message: &Element, incoming: bool) -> bool {
    if message.get_child("private", NS).is_some() || hints::has(message, "no-copy") {
        return false;
    }
    let ty = MessageType::parse(message.attr("type"));
    // Sent by a group chat room or one of its occupants (§6): the user's
    // other devices are not in the room.
    if incoming && message.get_child("x", MUC_USER).is_some() {
        return false;
    }
    match ty {
        MessageType::Groupchat | MessageType::Headline => false,
        MessageType::Chat => true,
        MessageType::Normal if message.get_child("body", &message.ns).is_some() => true,
        // A bounce of what the user sent to a bare JID comes from that
        // bare JID.
        MessageType::Error => {
            incoming
                && message
                    .attr("from")
                    .and_then(|f| Jid::parse(f).ok())
                    .is_some_and(|f| f.resource().is_none())
        }
        MessageType::Normal => message
            .elements()
            .any(|c| c.ns == CHAT_STATES || c.ns == RECEIPTS || c.ns == MARKERS),
    }
}

/// A carbon copy of `message` for `bare`'s resource `resource`: `kind`
/// is `sent` or `received`.
fn wrap(kind: &str, message: &Element, bare: &str, resource: &str) -> Element {
    let mut copy = Element::new("message", message.ns.clone())
        .with_attr("from", bare)
        .with_attr("to", format!("{bare}/{resource}"));
    if let Some(ty) = message.attr("type") {
        copy.set_attr("type", ty);
    }
    copy.with_child(Element::new(kind, NS).with_child(forward::forwarded(message.clone(), None)))
}

/// Whether `message` is a carbon copy for `to` (from `to`'s own bare JID).
fn is_copy(message: &Element, to: &Jid) -> bool {
    message
        .attr("from")
        .is_some_and(|f| super::stanza_id::is_bare_of(f, to))
        && (message.get_child("sent", NS).is_some() || message.get_child("received", NS).is_some())
}

/// Copies a message a client sent to the sender's other carbons-enabled
/// resources.
fn sent(r: &Router, s: &Stanza) {
    let Origin::Client { session } = s.origin else {
        return;
    };
    if same_account(&s.to, &s.from) || !eligible(&s.el, false) {
        return;
    }
    let bare = s.from.to_bare();
    let mut text = None;
    for e in r.sessions().of_account(&bare) {
        if e.id == session || !e.shared.ext.has::<Enabled>() {
            continue;
        }
        let bare = text.get_or_insert_with(|| bare.to_string());
        r.deliver(&e, wrap("sent", &s.el, bare, &e.resource));
    }
}

/// Copies a message to a user to the carbons-enabled resources delivery
/// does not give it to; removes `<private/>`.
fn received(r: &Router, mut s: Stanza) -> Flow {
    if s.origin == Origin::Redelivery {
        if is_copy(&s.el, &s.to) {
            return Flow::Done;
        }
        return Flow::Next(s);
    }
    let copy = eligible(&s.el, true);
    if s.el.get_child("private", NS).is_some() {
        s.el.remove_child("private", NS);
    }
    if !copy {
        return Flow::Next(s);
    }
    let bare = s.to.to_bare();
    let sessions = r.sessions().of_account(&bare);
    if !sessions.iter().any(|e| e.shared.ext.has::<Enabled>()) {
        return Flow::Next(s);
    }
    let recipients = crate::im::routes::recipients(&sessions, &s);
    if recipients.is_empty() {
        return Flow::Next(s);
    }
    let text = bare.to_string();
    for e in &sessions {
        if recipients.contains(&e.id) || !e.shared.ext.has::<Enabled>() {
            continue;
        }
        r.deliver(e, wrap("received", &s.el, &text, &e.resource));
    }
    Flow::Next(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn eligibility_follows_section_6() {
        let yes = [
            "<message xmlns='jabber:client' type='chat'/>",
            "<message xmlns='jabber:client'><body>hi</body></message>",
            "<message xmlns='jabber:client'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
        ];
        for m in yes {
            assert!(eligible(&el(m), true), "{m}");
            assert!(eligible(&el(m), false), "{m}");
        }
        let no = [
            "<message xmlns='jabber:client' type='chat'><private xmlns='urn:xmpp:carbons:2'/></message>",
            "<message xmlns='jabber:client' type='chat'><no-copy xmlns='urn:xmpp:hints'/></message>",
            "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='headline'><body>news</body></message>",
            "<message xmlns='jabber:client'><x xmlns='jabber:x:oob'/></message>",
        ];
        for m in no {
            assert!(!eligible(&el(m), true), "{m}");
            assert!(!eligible(&el(m), false), "{m}");
        }
        let pm = el(
            "<message xmlns='jabber:client' type='chat'><body>psst</body>\
                     <x xmlns='http://jabber.org/protocol/muc#user'/></message>",
        );
        assert!(
            !eligible(&pm, true),
            "a room's private message is not copied"
        );
        assert!(
            eligible(&pm, false),
            "what the user sends to an occupant is"
        );
        let bounce = el("<message xmlns='jabber:client' type='error' from='bob@example.org'/>");
        assert!(eligible(&bounce, true));
        assert!(!eligible(&bounce, false));
        let from_resource =
            el("<message xmlns='jabber:client' type='error' from='bob@example.org/phone'/>");
        assert!(!eligible(&from_resource, true));
    }

    #[test]
    fn copies_are_wrapped_as_section_7_shows() {
        let m = el(
            "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' \
                    to='romeo@montague.example/garden' type='chat'><body>hi</body></message>",
        );
        let to = Jid::parse("romeo@montague.example/home").unwrap();
        let copy = wrap("received", &m, "romeo@montague.example", "home");
        assert_eq!(
            copy.to_xml_string(),
            "<message xmlns=\"jabber:client\" from=\"romeo@montague.example\" \
             to=\"romeo@montague.example/home\" type=\"chat\"><received xmlns=\"urn:xmpp:carbons:2\">\
             <forwarded xmlns=\"urn:xmpp:forward:0\"><message xmlns=\"jabber:client\" from=\"juliet@capulet.example/balcony\" \
             to=\"romeo@montague.example/garden\" type=\"chat\"><body>hi</body></message>\
             </forwarded></received></message>"
        );
        assert!(is_copy(&copy, &to));
        assert!(!is_copy(&m, &to));
    }
}
