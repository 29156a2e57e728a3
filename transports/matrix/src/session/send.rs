//! Sending to Matrix: one queue per room, one request in flight per
//! room, so that messages arrive in the order they were written.
//!
//! - Every send is idempotent: its transaction id is derived from the
//!   XMPP stanza's id ([`txn_id`]), so the same stanza sent twice (a
//!   client resending after a reconnection, a retry after a timeout
//!   whose request did arrive) is one Matrix event.
//! - `429 M_LIMIT_EXCEEDED` pauses the room's queue for `retry_after_ms`
//!   (or `Retry-After`), then the same request goes again; a 5xx, a
//!   timeout or no connection retries with backoff ([`SEND_RETRY`]).
//!   Nothing is dropped: a message leaves the queue when Matrix took it
//!   (and the room reflects it to the sender's resources, as XEP-0045
//!   rooms do), or with an error to its sender when Matrix refused it for
//!   good.
//! - A room's encryption is checked before its first send; into an
//!   encrypted room nothing is posted: each message is refused with
//!   `not-acceptable` and a text saying why.
//! - Beyond [`MAX_QUEUED`] messages waiting in one room, new ones are
//!   refused with `resource-constraint` (type `wait`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_link::backoff::{Backoff, Jitter, Policy};
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::Element;

use super::{Action, Purpose, Session};
use crate::http::{Method, Outcome};
use crate::ns;
use crate::text::path_segment;

/// Messages that may wait in one room's queue.
pub const MAX_QUEUED: usize = 1000;

/// Retries after a failure that is not a rate limit.
pub const SEND_RETRY: Policy = Policy {
    first: Duration::from_millis(500),
    max: Duration::from_secs(60),
    attempts: None,
    jitter: Jitter::EQUAL,
};

/// The wait after a 429 that says nothing about how long.
const RATE_LIMIT_DEFAULT: Duration = Duration::from_secs(2);

/// What one request does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `PUT /rooms/{room}/send/{kind}/{txn}`.
    Event { kind: String, content: Value },
    /// `PUT /rooms/{room}/redact/{event}/{txn}`.
    Redact { event: String },
    /// `PUT /rooms/{room}/state/{kind}/{key}`.
    State {
        kind: String,
        key: String,
        content: Value,
    },
}

/// What to remember once Matrix took it.
#[derive(Debug, Clone, PartialEq)]
pub enum Track {
    None,
    /// A message: its XMPP id ↔ its event id.
    Message {
        xid: String,
    },
    /// One of the user's reactions.
    Reaction {
        target: String,
        key: String,
    },
    /// One of the user's reactions taken back.
    Unreaction {
        event: String,
    },
}

/// One queued request.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub op: Op,
    pub txn: String,
    /// The stanza it comes from: errors go back to its sender.
    pub origin: Element,
    /// Reflect `origin` to the room's resources once sent (the last
    /// request of a groupchat stanza).
    pub reflect: bool,
    pub track: Track,
    /// The URL of a file to post with this event (XEP-0066): the driver
    /// fetches it, uploads it to the homeserver and sends the event as an
    /// `m.image`/`m.file` instead ([`super::media`]); on failure the
    /// event goes as it is, the URL as text.
    pub attach: Option<String>,
}

/// One room's queue.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Outgoing>,
    inflight: bool,
    checking: bool,
    pub retry_at: Option<Instant>,
    backoff: Backoff,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            items: VecDeque::new(),
            inflight: false,
            checking: false,
            retry_at: None,
            backoff: Backoff::new(SEND_RETRY),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.items.is_empty() && !self.inflight
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// A transaction id for a request from a stanza: the same (user, room,
/// stanza id, part) always gives the same id; a stanza without an id gets
/// a random one.
pub fn txn_id(user: &str, room: &str, stanza_id: Option<&str>, part: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match stanza_id {
        Some(id) => {
            let mut h = Sha256::new();
            for piece in [user, room, part, id] {
                h.update(piece.as_bytes());
                h.update([0]);
            }
            format!("sb{}", &b64.encode(h.finalize())[..27])
        }
        None => {
            let mut bytes = [0u8; 18];
            // Without a random source the id is still unique enough for
            // one session: the address of the array and the length.
            if getrandom::fill(&mut bytes).is_err() {
                let fallback = format!("{:p}{}", &bytes, room.len());
                bytes[..fallback.len().min(18)]
                    .copy_from_slice(&fallback.as_bytes()[..fallback.len().min(18)]);
            }
            format!("sbr{}", b64.encode(bytes))
        }
    }
}

