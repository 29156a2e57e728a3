//! [`Muc`]: every room of one service, and the dispatch of a stanza to
//! the handler for its kind and addressee. Sans-IO: a stanza and the time
//! go in, an [`Out`] comes out (see `output.rs`).
//!
//! Addressing (XEP-0045 §4.1, §6 onwards):
//!
//! | to | presence | message | iq |
//! | --- | --- | --- | --- |
//! | the service | ignored | refused | disco, ping, ad-hoc commands |
//! | a room | refused (no nick) | groupchat, invitations, declines, voice requests | admin, owner, disco, register, MAM, moderation, vCard, ping |
//! | an occupant | join, change, nick change, leave | private message | self-ping, or forwarded to the occupant |

use std::collections::{BTreeSet, HashMap};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::output::{ArchiveOp, Out, Persist};
use crate::roles::{Affiliation, Role};
use crate::room::{Notice, Room};
use crate::settings::{CreatePolicy, Settings};
use crate::stats::Stats;
use crate::{ns, record};

/// What every handler may read: who the service is and whom it trusts.
#[derive(Debug, Clone)]
pub struct Env {
    pub host: String,
    pub settings: Settings,
    /// Bare JIDs with every right in every room: the host's admins, the
    /// service's `admins=`, and the served domains themselves.
    pub admins: BTreeSet<String>,
    secret: Vec<u8>,
}

impl Env {
    pub fn is_admin(&self, bare: &Jid) -> bool {
        self.admins.contains(&bare.to_string())
    }

    /// The affiliation rights are checked with: the host's admins are
    /// owners everywhere (§5.2 leaves "service admins" to the service;
    /// Prosody and ejabberd give them every right).
    pub fn affiliation(&self, room: &Room, bare: &Jid) -> Affiliation {
        if self.is_admin(bare) {
            Affiliation::Owner
        } else {
            room.stored_affiliation(&bare.to_string())
        }
    }

    /// XEP-0421: a stable id per (room, user) that reveals neither.
    pub fn occupant_id(&self, room: &str, bare: &Jid) -> String {
        use base64::Engine as _;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(room.as_bytes());
        mac.update(&[0]);
        mac.update(bare.to_string().as_bytes());
        let out = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&out[..18])
    }

    /// Whether `user` may create rooms here.
    pub fn may_create(&self, user: &Jid) -> bool {
        self.is_admin(user)
            || match self.settings.create {
                CreatePolicy::Anyone => true,
                CreatePolicy::Local => self.settings.domains.iter().any(|d| d == user.domain()),
                CreatePolicy::Admins => false,
            }
    }
}

/// Unique ids for stanzas (XEP-0359) and proxied IQs: a random start and
/// a xorshift step, so ids are unique in a run and not guessable.
#[derive(Debug, Clone)]
pub struct Ids(u64);

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids(seed | 1)
    }

    pub fn fresh(&mut self) -> String {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        format!("{:016x}", x.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }
}

/// An IQ forwarded to an occupant, waiting for its answer (IQs to
/// occupant JIDs are relayed with the id rewritten).
#[derive(Debug, Clone)]
pub struct Proxied {
    pub original_id: Option<String>,
    /// The requester's full JID.
    pub requester: String,
    /// The JID the requester addressed (the occupant JID).
    pub addressed: String,
}

/// Every room of one service.
pub struct Muc {
    pub env: Env,
    pub rooms: HashMap<String, Room>,
    pub ids: Ids,
    pub proxied: HashMap<String, Proxied>,
    /// Occupants and messages, kept current for the metrics endpoint.
    pub stats: Stats,
    pub(crate) commands: crate::commands::AdminCommands,
}

