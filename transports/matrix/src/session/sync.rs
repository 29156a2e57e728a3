//! `/sync`, done right.
//!
//! - One long-poll at a time, with `set_presence=offline` (the user's
//!   presence is what XMPP says, set on its own) and a filter that keeps
//!   batches small (lazy-loaded members, only `m.direct` of the account
//!   data).
//! - The very first sync of a registration (no token yet) reads the
//!   account's rooms and state, and delivers nothing from the timelines:
//!   that is history, for MAM.
//! - A room whose timeline is `limited` (more happened than the batch
//!   holds) and that the user follows (a direct chat, or a room a
//!   resource is in) has the gap filled from `/messages`, backwards from
//!   the timeline's `prev_batch` to the previous token, before anything
//!   of the batch is delivered, at most [`MAX_GAP_PAGES`] pages; beyond
//!   that the user is told some messages are only in the history.
//! - Events are delivered once: their ids are remembered ([`super::SEEN`]).
//! - Only when every stanza of a batch has been handed to the driver does
//!   `next_batch` become the saved token ([`super::Action::Persist`]),
//!   and only then does the next `/sync` start. A batch that cannot be
//!   completed (a gap that cannot be read) is dropped whole and the sync
//!   retried from the old token: events may come twice (and be
//!   recognised), never not at all.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use switchboard_link::backoff::Backoff;
use switchboard_xml::{ns as xns, Element};

use super::{stanzas, Action, Phase, Purpose, Session, RECONNECT, REQUEST_TIMEOUT, SYNC_TIMEOUT};
use crate::address::{self, RoomRef};
use crate::events::{Event, InvitedRoom, MessagesResponse, SyncResponse};
use crate::http::{Method, Outcome, LARGE_BODY};
use crate::ns;
use crate::text::{clean, clean_line, path_segment, MAX_LINE};

/// Pages of 100 events read to fill one room's gap.
pub const MAX_GAP_PAGES: usize = 10;

/// Events per page when filling a gap.
const GAP_PAGE: usize = 100;

/// Direct-chat contacts read from `m.direct` at most.
const MAX_CONTACTS: usize = 10_000;

/// The filter of every sync after the first.
const FILTER: &str = r#"{"room":{"timeline":{"limit":50},"state":{"lazy_load_members":true},"account_data":{"not_types":["*"]}},"account_data":{"types":["m.direct"]}}"#;

/// The first sync's: the rooms and their state, one event of history.
const FIRST_FILTER: &str = r#"{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true},"account_data":{"not_types":["*"]}},"account_data":{"types":["m.direct"]}}"#;

#[derive(Debug)]
pub struct SyncState {
    pub retry_at: Option<Instant>,
    backoff: Backoff,
    /// The user has been told the link is down.
    failing: bool,
    inflight: bool,
    /// A batch waiting for its gaps.
    batch: Option<Batch>,
    /// Numbers batches, so that a gap's page for a batch that was dropped
    /// is recognised.
    gen: u64,
}

impl SyncState {
    pub fn new() -> SyncState {
        SyncState {
            retry_at: None,
            backoff: Backoff::new(RECONNECT),
            failing: false,
            inflight: false,
            batch: None,
            gen: 0,
        }
    }
}

#[derive(Debug)]
struct Batch {
    resp: SyncResponse,
    waiting: usize,
    gaps: HashMap<String, Gap>,
}

#[derive(Debug, Default)]
struct Gap {
    /// Newest first, as `/messages` backwards gives them.
    events: Vec<Value>,
    pages: usize,
    to: String,
    truncated: bool,
}

impl Session {
    pub(super) fn next_sync(&mut self) {
        if self.phase != Phase::Running || self.sync.inflight || self.sync.batch.is_some() {
            return;
        }
        let (filter, timeout) = match &self.saved.next_batch {
            Some(_) => (FILTER, SYNC_TIMEOUT),
            None => (FIRST_FILTER, std::time::Duration::ZERO),
        };
        let mut path = format!(
            "/_matrix/client/v3/sync?timeout={}&set_presence=offline&filter={}",
            timeout.as_millis(),
            path_segment(filter)
        );
        if let Some(since) = &self.saved.next_batch {
            path.push_str("&since=");
            path.push_str(&path_segment(since));
        }
        self.sync.inflight = true;
        self.request_with(
            Purpose::Sync,
            Method::Get,
            path,
            None,
            timeout + REQUEST_TIMEOUT,
            LARGE_BODY,
        );
    }

