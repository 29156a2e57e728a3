//! Explicit subscriptions (XEP-0060 §6.1, §6.2, §5.6, §8.8.1), which
//! XEP-0163 §5 asks a PEP service to support beside the implicit ones of
//! presence: someone who may see a node (an `open` node: anyone) subscribes
//! a JID of its own, bare or full, and gets every notification at that
//! JID from then on, with the last item at once. Access is checked again
//! at each notification, so a subscriber who lost access hears nothing.
//! Subscriptions are kept with the node (at most [`MAX_SUBSCRIBERS`]) and
//! go with it.

use switchboard_jid::Jid;
use switchboard_xml::Element;

use super::access::Viewer;
use super::notify::Event;
use super::store;
use super::{errors, Pep, NS, NS_OWNER};
use crate::im::AccountScope;
use crate::stanza::{ErrorType, StanzaError};

/// The most explicit subscribers one node keeps.
pub const MAX_SUBSCRIBERS: usize = 64;

type Answer = Result<Option<Element>, StanzaError>;

fn subscription(node: &str, jid: &str, state: &str) -> Element {
    Element::new("subscription", NS)
        .with_attr("node", node)
        .with_attr("jid", jid)
        .with_attr("subscription", state)
}

/// The `jid` of a (un)subscription request: a JID of the requester's own
/// (XEP-0060 §6.1.3.1: `bad-request` with `<invalid-jid/>` otherwise).
fn own_jid(request: &Element, from: &Jid) -> Result<Jid, StanzaError> {
    let invalid = || {
        StanzaError::bad_request()
            .with_text("subscribe a JID of your own")
            .with_app(errors::condition("invalid-jid"))
    };
    let jid = request
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .ok_or_else(invalid)?;
    if jid.to_bare() != from.to_bare() {
        return Err(invalid());
    }
    Ok(jid)
}

impl Pep {
    pub(super) async fn subscribe(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        from: &Jid,
        request: &Element,
    ) -> Answer {
        let name = super::requests::node_name(request)?;
        let jid = own_jid(request, from)?;
        let Some(mut node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        viewer.check(&node.config)?;
        let jid_s = jid.to_string();
        if !node.subscribers.contains(&jid_s) {
            if node.subscribers.len() >= MAX_SUBSCRIBERS {
                return Err(errors::policy(format!(
                    "a node has at most {MAX_SUBSCRIBERS} subscribers"
                ))
                .with_app(errors::condition("too-many-subscriptions")));
            }
            node.subscribers.push(jid_s.clone());
            store::save(scope.data(), scope.account(), &node, false).await?;
            // XEP-0060 §6.1.7: the last item to a new subscriber.
            if node.config.send_last != super::config::SendLast::Never {
                if let Some(last) = node.last().cloned() {
                    let owner = scope.bare().clone();
                    let ev = super::notify::event(&node, &Event::Items(vec![last]));
                    scope.send(super::notify::message(&owner, &jid, ev));
                }
            }
        }
        Ok(Some(Element::new("pubsub", NS).with_child(subscription(
            &name,
            &jid_s,
            "subscribed",
        ))))
    }

    pub(super) async fn unsubscribe(
        &self,
        scope: &mut AccountScope<'_>,
        from: &Jid,
        request: &Element,
    ) -> Answer {
        let name = super::requests::node_name(request)?;
        let jid = match request.attr("jid").and_then(|j| Jid::parse(j).ok()) {
            Some(j) if j.to_bare() == from.to_bare() => j,
            // §6.2.3.3: not the requester's to cancel.
            _ => return Err(errors::forbidden("cancel a subscription of your own")),
        };
        let Some(mut node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        let before = node.subscribers.len();
        node.subscribers.retain(|s| *s != jid.to_string());
        if node.subscribers.len() == before {
            // §6.2.3.2.
            return Err(StanzaError::new("unexpected-request", ErrorType::Cancel)
                .with_text("there is no such subscription")
                .with_app(errors::condition("not-subscribed")));
        }
        store::save(scope.data(), scope.account(), &node, false).await?;
        Ok(None)
    }

    /// §5.6: the requester's own subscriptions (all nodes, or one).
    pub(super) async fn own_subscriptions(
        &self,
        scope: &mut AccountScope<'_>,
        from: &Jid,
        request: &Element,
    ) -> Answer {
        let bare = from.to_bare();
        let mut list = Element::new("subscriptions", NS);
        for name in store::names(scope.data(), scope.account()).await? {
            if request.attr("node").is_some_and(|n| n != name) {
                continue;
            }
            let Some(node) = store::load(scope.data(), scope.account(), &name).await? else {
                continue;
            };
            for s in &node.subscribers {
                if Jid::parse(s).is_ok_and(|j| j.to_bare() == bare) {
                    list.append_child(subscription(&name, s, "subscribed"));
                }
            }
        }
        Ok(Some(Element::new("pubsub", NS).with_child(list)))
    }

    /// §8.8.1: the owner's view of a node's subscribers.
    pub(super) async fn node_subscriptions(
        &self,
        scope: &mut AccountScope<'_>,
        request: &Element,
    ) -> Answer {
        let name = super::requests::node_name(request)?;
        let Some(node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        let mut list = Element::new("subscriptions", NS_OWNER).with_attr("node", name);
        for s in &node.subscribers {
            list.append_child(
                Element::new("subscription", NS_OWNER)
                    .with_attr("jid", s.clone())
                    .with_attr("subscription", "subscribed"),
            );
        }
        Ok(Some(Element::new("pubsub", NS_OWNER).with_child(list)))
    }

    /// The explicit subscribers who get a notification of `node` besides
    /// the presence-based targets `covered`: those still allowed to see
    /// it, and not reached already.
    pub(super) async fn subscribers(
        &self,
        scope: &mut AccountScope<'_>,
        node: &store::Node,
        covered: &[(Jid, bool)],
    ) -> Vec<Jid> {
        if node.subscribers.is_empty() {
            return Vec::new();
        }
        let owner = scope.bare().clone();
        let roster = scope.roster().await;
        node.subscribers
            .iter()
            .filter_map(|s| Jid::parse(s).ok())
            .filter(|j| {
                let reached = covered
                    .iter()
                    .any(|(t, _)| t == j || (j.resource().is_none() && t.to_bare() == *j));
                !reached && Viewer::of(&owner, j, roster).may_see(&node.config)
            })
            .collect()
    }
}
