//! XEP-0100 §4.3: when a user unregisters from a transport, the gateway's
//! items leave the user's roster. The server notes each
//! `jabber:iq:register` `<remove/>` a user sends to a service, and when
//! the service confirms it with a result, the user's actor drops every
//! roster item at that service's hostname, as if the user had removed
//! them.

use std::sync::Arc;

use dashmap::DashMap;
use switchboard_jid::Jid;
use switchboard_xml::ns;

use super::account::{Accounts, Work};
use crate::routing::stanza::{Class, IqType, Kind, Origin};
use crate::routing::table::{Event, Flow, TableBuilder};

const MODULE: &str = "im.unregister";

/// How many unanswered unregistrations are remembered: a service that
/// never answers must not grow the table forever.
const MAX_PENDING: usize = 10_000;

pub fn register(t: &mut TableBuilder, accounts: &Arc<Accounts>) {
    // (user's full JID, IQ id) → service host.
    let pending: Arc<DashMap<(String, String), String>> = Arc::default();
    let p = pending.clone();
    t.hook(
        Event::pre(Kind::Iq, Class::Service),
        10,
        MODULE,
        "an unregistration from a service is remembered until the service answers",
        move |_, s| {
            let is_remove = s.iq_type() == Some(IqType::Set)
                && s.to.node().is_none()
                && s.payload().is_some_and(|q| {
                    q.is("query", ns::REGISTER) && q.get_child("remove", ns::REGISTER).is_some()
                });
            if is_remove {
                if p.len() >= MAX_PENDING {
                    p.clear();
                }
                let id = s.el.attr("id").unwrap_or_default().to_string();
                p.insert((s.from.to_string(), id), s.to.domain().to_string());
            }
            Flow::Next(s)
        },
    );
    let a = accounts.clone();
    t.hook(
        Event::at(Kind::Iq, Class::Full),
        10,
        MODULE,
        "a service's result for a remembered unregistration drops the user's roster items there",
        move |r, s| {
            let Origin::Service(host) = &s.origin else {
                return Flow::Next(s);
            };
            if !matches!(s.iq_type(), Some(IqType::Result | IqType::Error)) {
                return Flow::Next(s);
            }
            let key = (
                s.to.to_string(),
                s.el.attr("id").unwrap_or_default().to_string(),
            );
            if let Some((_, service)) = pending.remove(&key) {
                if service == **host && s.iq_type() == Some(IqType::Result) {
                    let user: Jid = s.to.to_bare();
                    // Delivered here, before the actor is asked, so the
                    // client sees the result before the roster pushes
                    // that follow it.
                    if let Some(session) = r.sessions().get(&s.to) {
                        r.deliver(&session, s.el);
                    }
                    a.send(r, &user, Work::DropServiceItems(service));
                    return Flow::Done;
                }
            }
            Flow::Next(s)
        },
    );
}
