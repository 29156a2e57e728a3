//! XEP-0163 Personal Eventing Protocol: every account is a virtual
//! XEP-0060 publish-subscribe service at its bare JID.
//!
//! # How requests travel
//!
//! Pubsub IQs addressed to an account (or sent without `to` by its owner),
//! and disco queries about its nodes, are taken by the `iq/bare` row of
//! this module and handled in the addressed account's actor as a job
//! (`im::scope`): in order with the account's presence and roster changes,
//! with its roster at hand for the access models. Notifications go to
//! available resources whose entity capabilities (`caps/`) list
//! `NODE+notify`; a resource that becomes available gets the last item of
//! each node it is interested in and may see.
//!
//! # What is supported (XEP-0060 use cases)
//!
//! Publishing (auto-create, publish-options as preconditions: XEP-0223),
//! retracting, retrieving items (all, the newest `max_items`, or by id),
//! creating (with a configuration), configuring and reading the default
//! configuration, deleting and purging nodes; the `open`, `presence`,
//! `roster` and `whitelist` access models; presence-based delivery with
//! filtered notifications (XEP-0163's auto-subscribe), and explicit
//! subscriptions beside it (`subscriptions.rs`). Affiliation management
//! and subscription options are not supported (`feature-not-implemented`
//! with `<unsupported/>`): a PEP node has one owner, its account.
//!
//! # Bounds
//!
//! A payload is at most [`MAX_ITEM_BYTES`] serialized (`not-acceptable`
//! with `<payload-too-big/>`), a node keeps at most `pubsub#max_items`
//! items and [`MAX_NODE_BYTES`] (the oldest go first), an account has at
//! most [`MAX_NODES`] nodes (`policy-violation`). A refused request stores
//! nothing and notifies no one.
//!
//! # Rules of particular nodes
//!
//! Other features give particular nodes rules ([`NodeRules`]): a default
//! configuration, checks on what is published (bookmarks, avatars), and a
//! reaction when the node changed (XEP-0398's vCard conversion, XEP-0411's
//! bookmark conversion), run in the same job. They change nodes through
//! [`Pep::publish_from`] and [`Pep::retract_from`], which store and notify
//! but do not call the rules again.

mod access;
pub mod config;
mod disco;
pub mod errors;
mod notify;
mod requests;
pub mod store;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use switchboard_spool::store::BoxFuture;
use switchboard_xml::{ns, Element};

use super::caps::Caps;
use super::Setup;
use crate::im::{AccountScope, Accounts, Job};
use crate::routing::iq::{Identity, Scope};
use crate::routing::stanza::{Class, IqType, Kind, Stanza};
use crate::routing::table::{Event as TableEvent, Flow};
use crate::stanza::StanzaError;
pub use config::{Access, NodeConfig, SendLast};
pub use notify::Event;
pub use store::{Item, Node};

/// The pubsub namespaces.
pub const NS: &str = "http://jabber.org/protocol/pubsub";
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// The largest payload of one item, serialized.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// The most a node keeps, serialized payloads.
pub const MAX_NODE_BYTES: usize = 128 * 1024;
/// The most nodes one account has.
pub const MAX_NODES: usize = 32;
/// The longest node name, in bytes.
pub const MAX_NODE_NAME: usize = 256;

const MODULE: &str = "pep";

/// The XEP-0060 features this service has, shown on accounts and on the
/// server (XEP-0223 §6 asks the server for `publish-options`).
pub const FEATURES: &[&str] = &[
    NS,
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
];

/// XEP-0163's identity of an account that is a PEP service.
pub const IDENTITY: Identity = Identity {
    category: "pubsub",
    kind: "pep",
};

/// What another feature says about one node.
pub trait NodeRules: Send + Sync {
    /// The node these rules are for.
    fn node(&self) -> &str;

    /// Adjusts the configuration a node gets when created without
    /// options (XEP-0402: bookmarks are private).
    fn defaults(&self, _config: &mut NodeConfig) {}

