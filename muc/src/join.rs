//! Presence to occupant JIDs (XEP-0045 §7.1–§7.3, §7.6, §7.14, §10.1):
//! entering (and creating) a room with every check the XEP lists, the
//! join sequence (others' presence, one's own with its status codes,
//! history, subject), presence changes, nick changes, and leaving.
//!
//! The checks run in the order of §7.2's subsections: locked room (new
//! and not configured), ban, members-only, password, nick in use or
//! registered by someone else, room full. Each refusal is a presence
//! error from the occupant JID carrying an empty `<x xmlns='…muc'/>` (never
//! the password that was sent).

use switchboard_jid::Jid;
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::config::RoomConfig;
use crate::history::{self, HistoryRequest};
use crate::limits::{self, Bucket};
use crate::muc::{broadcast_presence, conflict, item_not_found, Env, Muc};
use crate::nick;
use crate::ns;
use crate::output::Out;
use crate::roles::{default_role, Affiliation, Role};
use crate::room::{Notice, Occupant, Room, Session};

/// A presence error about an occupant JID, with the `<x/>` the XEP shows
/// (§7.2.6 and on) and nothing the user sent.
pub(crate) fn presence_error(p: &Element, err: &StanzaError) -> Element {
    let mut e = Element::new("presence", p.ns.clone()).with_attr("type", "error");
    if let Some(to) = p.attr("to") {
        e.set_attr("from", to);
    }
    if let Some(from) = p.attr("from") {
        e.set_attr("to", from);
    }
    if let Some(id) = p.attr("id") {
        e.set_attr("id", id);
    }
    e.append_child(Element::new("x", ns::MUC));
    e.append_child(err.to_element(&p.ns));
    e
}

impl Muc {
    pub(crate) fn on_presence(
        &mut self,
        p: &Element,
        from: &Jid,
        local: &str,
        nick: Option<&str>,
        now: u64,
        out: &mut Out,
    ) {
        match p.attr("type") {
            None | Some("available") => {}
            Some("unavailable") => return self.leave(p, from, local, now, out),
            // §7.2 leaves errors from occupants to the service; Prosody
            // removes the session with 333, and so does this.
            Some("error") => return self.drop_session(from, local, out),
            // Subscriptions and probes mean nothing to a room.
            Some(_) => return,
        }
        let Some(nick) = nick else {
            let err = StanzaError::jid_malformed()
                .with_text("say which nickname to use: room@service/nick");
            out.send(presence_error(p, &err));
            return;
        };
        let idx = self.rooms.get(local).and_then(|r| r.by_session(from));
        match idx {
            Some(i) => self.change(p, from, local, nick, i, now, out),
            None => self.join(p, from, local, nick, now, out),
        }
    }

    fn join(
        &mut self,
        p: &Element,
        from: &Jid,
        local: &str,
        raw_nick: &str,
        now: u64,
        out: &mut Out,
    ) {
        let x = p.get_child("x", ns::MUC);
        let bare = from.to_bare();
        let shown = match nick::enforce(raw_nick) {
            Ok(n) => n,
            Err(e) => {
                out.send(presence_error(
                    p,
                    &StanzaError::jid_malformed().with_text(e.to_string()),
                ));
                return;
            }
        };
        let key = nick::key(&shown);
        let mut created = false;
        if !self.rooms.contains_key(local) {
            if let Err(e) = self.may_create_room(&bare) {
                out.send(presence_error(p, &e));
                return;
            }
            let mut room = Room::new(
                local,
                &self.env.host,
                RoomConfig::defaults(&self.env.settings.bounds),
                now,
            );
            room.set_affiliation(&bare.to_string(), Affiliation::Owner, None);
            // §10.1.1: a client that did not say it speaks MUC gets an
            // instant room; one that did configures it first.
            room.locked = x.is_some();
            self.rooms.insert(local.to_string(), room);
            created = true;
        }
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("present or just created");
        let aff = env.affiliation(room, &bare);
        if let Err(e) = admit(env, room, x, &bare, aff, &key) {
            out.send(presence_error(p, &e));
            return;
        }
        let existing = room.occupants.iter().position(|o| o.key == key);
        let self_codes = |room: &Room| {
            let mut c = Vec::new();
            if room.config.whois == crate::config::Whois::Anyone {
                c.push(100);
            }
            if room.config.archiving {
                c.push(170);
            }
            if created {
                c.push(201);
            }
            if shown != raw_nick {
                c.push(210);
            }
            c
        };
        let session = Session {
            jid: from.clone(),
            presence: p.clone(),
        };
        let req = HistoryRequest::from_join(x);
        match existing {
            // Another resource of the same user: it shares the nick and
            // gets the room as the first one did; the others see no change.
            Some(i) => {
                room.occupants[i].sessions.push(session);
                let codes = self_codes(room);
                join_sequence(env, room, i, from, p, &codes, &req, now, out);
            }
            None => {
                let occupant = Occupant {
                    nick: shown.clone(),
                    key,
                    bare: bare.clone(),
                    sessions: vec![session],
                    role: default_role(aff, room.config.moderated),
                    occupant_id: env.occupant_id(&room.jid, &bare),
                    bucket: Bucket::full(env.settings.message_rate, now),
                };
                room.occupants.push(occupant);
                let i = room.occupants.len() - 1;
                broadcast_presence(env, room, i, &Notice::default(), true, out);
                let codes = self_codes(room);
                join_sequence(env, room, i, from, p, &codes, &req, now, out);
            }
        }
        if created {
            self.save(local, out);
        }
    }

