//! Bookmarks: XEP-0402 (PEP native bookmarks, one item per room) kept
//! the same as XEP-0048's single list, whether a client keeps that in
//! private XML storage (XEP-0049, `storage:bookmarks`) or in PEP (the
//! `storage:bookmarks` node, XEP-0411). The account shows
//! `urn:xmpp:bookmarks:1#compat` (private XML), `…#compat-pep` (the PEP
//! node) and `urn:xmpp:bookmarks-conversion:0` (XEP-0411).
//!
//! # How the views stay the same
//!
//! Each view is stored where its clients read it, and every write to one
//! is carried to the others in the same job of the account's actor,
//! before the writing client is answered:
//!
//! - a pubsub change of `urn:xmpp:bookmarks:1` (through the node's
//!   rules) rewrites the private XML list and the legacy node's item;
//! - a change of the `storage:bookmarks` node does the same the other way;
//! - a private XML set holding `storage:bookmarks` (taken by this module's
//!   `pre-iq/bare` row and handed to the private storage module as
//!   usual) is compared with the XEP-0402 items: changed and new rooms are
//!   published, removed ones retracted, unchanged ones left alone
//!   (XEP-0402 §5.2.2), each with its notification; the legacy node is
//!   published too, which notifies its subscribers (XEP-0411 §3).
//!
//! A node that does not exist yet is made from the others when someone
//! asks for it (a user whose bookmarks are only in private XML sees them
//! through PEP at once). Converted data goes only to nodes with the
//! `whitelist` access model (XEP-0411 §5): a node configured otherwise is
//! left alone, with a warning in the log. What XEP-0048 cannot say
//! (XEP-0402 `<extensions/>`) survives edits through it; what XEP-0402
//! cannot say (`<url/>` bookmarks, entries without a room JID, other
//! elements) stays in the XEP-0048 list.
//!
//! # Bad input
//!
//! A XEP-0402 item whose id is not a room's bare JID, or whose payload is
//! not a `<conference/>`, is refused with `bad-request` and
//! `<invalid-payload/>` (XEP-0060 §7.1.3.5) and nothing is stored; the
//! same for a legacy node item that is not a `<storage/>`. Private XML
//! takes any XML (XEP-0049): entries there that name no room are kept
//! there and not converted.

pub mod convert;

use std::sync::Arc;

use switchboard_spool::store::BoxFuture;
use switchboard_xml::Element;

use super::pep::{self, errors, Access, Event, Node, NodeConfig, NodeRules, Pep, SendLast};
use super::Setup;
use crate::im::{AccountScope, Job};
use crate::routing::iq::Scope;
use crate::routing::stanza::{Class, IqType, Kind};
use crate::routing::table::{Event as TableEvent, Flow};
use crate::stanza::StanzaError;
use convert::{Bookmark, LEGACY, NS};

const MODULE: &str = "bookmarks";

/// Unification with private XML (XEP-0402 §6.3).
pub const COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
/// Unification with the XEP-0048 PEP node.
pub const COMPAT_PEP: &str = "urn:xmpp:bookmarks:1#compat-pep";
/// XEP-0411: private XML and the XEP-0048 PEP node converted.
pub const CONVERSION: &str = "urn:xmpp:bookmarks-conversion:0";

/// The one item of the legacy node (XEP-0048 §3.3's `current`).
const CURRENT: &str = "current";

pub fn register(setup: &mut Setup<'_>, pep: &Arc<Pep>) {
    for f in [COMPAT, COMPAT_PEP, CONVERSION] {
        setup.iq.feature(Scope::Account, f);
    }
    pep.add_rules(Arc::new(Native));
    pep.add_rules(Arc::new(Legacy));
    let p = pep.clone();
    let accounts = setup.accounts.clone();
    setup.table.hook(
        TableEvent::pre(Kind::Iq, Class::Bare),
        10,
        MODULE,
        "a private XML set of storage:bookmarks by its owner goes to the actor as a job: stored as usual, then carried to the PEP bookmarks (XEP-0402, XEP-0411)",
        move |r, s| {
            let is_bookmarks = s.iq_type() == Some(IqType::Set)
                && s.to == s.from.to_bare()
                && s.payload().is_some_and(|q| {
                    q.is("query", crate::modules::private::NS)
                        && q.get_child("storage", LEGACY).is_some()
                });
            if !is_bookmarks {
                return Flow::Next(s);
            }
            let ticket = s.ticket();
            let pep = p.clone();
            let iq = s.el;
            accounts.run_for(
                r,
                &s.to,
                Job::new(move |mut scope| {
                    Box::pin(async move { private_set(&pep, &mut scope, iq).await })
                }),
                ticket,
            );
            Flow::Done
        },
    );
}