    fn sync_failed(&mut self, why: String, now: Instant) {
        self.sync.batch = None;
        if !self.sync.failing {
            self.sync.failing = true;
            tracing::info!(user = %self.user, error = %why, "Matrix sync failed");
            self.notice(&format!(
                "Lost the connection to your Matrix homeserver: {why}. Trying again; nothing \
                 will be missed."
            ));
        }
        let delay = self.sync.backoff.failed().unwrap_or(RECONNECT.max);
        self.sync.retry_at = Some(now + delay);
    }

    pub(super) fn on_sync(&mut self, outcome: Outcome, now: Instant) {
        self.sync.inflight = false;
        if self.phase != Phase::Running {
            return;
        }
        let resp = match outcome {
            Ok(r) if r.ok() => match serde_json::from_slice::<SyncResponse>(&r.body) {
                Ok(s) => s,
                Err(e) => {
                    return self.sync_failed(
                        format!("its answer to /sync is not what Matrix specifies ({e})"),
                        now,
                    )
                }
            },
            Ok(r) => return self.sync_failed(r.error().to_string(), now),
            Err(f) => return self.sync_failed(f.to_string(), now),
        };
        self.sync.backoff.reset();
        if self.sync.failing {
            self.sync.failing = false;
            self.notice("Reconnected to your Matrix homeserver.");
        }
        self.sync.gen += 1;
        let gen = self.sync.gen;
        let mut batch = Batch {
            resp,
            waiting: 0,
            gaps: HashMap::new(),
        };
        if let Some(since) = self.saved.next_batch.clone() {
            let mut gaps = Vec::new();
            for (id, room) in &batch.resp.rooms.join {
                // A room the account has just entered comes with history
                // before the entry: that is no gap.
                let entered = self.entry(id, room.timeline.events.iter()).is_some();
                if room.timeline.limited && self.follows(id) && !entered {
                    if let Some(prev) = &room.timeline.prev_batch {
                        gaps.push((id.clone(), prev.clone()));
                    }
                }
            }
            for (id, prev) in gaps {
                self.gap_page(&id, &prev, &since, gen);
                batch.waiting += 1;
                batch.gaps.insert(
                    id,
                    Gap {
                        pages: 1,
                        to: since.clone(),
                        ..Gap::default()
                    },
                );
            }
        }
        if batch.waiting == 0 {
            self.handle_batch(batch);
        } else {
            self.sync.batch = Some(batch);
        }
    }

