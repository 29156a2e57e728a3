//! Messages (XEP-0045 §7.4, §7.5, §8.1): groupchat to everyone with
//! reflection, the subject, and private messages between occupants as
//! the room allows them. Messages of other types to the room carry
//! invitations, declines and voice requests (`invite.rs`, `voice.rs`).
//!
//! Every groupchat message gets a stanza-id from the room (XEP-0359) and
//! the sender's occupant-id (XEP-0421); ids of either kind that a client
//! put there itself are removed first, so nobody can forge them. A
//! message with a body goes to the history and, when the room archives,
//! to the archive under the same id.

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, StanzaError};
use switchboard_spool::store::ArchiveEntry;
use switchboard_xml::{Element, Node};

use crate::config::AllowPm;
use crate::history::{self, HistoryEntry};
use crate::limits;
use crate::muc::{broadcast_message, item_not_found, not_acceptable, Muc};
use crate::ns;
use crate::output::{ArchiveOp, Out};
use crate::roles::{self, Privilege, Role};
use crate::room::{Room, Subject};

impl Muc {
    pub(crate) fn room_message(
        &mut self,
        m: &Element,
        from: &Jid,
        local: &str,
        now: u64,
        out: &mut Out,
    ) {
        let kind = m.attr("type").unwrap_or("normal");
        if kind == "error" {
            return self.message_error(m, from, local, out);
        }
        let Some(room) = self.rooms.get(local) else {
            out.send_opt(error_reply(m, &item_not_found("no such room")));
            return;
        };
        if room.locked
            && self.env.affiliation(room, &from.to_bare()) != crate::roles::Affiliation::Owner
        {
            out.send_opt(error_reply(m, &item_not_found("no such room")));
            return;
        }
        if kind != "groupchat" {
            if let Some(x) = m.get_child("x", ns::MUC_USER) {
                if x.get_child("invite", ns::MUC_USER).is_some() {
                    return self.invite(m, x, from, local, out);
                }
                if x.get_child("decline", ns::MUC_USER).is_some() {
                    return self.decline(m, x, from, local, out);
                }
            }
            if let Some(x) = m.get_child("x", ns::DATA_FORMS) {
                return self.voice_form(m, x, from, local, out);
            }
            out.send_opt(error_reply(
                m,
                &StanzaError::bad_request().with_text("messages to a room are of type groupchat"),
            ));
            return;
        }
        self.groupchat(m, from, local, now, out);
    }

    fn groupchat(&mut self, m: &Element, from: &Jid, local: &str, now: u64, out: &mut Out) {
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let Some(idx) = room.by_session(from) else {
            out.send_opt(error_reply(
                m,
                &not_acceptable("you are not in this room; join it before you speak"),
            ));
            return;
        };
        let size = m.to_xml_string().len();
        if size > env.settings.max_message_bytes {
            out.send_opt(error_reply(
                m,
                &limits::too_big(env.settings.max_message_bytes),
            ));
            return;
        }
        let rate = env.settings.message_rate;
        if !room.occupants[idx].bucket.take(rate, now) {
            out.send_opt(error_reply(m, &limits::too_fast(rate.expect("limited"))));
            return;
        }
        let occ = &room.occupants[idx];
        let subject = m.get_child("subject", ns::CLIENT);
        let body = m.get_child("body", ns::CLIENT);
        // §8.1: a subject change is a message with a subject and no body.
        if let (Some(subject), None) = (subject, body) {
            let may = occ.role == Role::Moderator
                || (room.config.change_subject && roles::has(occ.role, Privilege::ModifySubject));
            if !may {
                out.send_opt(error_reply(
                    m,
                    &StanzaError::forbidden()
                        .with_text("only moderators may change the subject of this room"),
                ));
                return;
            }
            room.subject = Some(Subject {
                text: subject.text(),
                by: occ.nick.clone(),
                at: now,
            });
            let stanza = reflect(room, idx, m, None);
            broadcast_message(room, &stanza, out);
            self.stats.messages += 1;
            self.stats.copies += sessions(room);
            self.save(local, out);
            return;
        }
        if !roles::has(occ.role, Privilege::SendMessagesToAll) {
            out.send_opt(error_reply(
                m,
                &StanzaError::forbidden()
                    .with_text("you have no voice in this moderated room; ask for it"),
            ));
            return;
        }
        let id = self.ids.fresh();
        let room = self.rooms.get_mut(local).expect("still there");
        let stanza = reflect(room, idx, m, Some(&id));
        broadcast_message(room, &stanza, out);
        self.stats.messages += 1;
        self.stats.copies += sessions(room);
        if has_content(&stanza) {
            history::remember(
                &mut room.history,
                HistoryEntry::new(stanza.clone(), now, id.clone()),
                room.config.history_length,
            );
            if room.config.archiving {
                out.archive.push(ArchiveOp::Append {
                    owner: room.jid.clone(),
                    entry: ArchiveEntry {
                        id,
                        timestamp: now,
                        with: room.occupant_jid(&room.occupants[idx].nick),
                        stanza,
                    },
                });
            }
        }
    }

