//! What every stream Switchboard answers has in common, whatever it
//! carries and however it is framed: the header exchange with its checks,
//! stream ids, STARTTLS, restarts after TLS and SASL, stream errors and
//! closing, and the queue of actions for the driver. The client machine
//! (`c2s.rs`), the component machine (`component.rs`) and both
//! server-to-server machines (`s2s/`) are built on it; the framing (a TCP
//! stream or RFC 7395 WebSocket messages) is the driver's choice and
//! invisible here.
//!
//! Most of it serves the receiving side of a stream. The initiating side
//! (an outgoing server-to-server link) sends its header first
//! ([`Negotiation::initiate`]) and asks for TLS instead of granting it
//! ([`Negotiation::begin_tls`]); the rest is shared.
//!
//! Sans-IO: bytes in, actions out; no clock, no I/O.

use std::collections::VecDeque;

use switchboard_xml::stream::StreamOpen;
use switchboard_xml::{ns, Element, Event, Limits, StreamHeader};

use super::error::StreamError;
use super::framing::{Deframer, Framing};
use crate::ids::random_id;

/// The actions every machine's action type can express.
#[derive(Debug)]
pub(crate) enum Wire {
    /// Write these bytes (one top-level unit).
    Send(Vec<u8>),
    /// `<proceed/>` has been queued: flush it, run the TLS handshake, then
    /// tell the machine.
    StartTls,
    /// Flush what was sent and close the connection.
    Close,
}

/// Where the negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the peer's stream header.
    AwaitHeader,
    /// Header exchanged; negotiating or exchanging stanzas.
    Open,
    /// The driver is running TLS; nothing is processed.
    Tls,
    /// Waiting for the driver's answer to a lookup; input is buffered.
    Pending,
    Closed,
}

/// The shared part of a stream machine; `A` is the machine's own action
/// type, which takes the [`Wire`] actions.
pub(crate) struct Negotiation<A> {
    pub(crate) framing: Framing,
    deframer: Deframer,
    content_ns: &'static str,
    pub(crate) phase: Phase,
    actions: VecDeque<A>,
    header_sent: bool,
    /// The local name the first header asked for; restarts must keep it.
    pub(crate) host: Option<String>,
    /// Who our header is from before the peer has named anyone (empty:
    /// nobody).
    default_host: String,
    /// Whether our headers say `version='1.0'` (XEP-0114 streams do not).
    version: bool,
    /// Prefixes our headers declare besides `stream:` (`db:` for dialback
    /// on server-to-server streams).
    pub(crate) extra_ns: &'static [(&'static str, &'static str)],
    /// TLS is up (STARTTLS done, or direct TLS).
    pub(crate) secure: bool,
    /// The `tls-exporter` value, when TLS 1.3 makes -PLUS safe to offer.
    pub(crate) channel_binding: Option<Vec<u8>>,
}

impl<A: From<Wire>> Negotiation<A> {
    pub(crate) fn new(
        framing: Framing,
        content_ns: &'static str,
        limits: Limits,
        default_host: String,
        version: bool,
    ) -> Self {
        Negotiation {
            framing,
            deframer: Deframer::new(framing, content_ns, limits),
            content_ns,
            phase: Phase::AwaitHeader,
            actions: VecDeque::new(),
            header_sent: false,
            host: None,
            default_host,
            version,
            extra_ns: &[],
            secure: false,
            channel_binding: None,
        }
    }

    pub(crate) fn push(&mut self, action: A) {
        self.actions.push_back(action);
    }

    /// The next action for the driver.
    pub(crate) fn poll(&mut self) -> Option<A> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle stream keeps no action buffer (a few hundred bytes
            // each); the next stanza allocates it again.
            self.actions = VecDeque::new();
        }
        action
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether input is processed now (not during TLS or a lookup).
    pub(crate) fn is_processing(&self) -> bool {
        matches!(self.phase, Phase::AwaitHeader | Phase::Open)
    }

    pub(crate) fn send(&mut self, bytes: Vec<u8>) {
        self.actions.push_back(Wire::Send(bytes).into());
    }

    /// A stanza in the stream's content namespace.
    pub(crate) fn send_stanza(&mut self, el: &Element) {
        let bytes = self.framing.stanza(el, self.content_ns);
        self.send(bytes);
    }

    /// A negotiation element in its own namespace.
    pub(crate) fn send_nonza(&mut self, el: &Element) {
        let bytes = self.framing.nonza(el);
        self.send(bytes);
    }

    /// `<stream:features>` with the children of `features`.
    pub(crate) fn send_features(&mut self, features: &Element) {
        let bytes = self.framing.features(features);
        self.send(bytes);
    }

    /// Sends our header (or `<open/>`), from the host the peer asked for,
    /// with a fresh stream id, which it returns.
    pub(crate) fn open(&mut self) -> String {
        let id = random_id();
        let from = self
            .host
            .clone()
            .unwrap_or_else(|| self.default_host.clone());
        let bytes = self.framing.open(&StreamOpen {
            ns: self.content_ns,
            id: Some(&id),
            // No `from` before the peer named a host, when there is no
            // default to name (a component stream).
            from: (!from.is_empty()).then_some(from.as_str()),
            version: self.version,
            lang: self.version.then_some("en"),
            extra_ns: self.extra_ns,
            ..Default::default()
        });
        self.send(bytes);
        self.header_sent = true;
        self.phase = Phase::Open;
        id
    }

