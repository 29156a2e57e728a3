//! Biboumi-compatible addressing: which IRC thing a JID at the transport
//! names, and the JIDs the transport sends from.
//!
//! - `#chan%irc.server@irc.example.org` is a channel, shown as a MUC room
//!   (its resource, if any, is the occupant's nick);
//! - `nick%irc.server@irc.example.org` is an IRC user;
//! - `irc.server@irc.example.org` is the IRC server itself;
//! - `irc.example.org` is the transport.
//!
//! With a default server in the admin config (`default-server="…"`), the
//! short forms work as well: `#chan@irc.example.org` is a channel and
//! `nick@irc.example.org` a user of that server. A local part without `%`
//! that holds a `.` or `:` (which nicks cannot) still names a server.
//!
//! The local part is XEP-0106-unescaped before it is split at its last
//! `%` (so `\40` in a JID is `@` on IRC). Names that would change the
//! meaning of an IRC command line — a list (`#a,#b`), `0` (`JOIN 0` leaves
//! every channel), spaces, a leading `:`, CR, LF, NUL or any other control
//! character — are refused here with `jid-malformed`, so they are never
//! sent to a server.

use std::fmt;

use switchboard_service::gateway::{escape_localpart, unescape_localpart};
use switchboard_service::stanza::StanzaError;

/// The longest channel name, nick or server name accepted (bytes). IRC
/// servers allow far less; this only keeps command lines well inside 512.
pub const MAX_NAME: usize = 200;

/// What a JID at the transport names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// The transport's own hostname.
    Transport,
    /// An IRC server (`irc.server@host`).
    Server { server: String },
    /// A channel (`#chan%irc.server@host`), with the occupant nick from the
    /// resource.
    Channel {
        channel: String,
        server: String,
        nick: Option<String>,
    },
    /// An IRC user (`nick%irc.server@host`).
    User { nick: String, server: String },
}

/// Why a JID names nothing usable on IRC; becomes `jid-malformed`.
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

fn err(msg: impl Into<String>) -> AddressError {
    AddressError(msg.into())
}

/// Whether `name` starts like a channel (`#`, `&`, `+`, `!`).
pub fn is_channel_name(name: &str) -> bool {
    name.starts_with(['#', '&', '+', '!'])
}

/// The checks every name put on an IRC line must pass: not empty, not too
/// long, no space, comma, control character, and no leading `:`.
fn check_common(what: &str, name: &str) -> Result<(), AddressError> {
    if name.is_empty() {
        return Err(err(format!("the {what} is empty")));
    }
    if name.len() > MAX_NAME {
        return Err(err(format!("the {what} is longer than {MAX_NAME} bytes")));
    }
    if name.starts_with(':') {
        return Err(err(format!("the {what} \"{name}\" starts with ':'")));
    }
    if name == "0" {
        return Err(err(format!("\"0\" is not a usable {what} on IRC")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == ',')
    {
        return Err(err(format!(
            "the {what} contains {}, which IRC cannot carry in a name",
            describe(c)
        )));
    }
    Ok(())
}

fn describe(c: char) -> String {
    match c {
        ',' => "a comma".into(),
        ' ' => "a space".into(),
        '\r' => "a carriage return".into(),
        '\n' => "a line feed".into(),
        '\0' => "a NUL".into(),
        c => format!("the character U+{:04X}", c as u32),
    }
}

/// Checks a channel name (with its `#`).
pub fn check_channel(name: &str) -> Result<(), AddressError> {
    check_common("channel name", name)?;
    if !is_channel_name(name) {
        return Err(err(format!(
            "\"{name}\" is not a channel name (it must start with #, &, + or !)"
        )));
    }
    if name.contains('\u{7}') {
        return Err(err("the channel name contains a BEL"));
    }
    Ok(())
}

/// Checks a nick (an occupant nick in a room resource, or a user's).
pub fn check_nick(name: &str) -> Result<(), AddressError> {
    check_common("nick", name)?;
    if is_channel_name(name) {
        return Err(err(format!(
            "the nick \"{name}\" starts like a channel name"
        )));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '!' | '@' | '*' | '?')) {
        return Err(err(format!("the nick \"{name}\" contains '{c}'")));
    }
    if name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return Err(err(format!(
            "the nick \"{name}\" starts with a digit or '-', which IRC does not allow"
        )));
    }
    Ok(())
}

