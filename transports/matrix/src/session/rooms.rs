//! Matrix rooms as XEP-0045 rooms: joining (by alias or id), the room's
//! state as the XMPP side sees it (occupants from `joined_members`,
//! their roles from the power levels, the topic as subject, whether the
//! room is encrypted), member changes as occupant presence (kicks 307,
//! bans 301, display name changes 303), and leaving.
//!
//! An XMPP resource that leaves a room leaves it on the XMPP side only:
//! the Matrix account stays joined (leaving an invite-only room on Matrix
//! could not be undone from here), and the room's occupant list is
//! dropped from memory until someone joins again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde_json::Value;
use switchboard_jid::Jid;
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::Element;

use super::stanzas::{self, Standing};
use super::{Purpose, Session};
use crate::address::{self, RoomRef};
use crate::events::Event;
use crate::http::{Method, Outcome};
use crate::text::{clean_line, path_segment, MAX_LINE};

/// Occupants shown on join at most: a room of ten thousand members
/// would otherwise send ten thousand presences to each resource.
pub const MAX_OCCUPANTS: usize = 2000;

/// The longest nick shown.
const MAX_NICK: usize = 64;

/// A resource waiting to enter a room.
#[derive(Debug)]
pub struct Joiner {
    pub full: Jid,
    pub nick: String,
    pub stanza: Element,
}

/// The parts of a room's state read when it is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Members,
    Topic,
    Name,
    Encryption,
    Power,
}

const PARTS: [Part; 5] = [
    Part::Members,
    Part::Topic,
    Part::Name,
    Part::Encryption,
    Part::Power,
];

/// A Matrix member as an occupant.
#[derive(Debug, Clone)]
pub struct Member {
    pub nick: String,
}

/// A room the session knows about.
#[derive(Debug)]
pub struct Room {
    /// The room's bare JID, as XMPP addressed it first.
    pub jid: Jid,
    pub name: Option<String>,
    pub topic: Option<String>,
    /// `None` until known.
    pub encrypted: Option<bool>,
    /// Joined members by user id (loaded rooms only).
    pub members: HashMap<String, Member>,
    pub power: HashMap<String, i64>,
    pub power_default: i64,
    /// The user's resources in the room, with their nicks.
    pub resources: BTreeMap<Jid, String>,
    /// Parts of the state still being read; the room is loaded at 0.
    pub loading: usize,
    pub loaded: bool,
    pub waiting: Vec<Joiner>,
    /// Members typing now.
    pub typing: BTreeSet<String>,
}

impl Room {
    pub fn new(jid: Jid) -> Room {
        Room {
            jid,
            name: None,
            topic: None,
            encrypted: None,
            members: HashMap::new(),
            power: HashMap::new(),
            power_default: 0,
            resources: BTreeMap::new(),
            loading: 0,
            loaded: false,
            waiting: Vec::new(),
            typing: BTreeSet::new(),
        }
    }

    pub fn standing(&self, user: &str) -> Standing {
        Standing::of_power(self.power.get(user).copied().unwrap_or(self.power_default))
    }

    /// The nick a member is shown with.
    pub fn nick_of(&self, user: &str) -> String {
        self.members
            .get(user)
            .map(|m| m.nick.clone())
            .unwrap_or_else(|| clean_line(address::localpart(user), MAX_NICK))
    }

    /// The member with this nick.
    pub fn user_of(&self, nick: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, m)| m.nick == nick)
            .map(|(u, _)| u.as_str())
    }

    /// A nick for `user` from their display name, unique in the room
    /// (the user id is added when another member has it already).
    pub fn make_nick(&self, me: &str, user: &str, display: Option<&str>) -> String {
        let base = display
            .map(|d| clean_line(d.trim(), MAX_NICK))
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| clean_line(address::localpart(user), MAX_NICK));
        let taken = self
            .members
            .iter()
            .any(|(u, m)| u != user && u != me && m.nick == base)
            || (user != me && self.resources.values().any(|n| *n == base));
        if taken {
            format!("{base} ({})", clean_line(user, MAX_LINE))
        } else {
            base
        }
    }

    /// The subject shown: the topic, marked when the room is encrypted.
    pub fn subject(&self) -> String {
        let topic = self.topic.clone().unwrap_or_default();
        if self.encrypted == Some(true) {
            let mark = "[end-to-end encrypted on Matrix: this gateway cannot read or send \
                        messages here]";
            if topic.is_empty() {
                mark.to_owned()
            } else {
                format!("{mark} {topic}")
            }
        } else {
            topic
        }
    }
}