    /// Who may create the room, and how many rooms they may own.
    fn may_create_room(&self, bare: &Jid) -> Result<(), StanzaError> {
        if !self.env.may_create(bare) {
            let who = match self.env.settings.create {
                crate::settings::CreatePolicy::Admins => "the service's admins".to_string(),
                _ => format!("users of {}", self.env.settings.domains.join(", ")),
            };
            return Err(StanzaError::not_allowed().with_text(format!(
                "the room does not exist, and only {who} may create rooms here"
            )));
        }
        let max = self.env.settings.max_rooms_per_user;
        let owned = self
            .rooms
            .values()
            .filter(|r| r.stored_affiliation(&bare.to_string()) == Affiliation::Owner)
            .count();
        if owned >= max && !self.env.is_admin(bare) {
            return Err(limits::too_many_rooms(max));
        }
        Ok(())
    }

    /// Presence from someone already in the room: a change of status, a
    /// nick change, or a client rejoining after losing track (it sent
    /// `<x xmlns='…muc'/>` again: it gets the join sequence again, as
    /// Prosody does).
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        p: &Element,
        from: &Jid,
        local: &str,
        raw_nick: &str,
        idx: usize,
        now: u64,
        out: &mut Out,
    ) {
        let env = &self.env;
        let room = self
            .rooms
            .get_mut(local)
            .expect("the caller found the room");
        let same_nick =
            nick::enforce(raw_nick).map(|n| nick::key(&n)) == Ok(room.occupants[idx].key.clone());
        if !same_nick {
            return change_nick(env, room, p, from, raw_nick, idx, out);
        }
        let occ = &mut room.occupants[idx];
        if let Some(pos) = occ.sessions.iter().position(|s| &s.jid == from) {
            let mut s = occ.sessions.remove(pos);
            s.presence = p.clone();
            occ.sessions.push(s);
        }
        if let Some(x) = p.get_child("x", ns::MUC) {
            let req = HistoryRequest::from_join(Some(x));
            let mut codes = Vec::new();
            if room.config.whois == crate::config::Whois::Anyone {
                codes.push(100);
            }
            join_sequence(env, room, idx, from, p, &codes, &req, now, out);
            return;
        }
        let notice = Notice::default().reflecting(from, p);
        broadcast_presence(env, room, idx, &notice, false, out);
    }

    /// Unavailable presence: one session leaves; the occupant leaves with
    /// its last session; a temporary room goes with its last occupant.
    fn leave(&mut self, p: &Element, from: &Jid, local: &str, _now: u64, out: &mut Out) {
        let env = &self.env;
        let Some(room) = self.rooms.get_mut(local) else {
            return;
        };
        let Some(idx) = room.by_session(from) else {
            return;
        };
        let aff = env.affiliation(room, &room.occupants[idx].bare);
        if room.occupants[idx].sessions.len() > 1 {
            // Only this resource leaves: it alone hears its departure.
            let mut gone = room.occupants[idx].clone();
            gone.sessions = vec![Session {
                jid: from.clone(),
                presence: p.clone(),
            }];
            room.occupants[idx].sessions.retain(|s| &s.jid != from);
            let notice = Notice {
                unavailable: true,
                item_override: Some((aff, Role::None)),
                ..Notice::default()
            }
            .reflecting(from, p);
            out.send(room.presence(
                &gone,
                aff,
                gone.role == Role::Moderator,
                from,
                true,
                &notice,
            ));
            return;
        }
        room.occupants[idx].sessions[0].presence = p.clone();
        let notice = Notice {
            unavailable: true,
            item_override: Some((aff, Role::None)),
            ..Notice::default()
        }
        .reflecting(from, p);
        broadcast_presence(env, room, idx, &notice, false, out);
        room.occupants.remove(idx);
        self.after_departure(local, out);
    }

    /// A presence error from an occupant's client: that session is gone
    /// (status 333, "removed because of a technical problem").
    pub(crate) fn drop_session(&mut self, from: &Jid, local: &str, out: &mut Out) {
        let env = &self.env;
        let Some(room) = self.rooms.get_mut(local) else {
            return;
        };
        let Some(idx) = room.by_session(from) else {
            return;
        };
        if room.occupants[idx].sessions.len() > 1 {
            room.occupants[idx].sessions.retain(|s| &s.jid != from);
            return;
        }
        let aff = env.affiliation(room, &room.occupants[idx].bare);
        let notice = Notice {
            unavailable: true,
            codes: vec![333],
            item_override: Some((aff, Role::None)),
            ..Notice::default()
        };
        broadcast_presence(env, room, idx, &notice, true, out);
        room.occupants.remove(idx);
        self.after_departure(local, out);
    }

    /// A temporary room with nobody left is destroyed; so is a room its
    /// creator left before configuring it.
    pub(crate) fn after_departure(&mut self, local: &str, out: &mut Out) {
        let Some(room) = self.rooms.get(local) else {
            return;
        };
        if room.occupants.is_empty() && (room.is_temporary() || room.locked) {
            self.forget_room(local, out);
        }
    }
}

