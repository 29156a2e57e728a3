//! Addressing: which Matrix thing a JID at the transport names, and the
//! JIDs the transport sends from. Reversible, and the same shape as the
//! IRC transport's (and ejabberd's Matrix gateway's) `name%server`:
//!
//! - `@alice:example.org` ↔ `alice%example.org@matrix.example.net`, a
//!   Matrix user (a contact; direct chats);
//! - `#room:example.org` ↔ `#room%example.org@matrix.example.net`, a room
//!   by alias, shown as a MUC room (the resource is the occupant nick);
//! - `!Opaque:example.org` ↔ `!^opaque%example.org@matrix.example.net`, a
//!   room by id; room ids of room version 12 have no server part
//!   (`!base64hash` ↔ `!^base^64hash@…`);
//! - `matrix.example.net` is the transport itself.
//!
//! JID local parts are case-folded (RFC 7622, PRECIS `UsernameCaseMapped`)
//! while Matrix room ids, and a few historical user ids and aliases, are
//! case-sensitive. So before a name becomes a local part, each upper-case
//! letter `X` is written `^x`, and `^` and `%` themselves are written `^^`
//! and `^%`; the `%` that stays bare is the one between name and server.
//! Then the result is escaped by XEP-0106 (`/` is `\2f`, `:` is `\3a`).
//! Reading a JID does it in the other order: XEP-0106 first, then the
//! split at the bare `%`, then the `^` marks.

use std::fmt;

use switchboard_jid::Jid;
use switchboard_service::gateway::{escape_localpart, unescape_localpart};
use switchboard_service::stanza::StanzaError;

/// The longest Matrix identifier (user id, alias, room id): 255 bytes,
/// as the specification's appendix on identifiers says.
pub const MAX_ID: usize = 255;

/// A room as XMPP addressed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomRef {
    /// `#name:server`.
    Alias(String),
    /// `!opaque:server` or `!opaque`.
    Id(String),
}

impl RoomRef {
    /// The identifier as Matrix writes it.
    pub fn as_str(&self) -> &str {
        match self {
            RoomRef::Alias(s) | RoomRef::Id(s) => s,
        }
    }
}

/// What a JID at the transport names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// The transport's own hostname.
    Transport,
    /// A Matrix user: a contact (`@alice:example.org`).
    User(String),
    /// A room, with the occupant nick from the resource.
    Room { room: RoomRef, nick: Option<String> },
}

/// Why a JID names nothing on Matrix; becomes `jid-malformed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<AddressError> for StanzaError {
    fn from(e: AddressError) -> StanzaError {
        StanzaError::jid_malformed().with_text(e.0)
    }
}

fn bad(why: impl Into<String>) -> AddressError {
    AddressError(why.into())
}

/// Reads the local part and resource of a JID at the transport.
pub fn parse(local: Option<&str>, resource: Option<&str>) -> Result<Address, AddressError> {
    let Some(local) = local else {
        return Ok(Address::Transport);
    };
    let plain = unescape_localpart(local);
    let (name, server) = split(&plain)?;
    let nick = resource.map(str::to_owned);
    if let Some(rest) = name.strip_prefix('#') {
        let server = server.ok_or_else(|| {
            bad("a room alias needs its server: #room%example.org@ this transport")
        })?;
        let id = format!("#{rest}:{server}");
        check_id(&id, rest)?;
        return Ok(Address::Room {
            room: RoomRef::Alias(id),
            nick,
        });
    }
    if let Some(rest) = name.strip_prefix('!') {
        // Room version 12 ids have no server part.
        let id = match server {
            Some(server) => format!("!{rest}:{server}"),
            None => format!("!{rest}"),
        };
        check_id(&id, rest)?;
        return Ok(Address::Room {
            room: RoomRef::Id(id),
            nick,
        });
    }
    let server = server.ok_or_else(|| {
        bad(format!(
            "'{plain}' names no Matrix user: write alice%example.org for @alice:example.org"
        ))
    })?;
    let id = format!("@{name}:{server}");
    check_id(&id, &name)?;
    Ok(Address::User(id))
}

