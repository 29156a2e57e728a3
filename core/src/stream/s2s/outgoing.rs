//! The initiating side of a server-to-server stream (RFC 6120), sans-IO:
//! a link from one of our domains to a remote domain, which carries our
//! users' stanzas there.
//!
//! ```text
//! us:   <stream:stream xmlns='jabber:server' from='us' to='them' version='1.0'>
//! peer: header (id), features with <starttls/>
//! us:   <starttls/>     peer: <proceed/>     … TLS …     restart
//! peer: features: <mechanisms>EXTERNAL</mechanisms> and/or <dialback/>
//! us:   <auth mechanism='EXTERNAL'>…</auth>  → <success/>, restart, features
//!  or   <db:result from='us' to='them'>KEY</db:result> → type='valid'
//! then our stanzas, in order
//! ```
//!
//! TLS is always required. Whether the peer's certificate verifies for
//! its domain is the driver's verdict, given with TLS; under secure-auth
//! a peer whose certificate does not verify is given up on before we
//! authenticate. We prefer SASL EXTERNAL and fall back to dialback when
//! the peer offers it and the policy allows.
//!
//! The link also carries `<db:verify/>` questions for incoming streams
//! that claimed the remote domain: they are sent as soon as TLS is up,
//! before (and whatever the outcome of) our own authentication, because
//! the peer may be waiting for our answer to finish its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use switchboard_xml::{ns, Element, Event, StreamHeader};

use super::{dialback, AuthMethod, LinkFailure, S2sPolicy, DB_DECL};
use crate::stream::error::StreamError;
use crate::stream::framing::Framing;
use crate::stream::negotiation::{Negotiation, Wire};

/// What the driver must do next.
#[derive(Debug)]
pub enum OutAction {
    /// Write these bytes.
    Send(Vec<u8>),
    /// `<proceed/>` came: run the TLS handshake (naming the remote domain,
    /// presenting our certificate), then call [`S2sOut::tls_established`].
    StartTls,
    /// We are authenticated: stanzas may go ([`S2sOut::send_stanza`]).
    Established(AuthMethod),
    /// The peer's answer to a `<db:verify/>` this link carried.
    Verified { id: String, valid: bool },
    /// Flush what was sent and close the connection;
    /// [`S2sOut::failure`] says why.
    Close,
}

impl From<Wire> for OutAction {
    fn from(w: Wire) -> OutAction {
        match w {
            Wire::Send(b) => OutAction::Send(b),
            Wire::StartTls => OutAction::StartTls,
            Wire::Close => OutAction::Close,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHeader,
    AwaitFeatures,
    AwaitProceed,
    Tls,
    AwaitSasl,
    AwaitDialback,
    Established,
}

/// One outgoing server-to-server stream.
pub struct S2sOut {
    policy: Arc<S2sPolicy>,
    local: String,
    remote: String,
    neg: Negotiation<OutAction>,
    state: State,
    /// The id of the peer's current stream (dialback keys are bound to it).
    stream_id: Option<String>,
    /// The driver's verdict on the peer's certificate.
    cert_ok: bool,
    /// SASL EXTERNAL succeeded (the restart's features finish the set-up).
    sasl_done: bool,
    /// The peer's features after TLS offered dialback.
    dialback_offered: bool,
    /// The peer's features came over TLS: `<db:verify/>` may go.
    ready_for_verify: bool,
    /// `<db:verify/>` questions (id, key) not sent yet, and sent ones.
    verifies: VecDeque<(String, String)>,
    asked: Vec<String>,
    failure: Option<LinkFailure>,
    started: Instant,
    now: Instant,
    last_stanza: Instant,
    last_sent: Instant,
}

impl S2sOut {
    /// A new link from `local` to `remote`; our header goes out at once.
    /// `direct_tls` carries the certificate verdict when TLS was set up
    /// before the stream (XEP-0368).
    pub fn new(
        policy: Arc<S2sPolicy>,
        local: &str,
        remote: &str,
        now: Instant,
        direct_tls: Option<bool>,
    ) -> S2sOut {
        let mut neg = Negotiation::new(
            Framing::Stream,
            ns::SERVER,
            policy.limits,
            local.to_string(),
            true,
        );
        neg.extra_ns = DB_DECL;
        neg.secure = direct_tls.is_some();
        neg.initiate(local, remote);
        S2sOut {
            policy,
            local: local.to_string(),
            remote: remote.to_string(),
            neg,
            state: State::AwaitHeader,
            stream_id: None,
            cert_ok: direct_tls.unwrap_or(false),
            sasl_done: false,
            dialback_offered: false,
            ready_for_verify: false,
            verifies: VecDeque::new(),
            asked: Vec::new(),
            failure: None,
            started: now,
            now,
            last_stanza: now,
            last_sent: now,
        }
    }

    pub fn poll_action(&mut self) -> Option<OutAction> {
        self.neg.poll()
    }

    pub fn is_closed(&self) -> bool {
        self.neg.is_closed()
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established && !self.neg.is_closed()
    }

    /// Why the link ended (once [`OutAction::Close`] came).
    pub fn failure(&self) -> Option<&LinkFailure> {
        self.failure.as_ref()
    }

    /// Bytes from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if self.neg.feed(data) {
            self.process();
        } else {
            self.set_failure(LinkFailure::Protocol("the peer sent bad XML".into()));
        }
    }

