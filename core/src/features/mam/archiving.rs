//! Which messages the archive keeps and the rows that keep them.
//!
//! Kept (XEP-0313 §7.1.1): messages of type `chat` or `normal` with a
//! `<body/>`, a XEP-0334 `<store/>` hint or a XEP-0424 retraction, unless
//! they carry `<no-store/>` or `<no-permanent-store/>`. Each is filed under
//! the other party (`with`): the sender of an incoming message as it came
//! (a full JID), the addressee of an outgoing one as addressed; a message
//! to one's own account is kept once, as incoming, under the user's bare
//! JID (§4.1.1: a `with` of the account's own JID finds those).

use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_service::time;
use switchboard_spool::store::{ArchiveEntry, BoxFuture, StoredRoster};
use switchboard_xml::Element;

use super::{retract, ArchiveState, Module, RosterSet, NS};
use crate::features::online::same_account;
use crate::features::{hints, stanza_id};
use crate::im::roster::Roster;
use crate::im::AccountObserver;
use crate::lifecycle::Guard;
use crate::routing::stanza::{MessageType, Origin, Stanza};
use crate::routing::table::Flow;

/// Whether a message is one an archive keeps at all (preferences aside).
pub fn archivable(message: &Element) -> bool {
    if !matches!(
        MessageType::parse(message.attr("type")),
        MessageType::Chat | MessageType::Normal
    ) {
        return false;
    }
    if hints::forbids_storage(message) {
        return false;
    }
    message.get_child("body", &message.ns).is_some()
        || hints::has(message, "store")
        || message.get_child("retract", retract::NS).is_some()
}

/// Keeps `message` in `owner`'s archive under `with`, queues a retraction
/// it carries, and stamps the id on it. `sender` sent it.
fn keep(
    m: &Module,
    owner: &Jid,
    sender: &Jid,
    with: &Jid,
    message: &mut Element,
    ticket: Option<Guard>,
) {
    let id = stanza_id::new_id();
    let retraction = retract::of(message, sender, with);
    let entry = ArchiveEntry {
        id: id.clone(),
        timestamp: time::now_micros(),
        with: with.to_string(),
        stanza: message.clone(),
    };
    let second = match &retraction {
        Some(_) => ticket.as_ref().map(|t| t.tracker().guard()),
        None => None,
    };
    m.writers.append(owner, entry, ticket);
    if let Some(r) = retraction {
        m.writers.retract(owner, r, second);
    }
    stanza_id::stamp(message, &owner.to_string(), &id);
}

/// `message/bare`, `message/full`: a message for a local user.
pub(super) fn incoming(m: &Module, mut s: Stanza) -> Flow {
    if s.origin == Origin::Redelivery {
        // An archive result for a session that ended is nobody's message.
        if is_result(&s.el, &s.to) {
            return Flow::Done;
        }
        return Flow::Next(s);
    }
    stanza_id::strip(&mut s.el, &s.to);
    if !archivable(&s.el) {
        return Flow::Next(s);
    }
    // Without a session the account's actor keeps it, if it stores it
    // offline (see `before_offline`).
    let Some(state) = m.cache.get(&s.to) else {
        return Flow::Next(s);
    };
    let owner = s.to.to_bare();
    let with = if same_account(&s.from, &owner) {
        owner.clone()
    } else {
        s.from.clone()
    };
    if state.archives(&with) {
        let ticket = s.ticket();
        let sender = s.from.clone();
        keep(m, &owner, &sender, &with, &mut s.el, ticket);
    }
    Flow::Next(s)
}

/// `pre-message/…`: a message a local user sends.
pub(super) fn outgoing(m: &Module, mut s: Stanza) -> Flow {
    // Only the server names the user's archive.
    stanza_id::strip(&mut s.el, &s.from);
    if same_account(&s.to, &s.from) || !archivable(&s.el) {
        return Flow::Next(s);
    }
    let Some(state) = m.cache.get(&s.from) else {
        return Flow::Next(s);
    };
    if state.archives(&s.to) {
        let ticket = s.ticket();
        let owner = s.from.to_bare();
        let (sender, with) = (s.from.clone(), s.to.clone());
        keep(m, &owner, &sender, &with, &mut s.el, ticket);
    }
    Flow::Next(s)
}

