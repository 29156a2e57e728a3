//! IRC channel events as XEP-0045 stanzas, built as values (no I/O).
//!
//! The order of a join follows XEP-0045 §7.2: the other occupants'
//! presences (from NAMES), then the user's own presence with status 110,
//! then the subject (the topic, or an empty `<subject/>`). Channel prefixes
//! map to roles and affiliations as biboumi does: `~` owner, `&` and `@`
//! admin, `%` member — all moderators; `+` member and participant;
//! no prefix: no affiliation, participant.

use switchboard_service::stanza::StanzaError;
use switchboard_xml::{ns, Element};

/// The MUC namespaces.
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";

/// An occupant's role and affiliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub affiliation: &'static str,
    pub role: &'static str,
}

impl Rank {
    pub const NONE: Rank = Rank {
        affiliation: "none",
        role: "participant",
    };

    /// The rank a channel prefix character gives.
    pub fn from_prefix(p: char) -> Option<Rank> {
        let (affiliation, role) = match p {
            '~' => ("owner", "moderator"),
            '&' | '@' => ("admin", "moderator"),
            '%' => ("member", "moderator"),
            '+' => ("member", "participant"),
            _ => return None,
        };
        Some(Rank { affiliation, role })
    }
}

/// Splits a NAMES entry (`@bob`, `+carol`, `dave`, `@+erin`) into nick and
/// the rank of its highest prefix.
pub fn parse_name(entry: &str) -> (String, Rank) {
    let nick = entry.trim_start_matches(|c| Rank::from_prefix(c).is_some());
    let rank = entry
        .chars()
        .next()
        .and_then(Rank::from_prefix)
        .unwrap_or(Rank::NONE);
    (nick.to_string(), rank)
}

/// An occupant's presence (`available`) for the user's resource `to`.
/// `own` adds status 110 (this is you).
pub fn occupant(from: &str, to: &str, rank: Rank, own: bool) -> Element {
    let mut x = Element::new("x", MUC_USER).with_child(
        Element::new("item", MUC_USER)
            .with_attr("affiliation", rank.affiliation)
            .with_attr("role", rank.role),
    );
    if own {
        x.append_child(Element::new("status", MUC_USER).with_attr("code", "110"));
    }
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_child(x)
}

/// Adds a `<status code=…/>` to a presence's muc#user payload.
pub fn add_status(presence: &mut Element, code: &str) {
    if let Some(x) = presence.get_child_mut("x", MUC_USER) {
        x.append_child(Element::new("status", MUC_USER).with_attr("code", code));
    }
}

/// A join that failed: a presence error from the occupant JID asked for,
/// with the MUC payload (XEP-0045 §7.2.6 ff.).
pub fn join_error(from: &str, to: &str, err: StanzaError) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "error")
        .with_child(Element::new("x", MUC))
        .with_child(err.to_element(ns::CLIENT))
}

/// A message refused: `type="error"` from the address written to.
pub fn message_error(from: &str, to: &str, err: StanzaError) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "error")
        .with_child(err.to_element(ns::CLIENT))
}

/// An occupant leaving: `unavailable` with role `none`, status 110 when it
/// is the user, 307 when kicked, and the IRC reason as `<status>` text.
pub fn gone(from: &str, to: &str, own: bool, kicked: bool, reason: Option<&str>) -> Element {
    let mut item = Element::new("item", MUC_USER)
        .with_attr("affiliation", "none")
        .with_attr("role", "none");
    if kicked {
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            item.append_child(Element::new("reason", MUC_USER).with_text(r));
        }
    }
    let mut x = Element::new("x", MUC_USER).with_child(item);
    if kicked {
        x.append_child(Element::new("status", MUC_USER).with_attr("code", "307"));
    }
    if own {
        x.append_child(Element::new("status", MUC_USER).with_attr("code", "110"));
    }
    let mut p = Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "unavailable");
    if !kicked {
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            p.append_child(Element::new("status", ns::CLIENT).with_text(r));
        }
    }
    p.with_child(x)
}

/// An occupant changing nick (XEP-0045 §7.6): `unavailable` from the old
/// occupant JID with the new nick in the item and status 303 (and 110 when
/// it is the user). The available presence from the new JID follows.
pub fn nick_change(from: &str, to: &str, rank: Rank, new_nick: &str, own: bool) -> Element {
    let mut x = Element::new("x", MUC_USER)
        .with_child(
            Element::new("item", MUC_USER)
                .with_attr("affiliation", rank.affiliation)
                .with_attr("role", rank.role)
                .with_attr("nick", new_nick),
        )
        .with_child(Element::new("status", MUC_USER).with_attr("code", "303"));
    if own {
        x.append_child(Element::new("status", MUC_USER).with_attr("code", "110"));
    }
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "unavailable")
        .with_child(x)
}

