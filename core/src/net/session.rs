//! A bound client session as the connection driver keeps it: who it is,
//! its outbox, the client's stanzas held behind unfinished work, its
//! presence bookkeeping, and its stream management state. It is the part
//! of a connection that outlives the socket while the session hibernates
//! (XEP-0198), and [`BoundSession::end`] is the one way a session ends,
//! whether its connection closed or its hibernation ran out.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use super::resume::Slot;
use crate::queue;
use crate::routing::table::{SessionEnd, SessionRef};
use crate::routing::Router;
use crate::sessions::Outbound;
use crate::stream::sm::{self, Sm};

/// Something from the client waiting for the work earlier stanzas started.
pub(crate) enum Held {
    Stanza(Element, Option<Jid>),
    /// An XEP-0198 `<r/>`, answered with the count once everything before
    /// it is handled.
    AckRequest,
    /// A stanza the stream machine answered itself (see
    /// `Action::Answered`), its answer waiting its turn.
    Answered(Option<Element>),
}

/// Stream management for a session, with its resumption if the client
/// asked for one.
pub(crate) struct SmState {
    pub sm: Sm,
    pub resume: Option<Resumption>,
}

/// A resumable session's registration.
pub(crate) struct Resumption {
    pub slot: Arc<Slot>,
    /// How long the session may hibernate.
    pub max: Duration,
}

pub(crate) struct BoundSession {
    /// Who the session is, its outbox's sending end, its shared state
    /// (kill switch, modules' state) and the tracker of the work its
    /// stanzas started that is not done yet (an offline message being
    /// stored, a roster being saved).
    pub session: SessionRef,
    pub rx: queue::Receiver<Outbound>,
    /// What the client sent, held back in order until that work is done:
    /// an IQ (or an ack request) is answered only when everything the
    /// client sent before it has been delivered or stored, and what
    /// follows waits behind it. While anything is held, nothing more is
    /// read.
    pub held: VecDeque<Held>,
    /// Entities this session sent directed available presence to; they
    /// get unavailable when it goes (RFC 6121 §4.6).
    pub directed: BTreeSet<Jid>,
    /// The session's current broadcast presence as the client sent it,
    /// and the status of its explicit goodbye. The connection sees the
    /// client's stanzas in order, so this is right even when the
    /// account's actor has not processed them yet.
    pub broadcast: Option<Element>,
    pub goodbye_status: Option<String>,
    pub sm: Option<Box<SmState>>,
    /// Without stream management: the stanzas of the write under way,
    /// kept until the write completes. If the connection dies in the
    /// middle, nobody can tell which of them the client got, so they go
    /// on like the outbox (a client that got some may see them twice;
    /// none is lost).
    pub in_flight: Vec<Element>,
}

impl BoundSession {
    pub fn new(session: SessionRef, rx: queue::Receiver<Outbound>) -> BoundSession {
        BoundSession {
            session,
            rx,
            held: VecDeque::new(),
            directed: BTreeSet::new(),
            broadcast: None,
            goodbye_status: None,
            sm: None,
            in_flight: Vec::new(),
        }
    }

    /// Whether the next held item may go: a stanza that is not an IQ, or
    /// anything once the work before it is done.
    fn must_wait(&self, held: &Held) -> bool {
        let waits_for_work = match held {
            Held::Stanza(el, _) => el.name == "iq",
            Held::AckRequest => true,
            Held::Answered(_) => false,
        };
        waits_for_work && self.session.pending.live() > 0
    }

    /// A stanza from the client: routed now, or held behind unfinished
    /// work.
    pub fn client_stanza(&mut self, router: &Router, el: Element, to: Option<Jid>) {
        let item = Held::Stanza(el, to);
        if !self.held.is_empty() || self.must_wait(&item) {
            self.held.push_back(item);
            return;
        }
        let Held::Stanza(el, to) = item else {
            unreachable!("built above")
        };
        self.route(router, el, to);
    }

    /// An `<r/>` from the client: the `<a/>` to write now, or `None` when
    /// it waits behind unfinished work (it comes from
    /// [`BoundSession::release_held`] then).
    pub fn ack_request(&mut self) -> Option<Element> {
        if !self.held.is_empty() || self.must_wait(&Held::AckRequest) {
            self.held.push_back(Held::AckRequest);
            return None;
        }
        Some(self.ack())
    }

    /// A stanza the stream machine answered itself: counted as handled,
    /// its answer written now (returned) or after what is held.
    pub fn answered(&mut self, reply: Option<Element>) -> Option<Element> {
        if !self.held.is_empty() {
            self.held.push_back(Held::Answered(reply));
            return None;
        }
        self.count_answered(reply)
    }

    fn count_answered(&mut self, reply: Option<Element>) -> Option<Element> {
        let sm = self.sm.as_mut().map(|s| &mut s.sm);
        if let Some(sm) = sm {
            sm.received();
            if let Some(r) = &reply {
                sm.sent(r.clone());
            }
        }
        reply
    }