    /// Checks an item before anything is stored: `bad-request` with
    /// `<invalid-payload/>` for a payload the node does not take.
    fn check(&self, _id: &str, _payload: &Element) -> Result<(), StanzaError> {
        Ok(())
    }

    /// The node does not exist and someone asked for it: a node made
    /// from other storage to show instead (XEP-0411's bookmarks from
    /// private XML), stored and listed by the service, or `None`.
    fn adopt<'a>(
        &'a self,
        _pep: &'a Pep,
        _scope: &'a mut AccountScope<'_>,
    ) -> BoxFuture<'a, Option<Node>> {
        Box::pin(async { None })
    }

    /// The node changed through a pubsub request (published, retracted,
    /// purged, reconfigured or deleted: then `node` is `None`), after it
    /// was stored and its notifications sent.
    fn changed<'a>(
        &'a self,
        _pep: &'a Pep,
        _scope: &'a mut AccountScope<'_>,
        _node: Option<&'a Node>,
        _what: &'a Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The PEP service of every account.
pub struct Pep {
    caps: Arc<Caps>,
    accounts: Arc<Accounts>,
    rules: RwLock<Vec<Arc<dyn NodeRules>>>,
}

/// Adds the PEP rows, identities and features; returns the handle other
/// features give node rules to.
pub fn register(setup: &mut Setup<'_>, caps: &Arc<Caps>) -> Arc<Pep> {
    let pep = Arc::new(Pep {
        caps: caps.clone(),
        accounts: setup.accounts.clone(),
        rules: RwLock::default(),
    });
    for scope in [Scope::Server, Scope::Account] {
        setup.iq.identity(scope, IDENTITY);
        for f in FEATURES {
            setup.iq.feature(scope, f);
        }
    }
    let p = pep.clone();
    setup.table.hook(
        TableEvent::at(Kind::Iq, Class::Bare),
        20,
        MODULE,
        "pubsub requests, and disco of an account's nodes (or of the account by a contact), go to the addressee's actor as PEP work",
        move |r, s| {
            if !p.takes(&s) {
                return Flow::Next(s);
            }
            let ticket = s.ticket();
            let bare = s.to.to_bare();
            let pep = p.clone();
            let iq = s.el;
            p.accounts.run_for(
                r,
                &bare,
                Job::new(move |mut scope| {
                    Box::pin(async move { pep.request(&mut scope, iq).await })
                }),
                ticket,
            );
            Flow::Done
        },
    );
    let p = pep.clone();
    caps.on_available(move |r, jid, features| p.available(r, jid, features));
    pep
}