/// Splits a local part (XEP-0106 already undone) at its bare `%`, undoing
/// the `^` marks in the name. The server is whatever follows.
fn split(s: &str) -> Result<(String, Option<String>), AddressError> {
    let mut name = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '^' => match chars.next() {
                Some((_, '^')) => name.push('^'),
                Some((_, '%')) => name.push('%'),
                Some((_, l)) if l.is_lowercase() => {
                    let mut up = l.to_uppercase();
                    match (up.next(), up.next()) {
                        (Some(u), None) => name.push(u),
                        _ => return Err(bad(format!("'^{l}' marks no upper-case letter"))),
                    }
                }
                _ => {
                    return Err(bad(
                        "'^' marks an upper-case letter (^a for A); write ^^ for ^ itself",
                    ))
                }
            },
            '%' => {
                let server = &s[i + 1..];
                if server.is_empty() {
                    return Err(bad("nothing after '%': name the Matrix server"));
                }
                return Ok((name, Some(server.to_owned())));
            }
            c => name.push(c),
        }
    }
    Ok((name, None))
}

/// Matrix's own rules, as far as the transport relies on them: some name,
/// no control characters, the length limit.
fn check_id(id: &str, name: &str) -> Result<(), AddressError> {
    if name.is_empty() {
        return Err(bad("the Matrix name is empty"));
    }
    if id.len() > MAX_ID {
        return Err(bad(format!(
            "Matrix identifiers are at most {MAX_ID} bytes"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(bad("control characters are not part of Matrix names"));
    }
    Ok(())
}

/// Writes a name with the `^` marks.
fn mark(name: &str, out: &mut String) -> Option<()> {
    for c in name.chars() {
        match c {
            '^' => out.push_str("^^"),
            '%' => out.push_str("^%"),
            c if c.is_uppercase() => {
                let mut low = c.to_lowercase();
                let l = low.next()?;
                if low.next().is_some() || l.to_uppercase().next() != Some(c) {
                    // A letter that does not survive the round trip.
                    return None;
                }
                out.push('^');
                out.push(l);
            }
            c => out.push(c),
        }
    }
    Some(())
}

/// The local part (before XEP-0106) for a sigil-less name and a server.
fn local(sigil: &str, name: &str, server: Option<&str>) -> Option<String> {
    let mut out = String::with_capacity(name.len() + 16);
    out.push_str(sigil);
    mark(name, &mut out)?;
    if let Some(server) = server {
        out.push('%');
        out.push_str(&server.to_ascii_lowercase());
    }
    escape_localpart(&out)
}

/// Splits `@name:server`, `#name:server` or `!opaque[:server]` at its
/// first `:` (server names may hold a port after another one).
fn parts(id: &str) -> Option<(&str, &str, Option<&str>)> {
    let sigil = id.get(..1)?;
    let rest = &id[1..];
    match rest.split_once(':') {
        Some((name, server)) if !name.is_empty() && !server.is_empty() => {
            Some((sigil, name, Some(server)))
        }
        None if sigil == "!" && !rest.is_empty() => Some((sigil, rest, None)),
        _ => None,
    }
}

/// The JID of a Matrix user at the transport `host`; `None` for a user id
/// that is not one or cannot be written as a JID.
pub fn user_jid(user_id: &str, host: &str) -> Option<Jid> {
    let (sigil, name, server) = parts(user_id)?;
    if sigil != "@" || user_id.len() > MAX_ID {
        return None;
    }
    let local = local("", name, Some(server?))?;
    Jid::from_parts(Some(&local), host, None).ok()
}

/// The bare JID of a room at the transport `host`.
pub fn room_jid(room: &RoomRef, host: &str) -> Option<Jid> {
    let (sigil, name, server) = parts(room.as_str())?;
    let expected = match room {
        RoomRef::Alias(_) => "#",
        RoomRef::Id(_) => "!",
    };
    if sigil != expected || (sigil == "#" && server.is_none()) {
        return None;
    }
    let local = local(sigil, name, server)?;
    Jid::from_parts(Some(&local), host, None).ok()
}

/// An occupant's JID in a room.
pub fn occupant_jid(room: &Jid, nick: &str) -> Option<Jid> {
    room.with_resource(nick).ok()
}

/// The local part of a user id (`alice` of `@alice:example.org`), the
/// fallback nick of a member without a display name.
pub fn localpart(user_id: &str) -> &str {
    user_id
        .strip_prefix('@')
        .and_then(|r| r.split(':').next())
        .filter(|s| !s.is_empty())
        .unwrap_or(user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "matrix.localhost";

    fn round_user(id: &str) {
        let jid = user_jid(id, HOST).unwrap_or_else(|| panic!("{id} has no JID"));
        let back = parse(jid.node(), None).unwrap();
        assert_eq!(back, Address::User(id.to_owned()), "{id} via {jid}");
    }

    fn round_room(room: RoomRef) {
        let jid = room_jid(&room, HOST).unwrap_or_else(|| panic!("{room:?} has no JID"));
        let back = parse(jid.node(), Some("nick")).unwrap();
        assert_eq!(
            back,
            Address::Room {
                room: room.clone(),
                nick: Some("nick".into())
            },
            "{room:?} via {jid}"
        );
    }

    #[test]
    fn users_are_name_percent_server() {
        assert_eq!(
            user_jid("@alice:example.org", HOST).unwrap().to_string(),
            "alice%example.org@matrix.localhost"
        );
        round_user("@alice:example.org");
        round_user("@a.b_c=d-e/f+g:example.org:8448");
        // Historical ids may have capitals; they survive.
        round_user("@Alice:example.org");
        assert_eq!(
            parse(Some("alice%example.org"), None).unwrap(),
            Address::User("@alice:example.org".into())
        );
    }

    #[test]
    fn room_ids_keep_their_case() {
        let id = "!AbCdEfG:example.org";
        let jid = room_jid(&RoomRef::Id(id.into()), HOST).unwrap();
        assert_eq!(jid.node(), Some("!^ab^cd^ef^g%example.org"));
        round_room(RoomRef::Id(id.into()));
        // Version 12 ids: no server, any base64 character.
        round_room(RoomRef::Id("!Ab+/cD_-9^%x".into()));
        round_room(RoomRef::Alias("#Room^%name:example.org".into()));
        round_room(RoomRef::Alias("#café:example.org".into()));
    }

    #[test]
    fn xep_0106_comes_first() {
        // A ':' in the server (a port) is \3a in the JID; '/' is \2f.
        let jid = user_jid("@a/b:example.org:8448", HOST).unwrap();
        assert_eq!(jid.node(), Some("a\\2fb%example.org\\3a8448"));
        assert_eq!(
            parse(jid.node(), None).unwrap(),
            Address::User("@a/b:example.org:8448".into())
        );
    }

    #[test]
    fn what_names_nothing_is_refused_with_a_reason() {
        let e = parse(Some("alice"), None).unwrap_err();
        assert!(e.0.contains("alice%example.org"), "{e}");
        assert!(parse(Some("#room"), None).unwrap_err().0.contains("server"));
        assert!(parse(Some("^1%x"), None).is_err());
        assert!(parse(Some("a%"), None).is_err());
        assert!(parse(Some("%x"), None).unwrap_err().0.contains("empty"));
        let long = format!("{}%x", "a".repeat(300));
        assert!(parse(Some(&long), None).unwrap_err().0.contains("255"));
        assert_eq!(parse(None, Some("r")).unwrap(), Address::Transport);
    }

    #[test]
    fn ids_that_are_not_ids_have_no_jid() {
        assert!(user_jid("alice", HOST).is_none());
        assert!(user_jid("@:x", HOST).is_none());
        assert!(user_jid("#a:x", HOST).is_none());
        assert!(room_jid(&RoomRef::Alias("#noserver".into()), HOST).is_none());
        assert_eq!(localpart("@bob:x"), "bob");
    }
}
