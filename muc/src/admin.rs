//! `muc#admin` (XEP-0045 §8 moderator and §9 admin use cases): kick,
//! voice, moderator status, ban, membership, admin and owner lists, and
//! the lists themselves.
//!
//! A set with several items is checked whole before anything changes,
//! so it succeeds or fails as one. Who may do what is decided by the
//! tables in `roles.rs`; the last owner cannot be removed (`conflict`,
//! §10.6). A change reaches the occupants it concerns as presence with
//! the status code the XEP gives it: 307 kicked, 301 banned, 321 removed
//! because membership was taken away in a members-only room.

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_xml::Element;

use crate::muc::{broadcast_presence, conflict, item_not_found, Env, Muc};
use crate::ns;
use crate::output::Out;
use crate::roles::{
    default_role, may_list_affiliation, may_set_affiliation, may_set_role, Affiliation, Role,
};
use crate::room::{Notice, Room};

/// One requested change.
enum Change {
    Role {
        key: String,
        role: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: String,
        affiliation: Affiliation,
        reason: Option<String>,
    },
}

impl Muc {
    pub(crate) fn admin_iq(
        &mut self,
        iq: &Element,
        q: &Element,
        from: &Jid,
        local: &str,
        _now: u64,
        out: &mut Out,
    ) {
        let items: Vec<&Element> = q
            .elements()
            .filter(|e| e.is("item", ns::MUC_ADMIN))
            .collect();
        if items.is_empty() {
            out.send_opt(error_reply(
                iq,
                &StanzaError::bad_request().with_text("no <item/> in the request"),
            ));
            return;
        }
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let bare = from.to_bare();
        let actor_aff = env.affiliation(room, &bare);
        let actor_idx = room.by_session(from);
        // An admin or owner who is not in the room still acts as a
        // moderator would (ejabberd and Prosody let them).
        let actor_role = match actor_idx {
            Some(i) => room.occupants[i].role,
            None if actor_aff >= Affiliation::Admin => Role::Moderator,
            None => Role::None,
        };
        if iq.attr("type") == Some("get") {
            let r = list(room, items[0], actor_aff, actor_role);
            match r {
                Ok(q) => out.send(iq_result(iq, Some(q))),
                Err(e) => out.send_opt(error_reply(iq, &e)),
            }
            return;
        }
        // Check every item first.
        let mut changes = Vec::new();
        for item in &items {
            match check(env, room, item, (actor_role, actor_aff), &bare) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    out.send_opt(error_reply(iq, &e));
                    return;
                }
            }
        }
        // The room must keep an owner (§10.6).
        let mut owners: Vec<String> = room.with_affiliation(Affiliation::Owner);
        for c in &changes {
            if let Change::Affiliation {
                jid, affiliation, ..
            } = c
            {
                owners.retain(|o| o != jid);
                if *affiliation == Affiliation::Owner {
                    owners.push(jid.clone());
                }
            }
        }
        if owners.is_empty() && !room.with_affiliation(Affiliation::Owner).is_empty() {
            out.send_opt(error_reply(
                iq,
                &conflict("the room would have no owner left; make someone else owner first"),
            ));
            return;
        }
        let actor_nick = actor_idx.map(|i| room.occupants[i].nick.clone());
        let mut persist = false;
        let mut role_changes: Vec<(String, Role, Option<String>)> = Vec::new();
        for c in changes {
            match c {
                Change::Role { key, role, reason } => role_changes.push((key, role, reason)),
                Change::Affiliation {
                    jid,
                    affiliation,
                    reason,
                } => {
                    room.set_affiliation(&jid, affiliation, reason.clone());
                    persist = true;
                    apply_affiliation(
                        env,
                        room,
                        &jid,
                        affiliation,
                        actor_nick.clone(),
                        reason,
                        out,
                    );
                }
            }
        }
        // Occupants are found again by nick: a ban above may have removed
        // one already.
        for (key, role, reason) in role_changes {
            let Some(target) = room.by_key(&key) else {
                continue;
            };
            apply_role(env, room, target, role, actor_nick.clone(), reason, out);
        }
        out.send(iq_result(iq, None));
        if persist {
            self.save(local, out);
        }
        self.after_departure(local, out);
    }
}

