//! `muc#owner` (XEP-0045 §10): the configuration form of a new or
//! existing room, instant rooms, cancelling a new room, and destroying a
//! room with an optional alternate venue.
//!
//! A configuration change is announced to the occupants with the status
//! codes of §10.2.1: 104 for a change that does not touch privacy, 170
//! and 171 when archiving starts and stops, 172 and 173 when real JIDs
//! become visible to all or to moderators only. Turning a room
//! members-only removes the non-members present (322).

use switchboard_jid::Jid;
use switchboard_service::forms::{Form, FormKind};
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_xml::Element;

use crate::config::Whois;
use crate::muc::{broadcast_message, broadcast_presence, Muc};
use crate::ns;
use crate::output::{Out, Persist};
use crate::roles::{Affiliation, Role};
use crate::room::Notice;

impl Muc {
    pub(crate) fn owner_iq(
        &mut self,
        iq: &Element,
        q: &Element,
        from: &Jid,
        local: &str,
        _now: u64,
        out: &mut Out,
    ) {
        let room = self.rooms.get(local).expect("checked by the caller");
        if self.env.affiliation(room, &from.to_bare()) != Affiliation::Owner {
            out.send_opt(error_reply(
                iq,
                &StanzaError::forbidden()
                    .with_text("only the room's owners may configure or destroy it"),
            ));
            return;
        }
        if iq.attr("type") == Some("get") {
            let owners = room.with_affiliation(Affiliation::Owner);
            let admins = room.with_affiliation(Affiliation::Admin);
            let form = room
                .config
                .form(&self.env.settings.bounds, &owners, &admins);
            out.send(iq_result(
                iq,
                Some(Element::new("query", ns::MUC_OWNER).with_child(form.to_element())),
            ));
            return;
        }
        if let Some(d) = q.get_child("destroy", ns::MUC_OWNER) {
            return self.destroy(iq, d, local, out);
        }
        let Some(x) = q.get_child("x", ns::DATA_FORMS) else {
            out.send_opt(error_reply(
                iq,
                &StanzaError::bad_request().with_text("send the configuration form or <destroy/>"),
            ));
            return;
        };
        let form = match Form::parse(x) {
            Ok(f) => f,
            Err(e) => {
                out.send_opt(error_reply(iq, &e.to_stanza_error()));
                return;
            }
        };
        if form.kind == FormKind::Cancel {
            out.send(iq_result(iq, None));
            if room.locked {
                // §10.1.3: a new room whose configuration is cancelled
                // goes away.
                self.destroy_notice(local, None, out);
                self.forget_room(local, out);
            }
            return;
        }
        self.configure(iq, &form, local, out);
    }