/// The room subject (the channel topic; empty when there is none), from
/// the room itself or from the occupant who set it.
pub fn subject(from: &str, to: &str, topic: &str) -> Element {
    let mut s = Element::new("subject", ns::CLIENT);
    if !topic.is_empty() {
        s.append_text(topic);
    }
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "groupchat")
        .with_child(s)
}

/// A message in the room from occupant `from`.
pub fn groupchat(from: &str, to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "groupchat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// A private message from an IRC user.
pub fn chat(from: &str, to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefixes_map_to_ranks() {
        assert_eq!(
            parse_name("@bob"),
            (
                "bob".into(),
                Rank {
                    affiliation: "admin",
                    role: "moderator"
                }
            )
        );
        assert_eq!(parse_name("+carol").1.role, "participant");
        assert_eq!(parse_name("+carol").1.affiliation, "member");
        assert_eq!(parse_name("dave"), ("dave".into(), Rank::NONE));
        assert_eq!(parse_name("@+erin").0, "erin");
        assert_eq!(parse_name("~op").1.affiliation, "owner");
    }

    #[test]
    fn self_presence_has_status_110() {
        let p = occupant("#t%s@irc/alice", "alice@localhost/r", Rank::NONE, true);
        let x = p.get_child("x", MUC_USER).unwrap();
        let item = x.get_child("item", MUC_USER).unwrap();
        assert_eq!(item.attr("role"), Some("participant"));
        assert_eq!(item.attr("affiliation"), Some("none"));
        assert!(x
            .elements()
            .any(|e| e.name == "status" && e.attr("code") == Some("110")));
        let other = occupant("#t%s@irc/bob", "alice@localhost/r", Rank::NONE, false);
        assert!(!other.to_xml_string().contains("110"));
    }

    #[test]
    fn statuses_and_join_errors() {
        let mut p = occupant("#t%s@irc/alice_", "a@l/r", Rank::NONE, true);
        add_status(&mut p, "210");
        let s = p.to_xml_string();
        assert!(
            s.contains(r#"code="110""#) && s.contains(r#"code="210""#),
            "{s}"
        );
        let m = message_error("#t%s@irc", "a@l/r", StanzaError::forbidden());
        assert_eq!(m.attr("type"), Some("error"));
        assert!(m.to_xml_string().contains("forbidden"));
        let e = join_error("#t%s@irc/alice", "a@l/r", StanzaError::forbidden());
        assert_eq!(e.attr("type"), Some("error"));
        assert!(e.get_child("x", MUC).is_some());
        assert!(e.to_xml_string().contains("forbidden"));
    }

    #[test]
    fn nick_changes_carry_303_and_the_new_nick() {
        let p = nick_change("#t%s@irc/bob", "a@l/r", Rank::NONE, "bobby", false);
        assert_eq!(p.attr("type"), Some("unavailable"));
        let s = p.to_xml_string();
        assert!(
            s.contains(r#"nick="bobby""#) && s.contains(r#"code="303""#),
            "{s}"
        );
        assert!(!s.contains("110"), "{s}");
        let own = nick_change("#t%s@irc/a", "a@l/r", Rank::NONE, "b", true).to_xml_string();
        assert!(own.contains(r#"code="110""#), "{own}");
    }

    #[test]
    fn leaving_and_kicks() {
        let p = gone("#t%s@irc/bob", "a@l/r", false, false, Some("bye"));
        assert_eq!(p.attr("type"), Some("unavailable"));
        assert_eq!(p.child_text("status", ns::CLIENT).as_deref(), Some("bye"));
        let k = gone("#t%s@irc/alice", "a@l/r", true, true, Some("spam"));
        let s = k.to_xml_string();
        assert!(
            s.contains(r#"code="307""#) && s.contains(r#"code="110""#),
            "{s}"
        );
        assert!(s.contains("<reason>spam</reason>"), "{s}");
    }

    #[test]
    fn subject_and_messages() {
        let s = subject("#t%s@irc", "a@l/r", "");
        assert!(s.get_child("subject", ns::CLIENT).is_some());
        assert_eq!(s.attr("type"), Some("groupchat"));
        let m = groupchat("#t%s@irc/bob", "a@l/r", "hi <&>");
        assert_eq!(m.child_text("body", ns::CLIENT).as_deref(), Some("hi <&>"));
        assert_eq!(chat("bob%s@irc", "a@l/r", "x").attr("type"), Some("chat"));
    }
}
