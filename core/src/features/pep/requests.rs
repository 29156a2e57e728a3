//! The XEP-0060 use cases of a PEP service, each answered with the
//! result or the error the XEP names, inside the addressed account's
//! actor.

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::access::Viewer;
use super::config::{NodeConfig, Preconditions};
use super::store::{self, Item, Node};
use super::{errors, put_item, Event, Pep, MAX_ITEM_BYTES, MAX_NODE_NAME, NS, NS_OWNER};
use crate::im::AccountScope;
use crate::stanza::StanzaError;

type Answer = Result<Option<Element>, StanzaError>;

impl Pep {
    /// Handles one request taken by the `iq/bare` row.
    pub(super) async fn request(&self, scope: &mut AccountScope<'_>, iq: Element) {
        let answer = self.answer(scope, &iq).await;
        scope.reply(&iq, answer);
    }

    async fn answer(&self, scope: &mut AccountScope<'_>, iq: &Element) -> Answer {
        let Some(from) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return Err(StanzaError::bad_request());
        };
        // No roster: no such account. Answered like any request to an
        // account that does not exist, so nobody learns which do.
        if scope.roster().await.is_none() {
            let payload = iq.first_element();
            // disco#items of the account itself: the same empty list anyone
            // gets who may not see an account (XEP-0030 §8).
            if payload.is_some_and(|p| p.ns == ns::DISCO_ITEMS && p.attr("node").is_none()) {
                return Ok(Some(Element::new("query", ns::DISCO_ITEMS)));
            }
            return Err(StanzaError::service_unavailable());
        }
        let owner = scope.bare().clone();
        let viewer = Viewer::of(&owner, &from, scope.roster().await);
        let payload = iq.first_element().expect("the row checked it");
        let set = iq.attr("type") == Some("set");
        if payload.ns == ns::DISCO_INFO || payload.ns == ns::DISCO_ITEMS {
            return self.disco(scope, &viewer, payload).await;
        }
        let mut verbs = payload.elements();
        let Some(verb) = verbs.next() else {
            return Err(StanzaError::bad_request().with_text("the pubsub element is empty"));
        };
        let owner_ns = payload.ns == NS_OWNER;
        match (owner_ns, set, verb.name.as_str()) {
            (false, true, "publish") => {
                let options = payload.get_child("publish-options", NS);
                self.publish(scope, &viewer, &from, verb, options).await
            }
            (false, true, "retract") => self.retract(scope, &viewer, verb).await,
            (false, true, "create") => {
                let configure = payload.get_child("configure", NS);
                self.create(scope, &viewer, verb, configure).await
            }
            (false, false, "items") => self.items(scope, &viewer, verb).await,
            (true, false, "configure") => self.configuration(scope, &viewer, verb).await,
            (true, true, "configure") => self.configure(scope, &viewer, verb).await,
            (true, false, "default") => {
                only_owner(&viewer)?;
                let default =
                    Element::new("default", NS_OWNER).with_child(NodeConfig::default().to_form());
                Ok(Some(Element::new("pubsub", NS_OWNER).with_child(default)))
            }
            (true, true, "delete") => self.delete(scope, &viewer, verb).await,
            (true, true, "purge") => self.purge(scope, &viewer, verb).await,
            (false, true, "subscribe") => self.subscribe(scope, &viewer, &from, verb).await,
            (false, true, "unsubscribe") => self.unsubscribe(scope, &from, verb).await,
            (false, false, "subscriptions") => self.own_subscriptions(scope, &from, verb).await,
            (false, false, "affiliations") => Err(errors::unsupported("retrieve-affiliations")),
            (true, false, "subscriptions") => {
                only_owner(&viewer)?;
                self.node_subscriptions(scope, verb).await
            }
            (true, true, "subscriptions") => Err(errors::unsupported("manage-subscriptions")),
            (true, _, "affiliations") => Err(errors::unsupported("modify-affiliations")),
            (false, false, "options") | (false, true, "options") => {
                Err(errors::unsupported("subscription-options"))
            }
            _ => Err(StanzaError::feature_not_implemented().with_text(format!(
                "<{}/> is not a {} request here",
                verb.name,
                if set { "set" } else { "get" }
            ))),
        }
    }

    async fn publish(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        from: &Jid,
        publish: &Element,
        options: Option<&Element>,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(publish)?;
        let mut items = publish.elements().filter(|e| e.is("item", NS));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(if publish.elements().next().is_none() {
                errors::item_required("publish one item")
            } else {
                errors::invalid_payload("publish one item at a time")
            });
        };
        let mut payloads = item.elements();
        let payload = match (payloads.next(), payloads.next()) {
            (Some(p), None) => p.clone(),
            (None, _) => return Err(errors::payload_required()),
            (Some(_), Some(_)) => {
                return Err(errors::invalid_payload("an item holds exactly one payload"))
            }
        };
        if payload.to_bytes(None).len() > MAX_ITEM_BYTES {
            return Err(errors::payload_too_big(format!(
                "an item is at most {} KiB",
                MAX_ITEM_BYTES / 1024
            )));
        }
        let preconditions = match options {
            Some(o) => Preconditions::parse(o)?,
            None => Preconditions::default(),
        };
        let id = item
            .attr("id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(crate::ids::random_id);
        if let Some(rules) = self.rules_for(&name) {
            rules.check(&id, &payload)?;
        }
        let (mut node, created) = match self.node(scope, &name).await? {
            Some(n) => {
                preconditions.check(&n.config)?;
                (n, false)
            }
            None => {
                let config = preconditions.apply(self.default_config(&name))?;
                self.check_room(scope).await?;
                (Node::new(&name, config), true)
            }
        };
        let item = Item {
            id: id.clone(),
            stamp: crate::time::unix_now(),
            publisher: Some(from.to_string()),
            payload,
        };
        put_item(&mut node, item.clone());
        store::save(scope.data(), scope.account(), &node, created).await?;
        let event = Event::Items(vec![item]);
        self.notify(scope, &node, &event, Some(&from.to_string()))
            .await;
        self.changed(scope, &name, Some(&node), &event).await;
        Ok(Some(
            Element::new("pubsub", NS).with_child(
                Element::new("publish", NS)
                    .with_attr("node", name)
                    .with_child(Element::new("item", NS).with_attr("id", id)),
            ),
        ))
    }

    async fn retract(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        retract: &Element,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(retract)?;
        let ids: Vec<String> = retract
            .elements()
            .filter(|e| e.is("item", NS))
            .filter_map(|e| e.attr("id").map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(errors::item_required("name the item to retract"));
        }
        let Some(mut node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        if let Some(missing) = ids
            .iter()
            .find(|id| !node.items.iter().any(|i| i.id == **id))
        {
            return Err(errors::item_not_found(format!(
                "the node '{name}' has no item '{missing}'"
            )));
        }
        node.items.retain(|i| !ids.contains(&i.id));
        store::save(scope.data(), scope.account(), &node, false).await?;
        let notify = match retract.attr("notify") {
            Some(v) => v == "1" || v == "true",
            None => node.config.notify_retract,
        };
        let event = Event::Retract(ids);
        if notify {
            self.notify(scope, &node, &event, None).await;
        }
        self.changed(scope, &name, Some(&node), &event).await;
        Ok(None)
    }

    async fn create(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        create: &Element,
        configure: Option<&Element>,
    ) -> Answer {
        only_owner(viewer)?;
        // Without a name, an instant node (XEP-0060 §8.1.2) with one made
        // up here.
        let (name, instant) = match create.attr("node") {
            Some(_) => (node_name(create)?, false),
            None => (crate::ids::random_id(), true),
        };
        if self.node(scope, &name).await?.is_some() {
            return Err(
                StanzaError::new("conflict", crate::stanza::ErrorType::Cancel)
                    .with_text(format!("the node '{name}' exists already")),
            );
        }
        let mut config = self.default_config(&name);
        if let Some(x) = configure.and_then(|c| c.get_child("x", ns::DATA_FORMS)) {
            config = config.apply_form(x)?;
        }
        self.check_room(scope).await?;
        let node = Node::new(&name, config);
        store::save(scope.data(), scope.account(), &node, true).await?;
        Ok(instant.then(|| {
            Element::new("pubsub", NS)
                .with_child(Element::new("create", NS).with_attr("node", name))
        }))
    }

    async fn items(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        items: &Element,
    ) -> Answer {
        let name = node_name(items)?;
        let Some(node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        viewer.check(&node.config)?;
        let wanted: Vec<&str> = items
            .elements()
            .filter(|e| e.is("item", NS))
            .filter_map(|e| e.attr("id"))
            .collect();
        let mut chosen: Vec<&Item> = if wanted.is_empty() {
            node.items.iter().collect()
        } else {
            node.items
                .iter()
                .filter(|i| wanted.contains(&i.id.as_str()))
                .collect()
        };
        if let Some(max) = items.attr("max_items") {
            let Ok(max) = max.parse::<usize>() else {
                return Err(StanzaError::bad_request().with_text("max_items is a count"));
            };
            let skip = chosen.len().saturating_sub(max);
            chosen.drain(..skip);
        }
        let mut list = Element::new("items", NS).with_attr("node", name);
        for i in chosen {
            list.append_child(
                Element::new("item", NS)
                    .with_attr("id", i.id.clone())
                    .with_child(i.payload.clone()),
            );
        }
        Ok(Some(Element::new("pubsub", NS).with_child(list)))
    }

    async fn configuration(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        configure: &Element,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(configure)?;
        let Some(node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        Ok(Some(
            Element::new("pubsub", NS_OWNER).with_child(
                Element::new("configure", NS_OWNER)
                    .with_attr("node", name)
                    .with_child(node.config.to_form()),
            ),
        ))
    }

    async fn configure(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        configure: &Element,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(configure)?;
        let Some(mut node) = self.node(scope, &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        let Some(x) = configure.get_child("x", ns::DATA_FORMS) else {
            return Err(StanzaError::bad_request().with_text("submit a configuration form"));
        };
        // XEP-0060 §8.2.3.2: cancelling changes nothing.
        if x.attr("type") == Some("cancel") {
            return Ok(None);
        }
        node.config = node.config.apply_form(x)?;
        // A lower max_items (or no persistence) drops the oldest items now.
        if let Some(newest) = node.items.pop() {
            put_item(&mut node, newest);
        }
        store::save(scope.data(), scope.account(), &node, false).await?;
        self.changed(scope, &name, Some(&node), &Event::Items(Vec::new()))
            .await;
        Ok(None)
    }

    async fn delete(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        delete: &Element,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(delete)?;
        let Some(node) = store::load(scope.data(), scope.account(), &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        // Who may see it is decided before it goes.
        let targets_event = Event::Delete;
        self.notify(scope, &node, &targets_event, None).await;
        store::delete(scope.data(), scope.account(), &name).await?;
        self.changed(scope, &name, None, &targets_event).await;
        Ok(None)
    }

    async fn purge(
        &self,
        scope: &mut AccountScope<'_>,
        viewer: &Viewer,
        purge: &Element,
    ) -> Answer {
        only_owner(viewer)?;
        let name = node_name(purge)?;
        let Some(mut node) = store::load(scope.data(), scope.account(), &name).await? else {
            return Err(errors::item_not_found(format!("there is no node '{name}'")));
        };
        node.items.clear();
        store::save(scope.data(), scope.account(), &node, false).await?;
        self.notify(scope, &node, &Event::Purge, None).await;
        self.changed(scope, &name, Some(&node), &Event::Purge).await;
        Ok(None)
    }
}

/// Owner use cases and publishing are the account's alone (XEP-0060
/// §7.1.3.1, §8: `forbidden`).
fn only_owner(viewer: &Viewer) -> Result<(), StanzaError> {
    if viewer.is_owner() {
        Ok(())
    } else {
        Err(errors::forbidden("only the account itself may do this"))
    }
}

/// The request's `node`: required, and at most [`MAX_NODE_NAME`] bytes.
pub(super) fn node_name(el: &Element) -> Result<String, StanzaError> {
    match el.attr("node") {
        None | Some("") => Err(errors::nodeid_required()),
        Some(n) if n.len() > MAX_NODE_NAME => Err(StanzaError::new(
            "not-acceptable",
            crate::stanza::ErrorType::Modify,
        )
        .with_text(format!("node names are at most {MAX_NODE_NAME} bytes"))),
        Some(n) => Ok(n.to_owned()),
    }
}
