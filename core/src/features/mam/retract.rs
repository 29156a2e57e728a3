//! Retractions (XEP-0424, `urn:xmpp:message-retract:1`) in a user's
//! archive: a message carrying `<retract id='…'/>` is archived like any
//! other (clients that were offline learn of it from the archive), and the
//! message it names is replaced by a tombstone (`ArchiveStore::replace`),
//! which keeps its place, time, addresses and ids but not its content.
//!
//! The retracted message is looked for among the newest
//! [`SEARCH_DEPTH`] entries with the same contact, and must have been sent
//! by the same bare JID as the retraction (§6: nobody retracts another's
//! message). In one-to-one chats the `id` names the message's
//! `<origin-id/>` (or, for clients without one, its `id` attribute).

use switchboard_jid::Jid;
use switchboard_service::time;
use switchboard_spool::store::{ArchiveEntry, ArchiveQuery, ArchiveStore};
use switchboard_xml::Element;

use crate::features::stanza_id;

/// `urn:xmpp:message-retract:1`.
pub const NS: &str = "urn:xmpp:message-retract:1";

/// How many of the newest entries with a contact a retraction searches.
pub const SEARCH_DEPTH: usize = 500;

/// A retraction to apply to an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// The id the retraction names.
    pub target: String,
    /// Who retracts: only their own message may go.
    pub author: Jid,
    /// The other party of the conversation, bare (the entries' `with`).
    pub with: Jid,
    /// When, in microseconds.
    pub stamp: u64,
}

/// The retraction a message carries, if any: `sender` sent it, and
/// `with` is the other party in the archive it is filed in.
pub fn of(message: &Element, sender: &Jid, with: &Jid) -> Option<Retraction> {
    let target = message.get_child("retract", NS)?.attr("id")?;
    Some(Retraction {
        target: target.to_string(),
        author: sender.to_bare(),
        with: with.to_bare(),
        stamp: time::now_micros(),
    })
}

/// Whether an archived stanza is the one a retraction names.
fn is_target(entry: &ArchiveEntry, r: &Retraction) -> bool {
    let s = &entry.stanza;
    let from_author = s
        .attr("from")
        .and_then(|f| Jid::parse(f).ok())
        .is_some_and(|f| f.to_bare() == r.author);
    let named = stanza_id::origin_id(s) == Some(r.target.as_str())
        || s.attr("id") == Some(r.target.as_str());
    from_author && named && s.get_child("retracted", NS).is_none()
}

/// The tombstone of a retracted message: its addresses, type and ids, and
/// `<retracted/>` instead of its content.
pub fn tombstone(original: &Element, stamp: u64) -> Element {
    let mut t = Element::new("message", original.ns.clone());
    for a in ["from", "to", "type", "id"] {
        if let Some(v) = original.attr(a) {
            t.set_attr(a, v);
        }
    }
    t.append_child(Element::new("retracted", NS).with_attr("stamp", time::stamp(stamp)));
    for keep in original
        .elements()
        .filter(|c| c.ns == stanza_id::NS && matches!(c.name.as_str(), "origin-id" | "stanza-id"))
    {
        t.append_child(keep.clone());
    }
    t
}

/// Finds the retracted message in `owner`'s archive and replaces it with
/// its tombstone; a retraction naming nothing found changes nothing.
pub async fn apply(store: &dyn ArchiveStore, owner: &str, r: &Retraction) {
    let q = ArchiveQuery {
        with: Some(r.with.to_string()),
        max: SEARCH_DEPTH,
        from_end: true,
        ..ArchiveQuery::default()
    };
    let page = match store.query(owner, &q).await {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%owner, "cannot search the archive for a retracted message: {e}");
            return;
        }
    };
    let Some(found) = page.entries.iter().rev().find(|e| is_target(e, r)) else {
        tracing::debug!(%owner, target = %r.target, "a retraction names no archived message");
        return;
    };
    if let Err(e) = store
        .replace(owner, &found.id, &tombstone(&found.stanza, r.stamp))
        .await
    {
        tracing::error!(%owner, "cannot replace a retracted message: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::memory::MemoryStores;
    use switchboard_xml::{parse_document, Limits};

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn archived(id: &str, from: &str, origin: &str, body: &str) -> ArchiveEntry {
        ArchiveEntry {
            id: id.into(),
            timestamp: 1_000_000,
            with: "bob@x/phone".into(),
            stanza: el(&format!(
                "<message xmlns='jabber:client' from='{from}' to='alice@x' type='chat' id='c-{id}'>\
                 <body>{body}</body><origin-id xmlns='urn:xmpp:sid:0' id='{origin}'/></message>"
            )),
        }
    }

    #[tokio::test]
    async fn only_the_authors_message_becomes_a_tombstone() {
        let stores = MemoryStores::new();
        let store = stores.archive.as_ref();
        for e in [
            archived("a1", "bob@x/phone", "o-1", "oops"),
            archived("a2", "alice@x/desk", "o-2", "mine"),
            archived("a3", "bob@x/phone", "o-3", "fine"),
        ] {
            store.append("alice@x", &e).await.unwrap();
        }
        let retract = el("<message xmlns='jabber:client' type='chat'><retract xmlns='urn:xmpp:message-retract:1' id='o-1'/></message>");
        let r = of(&retract, &jid("bob@x/laptop"), &jid("bob@x/laptop")).unwrap();
        assert_eq!(r.author, jid("bob@x"));
        apply(store, "alice@x", &r).await;
        // Bob cannot retract Alice's message.
        let not_his = Retraction {
            target: "o-2".into(),
            ..r.clone()
        };
        apply(store, "alice@x", &not_his).await;
        let entries = super::super::writer::all(store, "alice@x").await;
        let t = &entries[0].stanza;
        assert_eq!(entries[0].id, "a1", "the tombstone keeps its place");
        assert!(t.get_child("body", "jabber:client").is_none());
        assert_eq!(
            t.get_child("retracted", NS).unwrap().attr("stamp"),
            Some(time::stamp(r.stamp).as_str())
        );
        assert_eq!(stanza_id::origin_id(t), Some("o-1"));
        assert_eq!(t.attr("id"), Some("c-a1"));
        assert_eq!(
            entries[1]
                .stanza
                .child_text("body", "jabber:client")
                .as_deref(),
            Some("mine")
        );
        assert_eq!(
            entries[2]
                .stanza
                .child_text("body", "jabber:client")
                .as_deref(),
            Some("fine")
        );
    }
}