impl Session {
    /// The room `id`, created (with its JID in id form) when new.
    pub(super) fn room_mut(&mut self, id: &str) -> &mut Room {
        let host = self.host.clone();
        self.rooms.entry(id.to_owned()).or_insert_with(|| {
            let jid = address::room_jid(&RoomRef::Id(id.to_owned()), &host)
                .unwrap_or_else(|| Jid::parse(&host).expect("the service host is a JID"));
            Room::new(jid)
        })
    }

    /// The room a JID's room reference names, if the session knows it.
    pub(super) fn room_id_of(&self, r: &RoomRef) -> Option<String> {
        match r {
            RoomRef::Id(id) => Some(id.clone()),
            RoomRef::Alias(_) => self.by_ref.get(r).cloned(),
        }
    }

    /// A resource asks to enter a room.
    pub(super) fn join(&mut self, joiner: Joiner, room: RoomRef) {
        if let Some(id) = self.room_id_of(&room) {
            if self.rooms.get(&id).is_some_and(|r| r.loaded) && self.joined.contains(&id) {
                self.enter(&id, joiner);
                return;
            }
        }
        let first = !self.joining.contains_key(&room);
        self.joining.entry(room.clone()).or_default().push(joiner);
        if first {
            let path = format!("/_matrix/client/v3/join/{}", path_segment(room.as_str()));
            self.request(
                Purpose::Join { room },
                Method::Post,
                path,
                Some(serde_json::json!({})),
            );
        }
    }

    pub(super) fn on_joined(&mut self, room: RoomRef, outcome: Outcome, _now: Instant) {
        let joiners = self.joining.remove(&room).unwrap_or_default();
        let id = match outcome {
            Ok(r) if r.ok() => r
                .json()
                .get("room_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Ok(r) => {
                let e = r.error();
                let err = match (e.status, e.errcode.as_str()) {
                    (403, _) | (_, "M_FORBIDDEN") => StanzaError::forbidden(),
                    (404, _) | (_, "M_NOT_FOUND") => {
                        StanzaError::new("item-not-found", ErrorType::Cancel)
                    }
                    _ if e.rate_limited() => {
                        StanzaError::new("resource-constraint", ErrorType::Wait)
                    }
                    _ => StanzaError::new("service-unavailable", ErrorType::Cancel),
                };
                for j in joiners {
                    self.refuse(
                        &j.stanza,
                        err.clone()
                            .with_text(format!("Matrix refused the join: {e}")),
                    );
                }
                return;
            }
            Err(f) => {
                for j in joiners {
                    self.refuse(
                        &j.stanza,
                        StanzaError::new("remote-server-timeout", ErrorType::Wait)
                            .with_text(f.to_string()),
                    );
                }
                return;
            }
        };
        let Some(id) = id else {
            for j in joiners {
                self.refuse(
                    &j.stanza,
                    StanzaError::new("undefined-condition", ErrorType::Cancel)
                        .with_text("the homeserver's answer to the join named no room"),
                );
            }
            return;
        };
        self.joined.insert(id.clone());
        self.by_ref.insert(room.clone(), id.clone());
        let host = self.host.clone();
        let room_jid = address::room_jid(&room, &host);
        let r = self.room_mut(&id);
        if r.resources.is_empty() {
            // The address the user joined with is the room's JID.
            if let Some(j) = room_jid {
                r.jid = j;
            }
        }
        if r.loaded {
            for j in joiners {
                self.enter(&id, j);
            }
            return;
        }
        let r = self.room_mut(&id);
        r.waiting.extend(joiners);
        if r.loading == 0 {
            r.loading = PARTS.len();
            for part in PARTS {
                let path = match part {
                    Part::Members => format!(
                        "/_matrix/client/v3/rooms/{}/joined_members",
                        path_segment(&id)
                    ),
                    other => format!(
                        "/_matrix/client/v3/rooms/{}/state/{}/",
                        path_segment(&id),
                        match other {
                            Part::Topic => "m.room.topic",
                            Part::Name => "m.room.name",
                            Part::Encryption => "m.room.encryption",
                            _ => "m.room.power_levels",
                        }
                    ),
                };
                self.request(
                    Purpose::Load {
                        room: id.clone(),
                        part,
                    },
                    Method::Get,
                    path,
                    None,
                );
            }
        }
    }