/// §8.5, §9.3, §9.5, §10.5, §10.8: a role or affiliation list.
fn list(
    room: &Room,
    item: &Element,
    actor_aff: Affiliation,
    actor_role: Role,
) -> Result<Element, StanzaError> {
    let mut q = Element::new("query", ns::MUC_ADMIN);
    if let Some(role) = item.attr("role") {
        let role = Role::parse(role)
            .ok_or_else(|| StanzaError::bad_request().with_text("no such role"))?;
        if actor_role != Role::Moderator {
            return Err(StanzaError::forbidden().with_text("only moderators may list roles"));
        }
        for o in room.occupants.iter().filter(|o| o.role == role) {
            let aff = room.stored_affiliation(&o.bare.to_string());
            q.append_child(
                Element::new("item", ns::MUC_ADMIN)
                    .with_attr("affiliation", aff.as_str())
                    .with_attr("role", o.role.as_str())
                    .with_attr("nick", o.nick.clone())
                    .with_attr("jid", o.shown_jid().to_string()),
            );
        }
        return Ok(q);
    }
    let Some(aff) = item.attr("affiliation").and_then(Affiliation::parse) else {
        return Err(StanzaError::bad_request().with_text("ask for a role or an affiliation"));
    };
    if !may_list_affiliation(actor_aff, aff, room.config.members_only) {
        return Err(StanzaError::forbidden().with_text(format!(
            "you may not see the {} list of this room",
            aff.as_str()
        )));
    }
    for (jid, i) in room
        .affiliations
        .iter()
        .filter(|(_, i)| i.affiliation == aff)
    {
        let mut e = Element::new("item", ns::MUC_ADMIN)
            .with_attr("affiliation", aff.as_str())
            .with_attr("jid", jid.clone());
        if let Some(n) = &i.nick {
            e.set_attr("nick", n.clone());
        }
        if let Some(r) = &i.reason {
            e.append_child(Element::new("reason", ns::MUC_ADMIN).with_text(r.clone()));
        }
        q.append_child(e);
    }
    Ok(q)
}

/// One item of a set, checked against the privilege tables.
fn check(
    env: &Env,
    room: &Room,
    item: &Element,
    actor: (Role, Affiliation),
    actor_jid: &Jid,
) -> Result<Change, StanzaError> {
    let reason = item.child_text("reason", ns::MUC_ADMIN);
    if let Some(role) = item.attr("role") {
        let role = Role::parse(role).ok_or_else(|| {
            StanzaError::bad_request().with_text(format!("'{role}' is not a role"))
        })?;
        let target = match (item.attr("nick"), item.attr("jid")) {
            (Some(n), _) => {
                let key = crate::nick::enforce(n)
                    .map(|n| crate::nick::key(&n))
                    .unwrap_or_default();
                room.by_key(&key)
            }
            (None, Some(j)) => Jid::parse(j).ok().and_then(|j| room.by_bare(&j.to_bare())),
            (None, None) => {
                return Err(StanzaError::bad_request()
                    .with_text("a role change names the occupant by nick"))
            }
        }
        .ok_or_else(|| item_not_found("nobody in the room has that nickname"))?;
        let o = &room.occupants[target];
        let target_aff = env.affiliation(room, &o.bare);
        may_set_role(actor, (o.role, target_aff), role).map_err(|r| {
            r.to_error(match role {
                Role::None => "you may not kick that occupant",
                Role::Visitor => "you may not take voice from that occupant",
                Role::Participant => "you may not change that occupant's voice or moderator status",
                Role::Moderator => "only admins and owners may make moderators",
            })
        })?;
        return Ok(Change::Role {
            key: o.key.clone(),
            role,
            reason,
        });
    }
    let Some(aff_text) = item.attr("affiliation") else {
        return Err(StanzaError::bad_request().with_text("an item needs a role or an affiliation"));
    };
    let affiliation = Affiliation::parse(aff_text).ok_or_else(|| {
        StanzaError::bad_request().with_text(format!("'{aff_text}' is not an affiliation"))
    })?;
    let jid = match (item.attr("jid"), item.attr("nick")) {
        (Some(j), _) => Jid::parse(j)
            .map_err(|e| StanzaError::jid_malformed().with_text(e.to_string()))?
            .to_bare(),
        (None, Some(n)) => {
            let key = crate::nick::enforce(n)
                .map(|n| crate::nick::key(&n))
                .unwrap_or_default();
            let i = room
                .by_key(&key)
                .ok_or_else(|| item_not_found("nobody in the room has that nickname"))?;
            room.occupants[i].bare.clone()
        }
        (None, None) => {
            return Err(
                StanzaError::bad_request().with_text("an affiliation change names the user by jid")
            )
        }
    };
    // §9.1: an admin (or owner) who tries to ban themselves is told it
    // would conflict with being one, before any other rule applies.
    if affiliation == Affiliation::Outcast && &jid == actor_jid {
        return Err(conflict("you may not ban yourself"));
    }
    let from = room.stored_affiliation(&jid.to_string());
    may_set_affiliation(actor.1, from, affiliation).map_err(|r| {
        r.to_error(match affiliation {
            Affiliation::Outcast => "you may not ban that user",
            Affiliation::Owner | Affiliation::Admin => {
                "only owners may grant or revoke admin and owner status"
            }
            _ => "you may not change that user's affiliation",
        })
    })?;
    Ok(Change::Affiliation {
        jid: jid.to_string(),
        affiliation,
        reason,
    })
}

