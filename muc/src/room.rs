//! One room's state: configuration, affiliations (with registered
//! nicks), occupants and their sessions, subject, history; and the
//! presence stanzas occupants see of each other.
//!
//! Everything here is plain data and pure functions of it; the handlers
//! in the other files change a [`Room`] and collect what to send in an
//! [`Out`](crate::output::Out).

use std::collections::{BTreeMap, VecDeque};

use switchboard_jid::Jid;
use switchboard_xml::{Element, Node};

use crate::config::{RoomConfig, Whois};
use crate::history::HistoryEntry;
use crate::limits::Bucket;
use crate::ns;
use crate::roles::{Affiliation, Role};

/// One connected resource of an occupant. Several resources of one user
/// share a nick, as Prosody's multi-session nicks do (XEP-0045 leaves it
/// to the service).
#[derive(Debug, Clone)]
pub struct Session {
    pub jid: Jid,
    /// The last available presence it sent, as received.
    pub presence: Element,
}

/// Someone in the room.
#[derive(Debug, Clone)]
pub struct Occupant {
    /// As shown (the Nickname profile's output).
    pub nick: String,
    /// The comparison form ([`crate::nick::key`]).
    pub key: String,
    /// The user's real bare JID.
    pub bare: Jid,
    /// In join order; the last one's presence is what others see.
    pub sessions: Vec<Session>,
    pub role: Role,
    /// XEP-0421: stable per (room, user), opaque to others.
    pub occupant_id: String,
    pub bucket: Bucket,
}

impl Occupant {
    pub fn has_session(&self, jid: &Jid) -> bool {
        self.sessions.iter().any(|s| &s.jid == jid)
    }

    /// The presence others see: the latest session's.
    pub fn presence(&self) -> &Element {
        &self
            .sessions
            .last()
            .expect("an occupant has a session")
            .presence
    }

    /// The full JID others are shown.
    pub fn shown_jid(&self) -> &Jid {
        &self.sessions.last().expect("an occupant has a session").jid
    }
}

/// A user's standing with the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffItem {
    pub affiliation: Affiliation,
    /// A nick registered with the room (§7.10), reserved for this user.
    pub nick: Option<String>,
    pub reason: Option<String>,
}

/// The room's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub text: String,
    /// The nick that set it (empty when set by the service).
    pub by: String,
    pub at: u64,
}

/// A room.
#[derive(Debug, Clone)]
pub struct Room {
    /// The localpart, the room's key in the service.
    pub local: String,
    /// `local@service`.
    pub jid: String,
    pub config: RoomConfig,
    /// By real bare JID.
    pub affiliations: BTreeMap<String, AffItem>,
    pub occupants: Vec<Occupant>,
    pub subject: Option<Subject>,
    pub history: VecDeque<HistoryEntry>,
    /// Created and not configured yet (§10.1.2): only the owner may enter.
    pub locked: bool,
    /// The room's vCard (its avatar), set by an owner.
    pub vcard: Option<Element>,
    pub created: u64,
}

/// What a presence about an occupant carries besides its payload.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub unavailable: bool,
    /// Status codes everyone gets (303, 307, 301, 321, 322, 332, 333).
    pub codes: Vec<u16>,
    /// Status codes only the occupant itself gets (100, 170, 201, 210).
    pub self_codes: Vec<u16>,
    /// §7.6: the new nick, with 303.
    pub new_nick: Option<String>,
    /// §8.2, §9.1: who did it.
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// §10.9: the destroy notice.
    pub destroy: Option<Element>,
    /// Show this affiliation and role instead of the occupant's (a
    /// departing occupant is `none`/`none`).
    pub item_override: Option<(Affiliation, Role)>,
    /// The session whose presence caused this one, and that presence's
    /// `id`: its own copy carries the id back. The room advertises
    /// `muc#stable_id`, and clients (Smack) then match the reflection of
    /// a join, a change or a leave by that id.
    pub reflects: Option<(Jid, String)>,
}

impl Notice {
    /// This notice, with `p`'s id reflected to the session that sent it.
    pub fn reflecting(mut self, from: &Jid, p: &Element) -> Notice {
        self.reflects = p.attr("id").map(|id| (from.clone(), id.to_string()));
        self
    }
}

impl Room {
    pub fn new(local: &str, host: &str, config: RoomConfig, now: u64) -> Room {
        Room {
            local: local.to_string(),
            jid: format!("{local}@{host}"),
            config,
            affiliations: BTreeMap::new(),
            occupants: Vec::new(),
            subject: None,
            history: VecDeque::new(),
            locked: false,
            vcard: None,
            created: now,
        }
    }

    /// The stored affiliation of a bare JID.
    pub fn stored_affiliation(&self, bare: &str) -> Affiliation {
        self.affiliations
            .get(bare)
            .map_or(Affiliation::None, |i| i.affiliation)
    }

