//! Service discovery of an account's PEP service (XEP-0060 §5, XEP-0163
//! §6): the nodes it has, a node's identity and items, and the account's
//! own disco#info for a contact. Only what the requester may see is shown
//! (XEP-0163 §6.2); a node the requester may not see is `item-not-found`,
//! as if it did not exist.
//!
//! Someone who does not see the account's presence gets
//! `service-unavailable` for the account's disco#info and node list, as
//! for an account that does not exist (the built-in disco module's rule),
//! but may look at an `open` node it names.

use switchboard_xml::{ns, Element};

use super::access::Viewer;
use super::{errors, Pep, NS};
use crate::im::AccountScope;
use crate::stanza::StanzaError;

type Answer = Result<Option<Element>, StanzaError>;

impl Pep {
    pub(super) async fn disco(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        query: &Element,
    ) -> Answer {
        let sees_account = match viewer {
            Viewer::Owner => true,
            Viewer::Other { sees_presence, .. } => *sees_presence,
        };
        let bare = scope.bare().to_string();
        let Some(name) = query.attr("node") else {
            if !sees_account {
                // XEP-0030 §8: items are an empty list for someone who may
                // not see the account, as for an account that does not
                // exist; its information is service-unavailable.
                if query.ns == ns::DISCO_ITEMS {
                    return Ok(Some(Element::new("query", ns::DISCO_ITEMS)));
                }
                return Err(StanzaError::service_unavailable());
            }
            if query.ns == ns::DISCO_INFO {
                let registry = scope.router().iq();
                return Ok(Some(crate::modules::disco::account_info(registry, None)));
            }
            let mut list = Element::new("query", ns::DISCO_ITEMS);
            for name in super::store::names(scope.data(), scope.account()).await? {
                let Some(node) = super::store::load(scope.data(), scope.account(), &name).await?
                else {
                    continue;
                };
                if viewer.may_see(&node.config) {
                    let mut item = Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", bare.clone())
                        .with_attr("node", name);
                    if let Some(t) = &node.config.title {
                        item.set_attr("name", t.clone());
                    }
                    list.append_child(item);
                }
            }
            return Ok(Some(list));
        };
        let hidden = || errors::item_not_found(format!("there is no node '{name}'"));
        let Some(node) = self.node(scope, name).await? else {
            return Err(hidden());
        };
        if !viewer.may_see(&node.config) {
            return Err(hidden());
        }
        if query.ns == ns::DISCO_INFO {
            return Ok(Some(
                Element::new("query", ns::DISCO_INFO)
                    .with_attr("node", name)
                    .with_child(
                        Element::new("identity", ns::DISCO_INFO)
                            .with_attr("category", "pubsub")
                            .with_attr("type", "leaf"),
                    )
                    .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS)),
            ));
        }
        let mut list = Element::new("query", ns::DISCO_ITEMS).with_attr("node", name);
        for i in &node.items {
            list.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", bare.clone())
                    .with_attr("name", i.id.clone()),
            );
        }
        Ok(Some(list))
    }
}