    /// The index of the event by which the account entered the room, if
    /// these events hold it: its join (not a join after a join, which is
    /// a new display name), or in a direct chat its invitation, so that a
    /// first message sent while the invitation waited is not history.
    fn entry<'a>(&self, id: &str, events: impl Iterator<Item = &'a Value>) -> Option<usize> {
        let dm = self.dm_of.contains_key(id);
        let mut found = None;
        for (i, v) in events.enumerate() {
            let s = |p: &[&str]| {
                p.iter()
                    .try_fold(v, |v, k| v.get(*k))
                    .and_then(Value::as_str)
            };
            if s(&["type"]) != Some("m.room.member") || s(&["state_key"]) != Some(self.me.as_str())
            {
                continue;
            }
            let now = s(&["content", "membership"]);
            let before = s(&["unsigned", "prev_content", "membership"]);
            let entering = match now {
                Some("join") => before != Some("join") && !(dm && before == Some("invite")),
                Some("invite") => dm,
                _ => false,
            };
            if entering {
                found = Some(i);
            }
        }
        found
    }

    /// Whether the user follows a room: a direct chat, or a room one of
    /// their resources is in.
    fn follows(&self, id: &str) -> bool {
        self.dm_of.contains_key(id) || self.rooms.get(id).is_some_and(|r| !r.resources.is_empty())
    }

    fn gap_page(&mut self, room: &str, from: &str, to: &str, gen: u64) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={GAP_PAGE}&from={}&to={}",
            path_segment(room),
            path_segment(from),
            path_segment(to)
        );
        self.request_with(
            Purpose::Backfill {
                room: room.to_owned(),
                gen,
            },
            Method::Get,
            path,
            None,
            REQUEST_TIMEOUT,
            LARGE_BODY,
        );
    }

    pub(super) fn on_backfill(&mut self, room: &str, gen: u64, outcome: Outcome, now: Instant) {
        if gen != self.sync.gen || self.sync.batch.is_none() {
            return;
        }
        let page = match outcome {
            Ok(r) if r.ok() => match serde_json::from_slice::<MessagesResponse>(&r.body) {
                Ok(m) => m,
                Err(e) => {
                    return self.sync_failed(
                        format!("its answer to /messages is not what Matrix specifies ({e})"),
                        now,
                    )
                }
            },
            Ok(r) => return self.sync_failed(r.error().to_string(), now),
            Err(f) => return self.sync_failed(f.to_string(), now),
        };
        let Some(batch) = self.sync.batch.as_mut() else {
            return;
        };
        let Some(gap) = batch.gaps.get_mut(room) else {
            return;
        };
        let more = !page.chunk.is_empty();
        gap.events.extend(page.chunk);
        match page.end {
            Some(end) if more && gap.pages < MAX_GAP_PAGES => {
                gap.pages += 1;
                let to = gap.to.clone();
                self.gap_page(room, &end, &to, gen);
                return;
            }
            Some(_) if more => gap.truncated = true,
            _ => {}
        }
        batch.waiting -= 1;
        if batch.waiting == 0 {
            if let Some(batch) = self.sync.batch.take() {
                self.handle_batch(batch);
            }
        }
    }

    fn handle_batch(&mut self, mut batch: Batch) {
        let first = self.saved.next_batch.is_none();
        let resp = std::mem::take(&mut batch.resp);
        for v in &resp.account_data.events {
            if let Some(e) = Event::parse(v) {
                if e.kind == "m.direct" {
                    self.set_direct(&e.content);
                    self.announce_contacts();
                }
            }
        }
        for (id, inv) in &resp.rooms.invite {
            self.on_invite(id, inv);
        }
        for (id, room) in resp.rooms.join {
            self.joined.insert(id.clone());
            for v in &room.state.events {
                if let Some(e) = Event::parse(v) {
                    if e.state_key.is_some() {
                        self.on_state(&id, &e, false);
                    }
                }
            }
            let gap = batch.gaps.remove(&id);
            let events: Vec<(&Value, bool)> = gap
                .iter()
                .flat_map(|g| g.events.iter().rev().map(|v| (v, true)))
                .chain(room.timeline.events.iter().map(|v| (v, false)))
                .collect();
            // What came before the account entered the room is history
            // (MAM has it): applied, not delivered.
            let entry = self.entry(&id, events.iter().map(|(v, _)| *v));
            for (i, (v, backfilled)) in events.into_iter().enumerate() {
                let live = entry.is_none_or(|e| i > e);
                self.on_timeline(&id, v, backfilled, !first && live);
            }
            if gap.is_some_and(|g| g.truncated) {
                self.room_notice(
                    &id,
                    "Some messages of the time the gateway was away are not shown here; \
                     the room's history has them.",
                );
            }
            if !first {
                for v in &room.ephemeral.events {
                    if let Some(e) = Event::parse(v) {
                        self.on_ephemeral(&id, &e);
                    }
                }
            }
        }
        for (id, room) in resp.rooms.leave {
            for v in &room.timeline.events {
                self.on_timeline(&id, v, false, !first);
            }
            self.joined.remove(&id);
        }
        for v in &resp.presence.events {
            if let Some(e) = Event::parse(v) {
                self.on_presence(&e);
            }
        }
        self.saved.next_batch = Some(resp.next_batch);
        self.actions.push_back(Action::Persist(self.saved.clone()));
        self.next_sync();
    }

    /// One timeline event: state is applied, anything else delivered
    /// (when `deliver`), once.
    fn on_timeline(&mut self, room: &str, v: &Value, backfilled: bool, deliver: bool) {
        let Some(e) = Event::parse(v) else {
            return;
        };
        if let Some(id) = &e.event_id {
            if self.seen.contains(id) {
                return;
            }
            self.seen.insert(id.clone(), ());
        }
        if e.state_key.is_some() {
            self.on_state(room, &e, deliver);
            return;
        }
        if deliver {
            self.event_to_xmpp(room, &e, backfilled);
        }
    }

    /// A message from the gateway in a room, to each resource in it.
    pub(super) fn room_notice(&mut self, id: &str, text: &str) {
        let Some(room) = self.rooms.get(id) else {
            return;
        };
        let out: Vec<Element> = room
            .resources
            .keys()
            .map(|full| {
                stanzas::message(&room.jid.to_string(), &full.to_string(), "groupchat")
                    .with_child(Element::new("body", xns::CLIENT).with_text(text))
            })
            .collect();
        for s in out {
            self.emit(s);
        }
    }

    /// `m.direct` content: contact → rooms.
    pub(super) fn set_direct(&mut self, v: &Value) {
        self.direct.clear();
        self.dm_of.clear();
        let Some(map) = v.as_object() else {
            return;
        };
        for (user, rooms) in map.iter().take(MAX_CONTACTS) {
            if address::user_jid(user, &self.host).is_none() {
                continue;
            }
            let rooms: Vec<String> = rooms
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .take(100)
                .map(str::to_owned)
                .collect();
            for r in &rooms {
                self.dm_of.insert(r.clone(), user.clone());
            }
            self.direct.insert(user.clone(), rooms);
        }
    }

    /// Asks the user to add each direct-chat contact not asked about
    /// before (a `subscribe` from the contact's JID, with its name).
    pub(super) fn announce_contacts(&mut self) {
        let new: Vec<String> = self
            .direct
            .keys()
            .filter(|u| !self.saved.contacts.contains(*u) && **u != self.me)
            .cloned()
            .collect();
        if new.is_empty() {
            return;
        }
        for user in new {
            if let Some(jid) = address::user_jid(&user, &self.host) {
                let p = Element::new("presence", xns::CLIENT)
                    .with_attr("from", jid.to_string())
                    .with_attr("to", self.user.to_string())
                    .with_attr("type", "subscribe")
                    .with_child(
                        Element::new("nick", ns::NICK)
                            .with_text(clean_line(address::localpart(&user), MAX_LINE)),
                    );
                self.emit(p);
            }
            self.saved.contacts.insert(user);
        }
        if self.phase == Phase::Running && self.sync.batch.is_none() {
            self.actions.push_back(Action::Persist(self.saved.clone()));
        }
    }

    /// Publishes `m.direct` after the session changed it.
    pub(super) fn put_direct(&mut self) {
        let body = serde_json::to_value(&self.direct).unwrap_or(Value::Null);
        let path = format!(
            "/_matrix/client/v3/user/{}/account_data/m.direct",
            self.path_me()
        );
        self.request(Purpose::Quiet("m.direct"), Method::Put, path, Some(body));
    }

    fn on_invite(&mut self, id: &str, inv: &InvitedRoom) {
        let events: Vec<Event> = inv
            .invite_state
            .events
            .iter()
            .filter_map(Event::parse)
            .collect();
        let Some(me) = events.iter().find(|e| {
            e.kind == "m.room.member"
                && e.state_key.as_deref() == Some(&self.me)
                && e.str("membership") == Some("invite")
        }) else {
            return;
        };
        let Some(inviter) = me.sender.clone() else {
            return;
        };
        if me.content.get("is_direct").and_then(Value::as_bool) == Some(true) {
            // A direct chat: accepted at once, so that its messages reach
            // the user like any other contact's.
            let path = format!("/_matrix/client/v3/join/{}", path_segment(id));
            self.request(
                Purpose::AcceptDm {
                    room: id.to_owned(),
                    inviter,
                },
                Method::Post,
                path,
                Some(serde_json::json!({})),
            );
            return;
        }
        // A room: an XEP-0249 invitation, which the user accepts by
        // joining.
        let state = |kind: &str, key: &str| {
            events
                .iter()
                .find(|e| e.kind == kind)
                .and_then(|e| e.str(key))
                .map(str::to_owned)
        };
        let room = match state("m.room.canonical_alias", "alias") {
            Some(alias)
                if address::room_jid(&RoomRef::Alias(alias.clone()), &self.host).is_some() =>
            {
                RoomRef::Alias(alias)
            }
            _ => RoomRef::Id(id.to_owned()),
        };
        let (Some(room_jid), Some(from)) = (
            address::room_jid(&room, &self.host),
            address::user_jid(&inviter, &self.host),
        ) else {
            return;
        };
        let name = state("m.room.name", "name").unwrap_or_else(|| room.as_str().to_owned());
        let reason = format!(
            "{} invites you to the Matrix room {}",
            clean_line(&inviter, MAX_LINE),
            clean_line(&name, MAX_LINE)
        );
        let m = stanzas::message(&from.to_string(), &self.user.to_string(), "normal")
            .with_child(
                Element::new("x", ns::CONFERENCE)
                    .with_attr("jid", room_jid.to_string())
                    .with_attr("reason", reason.clone()),
            )
            .with_child(
                Element::new("body", xns::CLIENT)
                    .with_text(format!("{reason}: join {room_jid} to accept.")),
            );
        self.emit(m);
    }

    pub(super) fn on_dm_accepted(&mut self, room: String, inviter: String, outcome: Outcome) {
        match outcome {
            Ok(r) if r.ok() => {
                self.joined.insert(room.clone());
                let rooms = self.direct.entry(inviter.clone()).or_default();
                if !rooms.contains(&room) {
                    rooms.push(room.clone());
                }
                self.dm_of.insert(room, inviter);
                self.put_direct();
                self.announce_contacts();
            }
            Ok(r) => self.notice(&format!(
                "Could not accept {}'s direct chat on Matrix: {}",
                clean_line(&inviter, MAX_LINE),
                r.error()
            )),
            Err(f) => self.notice(&format!(
                "Could not accept {}'s direct chat on Matrix: {f}",
                clean_line(&inviter, MAX_LINE)
            )),
        }
    }

    /// A contact's presence.
    fn on_presence(&mut self, e: &Event) {
        let Some(sender) = e.sender.as_deref() else {
            return;
        };
        if !self.direct.contains_key(sender) || sender == self.me {
            return;
        }
        let Some(jid) = address::user_jid(sender, &self.host) else {
            return;
        };
        let mut p = Element::new("presence", xns::CLIENT)
            .with_attr("from", jid.to_string())
            .with_attr("to", self.user.to_string());
        match e.str("presence") {
            Some("online") => {}
            Some("unavailable") => {
                p.append_child(Element::new("show", xns::CLIENT).with_text("away"))
            }
            _ => p.set_attr("type", "unavailable"),
        }
        if let Some(status) = e.str("status_msg").filter(|s| !s.is_empty()) {
            p.append_child(Element::new("status", xns::CLIENT).with_text(clean(status, MAX_LINE)));
        }
        self.presence_of.insert(sender.to_owned(), p.clone());
        self.emit(p);
    }

    /// Typing notifications and read receipts.
    fn on_ephemeral(&mut self, id: &str, e: &Event) {
        match e.kind.as_str() {
            "m.typing" => {
                let now: std::collections::BTreeSet<String> = e
                    .content
                    .get("user_ids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|u| *u != self.me)
                    .take(100)
                    .map(str::to_owned)
                    .collect();
                let before = std::mem::replace(&mut self.room_mut(id).typing, now.clone());
                for u in now.difference(&before) {
                    self.chat_state_from(id, u, "composing");
                }
                for u in before.difference(&now) {
                    self.chat_state_from(id, u, "paused");
                }
            }
            "m.receipt" => {
                let Some(map) = e.content.as_object() else {
                    return;
                };
                let mut marks = Vec::new();
                for (event, kinds) in map.iter().take(100) {
                    let Some(readers) = kinds.get("m.read").and_then(Value::as_object) else {
                        continue;
                    };
                    for user in readers.keys().take(100) {
                        if *user != self.me {
                            marks.push((event.clone(), user.clone()));
                        }
                    }
                }
                for (event, user) in marks {
                    self.displayed_from(id, &user, &event);
                }
            }
            _ => {}
        }
    }

    /// The JIDs a room member's stanzas come from and go to, as
    /// (from, to, type) triples: the contact in a direct chat, the
    /// occupant to each resource in a room.
    pub(super) fn senders(&self, room: &str, user: &str) -> Vec<(String, String, &'static str)> {
        if let Some(contact) = self.dm_of.get(room) {
            if contact != user {
                return Vec::new();
            }
            return address::user_jid(user, &self.host)
                .map(|j| vec![(j.to_string(), self.user.to_string(), "chat")])
                .unwrap_or_default();
        }
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.resources
            .iter()
            .map(|(full, own)| {
                let nick = if user == self.me {
                    own.clone()
                } else {
                    r.nick_of(user)
                };
                (format!("{}/{nick}", r.jid), full.to_string(), "groupchat")
            })
            .collect()
    }

    fn chat_state_from(&mut self, room: &str, user: &str, state: &str) {
        for (from, to, ty) in self.senders(room, user) {
            self.emit(stanzas::chat_state(&from, &to, ty, state));
        }
    }

    fn displayed_from(&mut self, room: &str, user: &str, event: &str) {
        let id = self.ref_id(room, event);
        for (from, to, ty) in self.senders(room, user) {
            self.emit(stanzas::displayed(&from, &to, ty, &id));
        }
    }

    /// The id the user's client knows an event by: in a direct chat,
    /// the XMPP id of a message it sent, else the event id; in a room
    /// the event id, which is the `<stanza-id/>` every message from the
    /// room carries (XEP-0333, XEP-0424 and XEP-0444 refer to messages
    /// in groupchat by it).
    pub(super) fn ref_id(&self, room: &str, event: &str) -> String {
        if !self.dm_of.contains_key(room) {
            return event.to_owned();
        }
        self.xmpp_id(event)
    }

    /// The XMPP id of a message the user sent, else the event id (what
    /// XEP-0308 corrections refer to, in rooms too).
    pub(super) fn xmpp_id(&self, event: &str) -> String {
        self.sent_rev
            .get(&event.to_owned())
            .cloned()
            .unwrap_or_else(|| event.to_owned())
    }
}