impl Session {
    /// Queues requests for `room`; refuses the stanza when the queue is
    /// full.
    pub(super) fn enqueue(&mut self, room: &str, items: Vec<Outgoing>, now: Instant) {
        if items.is_empty() {
            return;
        }
        let q = self
            .queues
            .entry(room.to_owned())
            .or_insert_with(Queue::new);
        if q.len() + items.len() > MAX_QUEUED {
            let origin = items[0].origin.clone();
            self.refuse(
                &origin,
                StanzaError::new("resource-constraint", ErrorType::Wait).with_text(format!(
                    "{MAX_QUEUED} messages are already waiting for this Matrix room; try again \
                     when they are sent"
                )),
            );
            return;
        }
        q.items.extend(items);
        self.pump(room, now);
    }

    /// Starts the head of `room`'s queue when nothing is in flight.
    pub(super) fn pump(&mut self, room: &str, now: Instant) {
        loop {
            let encrypted = self.rooms.get(room).and_then(|r| r.encrypted);
            let Some(q) = self.queues.get_mut(room) else {
                return;
            };
            if q.inflight || q.checking {
                return;
            }
            match q.retry_at {
                Some(t) if t > now => return,
                Some(_) => q.retry_at = None,
                None => {}
            }
            let Some(head) = q.items.front() else {
                self.queues.remove(room);
                return;
            };
            let posts = !matches!(head.op, Op::Redact { .. });
            match (posts, encrypted) {
                (true, None) => {
                    q.checking = true;
                    let path = format!(
                        "/_matrix/client/v3/rooms/{}/state/m.room.encryption/",
                        path_segment(room)
                    );
                    self.request(
                        Purpose::Encryption {
                            room: room.to_owned(),
                        },
                        Method::Get,
                        path,
                        None,
                    );
                    return;
                }
                (true, Some(true)) => {
                    let item = q.items.pop_front().expect("a head");
                    self.refuse(
                        &item.origin,
                        StanzaError::new("not-acceptable", ErrorType::Cancel).with_text(
                            "this Matrix room is end-to-end encrypted, and the gateway cannot \
                             encrypt: nothing was sent, rather than sending it in clear",
                        ),
                    );
                    continue;
                }
                _ => {}
            }
            let (path, body) = match &head.op {
                Op::Event { kind, content } => (
                    format!(
                        "/_matrix/client/v3/rooms/{}/send/{}/{}",
                        path_segment(room),
                        path_segment(kind),
                        path_segment(&head.txn)
                    ),
                    content.clone(),
                ),
                Op::Redact { event } => (
                    format!(
                        "/_matrix/client/v3/rooms/{}/redact/{}/{}",
                        path_segment(room),
                        path_segment(event),
                        path_segment(&head.txn)
                    ),
                    serde_json::json!({}),
                ),
                Op::State { kind, key, content } => (
                    format!(
                        "/_matrix/client/v3/rooms/{}/state/{}/{}",
                        path_segment(room),
                        path_segment(kind),
                        path_segment(key)
                    ),
                    content.clone(),
                ),
            };
            q.inflight = true;
            let attach = head.attach.clone();
            self.request(
                Purpose::Send {
                    room: room.to_owned(),
                },
                Method::Put,
                path,
                Some(body),
            );
            if let Some(Action::Http(r)) = self.actions.back_mut() {
                r.attach = attach;
            }
            return;
        }
    }

    pub(super) fn on_encryption(&mut self, room: &str, outcome: Outcome, now: Instant) {
        let known = match &outcome {
            Ok(r) if r.ok() => Some(true),
            Ok(r) if r.status == 404 => Some(false),
            _ => None,
        };
        if let Some(k) = known {
            self.room_mut(room).encrypted = Some(k);
        }
        if let Some(q) = self.queues.get_mut(room) {
            q.checking = false;
            if known.is_none() {
                let delay = q.backoff.failed().unwrap_or(SEND_RETRY.max);
                q.retry_at = Some(now + delay);
            }
        }
    }

