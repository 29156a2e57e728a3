//! PEP nodes as stored: one account-data document per node, and an index
//! document listing the nodes, through the storage interface
//! (`AccountDataStore`), so a node goes with its account when the account
//! is deleted.
//!
//! ```xml
//! <pep xmlns="urn:switchboard:spool:1">
//!   <node name="urn:xmpp:avatar:metadata"/> …
//! </pep>
//! <pep-3f2a…(32 hex digits) xmlns="urn:switchboard:spool:1" node="urn:xmpp:avatar:metadata">
//!   <config access="presence" persist="true" max-items="1" send-last="on_sub_and_presence"
//!           payloads="true" notify-retract="true"/>
//!   <item id="…" stamp="UNIX SECONDS" publisher="user@host/resource">payload</item> …
//!   <subscriber jid="someone@example.org"/> …
//! </pep-3f2a…>
//! ```
//!
//! A node's document is named after a hash of the node's name (a node name
//! is any text, a document key is an XML name), and says which node it
//! holds: a document that names another node is refused as damaged rather
//! than shown as this one. Items are oldest first.
//!
//! Creating a node writes its document, then the index; deleting one
//! updates the index, then removes the document. A crash between the two
//! leaves a document the index does not list: invisible, and overwritten
//! when a node of that name is created again.

use sha2::{Digest, Sha256};
use switchboard_spool::store::{AccountDataStore, AccountRef, StoreError};
use switchboard_xml::{ns, Element, Node as XmlNode};

use super::config::NodeConfig;
use crate::stanza::StanzaError;

/// The index document's key.
pub const INDEX: &str = "pep";

/// One published item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    /// When it was published, Unix seconds.
    pub stamp: u64,
    /// The full JID that published it, if a client did.
    pub publisher: Option<String>,
    pub payload: Element,
}

impl Item {
    /// Serialized size of the payload, what the size bounds count.
    pub fn size(&self) -> usize {
        self.payload.to_bytes(None).len()
    }
}

/// One node with its configuration, items (oldest first) and explicit
/// subscribers (XEP-0060 §6.1: the JIDs as they subscribed, bare or full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub config: NodeConfig,
    pub items: Vec<Item>,
    pub subscribers: Vec<String>,
}

impl Node {
    pub fn new(name: &str, config: NodeConfig) -> Node {
        Node {
            name: name.to_owned(),
            config,
            items: Vec::new(),
            subscribers: Vec::new(),
        }
    }

    /// The most recent item.
    pub fn last(&self) -> Option<&Item> {
        self.items.last()
    }

    pub fn bytes(&self) -> usize {
        self.items.iter().map(Item::size).sum()
    }
}

