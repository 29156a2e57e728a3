//! Stanzas from the user as Matrix requests.
//!
//! - presence to `room@host/nick`: join (by alias or id); unavailable:
//!   leave on the XMPP side;
//! - `groupchat` to a room, `chat` to a contact (a direct chat, opened
//!   with an invitation on the first message: `createRoom` with
//!   `is_direct`, then `m.direct` updated), `chat` to an occupant (a
//!   direct chat with that member): the body as `m.text` (`/me` as
//!   `m.emote`), XEP-0308 corrections as `m.replace`, XEP-0461 replies as
//!   `m.in_reply_to` (the fallback quote taken out of the body), a body
//!   that is exactly its XEP-0066 link (an XEP-0363 upload) as the file
//!   itself ([`super::media`]),
//!   XEP-0444 reactions as `m.reaction`s and redactions of the ones taken
//!   back, XEP-0424 retractions as redactions, a subject as the topic;
//! - chat states (XEP-0085) as typing notifications, displayed markers
//!   (XEP-0333) as read receipts;
//! - IQs to rooms: disco#info (encrypted rooms say so), MAM queries
//!   (XEP-0313) answered from `/messages`, pings; to contacts: disco#info
//!   and ping; to the transport: disco#items lists the joined rooms.
//!
//! Messages refer to earlier messages by the ids the user's client knows:
//! event ids (every message from Matrix has its event id as its id and,
//! in rooms, its `<stanza-id/>`), or the XMPP ids of the user's own
//! messages, looked up in what the session sent ([`super::SENT`]).

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{json, Value};
use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, stanza_type, ErrorType, StanzaError};
use switchboard_xml::{ns as xns, Element};

use super::rooms::Joiner;
use super::send::{txn_id, Op, Outgoing, Track};
use super::{stanzas, Purpose, Session};
use crate::address::{self, Address, RoomRef};
use crate::events::{Event, MessagesResponse};
use crate::http::{Method, Outcome, LARGE_BODY};
use crate::ns;
use crate::text::{clean, path_segment, MAX_BODY, MAX_LINE};

/// The most messages one MAM page returns.
const MAM_MAX: usize = 100;
const MAM_DEFAULT: usize = 20;

/// What a message stanza asks of Matrix.
enum Ask {
    /// Requests to queue.
    Send(Vec<Outgoing>),
    /// A chat state or marker: fire and forget.
    Quiet,
    Nothing,
}

impl Session {
    /// A stanza from the user.
    pub(super) fn stanza_from_xmpp(&mut self, s: &Element, now: Instant) {
        let (Some(from), Some(to)) = (
            s.attr("from").and_then(|f| Jid::parse(f).ok()),
            s.attr("to").and_then(|t| Jid::parse(t).ok()),
        ) else {
            return;
        };
        let addr = match address::parse(to.node(), to.resource()) {
            Ok(a) => a,
            Err(e) => return self.refuse(s, e.into()),
        };
        let kind = stanza_type(s).to_owned();
        match (s.name.as_str(), addr) {
            ("presence", Address::Room { room, nick }) => match (kind.as_str(), nick) {
                ("available", Some(nick)) => self.join(
                    Joiner {
                        full: from,
                        nick,
                        stanza: s.clone(),
                    },
                    room,
                ),
                ("available", None) => self.refuse(
                    s,
                    StanzaError::jid_malformed().with_text("say which nick to join with"),
                ),
                ("unavailable", _) => self.leave(&from, &room),
                _ => {}
            },
            ("presence", Address::User(user)) => self.contact_presence(&user, &kind),
            ("message", _) if kind == "error" => {}
            ("message", Address::Room { room, nick: None }) => {
                if kind != "groupchat" {
                    return self.refuse(
                        s,
                        StanzaError::bad_request()
                            .with_text("messages to a room are of type groupchat"),
                    );
                }
                let Some(id) = self.room_id_of(&room).filter(|id| {
                    self.rooms
                        .get(id)
                        .is_some_and(|r| r.resources.contains_key(&from))
                }) else {
                    return self.refuse(
                        s,
                        StanzaError::new("not-acceptable", ErrorType::Cancel)
                            .with_text("join the room before writing to it"),
                    );
                };
                self.message(s, &id, true, now);
            }
            (
                "message",
                Address::Room {
                    room,
                    nick: Some(nick),
                },
            ) => {
                // A private message to an occupant: a direct chat with
                // that member.
                let user = self
                    .room_id_of(&room)
                    .and_then(|id| self.rooms.get(&id))
                    .and_then(|r| r.user_of(&nick))
                    .map(str::to_owned);
                match user {
                    Some(u) => self.direct_message(s, &u, now),
                    None => self.refuse(
                        s,
                        StanzaError::new("item-not-found", ErrorType::Cancel)
                            .with_text("no occupant of the room has this nick"),
                    ),
                }
            }
            ("message", Address::User(user)) => self.direct_message(s, &user, now),
            ("message", Address::Transport) => self.refuse(
                s,
                StanzaError::service_unavailable()
                    .with_text("write to a Matrix user (alice%example.org@…) or a room"),
            ),
            ("iq", addr) if matches!(kind.as_str(), "get" | "set") => self.iq(s, &from, addr),
            _ => {}
        }
    }