    pub(super) fn on_sent(&mut self, room: &str, outcome: Outcome, now: Instant) {
        let Some(q) = self.queues.get_mut(room) else {
            return;
        };
        q.inflight = false;
        match outcome {
            Ok(r) if r.ok() => {
                q.backoff.reset();
                let Some(item) = q.items.pop_front() else {
                    return;
                };
                let event = r
                    .json()
                    .get("event_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.sent_ok(room, item, event);
            }
            Ok(r) => {
                let e = r.error();
                if e.transient() {
                    let delay = match (e.rate_limited(), e.retry_after) {
                        (true, Some(d)) => d.min(Duration::from_secs(3600)),
                        (true, None) => RATE_LIMIT_DEFAULT,
                        _ => q.backoff.failed().unwrap_or(SEND_RETRY.max),
                    };
                    tracing::debug!(room, error = %e, ?delay, "Matrix send deferred");
                    q.retry_at = Some(now + delay);
                    return;
                }
                let Some(item) = q.items.pop_front() else {
                    return;
                };
                let condition = match (e.status, e.errcode.as_str()) {
                    (403, _) | (_, "M_FORBIDDEN") => StanzaError::forbidden(),
                    (413, _) | (_, "M_TOO_LARGE") => {
                        StanzaError::new("not-acceptable", ErrorType::Modify)
                    }
                    (404, _) | (_, "M_NOT_FOUND") => {
                        StanzaError::new("item-not-found", ErrorType::Cancel)
                    }
                    _ => StanzaError::bad_request(),
                };
                self.refuse(
                    &item.origin,
                    condition.with_text(format!("Matrix refused this: {e}")),
                );
            }
            Err(f) => {
                let delay = q.backoff.failed().unwrap_or(SEND_RETRY.max);
                tracing::debug!(room, error = %f, ?delay, "Matrix send will be retried");
                q.retry_at = Some(now + delay);
            }
        }
    }

    /// Matrix took a request: remember what it made, reflect the stanza
    /// to a room's resources.
    fn sent_ok(&mut self, room: &str, item: Outgoing, event: Option<String>) {
        match (&item.track, &event) {
            (Track::Message { xid }, Some(ev)) => {
                self.sent.insert((room.to_owned(), xid.clone()), ev.clone());
                self.sent_rev.insert(ev.clone(), xid.clone());
            }
            (Track::Reaction { target, key }, Some(ev)) => {
                let me = self.me.clone();
                self.reactions.add(target, &me, key, ev);
            }
            (Track::Unreaction { event }, _) => {
                self.reactions.remove(event);
            }
            _ => {}
        }
        if !item.reflect {
            return;
        }
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let room_jid = r.jid.to_string();
        let out: Vec<Element> = r
            .resources
            .iter()
            .map(|(full, nick)| {
                let mut m = item.origin.clone();
                m.set_attr("from", format!("{room_jid}/{nick}"));
                m.set_attr("to", full.to_string());
                m.remove_child("stanza-id", ns::STANZA_ID);
                if let Some(ev) = &event {
                    m.append_child(
                        Element::new("stanza-id", ns::STANZA_ID)
                            .with_attr("by", room_jid.clone())
                            .with_attr("id", ev.clone()),
                    );
                }
                m
            })
            .collect();
        for m in out {
            self.emit(m);
        }
    }

    /// Bounces everything still waiting to be sent.
    pub(super) fn give_up_queues(&mut self, why: &str) {
        let mut items: Vec<Outgoing> = Vec::new();
        for (_, q) in self.queues.drain() {
            items.extend(q.items);
        }
        for (_, waiting) in self.creating.drain() {
            items.extend(waiting);
        }
        for item in items {
            self.refuse(
                &item.origin,
                StanzaError::new("remote-server-timeout", ErrorType::Wait).with_text(why),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_follow_the_stanza_id() {
        let a = txn_id("u@l", "!r:x", Some("m1"), "msg");
        assert_eq!(a, txn_id("u@l", "!r:x", Some("m1"), "msg"));
        assert_ne!(a, txn_id("u@l", "!r:x", Some("m2"), "msg"));
        assert_ne!(a, txn_id("u@l", "!s:x", Some("m1"), "msg"));
        assert_ne!(a, txn_id("u@l", "!r:x", Some("m1"), "react:👍"));
        assert!(
            a.len() < 40
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        );
        assert_ne!(
            txn_id("u@l", "!r:x", None, "msg"),
            txn_id("u@l", "!r:x", None, "msg")
        );
    }
}