/// After the carbon copies are made: the sender's stanza-id stays home.
pub(super) fn strip_outgoing(mut s: Stanza) -> Flow {
    if !same_account(&s.to, &s.from) {
        stanza_id::strip(&mut s.el, &s.from);
    }
    Flow::Next(s)
}

/// Whether `message` is an archive result sent to a session of `to`'s
/// account (from its archive, the bare JID).
fn is_result(message: &Element, to: &Jid) -> bool {
    message.get_child("result", NS).is_some()
        && message
            .attr("from")
            .is_some_and(|f| stanza_id::is_bare_of(f, to))
}

impl AccountObserver for Module {
    /// Messages for an account without an available resource: those not
    /// kept on the way (their stanza-id is not there yet) are kept now,
    /// as the account's preferences say, before they are stored offline.
    fn before_offline<'a>(
        &'a self,
        account: &'a Jid,
        roster: Option<&'a Roster>,
        batch: &'a mut [(Element, Option<Guard>)],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let by = account.to_string();
            let todo: Vec<usize> = (0..batch.len())
                .filter(|&i| {
                    let msg = &batch[i].0;
                    archivable(msg) && stanza_id::by(msg, &by).is_none()
                })
                .collect();
            if todo.is_empty() {
                return;
            }
            let state: Arc<ArchiveState> = match self.cache.get(account) {
                Some(s) => s,
                None => {
                    let prefs = self.load_prefs(account).await;
                    Arc::new(ArchiveState {
                        prefs: std::sync::RwLock::new(Arc::new(prefs)),
                        roster: std::sync::RwLock::new(roster.map(|r| {
                            Arc::new(RosterSet {
                                ver: r.ver,
                                jids: r.items.keys().cloned().collect(),
                            })
                        })),
                    })
                }
            };
            for i in todo {
                let (msg, ticket) = &mut batch[i];
                let Some(sender) = msg.attr("from").and_then(|f| Jid::parse(f).ok()) else {
                    continue;
                };
                let with = if sender.to_bare() == *account {
                    account.clone()
                } else {
                    sender.clone()
                };
                if state.archives(&with) {
                    let ticket = ticket.as_ref().map(|t| t.tracker().guard());
                    keep(self, account, &sender, &with, msg, ticket);
                }
            }
        })
    }

    /// Keeps the roster JIDs of a cached account current, while its
    /// preferences need them.
    fn roster_saved(&self, account: &Jid, roster: &StoredRoster) {
        if let Some(state) = self.cache.get(account) {
            if state.prefs().default == switchboard_config::ArchiveDefault::Roster {
                state.set_roster(Some(RosterSet::of(roster)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn chats_with_content_are_kept_and_hints_are_honoured() {
        for (xml, kept) in [
            ("<message xmlns='jabber:client' type='chat'><body>hi</body></message>", true),
            ("<message xmlns='jabber:client'><body>hi</body></message>", true),
            ("<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", false),
            ("<message xmlns='jabber:client' type='chat'><store xmlns='urn:xmpp:hints'/></message>", true),
            ("<message xmlns='jabber:client' type='chat'><retract xmlns='urn:xmpp:message-retract:1' id='x'/></message>", true),
            ("<message xmlns='jabber:client' type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>", false),
            ("<message xmlns='jabber:client' type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>", false),
            ("<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>", false),
            ("<message xmlns='jabber:client' type='headline'><body>hi</body></message>", false),
            ("<message xmlns='jabber:client' type='error'><body>hi</body></message>", false),
        ] {
            assert_eq!(archivable(&el(xml)), kept, "{xml}");
        }
    }
}