/// A private XML set with bookmarks: the private storage module stores it
/// as it would; then the PEP views follow.
async fn private_set(pep: &Pep, scope: &mut AccountScope<'_>, iq: Element) {
    let answer = scope
        .data_iq(&iq)
        .await
        .unwrap_or_else(|| Err(StanzaError::service_unavailable()));
    if answer.is_ok() {
        let storage = iq
            .first_element()
            .and_then(|q| q.get_child("storage", LEGACY))
            .cloned()
            .unwrap_or_else(|| Element::new("storage", LEGACY));
        let (rooms, _) = convert::from_storage(&storage);
        to_native(pep, scope, &rooms).await;
        to_legacy(pep, scope, &rooms).await;
    }
    scope.reply(&iq, answer);
}

/// The XEP-0402 node's configuration (§4: private, every room kept,
/// nothing sent on presence).
fn native_config(config: &mut NodeConfig) {
    config.access = Access::Whitelist;
    config.persist = true;
    config.max_items = pep::config::MAX_ITEMS;
    config.send_last = SendLast::Never;
}

/// The XEP-0048 node's (XEP-0223: private and persistent).
fn legacy_config(config: &mut NodeConfig) {
    config.access = Access::Whitelist;
    config.persist = true;
}

fn rooms_of(node: &Node) -> Vec<Bookmark> {
    node.items
        .iter()
        .filter_map(|i| convert::from_item(&i.id, &i.payload).ok())
        .collect()
}

/// The rooms of the legacy node's item, and what else it held.
fn legacy_of(node: &Node) -> (Vec<Bookmark>, Vec<Element>) {
    node.last()
        .map(|i| convert::from_storage(&i.payload))
        .unwrap_or_default()
}

/// A node converted data may go to: `None` (and a warning) for one that
/// others can see.
async fn private_node(scope: &AccountScope<'_>, name: &str) -> Result<Option<Node>, ()> {
    match pep::store::load(scope.data(), scope.account(), name).await {
        Ok(Some(n)) if n.config.access != Access::Whitelist => {
            tracing::warn!(account = %scope.bare(), node = name, "bookmarks are not converted into a node others may see");
            Err(())
        }
        Ok(n) => Ok(n),
        Err(_) => Err(()),
    }
}

/// Makes the XEP-0402 items say `rooms`.
async fn to_native(pep: &Pep, scope: &mut AccountScope<'_>, rooms: &[Bookmark]) {
    let Ok(node) = private_node(scope, NS).await else {
        return;
    };
    let current = node.as_ref().map(rooms_of).unwrap_or_default();
    let (publish, retract) = convert::merge(&current, rooms);
    let mut config = NodeConfig::default();
    native_config(&mut config);
    let items = publish.iter().map(convert::to_item).collect();
    if let Err(e) = pep.publish_from(scope, NS, config, items).await {
        tracing::warn!(account = %scope.bare(), "bookmarks not converted to PEP: {e:?}");
    }
    if let Err(e) = pep.retract_from(scope, NS, &retract).await {
        tracing::warn!(account = %scope.bare(), "bookmarks not retracted in PEP: {e:?}");
    }
}

/// Makes the legacy node's list say `rooms` (keeping what else it held),
/// if it exists or there is anything to say.
async fn to_legacy(pep: &Pep, scope: &mut AccountScope<'_>, rooms: &[Bookmark]) {
    let Ok(node) = private_node(scope, LEGACY).await else {
        return;
    };
    let (old, kept) = node.as_ref().map(legacy_of).unwrap_or_default();
    if old == rooms && node.is_some() || node.is_none() && rooms.is_empty() {
        return;
    }
    let mut config = NodeConfig::default();
    legacy_config(&mut config);
    let storage = convert::to_storage(rooms, &kept);
    if let Err(e) = pep
        .publish_from(scope, LEGACY, config, vec![(CURRENT.into(), storage)])
        .await
    {
        tracing::warn!(account = %scope.bare(), "bookmarks not converted to the XEP-0048 node: {e:?}");
    }
}

/// Makes the private XML list say `rooms` (keeping what else it held).
async fn to_private(scope: &AccountScope<'_>, rooms: &[Bookmark]) {
    let data = scope.data();
    let account = scope.account();
    let old = match crate::modules::private::fragment(data, account, "storage", LEGACY).await {
        Ok(old) => old,
        Err(e) => {
            tracing::warn!(%account, "bookmarks not converted to private XML: {e}");
            return;
        }
    };
    let (current, kept) = old.as_ref().map(convert::from_storage).unwrap_or_default();
    if current == rooms {
        return;
    }
    let storage = convert::to_storage(rooms, &kept);
    if let Err(e) = crate::modules::private::put_fragment(data, account, &storage).await {
        tracing::warn!(%account, "bookmarks not converted to private XML: {e}");
    }
}

