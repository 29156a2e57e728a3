//! Mediated invitations and declines (XEP-0045 §7.8.2, §7.8.3).
//!
//! An occupant asks the room to invite someone; the room sends the
//! invitee a message from the room's JID with the invitation (and the
//! password of a protected room, which the invitee will need). In a
//! members-only room the invitee also becomes a member, as the XEP
//! suggests, or the invitation could not be used. A decline goes back
//! through the room to the inviter.
//!
//! Who may invite: every occupant when the room allows invitations
//! (`muc#roomconfig_allowinvites`), otherwise moderators and admins.
//! XEP-0249 direct invitations go from client to client and need nothing
//! from the room; the service only lists `jabber:x:conference`.
//!
//! The invitation names the inviter by real bare JID, as Prosody does:
//! the invitee must know who invites, but not which device.

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, StanzaError};
use switchboard_xml::Element;

use crate::muc::{not_acceptable, Muc};
use crate::ns;
use crate::output::Out;
use crate::roles::{Affiliation, Role};

impl Muc {
    pub(crate) fn invite(
        &mut self,
        m: &Element,
        x: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let Some(idx) = room.by_session(from) else {
            out.send_opt(error_reply(
                m,
                &not_acceptable("only occupants may invite others to this room"),
            ));
            return;
        };
        let occ = &room.occupants[idx];
        let aff = env.affiliation(room, &occ.bare);
        let allowed =
            room.config.allow_invites || occ.role == Role::Moderator || aff >= Affiliation::Admin;
        if !allowed {
            out.send_opt(error_reply(
                m,
                &StanzaError::forbidden()
                    .with_text("only moderators may invite others to this room"),
            ));
            return;
        }
        let mut invitees = Vec::new();
        for inv in x.elements().filter(|e| e.is("invite", ns::MUC_USER)) {
            match inv.attr("to").map(Jid::parse) {
                Some(Ok(j)) => invitees.push((j, inv.child_text("reason", ns::MUC_USER))),
                _ => {
                    out.send_opt(error_reply(
                        m,
                        &StanzaError::jid_malformed()
                            .with_text("an invitation needs a valid to= address"),
                    ));
                    return;
                }
            }
        }
        let inviter = occ.bare.to_string();
        let inviter_nick = occ.nick.clone();
        let mut changed = false;
        for (to, reason) in invitees {
            if room.config.members_only
                && room.stored_affiliation(&to.to_bare().to_string()) == Affiliation::None
            {
                room.set_affiliation(&to.to_bare().to_string(), Affiliation::Member, None);
                changed = true;
            }
            let mut invite =
                Element::new("invite", ns::MUC_USER).with_attr("from", inviter.clone());
            if let Some(r) = &reason {
                invite.append_child(Element::new("reason", ns::MUC_USER).with_text(r.clone()));
            }
            let mut ux = Element::new("x", ns::MUC_USER).with_child(invite);
            if let Some(pw) = &room.config.password {
                ux.append_child(Element::new("password", ns::MUC_USER).with_text(pw.clone()));
            }
            let mut text = format!(
                "{inviter_nick} ({inviter}) invites you to the room {}",
                room.jid
            );
            if let Some(r) = &reason {
                text.push_str(&format!(": {r}"));
            }
            let mut msg = Element::new("message", ns::CLIENT)
                .with_attr("from", room.jid.clone())
                .with_attr("to", to.to_string())
                .with_child(ux)
                .with_child(Element::new("body", ns::CLIENT).with_text(text));
            if let Some(id) = m.attr("id") {
                msg.set_attr("id", id);
            }
            out.send(msg);
        }
        if changed {
            self.save(local, out);
        }
    }

    pub(crate) fn decline(
        &mut self,
        m: &Element,
        x: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let room = self.rooms.get(local).expect("checked by the caller");
        let decline = x
            .get_child("decline", ns::MUC_USER)
            .expect("checked by the caller");
        let Some(Ok(to)) = decline.attr("to").map(Jid::parse) else {
            out.send_opt(error_reply(
                m,
                &StanzaError::jid_malformed()
                    .with_text("a decline needs the inviter's address in to="),
            ));
            return;
        };
        let mut d =
            Element::new("decline", ns::MUC_USER).with_attr("from", from.to_bare().to_string());
        if let Some(r) = decline.child_text("reason", ns::MUC_USER) {
            d.append_child(Element::new("reason", ns::MUC_USER).with_text(r));
        }
        out.send(
            Element::new("message", ns::CLIENT)
                .with_attr("from", room.jid.clone())
                .with_attr("to", to.to_string())
                .with_child(Element::new("x", ns::MUC_USER).with_child(d)),
        );
    }
}