/// Applies a role change to a present occupant.
fn apply_role(
    env: &Env,
    room: &mut Room,
    target: usize,
    role: Role,
    actor: Option<String>,
    reason: Option<String>,
    out: &mut Out,
) {
    if role == Role::None {
        let aff = env.affiliation(room, &room.occupants[target].bare);
        let notice = Notice {
            unavailable: true,
            codes: vec![307],
            actor,
            reason,
            item_override: Some((aff, Role::None)),
            ..Notice::default()
        };
        broadcast_presence(env, room, target, &notice, false, out);
        room.occupants.remove(target);
        return;
    }
    room.occupants[target].role = role;
    let notice = Notice {
        actor,
        reason,
        ..Notice::default()
    };
    broadcast_presence(env, room, target, &notice, false, out);
}

/// What an affiliation change means for a present occupant: banned (301)
/// or no longer a member of a members-only room (321) means out;
/// otherwise a role that fits the new affiliation. The owner and admin
/// lists of the configuration form come here too (`owner.rs`).
pub(crate) fn apply_affiliation(
    env: &Env,
    room: &mut Room,
    jid: &str,
    affiliation: Affiliation,
    actor: Option<String>,
    reason: Option<String>,
    out: &mut Out,
) {
    let Ok(bare) = Jid::parse(jid) else { return };
    let Some(idx) = room.by_bare(&bare) else {
        return;
    };
    let out_code = if affiliation == Affiliation::Outcast {
        Some(301)
    } else if room.config.members_only && affiliation < Affiliation::Member && !env.is_admin(&bare)
    {
        Some(321)
    } else {
        None
    };
    if let Some(code) = out_code {
        let notice = Notice {
            unavailable: true,
            codes: vec![code],
            actor,
            reason,
            item_override: Some((affiliation, Role::None)),
            ..Notice::default()
        };
        broadcast_presence(env, room, idx, &notice, false, out);
        room.occupants.remove(idx);
        return;
    }
    let effective = env.affiliation(room, &bare);
    let old = room.occupants[idx].role;
    let new = match default_role(effective, room.config.moderated) {
        // Someone given voice keeps it when becoming a plain user again.
        Role::Visitor if old == Role::Participant => Role::Participant,
        r => r,
    };
    room.occupants[idx].role = new;
    let notice = Notice {
        actor,
        reason,
        ..Notice::default()
    };
    broadcast_presence(env, room, idx, &notice, false, out);
}
