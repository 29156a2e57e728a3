//! Moderation (XEP-0425): a moderator retracts someone's groupchat
//! message by its stanza-id. Version 1 (`urn:xmpp:message-moderate:1`)
//! and the fastening-based version 0 that older clients send are both
//! understood; the notice to occupants carries both forms, as Prosody's
//! does, so every client hides the message.
//!
//! The message must exist: in the archive when the room archives, else
//! in the history (`item-not-found` otherwise). It leaves the history,
//! its archive entry becomes a tombstone (XEP-0424 `<retracted/>`), and
//! the notice itself is archived so that clients catching up learn of it.

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_spool::store::{ArchiveEntry, ArchiveQuery};
use switchboard_xml::Element;

use crate::muc::{broadcast_message, item_not_found, Muc};
use crate::ns;
use crate::output::{Answer, ArchiveOp, Out, Ticket};
use crate::roles::{Affiliation, Role};

/// What the moderator asked.
struct Request {
    id: String,
    reason: Option<String>,
}

fn parse(p: &Element) -> Option<Request> {
    if p.is("moderate", ns::MODERATE) {
        p.get_child("retract", ns::RETRACT)?;
        return Some(Request {
            id: p.attr("id")?.to_string(),
            reason: p.child_text("reason", ns::MODERATE),
        });
    }
    if p.is("apply-to", ns::FASTEN) {
        let m = p.get_child("moderate", ns::MODERATE_0)?;
        m.get_child("retract", ns::RETRACT_0)?;
        return Some(Request {
            id: p.attr("id")?.to_string(),
            reason: m.child_text("reason", ns::MODERATE_0),
        });
    }
    None
}

impl Muc {
    pub(crate) fn moderate_iq(
        &mut self,
        iq: &Element,
        p: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let Some(req) = parse(p) else {
            out.send_opt(error_reply(
                iq,
                &StanzaError::bad_request()
                    .with_text("a moderation names a message id and asks to retract it"),
            ));
            return;
        };
        let room = self.rooms.get(local).expect("checked by the caller");
        let role = room.by_session(from).map(|i| room.occupants[i].role);
        let aff = self.env.affiliation(room, &from.to_bare());
        if role != Some(Role::Moderator) && aff < Affiliation::Admin {
            out.send_opt(error_reply(
                iq,
                &StanzaError::forbidden().with_text("only moderators may retract others' messages"),
            ));
            return;
        }
        if room.config.archiving {
            out.archive.push(ArchiveOp::Query {
                owner: room.jid.clone(),
                query: ArchiveQuery {
                    ids: vec![req.id.clone()],
                    max: 1,
                    ..ArchiveQuery::default()
                },
                ticket: Ticket::Moderate {
                    iq: iq.clone(),
                    room: local.to_string(),
                    id: req.id,
                },
            });
            return;
        }
        let found = room
            .history
            .iter()
            .find(|e| e.id == req.id)
            .map(|e| e.stanza.clone());
        match found {
            Some(original) => self.retract(iq, local, &req.id, original, 0, out),
            None => out.send_opt(error_reply(
                iq,
                &item_not_found("no message in this room has that id"),
            )),
        }
    }

    /// The archive's answer to a moderation's look-up.
    pub(crate) fn moderation_found(
        &mut self,
        iq: Element,
        local: &str,
        id: &str,
        answer: Answer,
        now: u64,
        out: &mut Out,
    ) {
        let original = match answer {
            Ok(Some(page)) => page
                .entries
                .into_iter()
                .find(|e| e.id == id)
                .map(|e| e.stanza),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a room archive");
                out.send_opt(error_reply(
                    &iq,
                    &StanzaError::new("internal-server-error", ErrorType::Wait)
                        .with_text("the archive cannot be read now; try again later"),
                ));
                return;
            }
        };
        let original = original.or_else(|| {
            self.rooms
                .get(local)?
                .history
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.stanza.clone())
        });
        match (original, self.rooms.contains_key(local)) {
            (Some(o), true) => self.retract(&iq, local, id, o, now, out),
            (_, false) => out.send_opt(error_reply(&iq, &item_not_found("no such room"))),
            (None, true) => out.send_opt(error_reply(
                &iq,
                &item_not_found("no message in this room has that id"),
            )),
        }
    }

    fn retract(
        &mut self,
        iq: &Element,
        local: &str,
        id: &str,
        original: Element,
        now: u64,
        out: &mut Out,
    ) {
        let Some(p) = iq.first_element().and_then(parse) else {
            return;
        };
        let from = iq.attr("from").and_then(|f| Jid::parse(f).ok());
        let notice_id = self.ids.fresh();
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let moderator = from.as_ref().and_then(|f| room.by_session(f)).map(|i| {
            (
                room.occupant_jid(&room.occupants[i].nick),
                room.occupants[i].occupant_id.clone(),
            )
        });
        let by = moderator
            .as_ref()
            .map_or_else(|| room.jid.clone(), |m| m.0.clone());
        let mut moderated = Element::new("moderated", ns::MODERATE).with_attr("by", by.clone());
        if let Some((_, oid)) = &moderator {
            moderated.append_child(
                Element::new("occupant-id", ns::OCCUPANT_ID).with_attr("id", oid.clone()),
            );
        }
        let mut retract = Element::new("retract", ns::RETRACT)
            .with_attr("id", id)
            .with_child(moderated.clone());
        let mut moderated0 = Element::new("moderated", ns::MODERATE_0)
            .with_attr("by", by.clone())
            .with_child(Element::new("retract", ns::RETRACT_0));
        if let Some(r) = &p.reason {
            retract.append_child(Element::new("reason", ns::RETRACT).with_text(r.clone()));
            moderated0.append_child(Element::new("reason", ns::MODERATE_0).with_text(r.clone()));
        }
        let notice = Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", room.jid.clone())
            .with_attr("id", notice_id.clone())
            .with_child(retract)
            .with_child(
                Element::new("apply-to", ns::FASTEN)
                    .with_attr("id", id)
                    .with_child(moderated0),
            )
            .with_child(
                Element::new("stanza-id", ns::SID)
                    .with_attr("id", notice_id.clone())
                    .with_attr("by", room.jid.clone()),
            );
        broadcast_message(room, &notice, out);
        room.history.retain(|e| e.id != id);
        if room.config.archiving {
            let mut tombstone = Element::new("message", ns::CLIENT).with_attr("type", "groupchat");
            for a in ["from", "id"] {
                if let Some(v) = original.attr(a) {
                    tombstone.set_attr(a, v);
                }
            }
            let mut retracted = Element::new("retracted", ns::RETRACT)
                .with_attr("stamp", crate::time::stamp(now))
                .with_child(moderated);
            if let Some(r) = &p.reason {
                retracted.append_child(Element::new("reason", ns::RETRACT).with_text(r.clone()));
            }
            tombstone.append_child(retracted);
            for keep in [ns::OCCUPANT_ID, ns::SID] {
                for c in original.elements().filter(|c| c.ns == keep) {
                    tombstone.append_child(c.clone());
                }
            }
            out.archive.push(ArchiveOp::Replace {
                owner: room.jid.clone(),
                id: id.to_string(),
                stanza: tombstone,
            });
            out.archive.push(ArchiveOp::Append {
                owner: room.jid.clone(),
                entry: ArchiveEntry {
                    id: notice_id,
                    timestamp: now,
                    with: room.jid.clone(),
                    stanza: notice,
                },
            });
        }
        out.send(iq_result(iq, None));
    }
}