/// Checks an IRC server name: a host name or an IP address.
pub fn check_server(name: &str) -> Result<(), AddressError> {
    if name.is_empty() {
        return Err(err("the IRC server name is empty"));
    }
    if name.len() > 253
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(err(format!("\"{name}\" is not an IRC server name")));
    }
    Ok(())
}

/// Parses the local part and resource of a JID at the transport.
pub fn parse(local: Option<&str>, resource: Option<&str>) -> Result<Address, AddressError> {
    parse_with_default(local, resource, None)
}

/// [`parse`], with the admin's default server for the short forms.
pub fn parse_with_default(
    local: Option<&str>,
    resource: Option<&str>,
    default: Option<&str>,
) -> Result<Address, AddressError> {
    let Some(local) = local else {
        return Ok(Address::Transport);
    };
    let local = unescape_localpart(local);
    let split = local.rsplit_once('%');
    let (name, server) = match (split, default) {
        (Some((name, server)), _) => (name, server),
        (None, Some(d)) if is_channel_name(&local) || !local.contains(['.', ':']) => {
            (local.as_str(), d)
        }
        (None, _) => {
            check_server(&local)?;
            return Ok(Address::Server { server: local });
        }
    };
    check_server(server)?;
    if is_channel_name(name) {
        check_channel(name)?;
        let nick = match resource {
            Some(r) => {
                check_nick(r)?;
                Some(r.to_string())
            }
            None => None,
        };
        Ok(Address::Channel {
            channel: name.to_string(),
            server: server.to_string(),
            nick,
        })
    } else {
        check_nick(name)?;
        Ok(Address::User {
            nick: name.to_string(),
            server: server.to_string(),
        })
    }
}

/// `name%server`, or `name` alone for the default server's short form
/// (an empty `server`), XEP-0106-escaped.
fn local_of(name: &str, server: &str) -> String {
    let raw = if server.is_empty() {
        name.to_string()
    } else {
        format!("{name}%{server}")
    };
    escape_localpart(&raw).unwrap_or(raw)
}

/// The bare JID of a channel's room: `#chan%server@host`, escaped; with an
/// empty `server`, the default server's `#chan@host`.
pub fn room_jid(channel: &str, server: &str, host: &str) -> String {
    format!("{}@{host}", local_of(channel, server))
}

/// The JID of the IRC server itself: `irc.server@host`.
pub fn server_jid(server: &str, host: &str) -> String {
    format!("{}@{host}", local_of(server, ""))
}

/// An occupant's JID: the room JID with the nick as resource.
pub fn occupant_jid(channel: &str, server: &str, host: &str, nick: &str) -> String {
    format!("{}/{nick}", room_jid(channel, server, host))
}

