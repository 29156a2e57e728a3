//! The IM rows of the routing table (RFC 6121): what a user's own stanzas
//! need from their account before they go out, and how messages, presence
//! and IQs for an account are delivered or handed to its actor.
//!
//! Sender's side (`pre-…`): broadcast presence, outbound subscriptions,
//! and roster and account-data IQs to one's own account go to the
//! sender's actor, which updates the roster and routes what follows.
//!
//! Addressee's side: messages go to the right resources (RFC 6121 §8.5)
//! or, with none available, to the actor for offline storage; inbound
//! subscriptions and probes, and IQs to the bare JID that the server
//! answers with account data, go to the addressee's actor; other presence
//! goes to the available resources.

use std::sync::Arc;

use switchboard_jid::Jid;

use super::account::{Accounts, Work};
use crate::routing::iq::IqType;
use crate::routing::stanza::{Class, Kind, MessageType, PresenceType, Stanza};
use crate::routing::table::{Event, Flow, TableBuilder};
use crate::routing::Router;
use crate::sessions::SessionEntry;
use crate::stanza::StanzaError;

const MODULE: &str = "im";

pub fn register(t: &mut TableBuilder, accounts: &Arc<Accounts>) {
    let a = accounts.clone();
    t.hook(
        Event::pre(Kind::Presence, Class::Broadcast),
        0,
        MODULE,
        "the sender's actor broadcasts it to the roster and the user's resources",
        move |r, s| {
            let ticket = s.ticket();
            a.send_for(r, &s.from.to_bare(), Work::Own(s.el), ticket);
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.hook_each(
        &[
            Event::pre(Kind::Presence, Class::Host),
            Event::pre(Kind::Presence, Class::Bare),
            Event::pre(Kind::Presence, Class::Full),
            Event::pre(Kind::Presence, Class::Service),
            Event::pre(Kind::Presence, Class::Remote),
        ],
        0,
        MODULE,
        "a subscription stanza updates the sender's roster in its actor first",
        move |r, s| {
            if s.presence_type().is_some_and(PresenceType::is_subscription) {
                let ticket = s.ticket();
                a.send_for(r, &s.from.to_bare(), Work::Own(s.el), ticket);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::pre(Kind::Iq, Class::Bare),
        0,
        MODULE,
        "roster and account-data IQs to one's own account go to its actor",
        move |r, s| {
            if s.to == s.from.to_bare() && needs_account(r, &s) {
                let ticket = s.ticket();
                a.send_for(r, &s.to, Work::Own(s.el), ticket);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::pre(Kind::Iq, Class::Host),
        0,
        MODULE,
        "jabber:iq:register to the server (password change, removal, an admin adding a user) goes to the sender's actor",
        move |r, s| {
            let register = s
                .payload()
                .is_some_and(|p| p.ns == switchboard_xml::ns::REGISTER);
            if register && needs_account(r, &s) {
                let ticket = s.ticket();
                a.send_for(r, &s.from.to_bare(), Work::Own(s.el), ticket);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );

    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Message, Class::Bare),
        0,
        MODULE,
        "to the available resources with the highest priority (RFC 6121 §8.5.2), else offline storage",
        move |r, s| {
            message_to_bare(r, &a, s);
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Message, Class::Full),
        0,
        MODULE,
        "to the bound session; for an absent resource as RFC 6121 §8.5.3.2 says",
        move |r, s| {
            message_to_full(r, &a, s);
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Presence, Class::Bare),
        0,
        MODULE,
        "subscriptions, probes and presence from services go to the actor; other presence to the available resources",
        move |r, s| {
            presence_to_bare(r, &a, s);
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Presence, Class::Full),
        0,
        MODULE,
        "to the bound session; subscriptions and probes to an absent resource count as sent to the bare JID",
        move |r, mut s| {
            if let Some(session) = r.sessions().get(&s.to) {
                r.deliver(&session, s.el);
            } else if s
                .presence_type()
                .is_some_and(|t| t.is_subscription() || t == PresenceType::Probe)
            {
                // RFC 6121 §3.1.3, §4.3: as if sent to the bare JID.
                s.to = s.to.to_bare();
                s.el.set_attr("to", s.to.to_string());
                presence_to_bare(r, &a, s);
            }
            // Other presence to an absent resource is dropped (§4.6.3).
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Iq, Class::Bare),
        0,
        MODULE,
        "requests the server answers with account data (vCard, last activity, …) go to the addressee's actor",
        move |r, s| {
            let ticket = s.ticket();
            a.send_for(r, &s.to.to_bare(), Work::Inbound(s.el), ticket);
            Flow::Done
        },
    );
    let a = accounts.clone();
    t.on_session_given_up(MODULE, move |r, account, take| {
        a.send(r, account, Work::TakeBack(take));
    });
    let a = accounts.clone();
    t.on_session_end(MODULE, move |r, end| {
        let bare = end.jid.to_bare();
        a.send(r, &bare, Work::SessionEnded(end));
    });
}

/// Whether an IQ from the user needs their account's state: the roster,
/// or a request an account-data handler takes.
fn needs_account(r: &Router, s: &Stanza) -> bool {
    let Some(payload) = s.payload() else {
        return false;
    };
    if payload.is("query", super::roster::NS) {
        return true;
    }
    match s.iq_type() {
        Some(k @ (IqType::Get | IqType::Set)) => r.iq().lookup_data(payload, k).is_some(),
        _ => false,
    }
}

/// The sessions RFC 6121 §8.5.2 gives a message to a bare JID: the
/// available resources with the highest non-negative priority, or for a
/// headline every available resource with a non-negative priority; `None`
/// when there is no such resource (the message goes to offline storage).
/// Delivery uses it, and so does anything that must know where a message
/// will land before it is delivered (push notifications: does it reach a
/// live device?).
pub fn bare_targets(
    sessions: &[SessionEntry],
    headline: bool,
) -> Option<impl Iterator<Item = &SessionEntry>> {
    let best = sessions
        .iter()
        .filter_map(|s| s.priority)
        .filter(|p| *p >= 0)
        .max()?;
    Some(sessions.iter().filter(move |s| match s.priority {
        Some(p) if headline => p >= 0,
        Some(p) => p == best,
        None => false,
    }))
}

/// The ids of the sessions, among an account's `sessions`, that a message
/// addressed to that account is delivered to by this module's rows
/// (`message/bare`, `message/full`); none when it goes to offline storage
/// or nowhere. Modules acting beside delivery use it: message carbons
/// copy to the account's other sessions.
pub fn recipients(sessions: &[SessionEntry], s: &Stanza) -> Vec<u64> {
    let ty = s.message_type().unwrap_or(MessageType::Normal);
    if s.class == Class::Full {
        if let Some(one) = sessions
            .iter()
            .find(|e| Some(&*e.resource) == s.to.resource())
        {
            return vec![one.id];
        }
        if !matches!(ty, MessageType::Normal | MessageType::Chat) {
            return Vec::new();
        }
    }
    match ty {
        MessageType::Error | MessageType::Groupchat => Vec::new(),
        _ => bare_targets(sessions, ty == MessageType::Headline)
            .map(|t| t.map(|e| e.id).collect())
            .unwrap_or_default(),
    }
}

/// RFC 6121 §8.5.2: a message to a bare JID goes to the available
/// resources with the highest non-negative priority (headlines to all of
/// them); with none, the account's actor stores it offline.
fn message_to_bare(r: &Router, accounts: &Accounts, s: Stanza) {
    let headline = match s.message_type() {
        Some(MessageType::Headline) => true,
        Some(MessageType::Error) => return,
        Some(MessageType::Groupchat) => {
            return r.bounce(&s.el, StanzaError::service_unavailable());
        }
        _ => false,
    };
    let bare = s.to.to_bare();
    let sessions = r.sessions().of_account(&bare);
    let Some(mut targets) = bare_targets(&sessions, headline) else {
        // No available resource: the account's actor stores it offline
        // (or refuses it if there is no such account).
        let ticket = s.ticket();
        return accounts.send_for(r, &bare, Work::Inbound(s.el), ticket);
    };
    // Every target but the last gets a copy; the last gets the stanza.
    let mut next = targets.next();
    let el = s.el;
    while let Some(t) = next {
        next = targets.next();
        match next {
            Some(_) => r.deliver(t, el.clone()),
            None => return r.deliver(t, el),
        }
    }
}

fn message_to_full(r: &Router, accounts: &Accounts, s: Stanza) {
    if let Some(session) = r.sessions().get(&s.to) {
        return r.deliver(&session, s.el);
    }
    match s.message_type() {
        // RFC 6121 §8.5.3.2.1: normal and chat messages to an absent
        // resource are treated as sent to the bare JID (the stanza keeps
        // its `to`).
        Some(MessageType::Normal | MessageType::Chat) => message_to_bare(r, accounts, s),
        // Headlines to an absent resource are dropped (§8.5.3.2.1).
        Some(MessageType::Headline) => {}
        _ => r.bounce(&s.el, StanzaError::service_unavailable()),
    }
}

fn presence_to_bare(r: &Router, accounts: &Accounts, s: Stanza) {
    let bare: Jid = s.to.to_bare();
    let ty = s.presence_type().unwrap_or(PresenceType::Available);
    if ty.is_subscription() || ty == PresenceType::Probe {
        let ticket = s.ticket();
        return accounts.send_for(r, &bare, Work::Inbound(s.el), ticket);
    }
    if !r.is_local(s.from.domain()) {
        // Presence from a service or component queues behind the
        // subscription stanzas it sent before, which the account's actor
        // handles (RFC 6120 §10.1: in order between two entities): a
        // component's `subscribed` and then its available presence must
        // arrive in that order. Local users' presence takes the direct
        // path; their own actor already orders what they send.
        let ticket = s.ticket();
        return accounts.send_for(r, &bare, Work::Inbound(s.el), ticket);
    }
    // Available, unavailable and error presence go to every available
    // resource (RFC 6121 §4.2.3, §4.5.3).
    r.deliver_to_available(&bare, &s.el);
}
