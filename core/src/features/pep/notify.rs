//! Event notifications (XEP-0163 §4): who gets them and what they look
//! like, and the last published item sent to a session that becomes
//! available.
//!
//! A notification goes, as a `<message type='headline'/>` from the
//! owner's bare JID with an `<event/>`, to each available resource that
//! lists `NODE+notify` in its entity capabilities (XEP-0115, `caps/`):
//! the owner's own resources, and the resources of each contact the node's
//! access model lets see it. Only local contacts have sessions the server
//! can see; there is no federation yet.

use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::access::Viewer;
use super::store::{Item, Node};
use super::{Pep, NS_EVENT};
use crate::features::caps::Features;
use crate::im::{AccountScope, Job};

/// What happened to a node.
#[derive(Debug, Clone)]
pub enum Event {
    /// Items published (or the last one, re-sent on presence).
    Items(Vec<Item>),
    /// Items retracted.
    Retract(Vec<String>),
    Purge,
    Delete,
}

/// The XEP-0033 namespace of the `replyto` address (XEP-0163 §4.3.1).
const ADDRESS: &str = "http://jabber.org/protocol/address";

/// The `<event/>` of a notification about `node`.
pub fn event(node: &Node, what: &Event) -> Element {
    let mut ev = Element::new("event", NS_EVENT);
    let name = node.name.clone();
    match what {
        Event::Items(items) => {
            let mut list = Element::new("items", NS_EVENT).with_attr("node", name);
            for item in items {
                let mut e = Element::new("item", NS_EVENT).with_attr("id", item.id.clone());
                if node.config.deliver_payloads {
                    e.append_child(item.payload.clone());
                }
                list.append_child(e);
            }
            ev.append_child(list);
        }
        Event::Retract(ids) => {
            let mut list = Element::new("items", NS_EVENT).with_attr("node", name);
            for id in ids {
                list.append_child(Element::new("retract", NS_EVENT).with_attr("id", id.clone()));
            }
            ev.append_child(list);
        }
        Event::Purge => ev.append_child(Element::new("purge", NS_EVENT).with_attr("node", name)),
        Event::Delete => ev.append_child(Element::new("delete", NS_EVENT).with_attr("node", name)),
    }
    ev
}

/// A notification message to one session (or subscribed JID).
pub(super) fn message(owner: &Jid, to: &Jid, event: Element) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("type", "headline")
        .with_attr("from", owner.to_string())
        .with_attr("to", to.to_string())
        .with_attr("id", crate::ids::random_id())
        .with_child(event)
}

impl Pep {
    /// The sessions that get notifications of `node` now, and whether each
    /// is a contact's (not the owner's own).
    pub(super) async fn targets(
        &self,
        scope: &mut AccountScope<'_>,
        node: &Node,
    ) -> Vec<(Jid, bool)> {
        let interest = format!("{}+notify", node.name);
        let owner = scope.bare().clone();
        let router = scope.router().clone();
        let mut out = Vec::new();
        let sessions_of = |bare: &Jid, contact: bool, out: &mut Vec<(Jid, bool)>| {
            for s in router.sessions().of_account(bare) {
                if s.priority.is_some() && self.caps.supports(&s, &interest) {
                    if let Ok(full) = bare.with_resource(&s.resource) {
                        out.push((full, contact));
                    }
                }
            }
        };
        sessions_of(&owner, false, &mut out);
        if node.config.access == super::config::Access::Whitelist {
            return out;
        }
        let contacts: Vec<Jid> = match scope.roster().await {
            Some(r) => r
                .presence_subscribers()
                .filter(|c| Viewer::of(&owner, c, Some(r)).may_see(&node.config))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        for c in contacts {
            if router.is_local(c.domain()) {
                sessions_of(&c, true, &mut out);
            }
        }
        out
    }

    /// Notifies every target of `node` of `what`; `publisher` (a full JID)
    /// is named to contacts as the `replyto` address (XEP-0163 §4.3.1).
    pub(super) async fn notify(
        &self,
        scope: &mut AccountScope<'_>,
        node: &Node,
        what: &Event,
        publisher: Option<&str>,
    ) {
        let targets = self.targets(scope, node).await;
        let subscribers = self.subscribers(scope, node, &targets).await;
        if targets.is_empty() && subscribers.is_empty() {
            return;
        }
        let ev = event(node, what);
        let owner = scope.bare().clone();
        for to in subscribers {
            scope.send(message(&owner, &to, ev.clone()));
        }
        for (to, contact) in targets {
            let mut m = message(&owner, &to, ev.clone());
            if let (true, Some(p), Event::Items(_)) = (contact, publisher, what) {
                m.append_child(
                    Element::new("addresses", ADDRESS).with_child(
                        Element::new("address", ADDRESS)
                            .with_attr("type", "replyto")
                            .with_attr("jid", p),
                    ),
                );
            }
            scope.send(m);
        }
    }

    /// A session became available with these capabilities (on the
    /// router's thread): its own account's last items, and then each
    /// contact's it sees the presence of, are sent to it by their actors.
    pub(super) fn available(
        self: &Arc<Self>,
        r: &crate::routing::Router,
        jid: &Jid,
        features: &Arc<Features>,
    ) {
        let bare = jid.to_bare();
        let pep = self.clone();
        let (jid, features) = (jid.clone(), features.clone());
        self.accounts.run_for(
            r,
            &bare,
            Job::new(move |mut scope| {
                Box::pin(async move {
                    pep.send_last_items(&mut scope, &jid, &features).await;
                    let contacts: Vec<Jid> = match scope.roster().await {
                        Some(r) => r.presence_subscriptions().cloned().collect(),
                        None => return,
                    };
                    for c in contacts {
                        if !scope.router().is_local(c.domain()) {
                            continue;
                        }
                        let (pep2, jid2, features2) = (pep.clone(), jid.clone(), features.clone());
                        scope.accounts().run_for(
                            scope.router(),
                            &c,
                            Job::new(move |mut scope| {
                                Box::pin(async move {
                                    pep2.send_last_items(&mut scope, &jid2, &features2).await
                                })
                            }),
                            None,
                        );
                    }
                })
            }),
            None,
        );
    }

    /// Sends the last item of each of this account's nodes that `to` is
    /// interested in and may see, with the time it was published
    /// (XEP-0163 §4.3.4, XEP-0203).
    async fn send_last_items(&self, scope: &mut AccountScope<'_>, to: &Jid, features: &Features) {
        let owner = scope.bare().clone();
        let Ok(names) = super::store::names(scope.data(), scope.account()).await else {
            return;
        };
        let wanted: Vec<String> = names
            .into_iter()
            .filter(|n| features.contains(&format!("{n}+notify")))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let viewer = Viewer::of(&owner, to, scope.roster().await);
        if let Viewer::Other { sees_presence, .. } = &viewer {
            // Presence-based delivery is for contacts who see the owner's
            // presence (XEP-0163 §4, condition 2).
            if !sees_presence {
                return;
            }
        }
        for name in wanted {
            let Ok(Some(node)) = super::store::load(scope.data(), scope.account(), &name).await
            else {
                continue;
            };
            if node.config.send_last != super::config::SendLast::OnSubAndPresence
                || !viewer.may_see(&node.config)
            {
                continue;
            }
            let Some(last) = node.last().cloned() else {
                continue;
            };
            let stamp = crate::time::stamp(last.stamp);
            let mut m = message(&owner, to, event(&node, &Event::Items(vec![last])));
            m.append_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("from", owner.to_string())
                    .with_attr("stamp", stamp),
            );
            scope.send(m);
        }
    }
}
