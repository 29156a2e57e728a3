//! Matrix events as XMPP messages.
//!
//! - `m.room.message` (and `m.sticker`): a `chat` message from the
//!   contact in a direct chat, a `groupchat` message from the occupant to
//!   each resource in a room, its id the event id (in rooms also its
//!   `<stanza-id/>`); `m.emote` as `/me`; edits (`m.replace`) as XEP-0308
//!   corrections; replies as XEP-0461 (the quoted fallback Matrix clients
//!   put in the body is taken out); files and images described in words,
//!   never as an `mxc://` link, which no XMPP client can open, or, when
//!   the server has an upload service, fetched and linked to there
//!   ([`super::media`]);
//! - `m.reaction` as the sender's whole set of reactions (XEP-0444), kept
//!   per message so that a reaction taken back (a redaction) sends the
//!   smaller set;
//! - `m.room.redaction` of a message as an XEP-0424 retraction;
//! - `m.room.encrypted` as a line saying it cannot be read here;
//! - the user's own messages: echoes of what the transport sent (they
//!   carry our transaction id) are dropped; what the user sent from other
//!   Matrix devices comes as a carbon (XEP-0280 `<sent/>`) in a direct
//!   chat and from the user's own nick in a room;
//! - anything else is skipped.
//!
//! Every text has been through [`crate::text::clean`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use switchboard_xml::{ns as xns, Element};

use super::{media, stanzas, Action, Session};
use crate::address;
use crate::events::Event;
use crate::ns;
use crate::recent::Recent;
use crate::text::{clean, clean_line, MAX_BODY, MAX_LINE};

/// Messages whose reactions are remembered.
const REACTED: usize = 2048;

/// Who reacted how to recent messages, and which event each reaction
/// is (to recognise its redaction).
#[derive(Debug)]
pub struct Reactions {
    /// Target event → sender → key → reaction event.
    by_target: Recent<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// Reaction event → (target, sender, key).
    by_event: Recent<String, (String, String, String)>,
}

impl Default for Reactions {
    fn default() -> Reactions {
        Reactions {
            by_target: Recent::new(REACTED),
            by_event: Recent::new(REACTED * 4),
        }
    }
}

impl Reactions {
    /// Records a reaction; false when it was known.
    pub fn add(&mut self, target: &str, sender: &str, key: &str, event: &str) -> bool {
        if self.by_event.contains(&event.to_owned()) {
            return false;
        }
        if self.by_target.get(&target.to_owned()).is_none() {
            self.by_target.insert(target.to_owned(), BTreeMap::new());
        }
        if let Some(t) = self.by_target.get_mut(&target.to_owned()) {
            t.entry(sender.to_owned())
                .or_default()
                .insert(key.to_owned(), event.to_owned());
        }
        self.by_event.insert(
            event.to_owned(),
            (target.to_owned(), sender.to_owned(), key.to_owned()),
        );
        true
    }

    /// Forgets a reaction event; its (target, sender) when it was one.
    pub fn remove(&mut self, event: &str) -> Option<(String, String)> {
        let (target, sender, key) = self.by_event.remove(&event.to_owned())?;
        if let Some(t) = self.by_target.get_mut(&target) {
            if let Some(keys) = t.get_mut(&sender) {
                if keys.get(&key).map(String::as_str) == Some(event) {
                    keys.remove(&key);
                }
            }
        }
        Some((target, sender))
    }

    /// One sender's keys on a target, with their reaction events.
    pub fn of(&self, target: &str, sender: &str) -> BTreeMap<String, String> {
        self.by_target
            .get(&target.to_owned())
            .and_then(|t| t.get(sender))
            .cloned()
            .unwrap_or_default()
    }
}

/// A Matrix message's text as XMPP shows it.
pub fn body_of(content: &Value, reply: bool) -> Option<String> {
    let s = |k: &str| content.get(k).and_then(Value::as_str);
    let body = s("body").unwrap_or("");
    let text = match s("msgtype").unwrap_or("m.text") {
        "m.emote" => format!("/me {body}"),
        kind @ ("m.image" | "m.file" | "m.video" | "m.audio") => media(kind, content),
        "m.location" => match s("geo_uri") {
            Some(geo) => format!("{body} {geo}"),
            None => body.to_owned(),
        },
        _ if body.is_empty() => return None,
        _ if reply => strip_reply_fallback(body).to_owned(),
        _ => body.to_owned(),
    };
    Some(clean(&text, MAX_BODY))
}

/// A file or image in words: what it is, its name and size, never its
/// `mxc://` address.
fn media(kind: &str, content: &Value) -> String {
    let what = match kind {
        "m.image" => "image",
        "m.video" => "video",
        "m.audio" => "audio",
        _ => "file",
    };
    let name = content
        .get("filename")
        .or_else(|| content.get("body"))
        .and_then(Value::as_str)
        .filter(|n| !n.starts_with("mxc://"))
        .map(|n| clean_line(n, MAX_LINE))
        .unwrap_or_else(|| "unnamed".into());
    let size = content
        .get("info")
        .and_then(|i| i.get("size"))
        .and_then(Value::as_u64)
        .map(|b| match b {
            b if b >= 1 << 20 => format!(", {:.1} MB", b as f64 / (1 << 20) as f64),
            b if b >= 1 << 10 => format!(", {} KB", b >> 10),
            b => format!(", {b} bytes"),
        })
        .unwrap_or_default();
    format!("[{what}: {name}{size} — sent on Matrix; open it in a Matrix client]")
}