    /// The driver wrote bytes at `now` (keepalives wait for silence).
    pub fn note_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// TLS is up; `cert_ok` says whether the peer's certificate verifies
    /// for the remote domain.
    pub fn tls_established(&mut self, cert_ok: bool, now: Instant) {
        self.now = now;
        self.cert_ok = cert_ok;
        self.neg.tls_established(None);
        self.neg.initiate(&self.local, &self.remote);
        self.state = State::AwaitHeader;
    }

    /// A stanza (in `jabber:client`) for the peer; only once established.
    pub fn send_stanza(&mut self, el: &Element, now: Instant) {
        debug_assert!(self.is_established());
        self.now = now;
        self.last_stanza = now;
        let mut el = el.clone();
        el.rename_ns(ns::CLIENT, ns::SERVER);
        self.neg.send_stanza(&el);
    }

    /// [`S2sOut::send_stanza`] appended to `out` instead of queued as an
    /// action: for a driver writing a batch at once.
    pub fn write_stanza(&mut self, el: &Element, now: Instant, out: &mut Vec<u8>) {
        self.now = now;
        self.last_stanza = now;
        let mut el = el.clone();
        el.rename_ns(ns::CLIENT, ns::SERVER);
        self.neg.framing.write_stanza(&el, ns::SERVER, out);
    }

    /// Asks the peer whether `key` is one it made for stream `id` of an
    /// incoming stream that claimed its domain; answered by
    /// [`OutAction::Verified`].
    pub fn verify(&mut self, id: String, key: String) {
        self.verifies.push_back((id, key));
        self.send_verifies();
    }

    /// Whether a `<db:verify/>` is waiting for its answer here.
    pub fn verifying(&self) -> bool {
        !self.verifies.is_empty() || !self.asked.is_empty()
    }