    /// Sets (or, for `none` without a registered nick, drops) an
    /// affiliation. A ban forgets the registered nick.
    pub fn set_affiliation(
        &mut self,
        bare: &str,
        affiliation: Affiliation,
        reason: Option<String>,
    ) {
        let nick = match affiliation {
            Affiliation::Outcast | Affiliation::None => None,
            _ => self.affiliations.get(bare).and_then(|i| i.nick.clone()),
        };
        if affiliation == Affiliation::None && nick.is_none() {
            self.affiliations.remove(bare);
        } else {
            self.affiliations.insert(
                bare.to_string(),
                AffItem {
                    affiliation,
                    nick,
                    reason,
                },
            );
        }
    }

    /// The bare JIDs with this affiliation.
    pub fn with_affiliation(&self, a: Affiliation) -> Vec<String> {
        self.affiliations
            .iter()
            .filter(|(_, i)| i.affiliation == a)
            .map(|(j, _)| j.clone())
            .collect()
    }

    /// Who registered a nick (by comparison key), if anyone.
    pub fn nick_registrant(&self, key: &str) -> Option<&str> {
        self.affiliations
            .iter()
            .find(|(_, i)| i.nick.as_deref().map(crate::nick::key).as_deref() == Some(key))
            .map(|(j, _)| j.as_str())
    }

    pub fn by_key(&self, key: &str) -> Option<usize> {
        self.occupants.iter().position(|o| o.key == key)
    }

    pub fn by_session(&self, jid: &Jid) -> Option<usize> {
        self.occupants.iter().position(|o| o.has_session(jid))
    }

    pub fn by_bare(&self, bare: &Jid) -> Option<usize> {
        self.occupants.iter().position(|o| &o.bare == bare)
    }

    pub fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{}", self.jid, nick)
    }

    /// Whether the room holds nothing worth keeping once empty.
    pub fn is_temporary(&self) -> bool {
        !self.config.persistent
    }

    /// The presence `about` (an occupant) as `to` (one of `viewer`'s
    /// sessions) receives it.
    pub fn presence(
        &self,
        about: &Occupant,
        affiliation: Affiliation,
        viewer_is_moderator: bool,
        to: &Jid,
        is_self: bool,
        notice: &Notice,
    ) -> Element {
        let src = about.presence();
        let mut p = Element::new("presence", ns::CLIENT)
            .with_attr("from", self.occupant_jid(&about.nick))
            .with_attr("to", to.to_string());
        if notice.unavailable {
            p.set_attr("type", "unavailable");
        }
        if let Some((sender, id)) = &notice.reflects {
            if sender == to {
                p.set_attr("id", id.clone());
            }
        }
        for child in &src.children {
            match child {
                Node::Element(e)
                    if e.ns == ns::MUC
                        || e.ns == ns::MUC_USER
                        || e.ns == ns::OCCUPANT_ID
                        || (notice.unavailable && e.name == "priority") => {}
                Node::Element(e) => p.append_child(e.clone()),
                Node::Text(_) => {}
            }
        }
        let (aff, role) = notice.item_override.unwrap_or((affiliation, about.role));
        let mut item = Element::new("item", ns::MUC_USER)
            .with_attr("affiliation", aff.as_str())
            .with_attr("role", role.as_str());
        if is_self || viewer_is_moderator || self.config.whois == Whois::Anyone {
            item.set_attr("jid", about.shown_jid().to_string());
        }
        if let Some(n) = &notice.new_nick {
            item.set_attr("nick", n.clone());
        }
        if let Some(a) = &notice.actor {
            item.append_child(Element::new("actor", ns::MUC_USER).with_attr("nick", a.clone()));
        }
        if let Some(r) = &notice.reason {
            item.append_child(Element::new("reason", ns::MUC_USER).with_text(r.clone()));
        }
        let mut x = Element::new("x", ns::MUC_USER).with_child(item);
        if let Some(d) = &notice.destroy {
            x.append_child(d.clone());
        }
        let mut codes: Vec<u16> = notice.codes.clone();
        if is_self {
            codes.push(110);
            codes.extend(notice.self_codes.iter().copied());
        }
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            x.append_child(Element::new("status", ns::MUC_USER).with_attr("code", c.to_string()));
        }
        p.append_child(x);
        p.append_child(
            Element::new("occupant-id", ns::OCCUPANT_ID).with_attr("id", about.occupant_id.clone()),
        );
        p
    }

    /// Every session of every occupant, with whether it is a moderator.
    pub fn audience(&self) -> Vec<(Jid, bool, usize)> {
        let mut v = Vec::new();
        for (i, o) in self.occupants.iter().enumerate() {
            for s in &o.sessions {
                v.push((s.jid.clone(), o.role == Role::Moderator, i));
            }
        }
        v
    }

    /// The number of distinct occupants (nicks).
    pub fn occupant_count(&self) -> usize {
        self.occupants.len()
    }
}

/// Adds `to` to a copy of a stanza.
pub fn addressed(stanza: &Element, to: &Jid) -> Element {
    let mut s = stanza.clone();
    s.set_attr("to", to.to_string());
    s
}
