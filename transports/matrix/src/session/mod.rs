//! One XMPP user's Matrix session as a sans-IO machine: stanzas from the
//! user, HTTP responses and `now` go in; HTTP requests, stanzas for the
//! user, state to persist and a timer deadline come out. It reads no
//! clock and touches no socket or file; [`crate::driver`] is the thin
//! driver that does.
//!
//! The driver's loop, after any `handle_*` call: perform every
//! [`Action`] from [`Session::poll_action`] in order (an HTTP request is
//! started, not awaited; a stanza is handed to the outbox; a
//! [`Action::Persist`] is written before the next action), then wait for
//! a request, a response, or the deadline of [`Session::poll_timeout`].
//! Because actions are performed in order, the sync token that follows a
//! batch's stanzas is stored only once they are delivered, and the next
//! `/sync` starts only once the token is stored.
//!
//! The life of a session:
//!
//! - **starting**: the user's direct chats (`m.direct`) and joined rooms
//!   are read; stanzas wait meanwhile ([`MAX_HELD`] of them);
//! - **running**: `/sync` long-polls one after another ([`sync`]); each
//!   stanza from the user becomes requests ([`from_xmpp`]) and each event
//!   stanzas ([`to_xmpp`]); sends go through per-room queues ([`send`]);
//!   files go both ways through the driver ([`media`]);
//! - a failed `/sync` (no answer, a 5xx, garbage, a redirect) is retried
//!   with backoff ([`RECONNECT`]), the user told once per outage and
//!   again when it is over; the token is not advanced, so nothing is
//!   skipped;
//! - an access token the homeserver no longer takes ends the session at
//!   once: the user is told to register again, and what was waiting to
//!   be sent is bounced;
//! - **stopping** (the user signed off): no more syncs, but queued
//!   messages are still sent, for up to [`STOP_GRACE`]; whatever is left
//!   then is bounced to its sender, never dropped in silence.

mod from_xmpp;
pub mod media;
mod rooms;
mod send;
mod stanzas;
mod sync;
mod to_xmpp;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_jid::Jid;
use switchboard_link::backoff::{Backoff, Jitter, Policy};
use switchboard_service::stanza::{error_reply, ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::address::RoomRef;
use crate::http::{Method, Outcome, Request, RequestId, SMALL_BODY};
use crate::recent::Recent;
use crate::state::Saved;
use crate::text::path_segment;
use rooms::{Joiner, Room};
use send::{Outgoing, Queue};

pub use stanzas::notice;

/// How long the homeserver may hold a `/sync` open when nothing happens.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long any other request may take, and how much longer than
/// [`SYNC_TIMEOUT`] a `/sync` may.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a session that was signed off keeps sending what was queued
/// before bouncing the rest.
pub const STOP_GRACE: Duration = Duration::from_secs(120);

/// Stanzas that wait while the session starts; more are refused.
pub const MAX_HELD: usize = 500;

/// Event ids remembered to deliver each event once (a back-filled gap
/// and the batch after it overlap; a sync retried after a failure
/// repeats events).
pub const SEEN: usize = 4096;

/// Event ids of the user's own messages remembered by their XMPP ids
/// (for corrections, replies, reactions and retractions).
pub const SENT: usize = 2048;

/// `/sync` retries: from 1 s, doubled per failure, capped at 2 minutes,
/// for as long as the user stays signed on (a homeserver being upgraded
/// comes back; the user has been told, and can sign off).
pub const RECONNECT: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(120),
    attempts: None,
    jitter: Jitter::EQUAL,
};

/// What the service hands a session.
#[derive(Debug)]
pub enum ToMatrix {
    /// A stanza from the user to a JID at the transport.
    Stanza(Element),
    /// The user's presence changed (to the transport).
    Presence(OwnPresence),
    /// The user signed off: finish sending, then end.
    Stop,
}

/// The user's own presence, as Matrix will show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnPresence {
    pub available: bool,
    /// XMPP `<show/>`: `away`, `xa`, `dnd`, `chat`, or none.
    pub show: Option<String>,
    pub status: Option<String>,
}