    /// A stanza is being written to the client: under stream management it
    /// is kept until the client acknowledges it, otherwise until the write
    /// completes ([`BoundSession::written`]).
    pub fn sent(&mut self, el: Element) {
        match self.sm.as_mut() {
            Some(s) => s.sm.sent(el),
            None => self.in_flight.push(el),
        }
    }

    /// The write under way completed.
    pub fn written(&mut self) {
        self.in_flight.clear();
        if self.in_flight.capacity() > 16 {
            // An idle session keeps no buffer for a burst long past.
            self.in_flight = Vec::new();
        }
    }

    /// The work held items waited for is done: route them, up to the next
    /// one that has to wait for work the ones before it started. Returns
    /// what to write to the client now (`<a/>` answers, the machine's own
    /// answers), in order.
    pub fn release_held(&mut self, router: &Router) -> Vec<Element> {
        let mut out = Vec::new();
        while let Some(front) = self.held.front() {
            if self.must_wait(front) {
                break;
            }
            match self.held.pop_front() {
                Some(Held::Stanza(el, to)) => self.route(router, el, to),
                Some(Held::AckRequest) => out.push(self.ack()),
                Some(Held::Answered(reply)) => out.extend(self.count_answered(reply)),
                None => break,
            }
        }
        out
    }

    /// `<a h/>` with the stanzas handled so far.
    fn ack(&self) -> Element {
        let h = self.sm.as_ref().map_or(0, |s| s.sm.handled);
        Element::new("a", sm::NS).with_attr("h", h.to_string())
    }

    fn route(&mut self, router: &Router, el: Element, to: Option<Jid>) {
        self.track_directed(router, &el);
        if let Some(s) = self.sm.as_mut() {
            s.sm.received();
        }
        let s = &self.session;
        router.route_client(s.id, &s.pending, &s.jid, to, el);
    }

    /// Keeps the directed-presence list current before a stanza is routed.
    fn track_directed(&mut self, router: &Router, el: &Element) {
        if el.name != "presence" {
            return;
        }
        match (
            el.attr("to").and_then(|t| Jid::parse(t).ok()),
            crate::stanza::stanza_type(el),
        ) {
            (Some(to), "available") => {
                self.directed.insert(to);
            }
            (Some(to), "unavailable") => {
                self.directed.remove(&to);
            }
            (None, "available") => {
                self.broadcast = Some(el.clone());
                self.goodbye_status = None;
            }
            // Broadcast unavailable also ends every directed presence.
            (None, "unavailable") => {
                self.broadcast = None;
                self.goodbye_status = el.child_text("status", &el.ns).filter(|s| !s.is_empty());
                for to in std::mem::take(&mut self.directed) {
                    let mut p = el.clone();
                    p.set_attr("to", to.to_string());
                    router.route(p);
                }
            }
            _ => {}
        }
    }

    /// Ends the session, whatever ended it: what the client sent and is
    /// still held goes on (nobody waits for an answer any more), the
    /// session is given up on (out of the table, its place kept in its
    /// account's actor, if the router has not given up on it already),
    /// and what was written and not acknowledged, held by an outbound
    /// filter, or queued and not written is handed back: it goes on there,
    /// as for an absent resource (another resource, offline storage) or
    /// back to its sender, ahead of anything sent to the account since,
    /// and then contacts are told the session is gone.
    pub fn end(mut self, router: &Router) {
        // Answers the machine held for the client are lost with the
        // connection; they answer stanzas that went nowhere, so nothing
        // else is.
        for held in std::mem::take(&mut self.held) {
            if let Held::Stanza(el, to) = held {
                self.route(router, el, to);
            }
        }
        let s = &self.session;
        router.give_up(Some(&s.jid), s.id, &s.shared);
        // In the order the client would have seen them: written and not
        // acknowledged (or being written when the connection died), then
        // held by a filter (taken from the outbox before what is still in
        // it), then the outbox, which `hand_back` empties.
        let mut left = Vec::new();
        if let Some(sm) = self.sm.as_mut() {
            left.extend(sm.sm.take_unacked());
            if let Some(r) = &sm.resume {
                r.slot.forget();
            }
        }
        left.append(&mut self.in_flight);
        let unacked = left.len();
        if let Some(filter) = s.shared.ext.filter() {
            filter.drain(&mut left);
        }
        let end = SessionEnd {
            jid: s.jid.clone(),
            presence: self.broadcast.take().map(Arc::new),
            status: self.goodbye_status.take(),
            directed: std::mem::take(&mut self.directed).into_iter().collect(),
        };
        router.hand_back(&s.shared, left, &mut self.rx, end);
        tracing::info!(jid = %s.jid, unacked, "session ended");
    }
}
