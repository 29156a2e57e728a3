//! The channels of one connection as the session keeps them, and the
//! addresses and ranks its stanzas are built from.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::Element;

use super::{Event, Session};
use crate::address::{occupant_jid, room_jid, server_jid, user_jid};
use crate::muc::Rank;

/// One channel the user's resources are in, or joining.
pub(super) struct Channel {
    /// The name as the user wrote it.
    pub name: String,
    /// The server as the room's JID names it: the server's name, or empty
    /// for the default server's short form.
    pub via: String,
    /// The user's resources in the room, with the nick each asked for.
    pub resources: BTreeMap<String, String>,
    /// Occupants (nick → status modes such as `"ov"`), once NAMES started.
    pub occupants: BTreeMap<String, String>,
    /// Whether the channel is moderated (`+m`): no status means visitor.
    pub moderated: bool,
    /// Whether the join is complete (end of NAMES seen).
    pub joined: bool,
    pub topic: String,
    /// The channel key (`+k`): the room password the join gave, sent
    /// with every JOIN of it, rejoins included.
    pub key: Option<String>,
}

impl Channel {
    /// The JOIN line for the channel, with its key when it has one.
    pub fn join_line(&self) -> String {
        match &self.key {
            Some(k) => format!("JOIN {} {k}", self.name),
            None => format!("JOIN {}", self.name),
        }
    }

    pub fn new(name: &str, via: String) -> Channel {
        Channel {
            name: name.to_string(),
            via,
            resources: BTreeMap::new(),
            occupants: BTreeMap::new(),
            moderated: false,
            joined: false,
            topic: String::new(),
            key: None,
        }
    }
}

/// IRC's case-insensitive comparison key (RFC 1459 casemapping).
pub(super) fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The stanza error for an IRC numeric refusing a JOIN (XEP-0045 §7.2.6
/// ff.), `None` for other numerics.
pub(super) fn join_refusal(code: u16) -> Option<StanzaError> {
    Some(match code {
        // Banned (+b).
        474 => StanzaError::forbidden(),
        // Invite only (+i), or registered nicks only (+R, "477" on most
        // servers): the room's members only.
        473 | 477 => StanzaError::new("registration-required", ErrorType::Auth),
        // Wrong or missing key (+k).
        475 => StanzaError::new("not-authorized", ErrorType::Auth),
        // Full (+l).
        471 => StanzaError::service_unavailable(),
        // Nick in use or held (the nick is the occupant's).
        433 | 437 => StanzaError::new("conflict", ErrorType::Cancel),
        // TLS users only (+z), IRC operators only (+O).
        489 | 520 => StanzaError::not_allowed(),
        403 => StanzaError::new("item-not-found", ErrorType::Cancel),
        476 => StanzaError::jid_malformed(),
        405 => StanzaError::new("resource-constraint", ErrorType::Wait),
        _ => return None,
    })
}

impl Session {
    /// A stanza for the XMPP side.
    pub(super) fn emit(&mut self, stanza: Element) {
        self.events.push_back(Event::Stanza(stanza));
    }

    pub(super) fn emit_all(&mut self, stanzas: Vec<Element>) {
        self.events.extend(stanzas.into_iter().map(Event::Stanza));
    }

    /// One stanza per resource in the room `k`.
    pub(super) fn tell_room(&mut self, k: &str, stanza: impl Fn(&str) -> Element) {
        let stanzas: Vec<Element> = match self.channels.get(k) {
            Some(ch) => ch.resources.keys().map(|r| stanza(r)).collect(),
            None => return,
        };
        self.emit_all(stanzas);
    }

    /// The server part of a room JID joined in the short form or not.
    pub(super) fn via(&self, short: bool) -> String {
        if short {
            String::new()
        } else {
            self.server.clone()
        }
    }

    pub(super) fn room(&self, ch: &Channel) -> String {
        room_jid(&ch.name, &ch.via, &self.host)
    }

    pub(super) fn occupant(&self, ch: &Channel, nick: &str) -> String {
        occupant_jid(&ch.name, &ch.via, &self.host, nick)
    }

    pub(super) fn user(&self, nick: &str) -> String {
        user_jid(nick, &self.user_via, &self.host)
    }

    pub(super) fn server_jid(&self) -> String {
        server_jid(&self.server, &self.host)
    }

    pub(super) fn rank(&self, ch: &Channel, nick: &str) -> Rank {
        let modes = ch.occupants.get(nick).map_or("", String::as_str);
        self.modes.rank(modes, ch.moderated)
    }

    /// Every resource of the user in any room of this connection, or
    /// chatting privately over it.
    pub(super) fn all_resources(&self) -> BTreeSet<String> {
        self.channels
            .values()
            .flat_map(|c| c.resources.keys().cloned())
            .chain(self.chatting.iter().cloned())
            .collect()
    }

    /// Every resource of the user in any room of this connection.
    pub(super) fn room_resources(&self) -> BTreeSet<String> {
        self.channels
            .values()
            .flat_map(|c| c.resources.keys().cloned())
            .collect()
    }

    pub(super) fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    /// The occupant whose nick folds like `nick`, as the channel spells it.
    pub(super) fn find_nick(ch: &Channel, nick: &str) -> Option<String> {
        let f = fold(nick);
        ch.occupants.keys().find(|n| fold(n) == f).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casemapping() {
        assert_eq!(fold("#Test[1]"), fold("#test{1}"));
        assert_ne!(fold("#a"), fold("#b"));
    }

    #[test]
    fn join_refusals_map_to_muc_errors() {
        let cond = |c| {
            join_refusal(c)
                .map(|e| e.to_element("jabber:client").to_xml_string())
                .unwrap_or_default()
        };
        assert!(cond(475).contains("not-authorized"));
        assert!(cond(474).contains("forbidden"));
        assert!(cond(433).contains("conflict"));
        assert!(cond(473).contains("registration-required"));
        assert!(cond(471).contains("service-unavailable"));
        assert!(join_refusal(401).is_none());
    }
}