impl Muc {
    /// A service at `host` with these settings; `admins` are the host's
    /// admins (bare JIDs); `secret` keys the occupant ids; `seed` starts
    /// the id generator.
    pub fn new(
        host: &str,
        settings: Settings,
        admins: &[String],
        secret: Vec<u8>,
        seed: u64,
    ) -> Muc {
        let mut all: BTreeSet<String> = admins.iter().cloned().collect();
        all.extend(settings.admins.iter().cloned());
        // The served domains' own JIDs are the servers themselves, which
        // no user can speak for (a server stamps `from` on what its
        // clients send): a request from one is the operator's, such as
        // `switchboard rooms` over the admin socket.
        all.extend(settings.domains.iter().cloned());
        let env = Env {
            host: host.to_string(),
            settings,
            admins: all,
            secret,
        };
        let commands = crate::commands::AdminCommands::new(&env);
        Muc {
            env,
            rooms: HashMap::new(),
            ids: Ids::new(seed),
            proxied: HashMap::new(),
            stats: Stats::default(),
            commands,
        }
    }

    /// Adds rooms read from the store at start-up.
    pub fn restore(&mut self, rooms: Vec<Room>) {
        for r in rooms {
            self.rooms.insert(r.local.clone(), r);
        }
        self.recount();
    }

    /// Counts every room's occupants again.
    fn recount(&mut self) {
        self.stats.occupants = self.rooms.values().map(|r| r.occupants.len()).sum();
    }

    /// Handles one stanza that arrived at the service, keeping the
    /// occupant total current: a stanza to a room changes that room's
    /// occupants only; one to the service itself (an admin's command)
    /// may change any room's.
    pub fn handle(&mut self, stanza: &Element, now: u64) -> Out {
        let room = stanza
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .and_then(|t| t.node().map(str::to_string));
        let present = |muc: &Muc| {
            room.as_deref()
                .and_then(|r| muc.rooms.get(r))
                .map_or(0, |r| r.occupants.len())
        };
        let before = present(self);
        let out = self.dispatch(stanza, now);
        match room {
            Some(_) => {
                self.stats.occupants = (self.stats.occupants + present(self)).saturating_sub(before)
            }
            None => self.recount(),
        }
        out
    }