/// The rooms of the private XML list, if it has any.
async fn private_rooms(scope: &AccountScope<'_>) -> Option<Vec<Bookmark>> {
    let old = crate::modules::private::fragment(scope.data(), scope.account(), "storage", LEGACY)
        .await
        .ok()??;
    let (rooms, _) = convert::from_storage(&old);
    (!rooms.is_empty()).then_some(rooms)
}

/// `urn:xmpp:bookmarks:1`.
struct Native;

impl NodeRules for Native {
    fn node(&self) -> &str {
        NS
    }

    fn defaults(&self, config: &mut NodeConfig) {
        native_config(config)
    }

    fn check(&self, id: &str, payload: &Element) -> Result<(), StanzaError> {
        convert::from_item(id, payload).map(|_| ())
    }

    fn adopt<'a>(
        &'a self,
        _pep: &'a Pep,
        scope: &'a mut AccountScope<'_>,
    ) -> BoxFuture<'a, Option<Node>> {
        Box::pin(async move {
            let rooms = match private_rooms(scope).await {
                Some(r) => r,
                None => {
                    let legacy = pep::store::load(scope.data(), scope.account(), LEGACY)
                        .await
                        .ok()??;
                    legacy_of(&legacy).0
                }
            };
            if rooms.is_empty() {
                return None;
            }
            let mut config = NodeConfig::default();
            native_config(&mut config);
            let mut node = Node::new(NS, config);
            let now = crate::time::unix_now();
            for b in &rooms {
                let (id, payload) = convert::to_item(b);
                pep::put_item(
                    &mut node,
                    pep::Item {
                        id,
                        stamp: now,
                        publisher: None,
                        payload,
                    },
                );
            }
            Some(node)
        })
    }

    fn changed<'a>(
        &'a self,
        pep: &'a Pep,
        scope: &'a mut AccountScope<'_>,
        node: Option<&'a Node>,
        _what: &'a Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let rooms = node.map(rooms_of).unwrap_or_default();
            to_private(scope, &rooms).await;
            to_legacy(pep, scope, &rooms).await;
        })
    }
}

/// `storage:bookmarks`, XEP-0048's list as one PEP item.
struct Legacy;

impl NodeRules for Legacy {
    fn node(&self) -> &str {
        LEGACY
    }

    fn defaults(&self, config: &mut NodeConfig) {
        legacy_config(config)
    }

    fn check(&self, _id: &str, payload: &Element) -> Result<(), StanzaError> {
        if payload.is("storage", LEGACY) {
            Ok(())
        } else {
            Err(errors::invalid_payload(format!(
                "the {LEGACY} node takes a <storage xmlns='{LEGACY}'/>"
            )))
        }
    }

    fn adopt<'a>(
        &'a self,
        _pep: &'a Pep,
        scope: &'a mut AccountScope<'_>,
    ) -> BoxFuture<'a, Option<Node>> {
        Box::pin(async move {
            let native = pep::store::load(scope.data(), scope.account(), NS)
                .await
                .ok()?;
            let (rooms, kept) = match native {
                Some(n) if !rooms_of(&n).is_empty() => {
                    let kept = crate::modules::private::fragment(
                        scope.data(),
                        scope.account(),
                        "storage",
                        LEGACY,
                    )
                    .await
                    .ok()
                    .flatten()
                    .map(|s| convert::from_storage(&s).1)
                    .unwrap_or_default();
                    (rooms_of(&n), kept)
                }
                _ => {
                    let old = crate::modules::private::fragment(
                        scope.data(),
                        scope.account(),
                        "storage",
                        LEGACY,
                    )
                    .await
                    .ok()??;
                    convert::from_storage(&old)
                }
            };
            if rooms.is_empty() && kept.is_empty() {
                return None;
            }
            let mut config = NodeConfig::default();
            legacy_config(&mut config);
            let mut node = Node::new(LEGACY, config);
            pep::put_item(
                &mut node,
                pep::Item {
                    id: CURRENT.into(),
                    stamp: crate::time::unix_now(),
                    publisher: None,
                    payload: convert::to_storage(&rooms, &kept),
                },
            );
            Some(node)
        })
    }

    fn changed<'a>(
        &'a self,
        pep: &'a Pep,
        scope: &'a mut AccountScope<'_>,
        node: Option<&'a Node>,
        _what: &'a Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (rooms, _) = node.map(legacy_of).unwrap_or_default();
            to_native(pep, scope, &rooms).await;
            to_private(scope, &rooms).await;
        })
    }
}

#[cfg(test)]
mod tests;