    fn contact_presence(&mut self, user: &str, kind: &str) {
        let Some(jid) = address::user_jid(user, &self.host) else {
            return;
        };
        let user_jid = self.user.to_string();
        let presence = |ty: Option<&str>| {
            let mut p = Element::new("presence", xns::CLIENT)
                .with_attr("from", jid.to_string())
                .with_attr("to", user_jid.clone());
            if let Some(t) = ty {
                p.set_attr("type", t);
            }
            p
        };
        match kind {
            // Anyone on Matrix may be added; their presence follows when
            // the homeserver shares it (a room in common).
            "subscribe" => {
                self.emit(presence(Some("subscribed")));
                let cached = self.presence_of.get(user).cloned();
                self.emit(cached.unwrap_or_else(|| presence(Some("unavailable"))));
            }
            "probe" => {
                let cached = self.presence_of.get(user).cloned();
                self.emit(cached.unwrap_or_else(|| presence(Some("unavailable"))));
            }
            _ => {}
        }
    }

    /// The direct room with `user` the account is in, newest first.
    fn dm_room(&self, user: &str) -> Option<String> {
        self.direct
            .get(user)?
            .iter()
            .rev()
            .find(|r| self.joined.contains(*r))
            .cloned()
    }

    fn direct_message(&mut self, s: &Element, user: &str, now: Instant) {
        if user == self.me {
            return self.refuse(
                s,
                StanzaError::bad_request().with_text("that is your own Matrix account"),
            );
        }
        if let Some(room) = self.dm_room(user) {
            return self.message(s, &room, false, now);
        }
        // No direct chat yet: a first message opens one; anything else
        // has nothing to refer to.
        let Some(body) = s.child_text("body", &s.ns) else {
            return;
        };
        if s.get_child("replace", ns::CORRECT).is_some() {
            return self.refuse(
                s,
                StanzaError::new("item-not-found", ErrorType::Cancel)
                    .with_text("there is no direct chat with this Matrix user to correct in"),
            );
        }
        let item = match self.text_outgoing(s, "", &body, None) {
            Ok(i) => i,
            Err(e) => return self.refuse(s, e),
        };
        let first = !self.creating.contains_key(user);
        self.creating.entry(user.to_owned()).or_default().push(item);
        if first {
            let body = json!({
                "is_direct": true,
                "invite": [user],
                "preset": "trusted_private_chat",
            });
            self.request(
                Purpose::CreateDm {
                    contact: user.to_owned(),
                },
                Method::Post,
                "/_matrix/client/v3/createRoom".into(),
                Some(body),
            );
        }
    }