impl Pep {
    /// Gives a node rules of its own (at start-up).
    pub fn add_rules(&self, rules: Arc<dyn NodeRules>) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(rules);
    }

    fn rules_for(&self, node: &str) -> Option<Arc<dyn NodeRules>> {
        self.rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.node() == node)
            .cloned()
    }

    /// The configuration a new node gets without options.
    pub fn default_config(&self, node: &str) -> NodeConfig {
        let mut c = NodeConfig::default();
        if let Some(r) = self.rules_for(node) {
            r.defaults(&mut c);
        }
        c
    }

    /// Whether an IQ is this module's: a pubsub request, disco#items of
    /// the account, or disco#info of a node or of the account by someone
    /// else than its owner.
    fn takes(&self, s: &Stanza) -> bool {
        if !matches!(s.iq_type(), Some(IqType::Get | IqType::Set)) {
            return false;
        }
        let Some(p) = s.payload() else {
            return false;
        };
        if p.name == "pubsub" && (p.ns == NS || p.ns == NS_OWNER) {
            return true;
        }
        if s.iq_type() != Some(IqType::Get) || p.name != "query" {
            return false;
        }
        p.ns == ns::DISCO_ITEMS
            || (p.ns == ns::DISCO_INFO
                && (p.attr("node").is_some() || s.from.to_bare() != s.to.to_bare()))
    }

    /// A node as stored, or adopted from other storage by its rules.
    pub async fn node(
        &self,
        scope: &mut AccountScope<'_>,
        name: &str,
    ) -> Result<Option<Node>, StanzaError> {
        if let Some(n) = store::load(scope.data(), scope.account(), name).await? {
            return Ok(Some(n));
        }
        let Some(rules) = self.rules_for(name) else {
            return Ok(None);
        };
        let Some(node) = rules.adopt(self, scope).await else {
            return Ok(None);
        };
        store::save(scope.data(), scope.account(), &node, true).await?;
        Ok(Some(node))
    }

    /// Publishes items as the account itself (a conversion from other
    /// storage), creating the node with `config` if it does not exist:
    /// stored and notified, without calling the node's rules.
    pub async fn publish_from(
        &self,
        scope: &mut AccountScope<'_>,
        name: &str,
        config: NodeConfig,
        items: Vec<(String, Element)>,
    ) -> Result<(), StanzaError> {
        if items.is_empty() {
            return Ok(());
        }
        let (mut node, created) = match store::load(scope.data(), scope.account(), name).await? {
            Some(n) => (n, false),
            None => {
                self.check_room(scope).await?;
                (Node::new(name, config), true)
            }
        };
        if items
            .iter()
            .any(|(_, p)| p.to_bytes(None).len() > MAX_ITEM_BYTES)
        {
            return Err(errors::payload_too_big(format!(
                "an item is at most {} KiB",
                MAX_ITEM_BYTES / 1024
            )));
        }
        let now = crate::time::unix_now();
        let mut published = Vec::new();
        for (id, payload) in items {
            let item = Item {
                id,
                stamp: now,
                publisher: None,
                payload,
            };
            put_item(&mut node, item.clone());
            published.push(item);
        }
        store::save(scope.data(), scope.account(), &node, created).await?;
        self.notify(scope, &node, &Event::Items(published), None)
            .await;
        Ok(())
    }

    /// Retracts items as the account itself (a conversion), notifying as
    /// a retraction with `notify` would; without calling the rules. Ids
    /// the node does not hold are skipped.
    pub async fn retract_from(
        &self,
        scope: &mut AccountScope<'_>,
        name: &str,
        ids: &[String],
    ) -> Result<(), StanzaError> {
        let Some(mut node) = store::load(scope.data(), scope.account(), name).await? else {
            return Ok(());
        };
        let before = node.items.len();
        node.items.retain(|i| !ids.contains(&i.id));
        if node.items.len() == before {
            return Ok(());
        }
        store::save(scope.data(), scope.account(), &node, false).await?;
        if node.config.notify_retract {
            self.notify(scope, &node, &Event::Retract(ids.to_vec()), None)
                .await;
        }
        Ok(())
    }

    /// `policy-violation` when the account has as many nodes as it may.
    async fn check_room(&self, scope: &AccountScope<'_>) -> Result<(), StanzaError> {
        if store::names(scope.data(), scope.account()).await?.len() >= MAX_NODES {
            return Err(errors::policy(format!(
                "an account has at most {MAX_NODES} nodes"
            )));
        }
        Ok(())
    }

    async fn changed(
        &self,
        scope: &mut AccountScope<'_>,
        name: &str,
        node: Option<&Node>,
        what: &Event,
    ) {
        if let Some(rules) = self.rules_for(name) {
            rules.changed(self, scope, node, what).await;
        }
    }
}

/// Adds (or replaces, as the newest) an item, then drops the oldest while
/// the node holds more than it may (XEP-0060 §7.1.2 "retract-oldest").
/// A node that does not persist items keeps the newest only.
pub(crate) fn put_item(node: &mut Node, item: Item) {
    node.items.retain(|i| i.id != item.id);
    node.items.push(item);
    let max = if node.config.persist {
        node.config.max_items
    } else {
        1
    };
    while node.items.len() > max || (node.items.len() > 1 && node.bytes() > MAX_NODE_BYTES) {
        node.items.remove(0);
    }
}
