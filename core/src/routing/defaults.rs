//! The routing table's own rows: what holds for every stanza whatever
//! modules are loaded — clients do not probe, services get their stanzas
//! through their inbox, the IQ registry answers IQs to the server, and
//! other domains get `remote-server-not-found` when federation did not take
//! them.

use super::iq::Scope;
use super::stanza::{Class, IqType, Kind, PresenceType};
use super::table::{Event, Flow, TableBuilder};

const MODULE: &str = "core";

pub fn register(t: &mut TableBuilder) {
    // RFC 6121 §4.3: probes are the server's business; a client's probe
    // is dropped before it goes anywhere.
    t.hook_each(
        &[
            Event::pre(Kind::Presence, Class::Host),
            Event::pre(Kind::Presence, Class::Bare),
            Event::pre(Kind::Presence, Class::Full),
            Event::pre(Kind::Presence, Class::Service),
            Event::pre(Kind::Presence, Class::Remote),
        ],
        100,
        MODULE,
        "a client's probe is dropped (RFC 6121 §4.3)",
        |_, s| match s.presence_type() {
            Some(PresenceType::Probe) => Flow::Done,
            _ => Flow::Next(s),
        },
    );
    for kind in [Kind::Message, Kind::Presence, Kind::Iq] {
        t.hook(
            Event::at(kind, Class::Service),
            0,
            MODULE,
            "into the service's inbox (bounced when it is down or full)",
            |r, s| {
                let host = s.to.domain().to_string();
                r.to_service(&host, s.el);
                Flow::Done
            },
        );
        t.hook(
            Event::at(kind, Class::Remote),
            -100,
            MODULE,
            "remote-server-not-found (federation is off, or nothing took it)",
            |r, s| {
                r.bounce(&s.el, crate::stanza::StanzaError::remote_server_not_found());
                Flow::Done
            },
        );
    }
    t.hook(
        Event::at(Kind::Presence, Class::Host),
        0,
        MODULE,
        "dropped: presence to the server means nothing (RFC 6121 §4.3)",
        |_, _| Flow::Done,
    );
    t.hook(
        Event::at(Kind::Iq, Class::Host),
        0,
        MODULE,
        "answered by the IQ registry's server handlers (disco, ping, version), sync or on a task",
        |r, s| {
            r.answer_iq(&s, Scope::Server);
            Flow::Done
        },
    );
    t.hook(
        Event::at(Kind::Iq, Class::Full),
        0,
        MODULE,
        "to the bound session (service-unavailable when there is none)",
        |r, s| {
            match r.sessions().get(&s.to) {
                Some(session) => r.deliver(&session, s.el),
                None => r.bounce(&s.el, crate::stanza::StanzaError::service_unavailable()),
            }
            Flow::Done
        },
    );
    t.hook(
        Event::at(Kind::Iq, Class::Bare),
        10,
        MODULE,
        "answered on the account's behalf by the registry's sync handlers; results and errors end here",
        |r, s| {
            let sync = match s.iq_type() {
                Some(k @ (IqType::Get | IqType::Set)) => s
                    .payload()
                    .is_some_and(|p| r.iq().answers(p, k, Scope::Account)),
                _ => true,
            };
            if sync {
                r.answer_iq(&s, Scope::Account);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
}