    /// The initiating side's header (`from` us, `to` the peer, no id),
    /// sent first on a new stream and again after each restart; the
    /// peer's header is awaited next.
    pub(crate) fn initiate(&mut self, from: &str, to: &str) {
        let bytes = self.framing.open(&StreamOpen {
            ns: self.content_ns,
            from: Some(from),
            to: Some(to),
            version: self.version,
            extra_ns: self.extra_ns,
            ..Default::default()
        });
        self.send(bytes);
        self.header_sent = true;
        self.phase = Phase::AwaitHeader;
    }

    /// The peer's header arrived on a stream we initiated: stanzas and
    /// negotiation elements may follow.
    pub(crate) fn header_received(&mut self) {
        self.phase = Phase::Open;
    }

    /// Bytes (or one WebSocket message) from the peer. Returns `false`
    /// when they broke the stream (it is closed with the error).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.phase == Phase::Closed {
            return false;
        }
        if let Err(e) = self.deframer.feed(bytes) {
            self.fail(StreamError::from(&e));
            return false;
        }
        true
    }

    /// The next parsed event while input is processed; `None` when input
    /// runs out, the machine must wait, or the input is broken (the stream
    /// is then closed with the error).
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        if !self.is_processing() {
            return None;
        }
        match self.deframer.next_event() {
            Ok(Some(Event::Stanza(_))) if self.phase == Phase::AwaitHeader => {
                self.fail(StreamError::new("not-well-formed"));
                None
            }
            Ok(Some(e)) => Some(e),
            Ok(None) => {
                self.deframer.shrink_if_idle();
                None
            }
            Err(e) => {
                self.fail(StreamError::from(&e));
                None
            }
        }
    }

    /// Checks a peer's header before anything is answered: `to` must name
    /// something `accept` takes (`host-unknown` with `unknown` otherwise),
    /// the same on every restart; a header in the middle of a stream is
    /// not well-formed. Returns the normalized name.
    pub(crate) fn check_to(
        &mut self,
        h: &StreamHeader,
        accept: impl Fn(&str) -> bool,
        unknown: &str,
    ) -> Option<String> {
        if self.phase != Phase::AwaitHeader {
            self.fail(StreamError::new("not-well-formed"));
            return None;
        }
        let to = h.attr("to").map(switchboard_jid::normalize_domain);
        let host = match to {
            Some(Ok(t)) if accept(&t) => t,
            _ => {
                self.fail(StreamError::with_text("host-unknown", unknown));
                return None;
            }
        };
        if let Some(prev) = &self.host {
            if *prev != host {
                self.fail(StreamError::with_text(
                    "host-unknown",
                    "the stream 'to' may not change on a stream restart",
                ));
                return None;
            }
        }
        self.host = Some(host.clone());
        Some(host)
    }

    /// Whether the header declares the content namespace the stream
    /// carries (a WebSocket `<open/>` implies it).
    pub(crate) fn has_content_ns(&self, h: &StreamHeader) -> bool {
        h.default_ns.as_deref() == Some(self.content_ns)
    }

    /// Closes the stream with an error (our header first, if it has not
    /// gone out yet).
    pub(crate) fn fail(&mut self, err: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.open();
        }
        let bytes = self.framing.error(&err);
        self.send(bytes);
        self.close_stream();
    }

    /// Closes the stream cleanly (the peer closed, or we are done).
    pub(crate) fn close_stream(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.open();
        }
        let bytes = self.framing.close();
        self.send(bytes);
        self.phase = Phase::Closed;
        self.actions.push_back(Wire::Close.into());
    }

    /// `<starttls/>` that cannot be honoured: `<failure/>` and the end of
    /// the stream (RFC 6120 §5.4.2.2), no stream error.
    pub(crate) fn refuse_tls(&mut self) {
        self.send_nonza(&Element::new("failure", ns::TLS));
        let bytes = self.framing.close();
        self.send(bytes);
        self.phase = Phase::Closed;
        self.actions.push_back(Wire::Close.into());
    }

    /// `<proceed/>`; the driver runs the TLS handshake next.
    pub(crate) fn start_tls(&mut self) {
        self.send_nonza(&Element::new("proceed", ns::TLS));
        self.begin_tls();
    }

    /// TLS starts now (we sent `<proceed/>`, or the peer did): the driver
    /// runs the handshake next.
    pub(crate) fn begin_tls(&mut self) {
        // Anything the peer pipelined after <starttls/> (or <proceed/>)
        // is plaintext that must not be interpreted once TLS is up
        // (CVE-2011-0411 style injection), so the parser is dropped here,
        // not after the handshake.
        self.deframer.reset();
        self.phase = Phase::Tls;
        self.actions.push_back(Wire::StartTls.into());
    }

    /// TLS is up; the peer restarts the stream.
    pub(crate) fn tls_established(&mut self, channel_binding: Option<Vec<u8>>) {
        self.secure = true;
        self.channel_binding = channel_binding;
        self.restart();
    }

    /// The peer restarts the stream (after TLS or SASL, RFC 6120 §6.4.6):
    /// what it sent before is dropped and a new header is expected.
    pub(crate) fn restart(&mut self) {
        self.deframer.reset();
        self.header_sent = false;
        self.phase = Phase::AwaitHeader;
    }
}
