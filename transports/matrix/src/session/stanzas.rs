//! The stanzas a session sends, built from plain values: MUC presence
//! (XEP-0045), messages, subjects, chat states, markers. Pure functions;
//! every text in them has been through [`crate::text::clean`] by the
//! caller or is the transport's own.

use switchboard_jid::Jid;
use switchboard_xml::{ns as xns, Element};

use crate::ns;

/// A message element.
pub fn message(from: &str, to: &str, ty: &str) -> Element {
    Element::new("message", xns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", ty)
}

/// A message from the transport itself to the user.
pub fn notice(host: &str, user: &Jid, text: &str) -> Element {
    message(host, &user.to_string(), "chat")
        .with_child(Element::new("body", xns::CLIENT).with_text(text))
}

/// A role and an affiliation (XEP-0045 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub affiliation: &'static str,
    pub role: &'static str,
}

impl Standing {
    pub const MEMBER: Standing = Standing {
        affiliation: "member",
        role: "participant",
    };

    /// From a Matrix power level: 100 is an owner, 50 an admin (both
    /// moderators), as Element presents them.
    pub fn of_power(level: i64) -> Standing {
        match level {
            l if l >= 100 => Standing {
                affiliation: "owner",
                role: "moderator",
            },
            l if l >= 50 => Standing {
                affiliation: "admin",
                role: "moderator",
            },
            _ => Standing::MEMBER,
        }
    }
}

fn muc_user_x(standing: Standing, jid: Option<&str>, codes: &[u16]) -> Element {
    let mut item = Element::new("item", ns::MUC_USER)
        .with_attr("affiliation", standing.affiliation)
        .with_attr("role", standing.role);
    if let Some(j) = jid {
        item.set_attr("jid", j);
    }
    let mut x = Element::new("x", ns::MUC_USER).with_child(item);
    for c in codes {
        x.append_child(Element::new("status", ns::MUC_USER).with_attr("code", c.to_string()));
    }
    x
}

/// An occupant's available presence, to one of the user's resources.
pub fn occupant(
    room: &Jid,
    nick: &str,
    to: &Jid,
    standing: Standing,
    jid: Option<&Jid>,
) -> Element {
    let from = format!("{room}/{nick}");
    Element::new("presence", xns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to.to_string())
        .with_child(muc_user_x(
            standing,
            jid.map(|j| j.to_string()).as_deref(),
            &[],
        ))
}

/// The user's own presence in a room: status 110 (and 100, the room is
/// not anonymous; 210, the nick was changed).
pub fn self_presence(
    room: &Jid,
    nick: &str,
    to: &Jid,
    standing: Standing,
    renamed: bool,
) -> Element {
    let mut codes = vec![100, 110];
    if renamed {
        codes.push(210);
    }
    Element::new("presence", xns::CLIENT)
        .with_attr("from", format!("{room}/{nick}"))
        .with_attr("to", to.to_string())
        .with_child(muc_user_x(standing, Some(&to.to_string()), &codes))
}

/// An occupant leaving: `codes` 307 (kicked), 301 (banned), 303 (nick
/// change, with `new_nick`).
pub fn occupant_unavailable(
    room: &Jid,
    nick: &str,
    to: &Jid,
    codes: &[u16],
    reason: Option<&str>,
    new_nick: Option<&str>,
) -> Element {
    let mut x = muc_user_x(
        Standing {
            affiliation: if codes.contains(&301) {
                "outcast"
            } else {
                "none"
            },
            role: "none",
        },
        None,
        codes,
    );
    if let Some(item) = x.get_child_mut("item", ns::MUC_USER) {
        if let Some(n) = new_nick {
            item.set_attr("nick", n);
        }
        if let Some(r) = reason {
            item.append_child(Element::new("reason", ns::MUC_USER).with_text(r));
        }
    }
    Element::new("presence", xns::CLIENT)
        .with_attr("from", format!("{room}/{nick}"))
        .with_attr("to", to.to_string())
        .with_attr("type", "unavailable")
        .with_child(x)
}

/// The user's own resource leaving a room (110 with `codes`).
pub fn self_unavailable(
    room: &Jid,
    nick: &str,
    to: &Jid,
    codes: &[u16],
    reason: Option<&str>,
) -> Element {
    let mut all = vec![110];
    all.extend_from_slice(codes);
    occupant_unavailable(room, nick, to, &all, reason, None)
}

