//! Presence subscriptions inside the account actor: applying the RFC 6121
//! state machine (`subscription.rs`) to the roster, persisting it, pushing
//! changed items, and the side effects the RFC asks of the server.

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::account::{Account, LoadError};
use super::subscription::{self, Kind};
use crate::stanza::{stanza_type, StanzaError};

/// The stanza actually routed for a subscription: `from` is the user's
/// bare JID (RFC 6121 §3.1.2), `to` the contact's, and only the status
/// text and extensions the user added travel along.
fn subscription_stanza(kind: Kind, from: &Jid, to: &Jid, original: Option<&Element>) -> Element {
    let mut p = Element::new("presence", ns::CLIENT)
        .with_attr("type", kind.as_str())
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string());
    if let Some(o) = original {
        if let Some(id) = o.attr("id") {
            p.set_attr("id", id);
        }
        p.children = o.children.clone();
    }
    p
}

impl Account {
    /// A subscription stanza (or directed presence of another type) the
    /// user sent to a contact.
    pub(super) async fn outbound_subscription(&mut self, el: Element) {
        let Some(kind) = Kind::parse(stanza_type(&el)) else {
            return;
        };
        let Some(contact) = el
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .map(|j| j.to_bare())
        else {
            return;
        };
        if contact == self.bare {
            // Subscribing to oneself is meaningless; RFC 6121 §3.1.1 lets
            // the server refuse it.
            return self.bounce(
                &el,
                StanzaError::bad_request().with_text("you cannot subscribe to yourself"),
            );
        }
        let me = self.bare.clone();
        let (state, out) = match self.roster().await {
            Ok(r) => {
                let state = r.state(&contact);
                (state, subscription::outbound(state, kind))
            }
            Err(_) => return self.bounce(&el, StanzaError::internal_server_error()),
        };
        if out.state != state {
            if let Ok(r) = self.roster().await {
                r.set_state(&contact, out.state, None);
            }
            if self.save_roster().await.is_err() {
                return self.bounce(&el, StanzaError::internal_server_error());
            }
        }
        if out.push {
            self.push(&contact).await;
        }
        if out.route {
            self.send(subscription_stanza(kind, &me, &contact, Some(&el)));
        }
        // RFC 6121 §3.1.5 / §3.2.2: approving sends the user's current
        // presence to the contact; cancelling sends unavailable.
        match kind {
            Kind::Subscribed if out.route => self.send_current_presence(&contact),
            Kind::Unsubscribed if out.route => {
                for s in self.router.sessions().of_account(&self.bare) {
                    if s.presence.is_some() {
                        let p = Element::new("presence", ns::CLIENT)
                            .with_attr("type", "unavailable")
                            .with_attr("from", format!("{}/{}", self.bare, s.resource))
                            .with_attr("to", contact.to_string());
                        self.send_after_subscription(&contact, p);
                    }
                }
            }
            _ => {}
        }
    }

    /// Each available resource's presence to a contact, after the
    /// subscription stanza just sent (RFC 6121 §3.1.5).
    fn send_current_presence(&self, contact: &Jid) {
        for s in self.router.sessions().of_account(&self.bare) {
            if let Some(p) = &s.presence {
                let mut p = (**p).clone();
                p.set_attr("to", contact.to_string());
                self.send_after_subscription(contact, p);
            }
        }
    }

    /// Sends presence to a contact through the same queue the preceding
    /// subscription stanza took (the contact's actor, when local), so it
    /// cannot overtake it (RFC 6120 §10.1 ordering).
    fn send_after_subscription(&self, contact: &Jid, p: Element) {
        if self.router.is_local(contact.domain()) {
            self.accounts
                .send(&self.router, contact, super::Work::Inbound(p));
        } else {
            self.send(p);
        }
    }

    /// A subscription stanza from a contact to this user.
    pub(super) async fn inbound_subscription(&mut self, el: Element) {
        let Some(kind) = Kind::parse(stanza_type(&el)) else {
            // Presence queued behind a subscription stanza (see
            // `send_after_subscription`): deliver it now, in order.
            self.router.route(el);
            return;
        };
        let Some(contact) = el
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .map(|j| j.to_bare())
        else {
            return;
        };
        let me = self.bare.clone();
        let (state, inn) = match self.roster().await {
            Ok(r) => {
                let state = r.state(&contact);
                (state, subscription::inbound(state, kind))
            }
            Err(LoadError::NoAccount) => {
                // RFC 6121 §3.1.3: a request to a nonexistent account is
                // answered with `unsubscribed`.
                if kind == Kind::Subscribe {
                    self.send(subscription_stanza(Kind::Unsubscribed, &me, &contact, None));
                }
                return;
            }
            Err(_) => return,
        };
        if inn.state != state {
            let request = (kind == Kind::Subscribe).then(|| {
                let mut r = el.clone();
                r.remove_attr("to");
                r
            });
            if let Ok(r) = self.roster().await {
                r.set_state(&contact, inn.state, request);
            }
            if self.save_roster().await.is_err() {
                return;
            }
        }
        if inn.push {
            self.push(&contact).await;
        }
        // RFC 6121 §3.3.3: once the contact no longer has a subscription
        // to the user's presence, the user's resources go unavailable for
        // the contact.
        if kind == Kind::Unsubscribe && state.sub.has_from() && !inn.state.sub.has_from() {
            for s in self.router.sessions().of_account(&self.bare) {
                if s.presence.is_some() {
                    let p = Element::new("presence", ns::CLIENT)
                        .with_attr("type", "unavailable")
                        .with_attr("from", format!("{}/{}", self.bare, s.resource))
                        .with_attr("to", contact.to_string());
                    self.send(p);
                }
            }
        }
        if inn.deliver {
            // Subscription stanzas go to every available resource
            // (RFC 6121 §3.1.3); an unanswered request is also kept in the
            // roster's pending list and shown again at the next login.
            for s in self.router.sessions().of_account(&self.bare) {
                if s.presence.is_some() {
                    let mut p = el.clone();
                    p.set_attr("to", format!("{}/{}", self.bare, s.resource));
                    self.send_to_session(
                        &format!("{}/{}", self.bare, s.resource)
                            .parse()
                            .expect("a bound JID"),
                        p,
                    );
                }
            }
        }
        if let Some(reply) = inn.auto_reply {
            self.send(subscription_stanza(reply, &me, &contact, None));
            if reply == Kind::Subscribed {
                self.send_current_presence(&contact);
            }
        }
    }

    /// Sends a roster push for one contact to every resource that asked for
    /// the roster (RFC 6121 §2.1.6).
    pub(super) async fn push(&mut self, contact: &Jid) {
        let Ok(roster) = self.roster().await else {
            return;
        };
        let ver = roster.ver.to_string();
        let item = match roster.items.get(contact) {
            Some(i) => i.to_client(),
            None => Element::new("item", super::roster::NS)
                .with_attr("jid", contact.to_string())
                .with_attr("subscription", "remove"),
        };
        for s in self.router.sessions().of_account(&self.bare) {
            if !s.interested {
                continue;
            }
            let to = format!("{}/{}", self.bare, s.resource);
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("push-{}", crate::ids::random_id()))
                .with_attr("to", to.clone())
                .with_child(
                    Element::new("query", super::roster::NS)
                        .with_attr("ver", ver.clone())
                        .with_child(item.clone()),
                );
            self.send_to_session(&to.parse().expect("a bound JID"), iq);
        }
    }
}