/// The body without the quote of the message replied to (`> <@a:x>
/// text` lines and the blank line after them), which Matrix clients add
/// for clients without replies; XMPP clients show the reply themselves.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while let Some(line_end) = rest.find('\n') {
        if !rest.starts_with('>') {
            break;
        }
        rest = &rest[line_end + 1..];
    }
    if rest.starts_with('>') {
        // The whole body is a quote: keep it.
        return body;
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

impl Session {
    /// Delivers a non-state timeline event.
    pub(super) fn event_to_xmpp(&mut self, room: &str, e: &Event, backfilled: bool) {
        let Some(sender) = e.sender.clone() else {
            return;
        };
        let own = sender == self.me;
        if own && e.unsigned.transaction_id.is_some() {
            // Our own send coming back: the user has it already.
            return;
        }
        let dm = self.dm_of.get(room).cloned();
        let followed = dm.is_some()
            || self
                .rooms
                .get(room)
                .is_some_and(|r| !r.resources.is_empty());
        match e.kind.as_str() {
            "m.reaction" => self.on_reaction(room, e, &sender, followed),
            _ if !followed => {}
            "m.room.message" | "m.sticker" => {
                let reply = e.in_reply_to().is_some();
                let (content, replaces) = match e.relation() {
                    Some(("m.replace", target)) => (
                        e.content.get("m.new_content").unwrap_or(&e.content),
                        Some(target.to_owned()),
                    ),
                    _ => (&e.content, None),
                };
                let content = if e.kind == "m.sticker" {
                    let mut c = content.clone();
                    c["msgtype"] = Value::String("m.image".into());
                    c
                } else {
                    content.clone()
                };
                let Some(body) = body_of(&content, reply) else {
                    return;
                };
                // A file is fetched when it first arrives, not again when
                // it is edited.
                let media = self
                    .media_limit
                    .filter(|_| replaces.is_none())
                    .and_then(|limit| media::source(&content, limit));
                let mut extra = Vec::new();
                if let Some(target) = replaces {
                    extra.push(
                        Element::new("replace", ns::CORRECT).with_attr("id", self.xmpp_id(&target)),
                    );
                }
                if let Some(target) = e.in_reply_to() {
                    extra.push(
                        Element::new("reply", ns::REPLY).with_attr("id", self.ref_id(room, target)),
                    );
                }
                self.deliver_with(room, e, &sender, &body, extra, backfilled, media);
            }
            "m.room.encrypted" => {
                self.deliver(
                    room,
                    e,
                    &sender,
                    "[an end-to-end encrypted message, which this gateway cannot read]",
                    Vec::new(),
                    backfilled,
                );
            }
            "m.room.redaction" => self.on_redaction(room, e, &sender),
            _ => {}
        }
    }

    /// A message with `body` (and `extra` children) from `sender`.
    fn deliver(
        &mut self,
        room: &str,
        e: &Event,
        sender: &str,
        body: &str,
        extra: Vec<Element>,
        backfilled: bool,
    ) {
        self.deliver_with(room, e, sender, body, extra, backfilled, None);
    }

    /// [`Session::deliver`], the messages going out as a
    /// [`media::MediaJob`] when `media` names a file to fetch (server,
    /// media id, name, content type).
    #[allow(clippy::too_many_arguments)]
    fn deliver_with(
        &mut self,
        room: &str,
        e: &Event,
        sender: &str,
        body: &str,
        extra: Vec<Element>,
        backfilled: bool,
        media: Option<(String, String, String, String)>,
    ) {
        let out = self.messages(room, e, sender, body, extra, backfilled);
        match (media, self.media_limit) {
            (Some((server, media_id, name, content_type)), Some(limit)) if !out.is_empty() => {
                self.actions.push_back(Action::Media(media::MediaJob {
                    server,
                    media_id,
                    name,
                    content_type,
                    owner: self.user.to_string(),
                    limit,
                    stanzas: out,
                }));
            }
            _ => {
                for m in out {
                    self.emit(m);
                }
            }
        }
    }

    /// The messages that carry `body` from `sender` to the user's
    /// resources (a carbon for what the user sent from elsewhere).
    fn messages(
        &self,
        room: &str,
        e: &Event,
        sender: &str,
        body: &str,
        extra: Vec<Element>,
        backfilled: bool,
    ) -> Vec<Element> {
        let id = e.event_id.clone().unwrap_or_default();
        let own = sender == self.me;
        let dm = self.dm_of.get(room).cloned();
        let fill = |mut m: Element, delay_from: &str| {
            m.set_attr("id", id.clone());
            m.append_child(Element::new("body", xns::CLIENT).with_text(body));
            for x in &extra {
                m.append_child(x.clone());
            }
            if backfilled {
                if let Some(ts) = e.origin_server_ts {
                    m.append_child(stanzas::delay(delay_from, ts));
                }
            }
            m
        };
        if let Some(contact) = dm {
            let Some(contact_jid) = address::user_jid(&contact, &self.host) else {
                return Vec::new();
            };
            let user = self.user.to_string();
            if own {
                // Sent from another Matrix device: a carbon.
                let inner = fill(
                    stanzas::message(&user, &contact_jid.to_string(), "chat"),
                    &self.host,
                );
                return vec![stanzas::sent_carbon(
                    &contact_jid.to_string(),
                    &self.user,
                    inner,
                )];
            } else if contact == sender {
                let m = fill(
                    stanzas::message(&contact_jid.to_string(), &user, "chat"),
                    &self.host,
                )
                .with_child(Element::new("markable", ns::MARKERS));
                return vec![m];
            }
            return Vec::new();
        }
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let room_jid = r.jid.to_string();
        self.senders(room, sender)
            .into_iter()
            .map(|(from, to, ty)| {
                fill(stanzas::message(&from, &to, ty), &room_jid).with_child(
                    Element::new("stanza-id", ns::STANZA_ID)
                        .with_attr("by", room_jid.clone())
                        .with_attr("id", id.clone()),
                )
            })
            .collect()
    }

    fn on_reaction(&mut self, room: &str, e: &Event, sender: &str, followed: bool) {
        let Some(rel) = e.content.get("m.relates_to") else {
            return;
        };
        let (Some("m.annotation"), Some(target), Some(key), Some(event)) = (
            rel.get("rel_type").and_then(Value::as_str),
            rel.get("event_id").and_then(Value::as_str),
            rel.get("key").and_then(Value::as_str),
            e.event_id.as_deref(),
        ) else {
            return;
        };
        let key = clean_line(key, 64);
        if !self.reactions.add(target, sender, &key, event) || !followed || sender == self.me {
            return;
        }
        self.send_reactions(room, target, sender);
    }

    /// `sender`'s whole set of reactions to `target`, to the user.
    fn send_reactions(&mut self, room: &str, target: &str, sender: &str) {
        let keys: BTreeSet<String> = self.reactions.of(target, sender).into_keys().collect();
        let id = self.ref_id(room, target);
        for (from, to, ty) in self.senders(room, sender) {
            self.emit(stanzas::reactions(
                &from,
                &to,
                ty,
                &id,
                keys.iter().map(String::as_str),
            ));
        }
    }

    fn on_redaction(&mut self, room: &str, e: &Event, sender: &str) {
        let Some(redacted) = e.redacted() else {
            return;
        };
        if let Some((target, reactor)) = self.reactions.remove(redacted) {
            if reactor != self.me {
                self.send_reactions(room, &target, &reactor);
            }
            return;
        }
        if sender == self.me {
            return;
        }
        let id = self.ref_id(room, redacted);
        for (from, to, ty) in self.senders(room, sender) {
            self.emit(stanzas::retraction(&from, &to, ty, &id, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_say_what_they_are_without_mxc_links() {
        assert_eq!(
            body_of(&json!({"msgtype":"m.emote","body":"waves"}), false).unwrap(),
            "/me waves"
        );
        let img = body_of(
            &json!({"msgtype":"m.image","body":"cat.png","url":"mxc://x/abc","info":{"size":2048}}),
            false,
        )
        .unwrap();
        assert!(img.starts_with("[image: cat.png, 2 KB"), "{img}");
        assert!(!img.contains("mxc://"), "{img}");
        let nameless = body_of(
            &json!({"msgtype":"m.file","body":"mxc://x/y","url":"mxc://x/y"}),
            false,
        )
        .unwrap();
        assert!(!nameless.contains("mxc://"), "{nameless}");
        assert_eq!(body_of(&json!({"msgtype":"m.text"}), false), None);
        assert_eq!(
            body_of(&json!({"body":"a\u{0}b <c>"}), false).unwrap(),
            "ab <c>",
            "text for XML, escaped by the serializer"
        );
    }

    #[test]
    fn reply_fallbacks_are_taken_out() {
        assert_eq!(strip_reply_fallback("> <@a:x> hi\n> there\n\nyes"), "yes");
        assert_eq!(strip_reply_fallback("no quote"), "no quote");
        assert_eq!(strip_reply_fallback("> only a quote"), "> only a quote");
    }

    #[test]
    fn reactions_are_sets_per_sender_and_redactions_shrink_them() {
        let mut r = Reactions::default();
        assert!(r.add("$m", "@a:x", "👍", "$r1"));
        assert!(!r.add("$m", "@a:x", "👍", "$r1"));
        r.add("$m", "@a:x", "🎉", "$r2");
        assert_eq!(r.of("$m", "@a:x").len(), 2);
        assert_eq!(r.remove("$r1"), Some(("$m".into(), "@a:x".into())));
        assert_eq!(
            r.of("$m", "@a:x").into_keys().collect::<Vec<_>>(),
            vec!["🎉"]
        );
        assert_eq!(r.remove("$nope"), None);
    }
}