    fn dispatch(&mut self, stanza: &Element, now: u64) -> Out {
        let mut out = Out::default();
        let Some(from) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return out;
        };
        let to = match stanza.attr("to").map(Jid::parse) {
            Some(Ok(t)) => t,
            _ => {
                out.send_opt(error_reply(stanza, &StanzaError::jid_malformed()));
                return out;
            }
        };
        match (to.node(), stanza.name.as_str()) {
            (None, "iq") => self.service_iq(stanza, &from, now, &mut out),
            (None, "message") => out.send_opt(error_reply(
                stanza,
                &StanzaError::service_unavailable()
                    .with_text("send messages to a room, not to the service"),
            )),
            (None, _) => {}
            (Some(local), "presence") => {
                let local = local.to_string();
                self.on_presence(stanza, &from, &local, to.resource(), now, &mut out)
            }
            (Some(local), "message") => {
                let local = local.to_string();
                match to.resource() {
                    Some(nick) => self.private_message(stanza, &from, &local, nick, now, &mut out),
                    None => self.room_message(stanza, &from, &local, now, &mut out),
                }
            }
            (Some(local), "iq") => {
                let local = local.to_string();
                match to.resource() {
                    Some(nick) => self.occupant_iq(stanza, &from, &local, nick, &mut out),
                    None => self.room_iq(stanza, &from, &local, now, &mut out),
                }
            }
            _ => {}
        }
        out
    }

    /// IQs to a room's bare JID.
    fn room_iq(&mut self, iq: &Element, from: &Jid, local: &str, now: u64, out: &mut Out) {
        let kind = iq.attr("type").unwrap_or("");
        if kind != "get" && kind != "set" {
            return;
        }
        let Some(payload) = iq.first_element() else {
            out.send_opt(error_reply(iq, &StanzaError::bad_request()));
            return;
        };
        let exists = self.rooms.get(local).is_some_and(|r| {
            !r.locked || self.env.affiliation(r, &from.to_bare()) == Affiliation::Owner
        });
        // The owner configures a new room before it exists for others.
        if !exists {
            out.send_opt(error_reply(iq, &item_not_found("no such room")));
            return;
        }
        match (payload.ns.as_str(), payload.name.as_str()) {
            (ns::MUC_ADMIN, "query") => self.admin_iq(iq, payload, from, local, now, out),
            (ns::MUC_OWNER, "query") => self.owner_iq(iq, payload, from, local, now, out),
            (ns::DISCO_INFO, "query") if kind == "get" => {
                self.room_disco_info(iq, payload, from, local, out)
            }
            (ns::DISCO_ITEMS, "query") if kind == "get" => {
                self.room_disco_items(iq, from, local, out)
            }
            (ns::REGISTER, "query") => self.register_iq(iq, payload, from, local, out),
            (ns::MAM, "query") => self.mam_iq(iq, payload, from, local, out),
            (ns::MODERATE, "moderate") if kind == "set" => {
                self.moderate_iq(iq, payload, from, local, out)
            }
            (ns::FASTEN, "apply-to") if kind == "set" => {
                self.moderate_iq(iq, payload, from, local, out)
            }
            (ns::VCARD, "vCard") => self.vcard_iq(iq, payload, from, local, out),
            (ns::PING, "ping") if kind == "get" => {
                out.send(switchboard_service::stanza::iq_result(iq, None))
            }
            _ => out.send_opt(error_reply(iq, &StanzaError::service_unavailable())),
        }
    }

    /// A record save for a persistent room (nothing for a temporary one).
    pub(crate) fn save(&self, local: &str, out: &mut Out) {
        if let Some(room) = self.rooms.get(local) {
            if room.config.persistent {
                out.persist.push(Persist::Save {
                    room: local.to_string(),
                    record: record::encode(room),
                });
            }
        }
    }

    /// Removes a room with everything stored for it.
    pub(crate) fn forget_room(&mut self, local: &str, out: &mut Out) {
        if let Some(room) = self.rooms.remove(local) {
            out.persist.push(Persist::Remove {
                room: local.to_string(),
            });
            out.archive.push(ArchiveOp::RemoveOwner { owner: room.jid });
        }
    }

    /// Tells everyone the service is going away (status 332: removed
    /// because the system is shutting down); nothing stored changes.
    pub fn shutdown(&mut self) -> Out {
        let mut out = Out::default();
        for room in self.rooms.values() {
            for idx in 0..room.occupants.len() {
                let aff = self.env.affiliation(room, &room.occupants[idx].bare);
                let notice = Notice {
                    unavailable: true,
                    codes: vec![332],
                    item_override: Some((aff, Role::None)),
                    reason: Some("the group chat service is shutting down".into()),
                    ..Notice::default()
                };
                broadcast_presence(&self.env, room, idx, &notice, false, &mut out);
            }
        }
        out
    }
}

/// Sends the presence of occupant `idx` to every session in the room
/// (`others_only`: not to the occupant's own sessions).
pub(crate) fn broadcast_presence(
    env: &Env,
    room: &Room,
    idx: usize,
    notice: &Notice,
    others_only: bool,
    out: &mut Out,
) {
    let about = &room.occupants[idx];
    let aff = env.affiliation(room, &about.bare);
    for (to, viewer_mod, owner) in room.audience() {
        let is_self = owner == idx;
        if is_self && others_only {
            continue;
        }
        out.send(room.presence(about, aff, viewer_mod, &to, is_self, notice));
    }
}

/// Sends `stanza` (without `to`) to every session in the room.
pub(crate) fn broadcast_message(room: &Room, stanza: &Element, out: &mut Out) {
    for o in &room.occupants {
        for s in &o.sessions {
            out.send(crate::room::addressed(stanza, &s.jid));
        }
    }
}

pub(crate) fn item_not_found(text: &str) -> StanzaError {
    StanzaError::new("item-not-found", ErrorType::Cancel).with_text(text)
}

pub(crate) fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new("not-acceptable", ErrorType::Modify).with_text(text)
}

pub(crate) fn conflict(text: &str) -> StanzaError {
    StanzaError::new("conflict", ErrorType::Cancel).with_text(text)
}