impl OwnPresence {
    /// From a presence stanza.
    pub fn of(p: &Element) -> OwnPresence {
        let child = |n: &str| {
            p.elements()
                .find(|e| e.name == n)
                .map(|e| e.text())
                .filter(|t| !t.is_empty())
        };
        OwnPresence {
            available: p.attr("type").is_none(),
            show: child("show"),
            status: child("status"),
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start this request; hand its outcome to
    /// [`Session::handle_response`].
    Http(Request),
    /// Deliver a stanza.
    Stanza(Element),
    /// Store the sync state (before the next action).
    Persist(Saved),
    /// Fetch a file from Matrix, store it for the user, and deliver the
    /// job's messages as [`media::MediaJob::finish`] makes them (before
    /// the next action).
    Media(media::MediaJob),
    /// The session is over; `signed_out` when the homeserver no longer
    /// takes its access token (the user must register again).
    End { signed_out: bool },
}

/// Who the session is for.
#[derive(Debug, Clone)]
pub struct Params {
    /// The transport's hostname.
    pub service_host: String,
    /// The user's bare JID.
    pub user: Jid,
    /// The user's Matrix id.
    pub user_id: String,
    /// What was stored last time.
    pub saved: Saved,
    /// The largest file from Matrix fetched and linked to, when the
    /// transport has an upload service to store files in; `None`: files
    /// are described in words.
    pub media_limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Stopping { deadline: Instant },
    Ended,
}

/// What a request in flight was for.
#[derive(Debug)]
enum Purpose {
    /// Starting: `m.direct`.
    Direct,
    /// Starting: the joined rooms.
    JoinedRooms,
    Sync,
    /// Filling a `limited` gap of `room`.
    Backfill {
        room: String,
        gen: u64,
    },
    /// The head of `room`'s send queue.
    Send {
        room: String,
    },
    /// Whether `room` is encrypted, before its first send.
    Encryption {
        room: String,
    },
    /// Joining a room an XMPP resource asked for.
    Join {
        room: RoomRef,
    },
    /// One part of a joined room's state.
    Load {
        room: String,
        part: rooms::Part,
    },
    /// Opening a direct chat with `contact`.
    CreateDm {
        contact: String,
    },
    /// Accepting an invitation to a direct chat.
    AcceptDm {
        room: String,
        inviter: String,
    },
    /// History for a MAM query.
    Mam {
        iq: Element,
        room: String,
        queryid: Option<String>,
    },
    /// The user's presence: the latest wins, a rate limit is waited out.
    Presence,
    /// Nothing waits on it (typing, receipts, `m.direct`): failures are
    /// logged.
    Quiet(&'static str),
}

/// One user's Matrix session.
pub struct Session {
    host: String,
    user: Jid,
    me: String,
    phase: Phase,
    next_id: u64,
    inflight: HashMap<RequestId, Purpose>,
    actions: VecDeque<Action>,
    /// Stanzas that arrived while starting.
    held: Vec<ToMatrix>,
    start: Start,
    saved: Saved,
    sync: sync::SyncState,
    seen: Recent<String, ()>,
    rooms: HashMap<String, Room>,
    /// How XMPP addressed a room (alias or id) → its room id.
    by_ref: HashMap<RoomRef, String>,
    /// Resources waiting for a room to be joined and loaded.
    joining: HashMap<RoomRef, Vec<Joiner>>,
    /// `m.direct`: contact → their direct rooms.
    direct: BTreeMap<String, Vec<String>>,
    /// The reverse: a direct room → the contact.
    dm_of: HashMap<String, String>,
    /// Rooms the Matrix account is joined to.
    joined: HashSet<String>,
    /// Messages waiting for a direct room with their contact.
    creating: HashMap<String, Vec<Outgoing>>,
    queues: HashMap<String, Queue>,
    /// (room, XMPP id) → event id of the user's own messages.
    sent: Recent<(String, String), String>,
    /// Event id → the XMPP id the user's client knows it by.
    sent_rev: Recent<String, String>,
    reactions: to_xmpp::Reactions,
    /// The last presence seen of each contact, for probes.
    presence_of: HashMap<String, Element>,
    own: OwnSent,
    /// The presence in flight.
    own_pending: Option<OwnPresence>,
    /// See [`Params::media_limit`].
    media_limit: Option<u64>,
}

/// The user's own presence on its way to Matrix: only the latest
/// matters, so a change while one is in flight (or waiting out a rate
/// limit; Synapse allows one update per ten seconds by default) replaces
/// what is sent next.
#[derive(Debug, Default)]
struct OwnSent {
    wanted: Option<OwnPresence>,
    inflight: bool,
    retry_at: Option<Instant>,
}

#[derive(Debug)]
struct Start {
    direct: bool,
    joined: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("me", &self.me)
            .field("phase", &self.phase)
            .field("rooms", &self.rooms.len())
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that starts at once: its first requests are waiting in
    /// [`Session::poll_action`].
    pub fn new(p: Params, now: Instant) -> Session {
        let mut s = Session {
            host: p.service_host,
            user: p.user.to_bare(),
            me: p.user_id,
            phase: Phase::Starting,
            next_id: 0,
            inflight: HashMap::new(),
            actions: VecDeque::new(),
            held: Vec::new(),
            start: Start {
                direct: false,
                joined: false,
                retry_at: None,
                backoff: Backoff::new(RECONNECT),
            },
            saved: p.saved,
            sync: sync::SyncState::new(),
            seen: Recent::new(SEEN),
            rooms: HashMap::new(),
            by_ref: HashMap::new(),
            joining: HashMap::new(),
            direct: BTreeMap::new(),
            dm_of: HashMap::new(),
            joined: HashSet::new(),
            creating: HashMap::new(),
            queues: HashMap::new(),
            sent: Recent::new(SENT),
            sent_rev: Recent::new(SENT),
            reactions: to_xmpp::Reactions::default(),
            presence_of: HashMap::new(),
            own: OwnSent::default(),
            own_pending: None,
            media_limit: p.media_limit,
        };
        s.begin(now);
        s
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |i: Option<Instant>| {
            if let Some(i) = i {
                t = Some(t.map_or(i, |t| t.min(i)));
            }
        };
        at(self.start.retry_at);
        at(self.sync.retry_at);
        at(self.own.retry_at);
        for q in self.queues.values() {
            at(q.retry_at);
        }
        if let Phase::Stopping { deadline } = self.phase {
            at(Some(deadline));
        }
        t
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The user's Matrix id.
    pub fn user_id(&self) -> &str {
        &self.me
    }

    /// A request from the service.
    pub fn handle(&mut self, req: ToMatrix, now: Instant) {
        match (self.phase, req) {
            (Phase::Ended, ToMatrix::Stanza(s)) => self.refuse(
                &s,
                StanzaError::new("remote-server-timeout", ErrorType::Wait)
                    .with_text("your Matrix session is ending; try again in a moment"),
            ),
            (Phase::Ended, _) => {}
            (_, ToMatrix::Stop) => self.stop(now),
            (Phase::Starting, req) => {
                if self.held.len() >= MAX_HELD {
                    if let ToMatrix::Stanza(s) = req {
                        self.refuse(
                            &s,
                            StanzaError::new("resource-constraint", ErrorType::Wait)
                                .with_text("your Matrix session is still starting"),
                        );
                    }
                } else {
                    self.held.push(req);
                }
            }
            (_, ToMatrix::Presence(p)) => self.set_presence(p, now),
            (_, ToMatrix::Stanza(s)) => self.stanza_from_xmpp(&s, now),
        }
        self.pump_all(now);
    }

    /// The outcome of a request.
    pub fn handle_response(&mut self, id: RequestId, outcome: Outcome, now: Instant) {
        let Some(purpose) = self.inflight.remove(&id) else {
            return;
        };
        if self.phase == Phase::Ended {
            return;
        }
        if let Ok(r) = &outcome {
            if !r.ok() && r.error().token_gone() {
                self.signed_out();
                return;
            }
        }
        match purpose {
            Purpose::Direct | Purpose::JoinedRooms => self.on_start(purpose, outcome, now),
            Purpose::Sync => self.on_sync(outcome, now),
            Purpose::Backfill { room, gen } => self.on_backfill(&room, gen, outcome, now),
            Purpose::Send { room } => self.on_sent(&room, outcome, now),
            Purpose::Encryption { room } => self.on_encryption(&room, outcome, now),
            Purpose::Join { room } => self.on_joined(room, outcome, now),
            Purpose::Load { room, part } => self.on_loaded(&room, part, outcome),
            Purpose::CreateDm { contact } => self.on_dm_created(&contact, outcome, now),
            Purpose::AcceptDm { room, inviter } => self.on_dm_accepted(room, inviter, outcome),
            Purpose::Mam { iq, room, queryid } => self.on_history(&iq, &room, queryid, outcome),
            Purpose::Presence => self.on_presence_set(outcome, now),
            Purpose::Quiet(what) => match outcome {
                Ok(r) if r.ok() => {}
                Ok(r) => {
                    tracing::debug!(user = %self.user, what, error = %r.error(), "Matrix request refused")
                }
                Err(e) => {
                    tracing::debug!(user = %self.user, what, error = %e, "Matrix request failed")
                }
            },
        }
        self.pump_all(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.start.retry_at.is_some_and(|t| t <= now) {
            self.start.retry_at = None;
            self.begin(now);
        }
        if self.sync.retry_at.is_some_and(|t| t <= now) {
            self.sync.retry_at = None;
            self.next_sync();
        }
        if self.own.retry_at.is_some_and(|t| t <= now) {
            self.own.retry_at = None;
            self.send_presence(now);
        }
        if let Phase::Stopping { deadline } = self.phase {
            if deadline <= now {
                self.give_up_queues(
                    "the Matrix session ended before this could be sent (the homeserver did \
                     not take it in time)",
                );
                self.end(false);
                return;
            }
        }
        self.pump_all(now);
    }

    /// Issues a request.
    fn request(
        &mut self,
        purpose: Purpose,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> RequestId {
        self.request_with(purpose, method, path, body, REQUEST_TIMEOUT, SMALL_BODY)
    }

    fn request_with(
        &mut self,
        purpose: Purpose,
        method: Method,
        path: String,
        body: Option<Value>,
        timeout: Duration,
        limit: usize,
    ) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.inflight.insert(id, purpose);
        self.actions.push_back(Action::Http(Request {
            id,
            method,
            path,
            body,
            timeout,
            limit,
            attach: None,
        }));
        id
    }

    fn emit(&mut self, stanza: Element) {
        self.actions.push_back(Action::Stanza(stanza));
    }

    /// An error reply to a stanza from the user (none to errors and
    /// results).
    fn refuse(&mut self, stanza: &Element, e: StanzaError) {
        if let Some(r) = error_reply(stanza, &e) {
            self.emit(r);
        }
    }

    /// A message from the transport itself to the user.
    fn notice(&mut self, text: &str) {
        self.emit(stanzas::notice(&self.host, &self.user, text));
    }

    fn path_me(&self) -> String {
        path_segment(&self.me)
    }

    // ---- starting

    fn begin(&mut self, _now: Instant) {
        let asking = |p: fn(&Purpose) -> bool, s: &Session| s.inflight.values().any(p);
        if !self.start.direct && !asking(|p| matches!(p, Purpose::Direct), self) {
            let path = format!(
                "/_matrix/client/v3/user/{}/account_data/m.direct",
                self.path_me()
            );
            self.request(Purpose::Direct, Method::Get, path, None);
        }
        if !self.start.joined && !asking(|p| matches!(p, Purpose::JoinedRooms), self) {
            self.request(
                Purpose::JoinedRooms,
                Method::Get,
                "/_matrix/client/v3/joined_rooms".into(),
                None,
            );
        }
    }

    fn on_start(&mut self, purpose: Purpose, outcome: Outcome, now: Instant) {
        let is_direct = matches!(purpose, Purpose::Direct);
        match outcome {
            Ok(r) if r.ok() || (is_direct && r.status == 404) => {
                let v = r.json();
                if is_direct {
                    if r.ok() {
                        self.set_direct(&v);
                    }
                    self.start.direct = true;
                } else {
                    if let Some(rooms) = v.get("joined_rooms").and_then(Value::as_array) {
                        self.joined
                            .extend(rooms.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    self.start.joined = true;
                }
            }
            other => {
                let why = match other {
                    Ok(r) => r.error().to_string(),
                    Err(e) => e.to_string(),
                };
                self.start_failed(&why, now);
                return;
            }
        }
        if self.start.direct && self.start.joined && self.phase == Phase::Starting {
            self.start.backoff.reset();
            self.phase = Phase::Running;
            self.announce_contacts();
            self.next_sync();
            for req in std::mem::take(&mut self.held) {
                match req {
                    ToMatrix::Stanza(s) => self.stanza_from_xmpp(&s, now),
                    ToMatrix::Presence(p) => self.set_presence(p, now),
                    ToMatrix::Stop => self.stop(now),
                }
            }
        }
    }

    fn start_failed(&mut self, why: &str, now: Instant) {
        if self.start.retry_at.is_some() {
            // The other start request failed too: one retry for both.
            return;
        }
        if self.start.backoff.failures() == 0 {
            self.notice(&format!(
                "Cannot reach your Matrix homeserver ({why}); trying again."
            ));
        }
        let delay = self.start.backoff.failed().unwrap_or(RECONNECT.max);
        self.start.retry_at = Some(now + delay);
    }

    // ---- presence

    fn set_presence(&mut self, p: OwnPresence, now: Instant) {
        self.own.wanted = Some(p);
        self.send_presence(now);
    }

    /// Sends the wanted presence unless one is in flight or waiting.
    fn send_presence(&mut self, now: Instant) {
        if self.own.inflight || self.own.retry_at.is_some_and(|t| t > now) {
            return;
        }
        let Some(p) = self.own.wanted.take() else {
            return;
        };
        let presence = match (p.available, p.show.as_deref()) {
            (false, _) => "offline",
            (true, Some("away" | "xa" | "dnd")) => "unavailable",
            (true, _) => "online",
        };
        let mut body = serde_json::json!({ "presence": presence });
        if let Some(status) = &p.status {
            body["status_msg"] = Value::String(crate::text::clean(status, crate::text::MAX_LINE));
        }
        let path = format!("/_matrix/client/v3/presence/{}/status", self.path_me());
        self.own.inflight = true;
        // Kept until Matrix took it, to be sent again after a refusal.
        self.own.wanted = None;
        self.own_pending = Some(p);
        self.request(Purpose::Presence, Method::Put, path, Some(body));
    }

    fn on_presence_set(&mut self, outcome: Outcome, now: Instant) {
        self.own.inflight = false;
        let sent = self.own_pending.take();
        let retry = match &outcome {
            Ok(r) if r.ok() => None,
            Ok(r) if r.error().transient() => Some(
                r.error()
                    .retry_after
                    .unwrap_or(Duration::from_secs(10))
                    .min(Duration::from_secs(300)),
            ),
            Ok(r) => {
                tracing::debug!(user = %self.user, error = %r.error(), "Matrix refused the presence");
                None
            }
            Err(_) => Some(Duration::from_secs(10)),
        };
        if let Some(delay) = retry {
            // A newer presence, if any, goes instead.
            if self.own.wanted.is_none() {
                self.own.wanted = sent;
            }
            self.own.retry_at = Some(now + delay);
            return;
        }
        self.send_presence(now);
    }

    // ---- the end

    fn stop(&mut self, now: Instant) {
        match self.phase {
            Phase::Starting => {
                // Nothing was sent yet: what waits is bounced.
                for req in std::mem::take(&mut self.held) {
                    if let ToMatrix::Stanza(s) = req {
                        self.refuse(
                            &s,
                            StanzaError::new("recipient-unavailable", ErrorType::Wait)
                                .with_text("you signed off from the Matrix gateway"),
                        );
                    }
                }
                self.end(false);
            }
            Phase::Running => {
                // Matrix shows the user offline from now.
                self.set_presence(OwnPresence::default(), now);
                self.phase = Phase::Stopping {
                    deadline: now + STOP_GRACE,
                };
                self.sync.retry_at = None;
                self.maybe_finish();
            }
            Phase::Stopping { .. } | Phase::Ended => {}
        }
    }

    /// Ends a stopping session once nothing waits to be sent.
    fn maybe_finish(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. })
            && self.queues.values().all(|q| q.is_idle())
            && self.creating.is_empty()
            // The offline presence is worth a wait too.
            && !self.own.inflight
            && self.own.wanted.is_none()
        {
            self.end(false);
        }
    }

    /// The homeserver no longer takes the access token.
    fn signed_out(&mut self) {
        self.notice(
            "Your Matrix homeserver no longer accepts this gateway's access token (the session \
             was signed out, or the token expired). Register with the gateway again to sign on.",
        );
        self.give_up_queues("your Matrix session was signed out");
        for req in std::mem::take(&mut self.held) {
            if let ToMatrix::Stanza(s) = req {
                self.refuse(
                    &s,
                    StanzaError::new("not-authorized", ErrorType::Auth)
                        .with_text("your Matrix session was signed out"),
                );
            }
        }
        self.end(true);
    }

    fn end(&mut self, signed_out: bool) {
        if self.phase == Phase::Ended {
            return;
        }
        // Occupants of rooms the user is in leave them on the XMPP side.
        let leaving: Vec<(Jid, Vec<(Jid, String)>)> = self
            .rooms
            .values()
            .filter(|r| !r.resources.is_empty())
            .map(|r| {
                (
                    r.jid.clone(),
                    r.resources
                        .iter()
                        .map(|(f, n)| (f.clone(), n.clone()))
                        .collect(),
                )
            })
            .collect();
        for (room, resources) in leaving {
            for (full, nick) in resources {
                self.emit(stanzas::self_unavailable(&room, &nick, &full, &[332], None));
            }
        }
        for (_, joiners) in std::mem::take(&mut self.joining) {
            for j in joiners {
                self.refuse(
                    &j.stanza,
                    StanzaError::new("remote-server-timeout", ErrorType::Wait)
                        .with_text("your Matrix session ended"),
                );
            }
        }
        self.phase = Phase::Ended;
        self.inflight.clear();
        self.actions.push_back(Action::End { signed_out });
    }

    /// Runs every queue that can go on.
    fn pump_all(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Running | Phase::Stopping { .. }) {
            let rooms: Vec<String> = self.queues.keys().cloned().collect();
            for room in rooms {
                self.pump(&room, now);
            }
            self.maybe_finish();
        }
    }
}