    pub(crate) fn private_message(
        &mut self,
        m: &Element,
        from: &Jid,
        local: &str,
        nick: &str,
        now: u64,
        out: &mut Out,
    ) {
        let kind = m.attr("type").unwrap_or("normal");
        if kind == "error" {
            return self.message_error(m, from, local, out);
        }
        let env = &self.env;
        let Some(room) = self.rooms.get_mut(local) else {
            out.send_opt(error_reply(m, &item_not_found("no such room")));
            return;
        };
        let Some(idx) = room.by_session(from) else {
            out.send_opt(error_reply(
                m,
                &not_acceptable(
                    "you are not in this room; only occupants may send private messages",
                ),
            ));
            return;
        };
        if kind == "groupchat" {
            out.send_opt(error_reply(
                m,
                &StanzaError::bad_request()
                    .with_text("a private message may not be of type groupchat"),
            ));
            return;
        }
        let sender = &room.occupants[idx];
        let allowed = match room.config.allow_pm {
            AllowPm::Anyone => true,
            AllowPm::Participants => sender.role >= Role::Participant,
            AllowPm::Moderators => sender.role == Role::Moderator,
            AllowPm::None => false,
        };
        if !allowed {
            out.send_opt(error_reply(
                m,
                &StanzaError::forbidden()
                    .with_text("this room does not let you send private messages"),
            ));
            return;
        }
        let key = match crate::nick::enforce(nick) {
            Ok(n) => crate::nick::key(&n),
            Err(_) => String::new(),
        };
        let Some(to_idx) = room.by_key(&key) else {
            out.send_opt(error_reply(
                m,
                &item_not_found("nobody in the room has that nickname"),
            ));
            return;
        };
        if m.to_xml_string().len() > env.settings.max_message_bytes {
            out.send_opt(error_reply(
                m,
                &limits::too_big(env.settings.max_message_bytes),
            ));
            return;
        }
        let rate = env.settings.message_rate;
        if !room.occupants[idx].bucket.take(rate, now) {
            out.send_opt(error_reply(m, &limits::too_fast(rate.expect("limited"))));
            return;
        }
        let mut pm = reflect(room, idx, m, None);
        pm.set_attr("type", kind);
        // XEP-0045 §7.5: a private message carries `<x xmlns='…#user'/>`
        // so the recipient's client shows it with the room.
        pm.append_child(Element::new("x", ns::MUC_USER));
        for s in &room.occupants[to_idx].sessions {
            out.send(crate::room::addressed(&pm, &s.jid));
        }
    }

    /// An error bounced by an occupant's client. Errors that say the
    /// session is gone remove it (333); others are dropped.
    fn message_error(&mut self, m: &Element, from: &Jid, local: &str, out: &mut Out) {
        let gone = m.get_child("error", &m.ns).is_some_and(|e| {
            e.elements().any(|c| {
                c.ns == ns::STANZAS
                    && matches!(
                        c.name.as_str(),
                        "recipient-unavailable"
                            | "service-unavailable"
                            | "item-not-found"
                            | "remote-server-not-found"
                            | "remote-server-timeout"
                            | "gone"
                    )
            })
        });
        if gone {
            self.drop_session(from, local, out);
        }
    }
}

/// A message as the room sends it on: from the occupant JID, ids forged
/// by the client removed, the room's stanza-id (when given) and the
/// occupant-id added.
pub(crate) fn reflect(room: &Room, idx: usize, m: &Element, stanza_id: Option<&str>) -> Element {
    let occ = &room.occupants[idx];
    let mut s = Element::new("message", ns::CLIENT)
        .with_attr("type", "groupchat")
        .with_attr("from", room.occupant_jid(&occ.nick));
    if let Some(id) = m.attr("id") {
        s.set_attr("id", id);
    }
    if let Some(lang) = m.attr("xml:lang") {
        s.set_attr("xml:lang", lang);
    }
    for c in &m.children {
        if let Node::Element(e) = c {
            let forged = e.ns == ns::OCCUPANT_ID
                || (e.is("stanza-id", ns::SID) && e.attr("by") == Some(room.jid.as_str()))
                || e.ns == ns::DELAY
                || e.ns == ns::MUC_USER;
            if !forged {
                s.append_child(e.clone());
            }
        }
    }
    if let Some(id) = stanza_id {
        s.append_child(
            Element::new("stanza-id", ns::SID)
                .with_attr("id", id)
                .with_attr("by", room.jid.clone()),
        );
    }
    s.append_child(
        Element::new("occupant-id", ns::OCCUPANT_ID).with_attr("id", occ.occupant_id.clone()),
    );
    s
}

/// How many sessions a broadcast reaches.
fn sessions(room: &Room) -> u64 {
    room.occupants.iter().map(|o| o.sessions.len() as u64).sum()
}

/// Whether a message is worth remembering: a body (chat states and
/// receipts alone are not).
fn has_content(m: &Element) -> bool {
    m.get_child("body", ns::CLIENT).is_some()
}