/// The document key of a node.
pub fn key(node: &str) -> String {
    let digest = Sha256::digest(node.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("pep-{hex}")
}

fn failure(e: &StoreError, account: &AccountRef) -> StanzaError {
    match e {
        StoreError::NotFound => StanzaError::service_unavailable(),
        _ => crate::accounts::store_error(e, &format!("the PEP nodes of {account}")),
    }
}

/// The names of an account's nodes, in the order they were created.
pub async fn names(
    data: &dyn AccountDataStore,
    account: &AccountRef,
) -> Result<Vec<String>, StanzaError> {
    let index = data
        .get(account, INDEX)
        .await
        .map_err(|e| failure(&e, account))?;
    Ok(index
        .map(|i| {
            i.elements()
                .filter(|n| n.is("node", ns::SPOOL))
                .filter_map(|n| n.attr("name").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// A node, if it exists.
pub async fn load(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    name: &str,
) -> Result<Option<Node>, StanzaError> {
    if !names(data, account).await?.iter().any(|n| n == name) {
        return Ok(None);
    }
    let doc = data
        .get(account, &key(name))
        .await
        .map_err(|e| failure(&e, account))?;
    let Some(doc) = doc else {
        // Listed but never written (a crash between the two writes of a
        // creation): an empty node with the default configuration.
        return Ok(Some(Node::new(name, NodeConfig::default())));
    };
    if doc.attr("node") != Some(name) {
        tracing::error!(%account, node = name, "a PEP node document names another node; refusing it");
        return Err(StanzaError::internal_server_error());
    }
    Ok(Some(from_doc(name, &doc)))
}

fn from_doc(name: &str, doc: &Element) -> Node {
    let config = doc
        .get_child("config", ns::SPOOL)
        .map(NodeConfig::from_stored)
        .unwrap_or_default();
    let items = doc
        .elements()
        .filter(|e| e.is("item", ns::SPOOL))
        .filter_map(|e| {
            Some(Item {
                id: e.attr("id")?.to_owned(),
                stamp: e.attr("stamp").and_then(|s| s.parse().ok()).unwrap_or(0),
                publisher: e.attr("publisher").map(str::to_owned),
                payload: e.first_element()?.clone(),
            })
        })
        .collect();
    let subscribers = doc
        .elements()
        .filter(|e| e.is("subscriber", ns::SPOOL))
        .filter_map(|e| e.attr("jid").map(str::to_owned))
        .collect();
    Node {
        name: name.to_owned(),
        config,
        items,
        subscribers,
    }
}

fn to_doc(node: &Node) -> Element {
    let mut doc = Element::new(key(&node.name), ns::SPOOL)
        .with_attr("node", node.name.clone())
        .with_child(node.config.to_stored());
    for item in &node.items {
        let mut e = Element::new("item", ns::SPOOL)
            .with_attr("id", item.id.clone())
            .with_attr("stamp", item.stamp.to_string());
        if let Some(p) = &item.publisher {
            e.set_attr("publisher", p.clone());
        }
        e.children.push(XmlNode::Element(item.payload.clone()));
        doc.append_child(e);
    }
    for s in &node.subscribers {
        doc.append_child(Element::new("subscriber", ns::SPOOL).with_attr("jid", s.clone()));
    }
    doc
}

/// Stores a node; `created` also lists it in the index.
pub async fn save(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    node: &Node,
    created: bool,
) -> Result<(), StanzaError> {
    data.put(account, to_doc(node))
        .await
        .map_err(|e| failure(&e, account))?;
    if created {
        let mut list = names(data, account).await?;
        if !list.contains(&node.name) {
            list.push(node.name.clone());
            put_index(data, account, &list).await?;
        }
    }
    Ok(())
}

/// Removes a node and its items.
pub async fn delete(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    name: &str,
) -> Result<(), StanzaError> {
    let mut list = names(data, account).await?;
    list.retain(|n| n != name);
    put_index(data, account, &list).await?;
    data.remove(account, &key(name))
        .await
        .map_err(|e| failure(&e, account))
}

async fn put_index(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    list: &[String],
) -> Result<(), StanzaError> {
    let r = if list.is_empty() {
        data.remove(account, INDEX).await
    } else {
        let mut index = Element::new(INDEX, ns::SPOOL);
        for n in list {
            index.append_child(Element::new("node", ns::SPOOL).with_attr("name", n.clone()));
        }
        data.put(account, index).await
    };
    r.map_err(|e| failure(&e, account))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::pep::config::Access;

    #[test]
    fn keys_are_xml_names_that_differ_per_node() {
        let a = key("urn:xmpp:avatar:data");
        let b = key("urn:xmpp:avatar:metadata");
        assert_ne!(a, b);
        assert!(a.starts_with("pep-") && a.len() == 36);
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn documents_round_trip() {
        let node = Node {
            name: "urn:xmpp:bookmarks:1".into(),
            config: NodeConfig {
                access: Access::Whitelist,
                ..NodeConfig::default()
            },
            items: vec![Item {
                id: "room@muc.example.org".into(),
                stamp: 1_700_000_000,
                publisher: Some("alice@example.org/pc".into()),
                payload: Element::new("conference", "urn:xmpp:bookmarks:1")
                    .with_attr("autojoin", "true"),
            }],
            subscribers: vec!["bob@example.org".into()],
        };
        assert_eq!(from_doc(&node.name, &to_doc(&node)), node);
    }
}
