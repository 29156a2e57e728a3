//! The roster (RFC 6121 §2): items with their subscription state, and the
//! inbound subscription requests waiting for the user's answer (with their
//! original stanza, status text included), kept through the storage
//! interface's `RosterStore` in its `StoredRoster` form.

use std::collections::BTreeMap;

use switchboard_jid::Jid;
use switchboard_spool::store::{StoredItem, StoredRoster};
use switchboard_xml::{ns, Element};

use super::subscription::{State, Subscription};

/// The roster namespace.
pub const NS: &str = "jabber:iq:roster";

/// One roster item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub jid: Jid,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub state: State,
    /// Whether the user added (or edited) the item, as opposed to it
    /// existing only because of a subscription exchange.
    pub user_added: bool,
}

impl Item {
    pub fn new(jid: Jid) -> Item {
        Item {
            jid,
            name: None,
            groups: Vec::new(),
            state: State::default(),
            user_added: false,
        }
    }

    /// The item as clients see it in `jabber:iq:roster` (RFC 6121 §2.1.2):
    /// pre-approval and pending-in are server-side state and not shown.
    pub fn to_client(&self) -> Element {
        let mut e = Element::new("item", NS)
            .with_attr("jid", self.jid.to_string())
            .with_attr("subscription", self.state.sub.as_str());
        if let Some(n) = &self.name {
            e.set_attr("name", n.clone());
        }
        if self.state.pending_out {
            e.set_attr("ask", "subscribe");
        }
        if self.state.approved {
            // RFC 6121 §3.4: a server that supports pre-approval shows it.
            e.set_attr("approved", "true");
        }
        for g in &self.groups {
            e.append_child(Element::new("group", NS).with_text(g.clone()));
        }
        e
    }
}

/// A user's roster, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Bumped on every change; clients cache by it (XEP-0237).
    pub ver: u64,
    pub items: BTreeMap<Jid, Item>,
    /// Inbound subscription requests waiting for the user's answer.
    pub pending: BTreeMap<Jid, Element>,
}

impl Roster {
    /// The contact's state (default when there is no item).
    pub fn state(&self, contact: &Jid) -> State {
        let mut s = self.items.get(contact).map(|i| i.state).unwrap_or_default();
        s.pending_in = self.pending.contains_key(contact);
        s
    }

    /// Applies a new state to a contact, creating or dropping the item as
    /// needed. An item that returns to the empty state is dropped unless
    /// the user added it.
    pub fn set_state(&mut self, contact: &Jid, state: State, request: Option<Element>) {
        if state.pending_in {
            if let Some(r) = request {
                self.pending.insert(contact.clone(), r);
            } else {
                self.pending.entry(contact.clone()).or_insert_with(|| {
                    Element::new("presence", ns::CLIENT)
                        .with_attr("from", contact.to_string())
                        .with_attr("type", "subscribe")
                });
            }
        } else {
            self.pending.remove(contact);
        }
        let mut visible = state;
        visible.pending_in = false;
        match self.items.get_mut(contact) {
            Some(item) => item.state = visible,
            None if visible != State::default() => {
                let mut item = Item::new(contact.clone());
                item.state = visible;
                self.items.insert(contact.clone(), item);
            }
            None => {}
        }
        if let Some(item) = self.items.get(contact) {
            if item.state == State::default() && !item.user_added {
                self.items.remove(contact);
            }
        }
    }

    /// Contacts allowed to see the user's presence (`from` or `both`).
    pub fn presence_subscribers(&self) -> impl Iterator<Item = &Jid> {
        self.items
            .values()
            .filter(|i| i.state.sub.has_from())
            .map(|i| &i.jid)
    }

    /// Contacts whose presence the user sees (`to` or `both`).
    pub fn presence_subscriptions(&self) -> impl Iterator<Item = &Jid> {
        self.items
            .values()
            .filter(|i| i.state.sub.has_to())
            .map(|i| &i.jid)
    }