/// A room's subject, from the room itself or an occupant.
pub fn subject(room: &Jid, nick: Option<&str>, to: &Jid, subject: &str) -> Element {
    let from = match nick {
        Some(n) => format!("{room}/{n}"),
        None => room.to_string(),
    };
    message(&from, &to.to_string(), "groupchat")
        .with_child(Element::new("subject", xns::CLIENT).with_text(subject))
}

/// A presence error for a join that failed.
pub fn join_error(join: &Element, e: &switchboard_service::stanza::StanzaError) -> Option<Element> {
    switchboard_service::stanza::error_reply(join, e)
}

/// A chat state notification (XEP-0085) with no body.
pub fn chat_state(from: &str, to: &str, ty: &str, state: &str) -> Element {
    message(from, to, ty)
        .with_child(Element::new(state, ns::CHAT_STATES))
        .with_child(Element::new("no-store", ns::HINTS))
}

/// A displayed marker (XEP-0333) for message `id`.
pub fn displayed(from: &str, to: &str, ty: &str, id: &str) -> Element {
    message(from, to, ty)
        .with_child(Element::new("displayed", ns::MARKERS).with_attr("id", id))
        .with_child(Element::new("store", ns::HINTS))
}

/// The full set of one sender's reactions to message `id` (XEP-0444).
pub fn reactions<'a>(
    from: &str,
    to: &str,
    ty: &str,
    id: &str,
    keys: impl Iterator<Item = &'a str>,
) -> Element {
    let mut r = Element::new("reactions", ns::REACTIONS).with_attr("id", id);
    for k in keys {
        r.append_child(Element::new("reaction", ns::REACTIONS).with_text(k));
    }
    message(from, to, ty)
        .with_child(r)
        .with_child(Element::new("store", ns::HINTS))
}

/// A retraction (XEP-0424) of message `id`, with the fallback body for
/// clients without it.
pub fn retraction(from: &str, to: &str, ty: &str, id: &str, moderator: Option<&str>) -> Element {
    let mut r = Element::new("retract", ns::RETRACT).with_attr("id", id);
    if let Some(by) = moderator {
        r.append_child(Element::new("moderated", ns::MODERATE).with_attr("by", by));
    }
    message(from, to, ty)
        .with_child(r)
        .with_child(Element::new("fallback", ns::FALLBACK).with_attr("for", ns::RETRACT))
        .with_child(Element::new("body", xns::CLIENT).with_text(
            "This message was deleted on Matrix; your client does not support retractions.",
        ))
        .with_child(Element::new("store", ns::HINTS))
}

/// Wraps `inner` as a carbon copy of a message the user sent elsewhere
/// (XEP-0280 `<sent/>`), from the JID the conversation is with.
pub fn sent_carbon(from: &str, to: &Jid, inner: Element) -> Element {
    message(from, &to.to_string(), "chat").with_child(
        Element::new("sent", ns::CARBONS)
            .with_child(Element::new("forwarded", ns::FORWARD).with_child(inner)),
    )
}

/// A delay stamp (XEP-0203) for a message that is not live.
pub fn delay(from: &str, ms: u64) -> Element {
    Element::new("delay", xns::DELAY)
        .with_attr("from", from)
        .with_attr("stamp", crate::time::stamp(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_presence_carries_110_and_the_real_jid() {
        let room = Jid::parse("#r%x@matrix.l").unwrap();
        let me = Jid::parse("a@l/phone").unwrap();
        let p = self_presence(&room, "a", &me, Standing::of_power(100), true).to_xml_string();
        assert!(p.contains(r##"from="#r%x@matrix.l/a""##), "{p}");
        assert!(
            p.contains(r#"code="110""#) && p.contains(r#"code="210""#),
            "{p}"
        );
        assert!(p.contains(r#"affiliation="owner""#), "{p}");
        assert!(p.contains(r#"jid="a@l/phone""#), "{p}");
    }

    #[test]
    fn kicks_and_bans_say_so() {
        let room = Jid::parse("#r%x@matrix.l").unwrap();
        let me = Jid::parse("a@l/phone").unwrap();
        let p =
            occupant_unavailable(&room, "bob", &me, &[301], Some("spam <3"), None).to_xml_string();
        assert!(p.contains(r#"affiliation="outcast""#), "{p}");
        assert!(p.contains("<reason>spam &lt;3</reason>"), "{p}");
    }
}