/// The checks of §7.2 for someone entering an existing room.
fn admit(
    env: &Env,
    room: &Room,
    x: Option<&Element>,
    bare: &Jid,
    aff: Affiliation,
    key: &str,
) -> Result<(), StanzaError> {
    if room.locked && aff != Affiliation::Owner {
        return Err(item_not_found(
            "the room is being set up by its owner; try again in a moment",
        ));
    }
    if aff == Affiliation::Outcast {
        return Err(StanzaError::forbidden().with_text("you are banned from this room"));
    }
    if room.config.members_only && aff < Affiliation::Member {
        return Err(StanzaError::new("registration-required", ErrorType::Auth)
            .with_text("this room is for members only"));
    }
    if let Some(pw) = &room.config.password {
        let given = x.and_then(|x| x.child_text("password", ns::MUC));
        if aff < Affiliation::Owner && given.as_deref() != Some(pw.as_str()) {
            return Err(
                StanzaError::new("not-authorized", ErrorType::Auth).with_text(if given.is_none() {
                    "this room needs a password"
                } else {
                    "that is not the room's password"
                }),
            );
        }
    }
    if let Some(o) = room.occupants.iter().find(|o| o.key == key) {
        if &o.bare != bare {
            return Err(conflict("that nickname is in use in this room"));
        }
    }
    if let Some(owner) = room.nick_registrant(key) {
        if owner != bare.to_string() {
            return Err(conflict(
                "that nickname is registered with this room by someone else",
            ));
        }
    }
    let is_new_nick = !room.occupants.iter().any(|o| o.key == key);
    let limit = room.config.occupant_limit(&env.settings.bounds);
    if is_new_nick && room.occupants.len() >= limit && aff < Affiliation::Admin {
        return Err(limits::room_full(limit));
    }
    Ok(())
}