    /// The roster as the storage interface holds it. An item or request
    /// whose JID does not parse (a record edited by hand) is skipped with
    /// a warning rather than failing the whole roster.
    pub fn from_stored(stored: &StoredRoster) -> Roster {
        let mut r = Roster {
            ver: stored.ver,
            ..Default::default()
        };
        for it in &stored.items {
            let Ok(jid) = Jid::parse(&it.jid) else {
                tracing::warn!(jid = %it.jid, "skipping a roster item without a valid jid");
                continue;
            };
            let state = State {
                sub: Subscription::parse(&it.subscription).unwrap_or(Subscription::None),
                pending_out: it.ask,
                pending_in: false,
                approved: it.approved,
            };
            let item = Item {
                jid: jid.clone(),
                name: it.name.clone(),
                groups: it.groups.clone(),
                state,
                user_added: it.added,
            };
            r.items.insert(jid, item);
        }
        for (jid, stanza) in &stored.pending {
            let Ok(jid) = Jid::parse(jid) else {
                tracing::warn!(%jid, "skipping a pending request without a valid jid");
                continue;
            };
            r.pending.insert(jid, stanza.clone());
        }
        r
    }

    /// The form the storage interface keeps.
    pub fn to_stored(&self) -> StoredRoster {
        StoredRoster {
            ver: self.ver,
            items: self
                .items
                .values()
                .map(|item| StoredItem {
                    jid: item.jid.to_string(),
                    name: item.name.clone(),
                    subscription: item.state.sub.as_str().to_string(),
                    ask: item.state.pending_out,
                    approved: item.state.approved,
                    added: item.user_added,
                    groups: item.groups.clone(),
                })
                .collect(),
            pending: self
                .pending
                .iter()
                .map(|(jid, stanza)| (jid.to_string(), stanza.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn stored_form_round_trips() {
        let mut r = Roster {
            ver: 3,
            ..Default::default()
        };
        let mut item = Item::new(j("bob@example.org"));
        item.name = Some("Bob & Co".into());
        item.groups = vec!["Friends".into(), "Work".into()];
        item.state = State {
            sub: Subscription::To,
            pending_out: false,
            pending_in: false,
            approved: true,
        };
        item.user_added = true;
        r.items.insert(item.jid.clone(), item);
        r.set_state(
            &j("carol@example.org"),
            State {
                pending_in: true,
                ..Default::default()
            },
            Some(
                Element::new("presence", ns::CLIENT)
                    .with_attr("type", "subscribe")
                    .with_attr("from", "carol@example.org"),
            ),
        );
        let back = Roster::from_stored(&r.to_stored());
        assert_eq!(back, r);
        assert!(back.state(&j("carol@example.org")).pending_in);
        assert!(
            !back.items.contains_key(&j("carol@example.org")),
            "a pending request alone is not a roster item"
        );
    }

    #[test]
    fn items_that_return_to_nothing_disappear_unless_user_added() {
        let mut r = Roster::default();
        let bob = j("bob@example.org");
        r.set_state(
            &bob,
            State {
                sub: Subscription::From,
                ..Default::default()
            },
            None,
        );
        assert!(r.items.contains_key(&bob));
        r.set_state(&bob, State::default(), None);
        assert!(!r.items.contains_key(&bob));
        let mut item = Item::new(bob.clone());
        item.user_added = true;
        r.items.insert(bob.clone(), item);
        r.set_state(&bob, State::default(), None);
        assert!(r.items.contains_key(&bob));
    }

    #[test]
    fn client_form_shows_ask_but_not_pending_in() {
        let mut item = Item::new(j("bob@example.org"));
        item.state = State {
            sub: Subscription::None,
            pending_out: true,
            pending_in: true,
            approved: false,
        };
        let e = item.to_client();
        assert_eq!(e.attr("ask"), Some("subscribe"));
        assert_eq!(e.attr("subscription"), Some("none"));
    }
}