    /// When the driver should call [`S2sOut::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.neg.is_closed() {
            return None;
        }
        if self.state != State::Established {
            return Some(self.started + self.policy.timeout);
        }
        let idle = self.last_stanza + self.policy.idle_timeout;
        let keepalive = self.last_sent + self.policy.keepalive;
        Some(idle.min(keepalive))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.neg.is_closed() {
            return;
        }
        if self.state != State::Established {
            if now >= self.started + self.policy.timeout {
                self.set_failure(LinkFailure::Timeout);
                self.neg.fail(StreamError::with_text(
                    "connection-timeout",
                    "the stream was not set up in time",
                ));
            }
            return;
        }
        if now >= self.last_stanza + self.policy.idle_timeout && !self.verifying() {
            self.set_failure(LinkFailure::Idle);
            self.neg.close_stream();
        } else if now >= self.last_sent + self.policy.keepalive {
            // A single space keeps NAT mappings and proves the socket.
            self.neg.send(b" ".to_vec());
            self.last_sent = now;
        }
    }

    /// Closes the stream cleanly (shutdown, or the link is not needed).
    pub fn close_stream(&mut self, why: LinkFailure) {
        self.set_failure(why);
        self.neg.close_stream();
    }

    fn set_failure(&mut self, f: LinkFailure) {
        if self.failure.is_none() {
            self.failure = Some(f);
        }
    }

    /// Gives up with a stream error telling the peer why.
    fn give_up(&mut self, why: LinkFailure, condition: &'static str, text: String) {
        self.set_failure(why);
        self.neg.fail(StreamError::with_text(condition, text));
    }

    fn process(&mut self) {
        while let Some(event) = self.neg.next_event() {
            match event {
                Event::StreamOpen(h) => self.on_header(h),
                Event::Stanza(el) => self.on_element(el),
                Event::StreamClose => {
                    self.set_failure(LinkFailure::Closed);
                    self.neg.close_stream();
                }
            }
        }
        if self.neg.is_closed() {
            self.set_failure(LinkFailure::Protocol("the stream broke".into()));
        }
    }

    fn on_header(&mut self, h: StreamHeader) {
        if self.state != State::AwaitHeader {
            return self.give_up(
                LinkFailure::Protocol("a second stream header".into()),
                "not-well-formed",
                "a stream header in the middle of the stream".into(),
            );
        }
        if !self.neg.has_content_ns(&h) {
            return self.give_up(
                LinkFailure::Protocol("the peer does not speak jabber:server".into()),
                "invalid-namespace",
                "this stream is in jabber:server".into(),
            );
        }
        if h.attr("version") != Some("1.0") {
            // A pre-RFC 3920 server has no STARTTLS, which is required.
            return self.give_up(
                LinkFailure::NoTls,
                "unsupported-version",
                "this server speaks XMPP 1.0 (RFC 6120) only".into(),
            );
        }
        self.neg.header_received();
        self.stream_id = h.attr("id").map(str::to_string);
        self.state = State::AwaitFeatures;
    }

    fn on_element(&mut self, el: Element) {
        if el.is("error", ns::STREAM) {
            let condition = el
                .elements()
                .find(|c| c.ns == ns::STREAMS && c.name != "text")
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "undefined-condition".into());
            let text = el.child_text("text", ns::STREAMS);
            self.set_failure(LinkFailure::StreamError { condition, text });
            return self.neg.close_stream();
        }
        match (self.state, el.ns.as_str(), el.name.as_str()) {
            (State::AwaitFeatures, ns::STREAM, "features") => self.on_features(&el),
            (State::AwaitProceed, ns::TLS, "proceed") => {
                self.state = State::Tls;
                self.neg.begin_tls();
            }
            (State::AwaitProceed, ns::TLS, "failure") => {
                self.set_failure(LinkFailure::NoTls);
                self.neg.close_stream();
            }
            (State::AwaitSasl, ns::SASL, "success") => {
                self.sasl_done = true;
                self.neg.restart();
                self.neg.initiate(&self.local, &self.remote);
                self.state = State::AwaitHeader;
            }
            (State::AwaitSasl, ns::SASL, "failure") => {
                let why = sasl_reason(&el);
                if !self.try_dialback() {
                    self.give_up(
                        LinkFailure::NotAuthenticated(why),
                        "not-authorized",
                        "SASL EXTERNAL failed and dialback is not possible".into(),
                    );
                }
            }
            (State::AwaitDialback, ns::DIALBACK, "result") => self.on_db_result(&el),
            (_, ns::DIALBACK, "verify") => self.on_db_verify(&el),
            (_, ns::SERVER, "message" | "presence" | "iq") => self.give_up(
                LinkFailure::Protocol("the peer sent a stanza on our stream".into()),
                "unsupported-stanza-type",
                "this server sends on this stream; send yours on a stream of your own".into(),
            ),
            _ => self.give_up(
                LinkFailure::Protocol(format!("unexpected <{}/> in {}", el.name, el.ns)),
                "unsupported-stanza-type",
                format!("<{}/> in {} was not expected here", el.name, el.ns),
            ),
        }
    }

    fn on_features(&mut self, f: &Element) {
        if !self.neg.secure {
            if f.get_child("starttls", ns::TLS).is_some() {
                self.neg.send_nonza(&Element::new("starttls", ns::TLS));
                self.state = State::AwaitProceed;
            } else {
                self.give_up(
                    LinkFailure::NoTls,
                    "policy-violation",
                    "this server requires TLS and you offer no STARTTLS".into(),
                );
            }
            return;
        }
        // TLS is up: questions for incoming streams may go now.
        self.ready_for_verify = true;
        self.send_verifies();
        if self.sasl_done {
            return self.established(AuthMethod::Certificate);
        }
        if !self.cert_ok && self.policy.secure_auth {
            let text = format!("your certificate does not verify for {}", self.remote);
            return self.give_up(LinkFailure::Certificate, "policy-violation", text);
        }
        self.dialback_offered = f.get_child("dialback", ns::DIALBACK_FEATURE).is_some();
        let external = f.get_child("mechanisms", ns::SASL).is_some_and(|m| {
            m.elements()
                .any(|c| c.is("mechanism", ns::SASL) && c.text().trim() == "EXTERNAL")
        });
        if external {
            let authzid = base64::engine::general_purpose::STANDARD.encode(&self.local);
            self.neg.send_nonza(
                &Element::new("auth", ns::SASL)
                    .with_attr("mechanism", "EXTERNAL")
                    .with_text(authzid),
            );
            self.state = State::AwaitSasl;
            return;
        }
        if !self.try_dialback() {
            self.give_up(
                LinkFailure::NoAuthMethod,
                "policy-violation",
                "you offer no way for this server to authenticate (SASL EXTERNAL or dialback)"
                    .into(),
            );
        }
    }

    /// Starts dialback if the peer offered it, the policy allows it and
    /// the peer gave its stream an id; `false` when it cannot.
    fn try_dialback(&mut self) -> bool {
        let Some(id) = self.stream_id.clone() else {
            return false;
        };
        if !self.dialback_offered || !self.policy.dialback {
            return false;
        }
        let key = self.policy.secret.key(&self.remote, &self.local, &id);
        self.neg
            .send_nonza(&dialback::result_request(&self.local, &self.remote, &key));
        self.state = State::AwaitDialback;
        true
    }

    fn on_db_result(&mut self, el: &Element) {
        if el.attr("from") != Some(self.remote.as_str())
            || el.attr("to") != Some(self.local.as_str())
        {
            return self.give_up(
                LinkFailure::Protocol("a dialback result for other domains".into()),
                "invalid-from",
                "the dialback result must be from the domain this stream is to".into(),
            );
        }
        match el.attr("type") {
            Some("valid") => self.established(AuthMethod::Dialback),
            Some("invalid") => self.give_up(
                LinkFailure::NotAuthenticated("the peer found our dialback key invalid".into()),
                "not-authorized",
                "dialback failed".into(),
            ),
            _ => {
                let why = el
                    .get_child("error", ns::DIALBACK)
                    .and_then(|e| {
                        e.child_text("text", ns::STANZAS).or_else(|| {
                            e.elements()
                                .find(|c| c.ns == ns::STANZAS)
                                .map(|c| c.name.clone())
                        })
                    })
                    .unwrap_or_else(|| "the peer refused dialback".into());
                self.set_failure(LinkFailure::NotAuthenticated(why));
                self.neg.close_stream();
            }
        }
    }

    fn on_db_verify(&mut self, el: &Element) {
        let Some(at) = el
            .attr("id")
            .and_then(|id| self.asked.iter().position(|a| a == id))
        else {
            return self.give_up(
                LinkFailure::Protocol("an answer to a question we did not ask".into()),
                "not-authorized",
                "this server asked no such dialback question".into(),
            );
        };
        let id = self.asked.remove(at);
        let valid = el.attr("type") == Some("valid")
            && el.attr("from") == Some(self.remote.as_str())
            && el.attr("to") == Some(self.local.as_str());
        self.neg.push(OutAction::Verified { id, valid });
    }

    /// Sends waiting `<db:verify/>` questions once TLS is up and the peer
    /// has spoken its features.
    fn send_verifies(&mut self) {
        // After a SASL restart the new header and features are awaited;
        // the stream itself stays secure and ready.
        if !self.ready_for_verify || self.neg.is_closed() {
            return;
        }
        while let Some((id, key)) = self.verifies.pop_front() {
            let q = dialback::verify_request(&self.local, &self.remote, &id, &key);
            self.neg.send_nonza(&q);
            self.asked.push(id);
        }
    }

    fn established(&mut self, method: AuthMethod) {
        self.state = State::Established;
        self.last_stanza = self.now;
        self.send_verifies();
        self.neg.push(OutAction::Established(method));
    }
}

/// The condition (and text) of a SASL `<failure/>`.
fn sasl_reason(el: &Element) -> String {
    let condition = el
        .elements()
        .find(|c| c.ns == ns::SASL && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "failure".into());
    match el.child_text("text", ns::SASL) {
        Some(t) => format!("SASL EXTERNAL: {condition} ({t})"),
        None => format!("SASL EXTERNAL: {condition}"),
    }
}