/// The JID of an IRC user: `nick%server@host`, escaped (`nick@host` with
/// an empty `server`).
pub fn user_jid(nick: &str, server: &str, host: &str) -> String {
    format!("{}@{host}", local_of(nick, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(c: &str, s: &str, n: Option<&str>) -> Address {
        Address::Channel {
            channel: c.into(),
            server: s.into(),
            nick: n.map(Into::into),
        }
    }

    #[test]
    fn parses_the_four_kinds() {
        assert_eq!(parse(None, None), Ok(Address::Transport));
        assert_eq!(
            parse(Some("irc.libera.chat"), None),
            Ok(Address::Server {
                server: "irc.libera.chat".into()
            })
        );
        assert_eq!(
            parse(Some("#rust%irc.libera.chat"), Some("alice")),
            Ok(chan("#rust", "irc.libera.chat", Some("alice")))
        );
        assert_eq!(
            parse(Some("#rust%127.0.0.1"), None),
            Ok(chan("#rust", "127.0.0.1", None))
        );
        assert_eq!(
            parse(Some("bob%127.0.0.1"), None),
            Ok(Address::User {
                nick: "bob".into(),
                server: "127.0.0.1".into()
            })
        );
    }

    #[test]
    fn unescapes_xep_0106_and_splits_at_the_last_percent() {
        assert_eq!(
            parse(Some("#a\\40b%irc.example.net"), Some("x")),
            Ok(chan("#a@b", "irc.example.net", Some("x")))
        );
        assert_eq!(
            parse(Some("#100%%irc.example.net"), None),
            Ok(chan("#100%", "irc.example.net", None))
        );
    }

    #[test]
    fn refuses_dangerous_channel_names() {
        for bad in [
            "#a,#b%srv",
            "0%srv",
            "#a b%srv",
            "#a\rb%srv",
            "#a\nJOIN #x%srv",
            "#a\0%srv",
            "#a\u{7}%srv",
            "%srv",
        ] {
            assert!(parse(Some(bad), Some("alice")).is_err(), "{bad:?} accepted");
        }
        assert!(parse(Some("#a\\20b%srv"), None).is_err(), "escaped space");
    }

    #[test]
    fn refuses_dangerous_nicks_and_servers() {
        for bad in [
            ":alice",
            "al ice",
            "a,b",
            "0",
            "1abc",
            "a!b",
            "a@b",
            "a\r\nQUIT",
        ] {
            assert!(
                parse(Some("#ok%srv"), Some(bad)).is_err(),
                "nick {bad:?} accepted"
            );
        }
        assert!(parse(Some(":bob%srv"), None).is_err());
        assert!(parse(Some("bob%srv x"), None).is_err());
        assert!(parse(Some("bob%sr/v"), None).is_err());
        assert!(parse(Some("bob%"), None).is_err());
        assert!(parse(Some("srv,x"), None).is_err());
    }

    #[test]
    fn errors_become_jid_malformed() {
        let e: StanzaError = parse(Some("#a,#b%srv"), None).unwrap_err().into();
        let el = e.to_element("jabber:client");
        assert!(el.to_xml_string().contains("jid-malformed"));
        assert!(el.to_xml_string().contains("comma"));
    }

    #[test]
    fn short_forms_with_a_default_server() {
        let d = Some("127.0.0.1");
        assert_eq!(
            parse_with_default(Some("#test"), Some("alice"), d),
            Ok(chan("#test", "127.0.0.1", Some("alice")))
        );
        assert_eq!(
            parse_with_default(Some("bob"), None, d),
            Ok(Address::User {
                nick: "bob".into(),
                server: "127.0.0.1".into()
            })
        );
        assert_eq!(
            parse_with_default(Some("127.0.0.1"), None, d),
            Ok(Address::Server {
                server: "127.0.0.1".into()
            })
        );
        assert_eq!(
            parse_with_default(Some("#t%irc.example.net"), None, d),
            Ok(chan("#t", "irc.example.net", None))
        );
        // Without a default server a bare channel is no server name.
        assert!(parse(Some("#test"), None).is_err());
        assert!(parse_with_default(Some("#a,#b"), None, d).is_err());
        assert_eq!(
            room_jid("#test", "", "irc.localhost"),
            "#test@irc.localhost"
        );
        assert_eq!(user_jid("bob", "", "irc.localhost"), "bob@irc.localhost");
        assert_eq!(
            server_jid("127.0.0.1", "irc.localhost"),
            "127.0.0.1@irc.localhost"
        );
    }

    #[test]
    fn formats_and_round_trips() {
        let host = "irc.localhost";
        assert_eq!(
            room_jid("#test", "127.0.0.1", host),
            "#test%127.0.0.1@irc.localhost"
        );
        assert_eq!(
            occupant_jid("#test", "127.0.0.1", host, "bob"),
            "#test%127.0.0.1@irc.localhost/bob"
        );
        assert_eq!(user_jid("bob", "srv", host), "bob%srv@irc.localhost");
        let jid = room_jid("#a@b:c", "srv", host);
        assert_eq!(jid, "#a\\40b\\3ac%srv@irc.localhost");
        let local = jid.split('@').next().unwrap();
        assert_eq!(parse(Some(local), None), Ok(chan("#a@b:c", "srv", None)));
    }
}