    fn configure(&mut self, iq: &Element, form: &Form, local: &str, out: &mut Out) {
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let owners = room.with_affiliation(Affiliation::Owner);
        let admins = room.with_affiliation(Affiliation::Admin);
        let submitted = match room
            .config
            .apply(form, &env.settings.bounds, &owners, &admins)
        {
            Ok(s) => s,
            Err(e) => {
                out.send_opt(error_reply(iq, &e));
                return;
            }
        };
        if submitted.owners.as_ref().is_some_and(|o| o.is_empty()) {
            out.send_opt(error_reply(
                iq,
                &crate::muc::conflict(
                    "the room would have no owner left; keep at least one in 'Room owners'",
                ),
            ));
            return;
        }
        let old = std::mem::replace(&mut room.config, submitted.config);
        let before: Vec<(String, Affiliation)> = room
            .affiliations
            .iter()
            .map(|(j, i)| (j.clone(), i.affiliation))
            .collect();
        if let Some(new_owners) = submitted.owners {
            for o in owners.iter().filter(|o| !new_owners.contains(o)) {
                room.set_affiliation(o, Affiliation::None, None);
            }
            for o in &new_owners {
                room.set_affiliation(o, Affiliation::Owner, None);
            }
        }
        if let Some(new_admins) = submitted.admins {
            for a in admins.iter().filter(|a| !new_admins.contains(a)) {
                if room.stored_affiliation(a) == Affiliation::Admin {
                    room.set_affiliation(a, Affiliation::None, None);
                }
            }
            for a in &new_admins {
                if room.stored_affiliation(a) != Affiliation::Owner {
                    room.set_affiliation(a, Affiliation::Admin, None);
                }
            }
        }
        // Owners and admins named or dropped in the form: whoever of them
        // is present sees the new affiliation (and its role) like any
        // other affiliation change (§10.3 to §10.8 by the form).
        let mut changed: Vec<(String, Affiliation)> = Vec::new();
        for (jid, was) in &before {
            let now = room.stored_affiliation(jid);
            if now != *was {
                changed.push((jid.clone(), now));
            }
        }
        for (jid, item) in &room.affiliations {
            if !before.iter().any(|(j, _)| j == jid) {
                changed.push((jid.clone(), item.affiliation));
            }
        }
        for (jid, affiliation) in changed {
            crate::admin::apply_affiliation(env, room, &jid, affiliation, None, None, out);
        }
        let was_locked = room.locked;
        room.locked = false;
        let new = room.config.clone();
        let mut codes = Vec::new();
        if old.whois != new.whois {
            codes.push(if new.whois == Whois::Anyone { 172 } else { 173 });
        }
        if old.archiving != new.archiving {
            codes.push(if new.archiving { 170 } else { 171 });
        }
        let mut plain = old.clone();
        plain.whois = new.whois;
        plain.archiving = new.archiving;
        if plain != new {
            codes.push(104);
        }
        if new.history_length < room.history.len() {
            let drop = room.history.len() - new.history_length;
            room.history.drain(..drop);
        }
        out.send(iq_result(iq, None));
        if !codes.is_empty() && !was_locked {
            let mut x = Element::new("x", ns::MUC_USER);
            for c in codes {
                x.append_child(
                    Element::new("status", ns::MUC_USER).with_attr("code", c.to_string()),
                );
            }
            let m = Element::new("message", ns::CLIENT)
                .with_attr("type", "groupchat")
                .with_attr("from", room.jid.clone())
                .with_child(x);
            broadcast_message(room, &m, out);
        }
        if new.members_only && !old.members_only {
            // §10.2: non-members present are removed with 322.
            while let Some(idx) = room
                .occupants
                .iter()
                .position(|o| env.affiliation(room, &o.bare) < Affiliation::Member)
            {
                let notice = Notice {
                    unavailable: true,
                    codes: vec![322],
                    item_override: Some((Affiliation::None, Role::None)),
                    ..Notice::default()
                };
                broadcast_presence(env, room, idx, &notice, false, out);
                room.occupants.remove(idx);
            }
        }
        if new.persistent {
            self.save(local, out);
        } else if old.persistent {
            out.persist.push(Persist::Remove {
                room: local.to_string(),
            });
        }
        self.after_departure(local, out);
    }

    /// §10.9: the room goes, everyone in it is told where to go instead.
    fn destroy(&mut self, iq: &Element, d: &Element, local: &str, out: &mut Out) {
        let mut notice = Element::new("destroy", ns::MUC_USER);
        if let Some(j) = d.attr("jid") {
            match Jid::parse(j) {
                Ok(j) => notice.set_attr("jid", j.to_string()),
                Err(e) => {
                    out.send_opt(error_reply(
                        iq,
                        &StanzaError::jid_malformed().with_text(e.to_string()),
                    ));
                    return;
                }
            }
        }
        if let Some(r) = d.child_text("reason", ns::MUC_OWNER) {
            notice.append_child(Element::new("reason", ns::MUC_USER).with_text(r));
        }
        if let Some(p) = d.child_text("password", ns::MUC_OWNER) {
            notice.append_child(Element::new("password", ns::MUC_USER).with_text(p));
        }
        self.destroy_notice(local, Some(notice), out);
        self.forget_room(local, out);
        out.send(iq_result(iq, None));
    }

    /// Everyone in the room leaves it, with the destroy notice if any.
    pub(crate) fn destroy_notice(&mut self, local: &str, destroy: Option<Element>, out: &mut Out) {
        let Some(room) = self.rooms.get_mut(local) else {
            return;
        };
        let destroy = destroy.unwrap_or_else(|| Element::new("destroy", ns::MUC_USER));
        // §10.9: each occupant gets its own unavailable presence with the
        // notice, not everyone else's.
        let notice = Notice {
            unavailable: true,
            destroy: Some(destroy),
            item_override: Some((Affiliation::None, Role::None)),
            ..Notice::default()
        };
        for o in &room.occupants {
            for s in &o.sessions {
                out.send(room.presence(o, Affiliation::None, false, &s.jid, true, &notice));
            }
        }
        room.occupants.clear();
    }
}