/// What one session sees on entering: everyone else's presence, its
/// own (with its status codes), the history, and the subject (§7.2.3,
/// §7.2.15, §7.2.16, in that order).
#[allow(clippy::too_many_arguments)]
pub(crate) fn join_sequence(
    env: &Env,
    room: &Room,
    idx: usize,
    to: &Jid,
    p: &Element,
    self_codes: &[u16],
    req: &HistoryRequest,
    now: u64,
    out: &mut Out,
) {
    let me = &room.occupants[idx];
    let i_moderate = me.role == Role::Moderator;
    for (i, o) in room.occupants.iter().enumerate() {
        if i == idx {
            continue;
        }
        let aff = env.affiliation(room, &o.bare);
        out.send(room.presence(o, aff, i_moderate, to, false, &Notice::default()));
    }
    let notice = Notice {
        self_codes: self_codes.to_vec(),
        ..Notice::default()
    }
    .reflecting(to, p);
    let aff = env.affiliation(room, &me.bare);
    out.send(room.presence(me, aff, i_moderate, to, true, &notice));
    for e in history::select(&room.history, req, now) {
        out.send(history::delayed(e, &room.jid, to));
    }
    out.send(subject_message(room, to));
}

/// The subject as a joining occupant gets it: from the nick that set it
/// (or the room), with no body; an empty `<subject/>` when there is none.
pub(crate) fn subject_message(room: &Room, to: &Jid) -> Element {
    let from = match &room.subject {
        Some(s) if !s.by.is_empty() => room.occupant_jid(&s.by),
        _ => room.jid.clone(),
    };
    let mut m = Element::new("message", ns::CLIENT)
        .with_attr("type", "groupchat")
        .with_attr("from", from)
        .with_attr("to", to.to_string())
        .with_attr("id", format!("subject-{}", room.local));
    let mut subject = Element::new("subject", ns::CLIENT);
    if let Some(s) = &room.subject {
        subject.append_text(s.text.clone());
    }
    m.append_child(subject);
    if let Some(s) = room.subject.as_ref().filter(|s| s.at > 0) {
        m.append_child(
            Element::new("delay", ns::DELAY)
                .with_attr("from", room.jid.clone())
                .with_attr("stamp", crate::time::stamp(s.at)),
        );
    }
    m
}

/// §7.6: the occupant takes a new nick; everyone sees it leave with 303
/// and come back.
fn change_nick(
    env: &Env,
    room: &mut Room,
    p: &Element,
    from: &Jid,
    raw_nick: &str,
    idx: usize,
    out: &mut Out,
) {
    let shown = match nick::enforce(raw_nick) {
        Ok(n) => n,
        Err(e) => {
            out.send(presence_error(
                p,
                &StanzaError::jid_malformed().with_text(e.to_string()),
            ));
            return;
        }
    };
    let key = nick::key(&shown);
    let bare = room.occupants[idx].bare.clone();
    if room
        .occupants
        .iter()
        .enumerate()
        .any(|(i, o)| i != idx && o.key == key)
    {
        out.send(presence_error(
            p,
            &conflict("that nickname is in use in this room"),
        ));
        return;
    }
    if room
        .nick_registrant(&key)
        .is_some_and(|o| o != bare.to_string())
    {
        out.send(presence_error(
            p,
            &conflict("that nickname is registered with this room by someone else"),
        ));
        return;
    }
    let aff = env.affiliation(room, &bare);
    let leaving = Notice {
        unavailable: true,
        codes: vec![303],
        new_nick: Some(shown.clone()),
        item_override: Some((aff, room.occupants[idx].role)),
        ..Notice::default()
    };
    broadcast_presence(env, room, idx, &leaving, false, out);
    let occ = &mut room.occupants[idx];
    occ.nick = shown.clone();
    occ.key = key;
    if let Some(pos) = occ.sessions.iter().position(|s| &s.jid == from) {
        let mut s = occ.sessions.remove(pos);
        s.presence = p.clone();
        occ.sessions.push(s);
    }
    let back = Notice {
        self_codes: if shown != raw_nick { vec![210] } else { vec![] },
        ..Notice::default()
    }
    .reflecting(from, p);
    broadcast_presence(env, room, idx, &back, false, out);
}