    pub(super) fn on_loaded(&mut self, id: &str, part: Part, outcome: Outcome) {
        let me = self.me.clone();
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        match outcome {
            Ok(r) if r.ok() => {
                let v = r.json();
                match part {
                    Part::Members => {
                        room.members.clear();
                        if let Some(joined) = v.get("joined").and_then(Value::as_object) {
                            let mut users: Vec<(&String, Option<&str>)> = joined
                                .iter()
                                .map(|(u, m)| (u, m.get("display_name").and_then(Value::as_str)))
                                .collect();
                            users.sort();
                            for (user, display) in users {
                                let nick = room.make_nick(&me, user, display);
                                room.members.insert(user.clone(), Member { nick });
                            }
                        }
                    }
                    Part::Topic => {
                        room.topic = v
                            .get("topic")
                            .and_then(Value::as_str)
                            .map(|t| crate::text::clean(t, MAX_LINE));
                    }
                    Part::Name => {
                        room.name = v
                            .get("name")
                            .and_then(Value::as_str)
                            .map(|t| clean_line(t, MAX_LINE));
                    }
                    Part::Encryption => room.encrypted = Some(true),
                    Part::Power => set_power(room, &v),
                }
            }
            Ok(r) if r.status == 404 => {
                if part == Part::Encryption {
                    room.encrypted = Some(false);
                }
            }
            Ok(r) => {
                tracing::debug!(room = id, ?part, error = %r.error(), "cannot read a room's state")
            }
            Err(e) => tracing::debug!(room = id, ?part, error = %e, "cannot read a room's state"),
        }
        room.loading = room.loading.saturating_sub(1);
        if room.loading == 0 {
            room.loaded = true;
            let waiting = std::mem::take(&mut room.waiting);
            for j in waiting {
                self.enter(id, j);
            }
        }
    }

    /// A resource enters a loaded room: the occupants, its own presence,
    /// the subject.
    fn enter(&mut self, id: &str, j: Joiner) {
        let me = self.me.clone();
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        if room
            .members
            .iter()
            .any(|(u, m)| *u != me && m.nick == j.nick)
        {
            let e = StanzaError::new("conflict", ErrorType::Cancel)
                .with_text("another member of the room has this nick");
            if let Some(r) = stanzas::join_error(&j.stanza, &e) {
                self.emit(r);
            }
            return;
        }
        let again = room
            .resources
            .insert(j.full.clone(), j.nick.clone())
            .is_some();
        let mut out = Vec::new();
        if !again {
            // By nick, so that every resource sees the same list.
            let mut members: Vec<(&String, &Member)> =
                room.members.iter().filter(|(u, _)| **u != me).collect();
            members.sort_by(|a, b| a.1.nick.cmp(&b.1.nick));
            for (user, m) in members.into_iter().take(MAX_OCCUPANTS) {
                out.push(stanzas::occupant(
                    &room.jid,
                    &m.nick,
                    &j.full,
                    room.standing(user),
                    address::user_jid(user, &self.host).as_ref(),
                ));
            }
        }
        out.push(stanzas::self_presence(
            &room.jid,
            &j.nick,
            &j.full,
            room.standing(&me),
            false,
        ));
        out.push(stanzas::subject(&room.jid, None, &j.full, &room.subject()));
        for s in out {
            self.emit(s);
        }
    }

    /// A resource leaves a room (on the XMPP side).
    pub(super) fn leave(&mut self, full: &Jid, r: &RoomRef) {
        let Some(id) = self.room_id_of(r) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        let Some(nick) = room.resources.remove(full) else {
            return;
        };
        let p = stanzas::self_unavailable(&room.jid, &nick, full, &[], None);
        if room.resources.is_empty() && !self.dm_of.contains_key(&id) {
            // Nobody reads it any more: forget the occupants until the
            // next join, which reads them again.
            room.members.clear();
            room.typing.clear();
            room.loaded = false;
        }
        self.emit(p);
    }