    pub(super) fn on_dm_created(&mut self, contact: &str, outcome: Outcome, now: Instant) {
        let mut waiting = self.creating.remove(contact).unwrap_or_default();
        let room = match &outcome {
            Ok(r) if r.ok() => r
                .json()
                .get("room_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let Some(room) = room else {
            let (err, why) = match outcome {
                Ok(r) => {
                    let e = r.error();
                    let c = match (e.status, e.errcode.as_str()) {
                        (_, "M_UNKNOWN" | "M_NOT_FOUND") | (404, _) => {
                            StanzaError::new("item-not-found", ErrorType::Cancel)
                        }
                        (403, _) => StanzaError::forbidden(),
                        _ if e.transient() => {
                            StanzaError::new("resource-constraint", ErrorType::Wait)
                        }
                        _ => StanzaError::new("service-unavailable", ErrorType::Cancel),
                    };
                    (c, e.to_string())
                }
                Err(f) => (
                    StanzaError::new("remote-server-timeout", ErrorType::Wait),
                    f.to_string(),
                ),
            };
            for item in waiting {
                self.refuse(
                    &item.origin,
                    err.clone()
                        .with_text(format!("cannot open a direct chat on Matrix: {why}")),
                );
            }
            return;
        };
        self.joined.insert(room.clone());
        self.direct
            .entry(contact.to_owned())
            .or_default()
            .push(room.clone());
        self.dm_of.insert(room.clone(), contact.to_owned());
        self.room_mut(&room).encrypted = Some(false);
        self.put_direct();
        // The transaction ids were made before the room existed; they
        // are made again with it, from the same stanza ids.
        for item in &mut waiting {
            let xid = item.origin.attr("id").map(str::to_owned);
            item.txn = txn_id(&self.user.to_string(), &room, xid.as_deref(), "msg");
        }
        self.enqueue(&room, waiting, now);
    }

    /// A message stanza to a room or a direct chat that exists.
    fn message(&mut self, s: &Element, room: &str, groupchat: bool, now: Instant) {
        match self.ask(s, room, groupchat) {
            Ok(Ask::Send(mut items)) => {
                if groupchat {
                    if let Some(last) = items.last_mut() {
                        last.reflect = true;
                    }
                }
                self.enqueue(room, items, now);
            }
            Ok(Ask::Quiet | Ask::Nothing) => {}
            Err(e) => self.refuse(s, e),
        }
    }

    /// The event id a message id refers to in `room`.
    fn resolve(&self, room: &str, id: &str) -> Option<String> {
        if id.starts_with('$') {
            return Some(id.to_owned());
        }
        self.sent.get(&(room.to_owned(), id.to_owned())).cloned()
    }

    fn ask(&mut self, s: &Element, room: &str, groupchat: bool) -> Result<Ask, StanzaError> {
        let user = self.user.to_string();
        let xid = s.attr("id").map(str::to_owned);
        let not_found = |what: &str| {
            StanzaError::new("item-not-found", ErrorType::Cancel).with_text(format!(
                "the message {what} refers to is not one this gateway knows"
            ))
        };
        let mut items = Vec::new();
        let mut quiet = false;
        // XEP-0424.
        if let Some(r) = s.get_child("retract", ns::RETRACT) {
            let target = r.attr("id").unwrap_or("");
            let event = self
                .resolve(room, target)
                .ok_or_else(|| not_found("the retraction"))?;
            items.push(Outgoing {
                op: Op::Redact { event },
                txn: txn_id(&user, room, xid.as_deref(), "retract"),
                origin: s.clone(),
                reflect: false,
                attach: None,
                track: Track::None,
            });
            return Ok(Ask::Send(items));
        }
        // XEP-0444: the new set against what the user has now.
        if let Some(r) = s.get_child("reactions", ns::REACTIONS) {
            let target_id = r.attr("id").unwrap_or("");
            let target = self
                .resolve(room, target_id)
                .ok_or_else(|| not_found("the reaction"))?;
            let wanted: BTreeSet<String> = r
                .elements()
                .filter(|e| e.is("reaction", ns::REACTIONS))
                .map(|e| e.text().trim().to_owned())
                .filter(|k| !k.is_empty() && k.len() <= 64)
                .take(20)
                .collect();
            let me = self.me.clone();
            let have = self.reactions.of(&target, &me);
            for key in wanted.iter().filter(|k| !have.contains_key(*k)) {
                items.push(Outgoing {
                    op: Op::Event {
                        kind: "m.reaction".into(),
                        content: json!({"m.relates_to": {
                            "rel_type": "m.annotation", "event_id": target, "key": key,
                        }}),
                    },
                    txn: txn_id(&user, room, xid.as_deref(), &format!("react:{key}")),
                    origin: s.clone(),
                    reflect: false,
                    attach: None,
                    track: Track::Reaction {
                        target: target.clone(),
                        key: key.clone(),
                    },
                });
            }
            for (key, event) in have.iter().filter(|(k, _)| !wanted.contains(*k)) {
                items.push(Outgoing {
                    op: Op::Redact {
                        event: event.clone(),
                    },
                    txn: txn_id(&user, room, xid.as_deref(), &format!("unreact:{key}")),
                    origin: s.clone(),
                    reflect: false,
                    attach: None,
                    track: Track::Unreaction {
                        event: event.clone(),
                    },
                });
            }
            return Ok(if items.is_empty() {
                Ask::Nothing
            } else {
                Ask::Send(items)
            });
        }
        // XEP-0333.
        if let Some(d) = s.get_child("displayed", ns::MARKERS) {
            if let Some(event) = d.attr("id").and_then(|id| self.resolve(room, id)) {
                let path = format!(
                    "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                    path_segment(room),
                    path_segment(&event)
                );
                self.request(
                    Purpose::Quiet("receipt"),
                    Method::Post,
                    path,
                    Some(json!({})),
                );
            }
            quiet = true;
        }
        // XEP-0085.
        let state = s
            .elements()
            .find(|e| e.ns == ns::CHAT_STATES)
            .map(|e| e.name.clone());
        let body = s.child_text("body", &s.ns);
        if let Some(state) = state {
            // A message with a body ends typing by itself.
            if body.is_none() || state != "active" {
                let typing = state == "composing";
                let mut content = json!({ "typing": typing });
                if typing {
                    content["timeout"] = json!(30_000);
                }
                let path = format!(
                    "/_matrix/client/v3/rooms/{}/typing/{}",
                    path_segment(room),
                    self.path_me()
                );
                self.request(Purpose::Quiet("typing"), Method::Put, path, Some(content));
            }
            quiet = true;
        }
        if let Some(body) = body {
            let replaces = match s
                .get_child("replace", ns::CORRECT)
                .and_then(|r| r.attr("id"))
            {
                Some(id) => Some(
                    self.resolve(room, id)
                        .ok_or_else(|| not_found("the correction"))?,
                ),
                None => None,
            };
            let mut item = self.text_outgoing(s, room, &body, replaces)?;
            if let Some(reply) = s.get_child("reply", ns::REPLY).and_then(|r| r.attr("id")) {
                if let (Some(event), Op::Event { content, .. }) =
                    (self.resolve(room, reply), &mut item.op)
                {
                    if content.get("m.relates_to").is_none() {
                        content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event}});
                    }
                }
            }
            items.push(item);
            return Ok(Ask::Send(items));
        }
        if groupchat {
            if let Some(subject) = s.child_text("subject", &s.ns) {
                items.push(Outgoing {
                    op: Op::State {
                        kind: "m.room.topic".into(),
                        key: String::new(),
                        content: json!({ "topic": clean(&subject, MAX_LINE) }),
                    },
                    txn: String::new(),
                    origin: s.clone(),
                    reflect: false,
                    attach: None,
                    track: Track::None,
                });
                return Ok(Ask::Send(items));
            }
        }
        Ok(if quiet { Ask::Quiet } else { Ask::Nothing })
    }

    /// A text message (or its correction) as an `m.room.message`.
    fn text_outgoing(
        &self,
        s: &Element,
        room: &str,
        body: &str,
        replaces: Option<String>,
    ) -> Result<Outgoing, StanzaError> {
        let body = strip_fallback(s, body);
        if body.len() > MAX_BODY {
            return Err(
                StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                    "the message is longer than the {MAX_BODY} bytes this gateway relays"
                )),
            );
        }
        let (msgtype, text) = match body.strip_prefix("/me ") {
            Some(rest) => ("m.emote", rest.to_owned()),
            None => ("m.text", body.clone()),
        };
        let text = clean(&text, MAX_BODY);
        let content = match &replaces {
            Some(event) => json!({
                "msgtype": msgtype,
                "body": format!("* {text}"),
                "m.new_content": { "msgtype": msgtype, "body": text },
                "m.relates_to": { "rel_type": "m.replace", "event_id": event },
            }),
            None => json!({ "msgtype": msgtype, "body": text }),
        };
        let xid = s.attr("id").map(str::to_owned);
        let part = if replaces.is_some() { "edit" } else { "msg" };
        Ok(Outgoing {
            op: Op::Event {
                kind: "m.room.message".into(),
                content,
            },
            txn: txn_id(&self.user.to_string(), room, xid.as_deref(), part),
            origin: s.clone(),
            reflect: false,
            attach: match &replaces {
                None => super::media::oob_link(s),
                Some(_) => None,
            },
            track: match (xid, &replaces) {
                (Some(xid), None) => Track::Message { xid },
                _ => Track::None,
            },
        })
    }

    fn iq(&mut self, s: &Element, from: &Jid, addr: Address) {
        let Some(q) = s.first_element() else {
            return self.refuse(s, StanzaError::bad_request());
        };
        let get = s.attr("type") == Some("get");
        match addr {
            Address::Transport if get && q.is("query", xns::DISCO_ITEMS) => {
                let mut items = Element::new("query", xns::DISCO_ITEMS);
                let mut rooms: Vec<&String> = self
                    .joined
                    .iter()
                    .filter(|r| !self.dm_of.contains_key(*r))
                    .collect();
                rooms.sort();
                for id in rooms.into_iter().take(1000) {
                    let known = self.rooms.get(id);
                    let jid = known
                        .filter(|r| !r.resources.is_empty())
                        .map(|r| r.jid.clone())
                        .or_else(|| address::room_jid(&RoomRef::Id(id.clone()), &self.host));
                    if let Some(jid) = jid {
                        let mut item = Element::new("item", xns::DISCO_ITEMS)
                            .with_attr("jid", jid.to_string());
                        if let Some(name) = known.and_then(|r| r.name.clone()) {
                            item.set_attr("name", name);
                        }
                        items.append_child(item);
                    }
                }
                self.emit(iq_result(s, Some(items)));
            }
            Address::Room { room, nick } => self.room_iq(s, from, &room, nick.as_deref(), q, get),
            Address::User(_) if get && q.is("query", xns::DISCO_INFO) => {
                let info = Element::new("query", xns::DISCO_INFO)
                    .with_child(
                        Element::new("identity", xns::DISCO_INFO)
                            .with_attr("category", "client")
                            .with_attr("type", "pc")
                            .with_attr("name", "Matrix user"),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", xns::DISCO_INFO),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::CHAT_STATES),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::MARKERS),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::CORRECT),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::REACTIONS),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::RETRACT),
                    )
                    .with_child(
                        Element::new("feature", xns::DISCO_INFO).with_attr("var", ns::REPLY),
                    );
                self.emit(iq_result(s, Some(info)));
            }
            Address::User(_) if get && q.is("ping", xns::PING) => self.emit(iq_result(s, None)),
            _ => self.refuse(s, StanzaError::service_unavailable()),
        }
    }

    fn room_iq(
        &mut self,
        s: &Element,
        from: &Jid,
        room: &RoomRef,
        nick: Option<&str>,
        q: &Element,
        get: bool,
    ) {
        let id = self.room_id_of(room);
        let known = id.as_ref().and_then(|i| self.rooms.get(i));
        match nick {
            Some(_) if get && q.is("ping", xns::PING) => {
                // XEP-0410: is this resource still in the room?
                if known.is_some_and(|r| r.resources.contains_key(from)) {
                    self.emit(iq_result(s, None));
                } else {
                    self.refuse(
                        s,
                        StanzaError::new("not-acceptable", ErrorType::Cancel)
                            .with_text("you are not in this room"),
                    );
                }
                return;
            }
            Some(_) => return self.refuse(s, StanzaError::service_unavailable()),
            None => {}
        }
        if get && q.is("query", xns::DISCO_INFO) {
            let name = known
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| room.as_str().to_owned());
            let mut info = Element::new("query", xns::DISCO_INFO).with_child(
                Element::new("identity", xns::DISCO_INFO)
                    .with_attr("category", "conference")
                    .with_attr("type", "text")
                    .with_attr("name", name),
            );
            for f in [
                xns::DISCO_INFO,
                ns::MUC,
                "muc_persistent",
                "muc_nonanonymous",
                ns::MAM,
                ns::STANZA_ID,
                "http://jabber.org/protocol/muc#self-ping-optimization",
            ] {
                info.append_child(Element::new("feature", xns::DISCO_INFO).with_attr("var", f));
            }
            if known.is_some_and(|r| r.encrypted == Some(true)) {
                let form = switchboard_service::forms::Form::new(
                    switchboard_service::forms::FormKind::Result,
                )
                .with_field(switchboard_service::forms::Field::form_type(ns::ROOMINFO))
                .with_field(
                    switchboard_service::forms::Field::new(
                        "muc#roominfo_description",
                        switchboard_service::forms::FieldKind::TextSingle,
                    )
                    .with_label("Description")
                    .with_value(
                        "End-to-end encrypted on Matrix: this gateway cannot read or send \
                         messages here",
                    ),
                );
                info.append_child(form.to_element());
            }
            return self.emit(iq_result(s, Some(info)));
        }
        if get && q.is("query", xns::DISCO_ITEMS) {
            return self.emit(iq_result(s, Some(Element::new("query", xns::DISCO_ITEMS))));
        }
        if get && q.is("ping", xns::PING) {
            return self.emit(iq_result(s, None));
        }
        if !get && q.is("query", ns::MAM) {
            let Some(id) = id.filter(|i| self.joined.contains(i)) else {
                return self.refuse(
                    s,
                    StanzaError::forbidden().with_text("join the room to read its history"),
                );
            };
            let set = q.get_child("set", ns::RSM);
            let max = set
                .and_then(|x| x.child_text("max", ns::RSM))
                .and_then(|m| m.trim().parse::<usize>().ok())
                .unwrap_or(MAM_DEFAULT)
                .clamp(1, MAM_MAX);
            let before = set
                .and_then(|x| x.child_text("before", ns::RSM))
                .filter(|b| !b.trim().is_empty());
            let mut path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={max}",
                path_segment(&id)
            );
            if let Some(b) = before {
                path.push_str("&from=");
                path.push_str(&path_segment(b.trim()));
            }
            let queryid = q.attr("queryid").map(str::to_owned);
            self.request_with(
                Purpose::Mam {
                    iq: s.clone(),
                    room: id,
                    queryid,
                },
                Method::Get,
                path,
                None,
                super::REQUEST_TIMEOUT,
                LARGE_BODY,
            );
            return;
        }
        self.refuse(s, StanzaError::service_unavailable());
    }

    /// A page of history, as MAM results then the `<fin/>`.
    pub(super) fn on_history(
        &mut self,
        iq: &Element,
        room: &str,
        queryid: Option<String>,
        outcome: Outcome,
    ) {
        let page = match outcome {
            Ok(r) if r.ok() => serde_json::from_slice::<MessagesResponse>(&r.body).ok(),
            _ => None,
        };
        let Some(page) = page else {
            if let Some(r) = error_reply(
                iq,
                &StanzaError::new("remote-server-timeout", ErrorType::Wait)
                    .with_text("the homeserver did not give the room's history"),
            ) {
                self.emit(r);
            }
            return;
        };
        let to = iq.attr("from").unwrap_or_default().to_owned();
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let room_jid = r.jid.to_string();
        let mut out = Vec::new();
        let mut first_id = None;
        let mut last_id = None;
        for e in page.chunk.iter().rev().filter_map(Event::parse) {
            if e.kind != "m.room.message" {
                continue;
            }
            let (Some(id), Some(sender)) = (e.event_id.clone(), e.sender.clone()) else {
                continue;
            };
            let Some(body) = super::to_xmpp::body_of(&e.content, e.in_reply_to().is_some()) else {
                continue;
            };
            let nick = r.nick_of(&sender);
            let inner = stanzas::message(&format!("{room_jid}/{nick}"), &to, "groupchat")
                .with_attr("id", id.clone())
                .with_child(Element::new("body", xns::CLIENT).with_text(body));
            let mut forwarded = Element::new("forwarded", ns::FORWARD);
            if let Some(ts) = e.origin_server_ts {
                forwarded.append_child(stanzas::delay(&room_jid, ts));
            }
            forwarded.append_child(inner);
            let mut result = Element::new("result", ns::MAM).with_attr("id", id.clone());
            if let Some(q) = &queryid {
                result.set_attr("queryid", q.clone());
            }
            result.append_child(forwarded);
            out.push(
                Element::new("message", xns::CLIENT)
                    .with_attr("from", room_jid.clone())
                    .with_attr("to", to.clone())
                    .with_child(result),
            );
            first_id.get_or_insert(id.clone());
            last_id = Some(id);
        }
        let more = page.end.is_some() && !page.chunk.is_empty();
        let mut set = Element::new("set", ns::RSM);
        // Paging backwards (`<before>` with the page's `<first>`) goes on
        // from where the homeserver stopped.
        if let (Some(end), true) = (&page.end, first_id.is_some()) {
            set.append_child(Element::new("first", ns::RSM).with_text(end.clone()));
        }
        if let Some(l) = last_id {
            set.append_child(Element::new("last", ns::RSM).with_text(l));
        }
        let mut fin = Element::new("fin", ns::MAM).with_child(set);
        if !more {
            fin.set_attr("complete", "true");
        }
        for m in out {
            self.emit(m);
        }
        self.emit(iq_result(iq, Some(fin)));
    }
}

/// The body without the quote an XEP-0461 reply marks as fallback
/// (XEP-0428 `<body start end/>`, in characters).
fn strip_fallback(s: &Element, body: &str) -> String {
    let range = s
        .elements()
        .filter(|e| e.is("fallback", ns::FALLBACK) && e.attr("for") == Some(ns::REPLY))
        .flat_map(|f| f.elements().filter(|b| b.name == "body"))
        .find_map(|b| {
            let start = b.attr("start")?.parse::<usize>().ok()?;
            let end = b.attr("end")?.parse::<usize>().ok()?;
            (start <= end).then_some((start, end))
        });
    match range {
        Some((start, end)) => body
            .chars()
            .enumerate()
            .filter(|(i, _)| *i < start || *i >= end)
            .map(|(_, c)| c)
            .collect(),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_fallbacks_are_cut_by_characters() {
        let s = switchboard_xml::parse_document(
            "<message xmlns='jabber:client'><body>> é quoted\nanswer</body>\
             <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='11'/></fallback></message>"
                .as_bytes(),
            Default::default(),
        )
        .unwrap();
        assert_eq!(strip_fallback(&s, "> é quoted\nanswer"), "answer");
    }
}