    /// A state event in a room's timeline or state section.
    pub(super) fn on_state(&mut self, id: &str, e: &Event, live: bool) {
        match e.kind.as_str() {
            "m.room.member" => self.on_member(id, e, live),
            "m.room.topic" => {
                let topic = e.str("topic").map(|t| crate::text::clean(t, MAX_LINE));
                let Some(room) = self.rooms.get_mut(id) else {
                    return;
                };
                room.topic = topic;
                if live {
                    let nick = e.sender.as_deref().map(|s| room.nick_of(s));
                    let subject = room.subject();
                    let out: Vec<Element> = room
                        .resources
                        .keys()
                        .map(|full| stanzas::subject(&room.jid, nick.as_deref(), full, &subject))
                        .collect();
                    for s in out {
                        self.emit(s);
                    }
                }
            }
            "m.room.name" => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.name = e.str("name").map(|t| clean_line(t, MAX_LINE));
                }
            }
            "m.room.power_levels" => {
                if let Some(room) = self.rooms.get_mut(id) {
                    set_power(room, &e.content);
                }
            }
            "m.room.encryption" => {
                let room = self.room_mut(id);
                let was = room.encrypted;
                room.encrypted = Some(true);
                if live && was != Some(true) {
                    let subject = room.subject();
                    let out: Vec<Element> = room
                        .resources
                        .keys()
                        .map(|full| stanzas::subject(&room.jid, None, full, &subject))
                        .collect();
                    for s in out {
                        self.emit(s);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_member(&mut self, id: &str, e: &Event, live: bool) {
        let Some(user) = e.state_key.clone() else {
            return;
        };
        let membership = e.str("membership").unwrap_or("");
        let me = self.me.clone();
        if user == me && matches!(membership, "leave" | "ban") {
            self.joined.remove(id);
        }
        if user == me && membership == "join" {
            self.joined.insert(id.to_owned());
        }
        let host = self.host.clone();
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        if !room.loaded {
            return;
        }
        let by_other = e.sender.as_deref().is_some_and(|s| s != user);
        let reason = e.str("reason").map(|r| clean_line(r, MAX_LINE));
        let mut out = Vec::new();
        match membership {
            "join" => {
                let display = e.str("displayname");
                let old = room.members.get(&user).map(|m| m.nick.clone());
                let nick = match &old {
                    // The same name: the same nick, even if it carries
                    // the user id.
                    Some(n) if room.make_nick(&me, &user, display) == *n => n.clone(),
                    _ => room.make_nick(&me, &user, display),
                };
                room.members
                    .insert(user.clone(), Member { nick: nick.clone() });
                if user == me || !live || old.as_deref() == Some(nick.as_str()) {
                    return;
                }
                let standing = room.standing(&user);
                let jid = address::user_jid(&user, &host);
                for full in room.resources.keys() {
                    if let Some(old) = &old {
                        out.push(stanzas::occupant_unavailable(
                            &room.jid,
                            old,
                            full,
                            &[303],
                            None,
                            Some(&nick),
                        ));
                    }
                    out.push(stanzas::occupant(
                        &room.jid,
                        &nick,
                        full,
                        standing,
                        jid.as_ref(),
                    ));
                }
            }
            "leave" | "ban" => {
                let code = match (membership, by_other) {
                    ("ban", _) => Some(301),
                    (_, true) => Some(307),
                    _ => None,
                };
                let codes: Vec<u16> = code.into_iter().collect();
                if user == me {
                    let resources = std::mem::take(&mut room.resources);
                    for (full, nick) in resources {
                        out.push(stanzas::self_unavailable(
                            &room.jid,
                            &nick,
                            &full,
                            &codes,
                            reason.as_deref(),
                        ));
                    }
                    room.loaded = false;
                    room.members.clear();
                } else if let Some(m) = room.members.remove(&user) {
                    if live {
                        for full in room.resources.keys() {
                            out.push(stanzas::occupant_unavailable(
                                &room.jid,
                                &m.nick,
                                full,
                                &codes,
                                reason.as_deref(),
                                None,
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        for s in out {
            self.emit(s);
        }
    }
}

/// Reads `m.room.power_levels` content.
fn set_power(room: &mut Room, v: &Value) {
    room.power.clear();
    if let Some(users) = v.get("users").and_then(Value::as_object) {
        for (u, l) in users.iter().take(10_000) {
            if let Some(l) = l.as_i64() {
                room.power.insert(u.clone(), l);
            }
        }
    }
    room.power_default = v.get("users_default").and_then(Value::as_i64).unwrap_or(0);
}
