//! The client-to-server stream machine (RFC 6120 §4–§7), sans-IO.
//!
//! It does no I/O and reads no clock: the connection driver feeds it bytes
//! and the current time, and pulls [`Action`]s out — bytes to write, a
//! request to start TLS, a credential lookup, a bound session, a stanza to
//! route. Anything slow (spool reads, PBKDF2 for PLAIN) is the driver's job;
//! while an answer is pending the machine buffers input but processes
//! nothing, so stanzas keep their order.
//!
//! The header exchange, STARTTLS, restarts and stream errors are the
//! shared negotiation (`negotiation.rs`), SASL the shared exchange
//! (`sasl_exchange.rs`); the framing (a TCP stream or RFC 7395 WebSocket
//! messages) is the driver's choice. What is the client's own is here:
//! the features offered, in-band registration before login, resource
//! binding, and the checks every client stanza passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_jid::{normalize_resource, Jid};
use switchboard_spool::ScramCredential;
use switchboard_xml::{ns, Element, Event, Limits, StreamHeader};

use crate::ids::random_id;

use crate::sasl::ht::{self, HtMechanism};
use crate::sasl::SaslFailure;
use crate::sasl::ScramHash;
use crate::stanza::{error_reply, iq_result, Kind, StanzaError};
use crate::stream::error::StreamError;
use crate::stream::framing::Framing;
use crate::stream::negotiation::{Negotiation, Phase, Wire};
use crate::stream::register;
use crate::stream::sasl2::{self, Authenticate, Completion, Step};
use crate::stream::sasl_exchange::{failure, Profile, SaslExchange, SaslOutcome, SASL2_NS};
use crate::stream::sm;

/// What modules add to client streams: stream features offered once the
/// client has authenticated (beside `<bind/>`), and the namespaces of the
/// nonzas they take after binding. Built with the routing table, shared by
/// every connection.
#[derive(Debug, Default)]
pub struct StreamExtensions {
    pub features: Vec<Element>,
    /// Features offered only on streams to one host: `(host, feature)`.
    pub host_features: Vec<(String, Element)>,
    pub nonza_namespaces: Vec<&'static str>,
    /// Namespaces whose elements a Bind 2 request may carry to enable a
    /// feature inline (carbons, CSI); each is handed to the module's
    /// nonza hook right after binding.
    pub bind2_inline: Vec<&'static str>,
}

/// Settings the machine needs, fixed for the connection's life.
#[derive(Debug, Clone)]
pub struct C2sSettings {
    /// The local domains a client may open a stream to.
    pub hosts: Vec<String>,
    /// Whether STARTTLS can be offered (a certificate is loaded).
    pub tls_available: bool,
    /// Whether authentication requires TLS first (default yes).
    pub tls_required: bool,
    pub limits: Limits,
    pub preauth_timeout: Duration,
    pub keepalive: Duration,
    /// Hosts whose `<registration>` is `open`: clients may create accounts
    /// before logging in (XEP-0077).
    pub open_registration: Vec<String>,
    /// What modules add: features offered after authentication, and the
    /// namespaces of nonzas handed to them after binding.
    pub extensions: Arc<StreamExtensions>,
    /// Whether stream management (XEP-0198) is offered.
    pub stream_management: bool,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (one top-level unit: a WebSocket driver sends
    /// each as one message).
    Send(Vec<u8>),
    /// `<proceed/>` has been queued: flush it, run the TLS handshake, then
    /// call [`C2s::tls_established`].
    StartTls,
    /// Look up the SCRAM credential and answer with [`C2s::scram_credentials`].
    LookupScram {
        host: String,
        user: String,
        hash: ScramHash,
    },
    /// Verify a PLAIN password and answer with [`C2s::plain_verified`].
    VerifyPlain {
        host: String,
        user: String,
        password: String,
    },
    /// Create an account (XEP-0077) and answer with [`C2s::registered`].
    Register {
        host: String,
        user: String,
        password: String,
    },
    /// A resource was bound: register the session under this full JID (a
    /// session already bound to it must be replaced with `conflict`).
    Bound(Jid),
    /// A validated client stanza with `from` stamped, to be routed, with
    /// its `to` already parsed (the router need not parse it again).
    Stanza(Element, Option<Jid>),
    /// A nonza after binding in a namespace a module takes (see
    /// [`C2sSettings::extensions`]), for the router's nonza hooks.
    Nonza(Element),
    /// A stanza from the client that the machine answered itself (a
    /// malformed `to`, a bad IQ), while stream management is on: count it
    /// as handled and write the answer, if any, in order after what the
    /// client sent before it (XEP-0198 counts every stanza either way).
    Answered(Option<Element>),
    /// XEP-0198 `<enable/>` after binding: set stream management up and
    /// answer with [`C2s::send_nonza`] (`<enabled/>` or `<failed/>`).
    SmEnable { resume: bool, max: Option<u32> },
    /// XEP-0198 `<r/>`: answer `<a h/>` once everything received before
    /// it is handled.
    SmRequest,
    /// XEP-0198 `<a h/>`: the client handled `h` stanzas in all.
    SmAck(u32),
    /// XEP-0198 `<resume/>` after authentication, instead of binding: take
    /// the hibernated session over and answer with [`C2s::resumed`] or
    /// [`C2s::resume_failed`].
    SmResume { previd: String, h: u32 },
    /// A FAST token login (XEP-0484): check `proof` against the client's
    /// tokens and answer with [`C2s::fast_verified`].
    VerifyFast {
        host: String,
        user: String,
        agent: String,
        mechanism: HtMechanism,
        proof: Vec<u8>,
        /// The channel binding the proof covers (empty for `-NONE`).
        cb: Vec<u8>,
        invalidate: bool,
    },
    /// Issue (and store) a FAST token for this client, and answer with
    /// [`C2s::fast_issued`].
    IssueFast {
        host: String,
        user: String,
        agent: String,
        mechanism: HtMechanism,
    },
    /// The session just bound through Bind 2 is this client's (its SASL2
    /// `<user-agent id/>`): earlier sessions of the same client end
    /// (XEP-0386 §3).
    ClientAgent(String),
    /// A SASL2 login reached this point of its inline steps (what was
    /// queued before it is done): call [`C2s::sasl2_step`].
    Sasl2Step,
    /// Flush what was sent and close the connection.
    Close,
}

impl From<Wire> for Action {
    fn from(w: Wire) -> Action {
        match w {
            Wire::Send(b) => Action::Send(b),
            Wire::StartTls => Action::StartTls,
            Wire::Close => Action::Close,
        }
    }
}

/// One client stream, from TCP accept (or WebSocket upgrade) to close.
pub struct C2s {
    settings: C2sSettings,
    neg: Negotiation<Action>,
    sasl: SaslExchange,
    /// Error replies the machine itself sent (the driver counts them).
    stanza_errors: u32,
    /// The registration IQ waiting for the driver's answer.
    pending_register: Option<Element>,
    /// Set after SASL success: the authenticated localpart.
    user: Option<String>,
    /// Stream management was enabled (or a session resumed) on this stream.
    sm_enabled: bool,
    /// A SASL2 login between the SASL success and `<success/>` (boxed: a
    /// few hundred bytes, for a moment of the connection's life).
    sasl2: Option<Box<Completion>>,
    bound: Option<Jid>,
    /// `bound` as text, stamped as `from` on every stanza.
    bound_text: String,
    connected_at: Instant,
    last_sent: Instant,
}

impl C2s {
    /// A new connection over a TCP stream. `secure` is true for direct TLS
    /// (XEP-0368): the driver has already run the handshake and passes its
    /// channel binding.
    pub fn new(
        settings: C2sSettings,
        now: Instant,
        secure: bool,
        channel_binding: Option<Vec<u8>>,
    ) -> Self {
        Self::with_framing(settings, now, Framing::Stream, secure, channel_binding)
    }

    /// A new connection with the framing the driver chose (a WebSocket
    /// runs inside HTTPS, so it is `secure` from the start).
    pub fn with_framing(
        settings: C2sSettings,
        now: Instant,
        framing: Framing,
        secure: bool,
        channel_binding: Option<Vec<u8>>,
    ) -> Self {
        let default_host = settings
            .hosts
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        let mut neg = Negotiation::new(framing, ns::CLIENT, settings.limits, default_host, true);
        neg.secure = secure;
        neg.channel_binding = channel_binding;
        C2s {
            settings,
            neg,
            sasl: SaslExchange::default(),
            stanza_errors: 0,
            pending_register: None,
            user: None,
            sm_enabled: false,
            sasl2: None,
            bound: None,
            bound_text: String::new(),
            connected_at: now,
            last_sent: now,
        }
    }

    /// The bound full JID, once a resource is bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.bound.as_ref()
    }

    /// The authenticated localpart, once SASL has succeeded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host the client asked for in its stream header.
    pub fn host(&self) -> Option<&str> {
        self.neg.host.as_deref()
    }

    /// The framing this stream uses.
    pub fn framing(&self) -> Framing {
        self.neg.framing
    }

    /// Whether SASL has succeeded on this stream (for the login counter).
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// Failed authentication attempts so far (aborts are not failures).
    pub fn auth_failures(&self) -> u32 {
        self.sasl.failures()
    }

    /// Stanza error replies the machine has sent itself so far (a bad
    /// `to`, a malformed IQ, a refused bind or registration); errors from
    /// the router are counted there.
    pub fn stanza_errors(&self) -> u32 {
        self.stanza_errors
    }

    pub fn is_closed(&self) -> bool {
        self.neg.is_closed()
    }

    /// Next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.neg.poll()
    }

    /// Bytes received from the client (for WebSocket framing: one whole
    /// message).
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.neg.feed(data) {
            self.process();
        }
    }

    /// Tells the machine the driver wrote bytes to the client at `now`
    /// (stanzas routed to this session included), so keepalives are only
    /// sent on a quiet connection.
    pub fn note_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// When the driver should next call [`C2s::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.neg.phase {
            Phase::Closed => None,
            _ if self.bound.is_none() => Some(self.connected_at + self.settings.preauth_timeout),
            _ => Some(self.last_sent + self.settings.keepalive),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.neg.is_closed() {
            return;
        }
        if self.bound.is_none() {
            if now >= self.connected_at + self.settings.preauth_timeout {
                self.fail(StreamError::with_text(
                    "connection-timeout",
                    "authentication did not complete in time",
                ));
            }
        } else if now >= self.last_sent + self.settings.keepalive {
            // A single space is a valid whitespace keepalive (RFC 6120
            // §4.6.1); WebSocket has its own pings, which the driver sends.
            if self.neg.framing == Framing::Stream {
                self.neg.send(b" ".to_vec());
            }
            self.last_sent = now;
        }
    }

    /// TLS is up. `channel_binding` is the `tls-exporter` value if the
    /// connection negotiated TLS 1.3 (RFC 9266 makes it unsafe on 1.2
    /// without extended master secret, so the driver passes `None` there).
    pub fn tls_established(&mut self, channel_binding: Option<Vec<u8>>) {
        self.neg.tls_established(channel_binding);
    }

    /// Answer to [`Action::LookupScram`].
    pub fn scram_credentials(&mut self, cred: Option<ScramCredential>) {
        let outcome = self.sasl.credentials(&mut self.neg, cred);
        self.sasl_outcome(outcome);
        self.process();
    }

    /// Answer to [`Action::VerifyPlain`].
    pub fn plain_verified(&mut self, user: &str, ok: bool) {
        let outcome = self.sasl.plain_verified(&mut self.neg, user, ok);
        self.sasl_outcome(outcome);
        self.process();
    }

    /// Answer to [`Action::Register`]: `Ok` when the account was created.
    pub fn registered(&mut self, result: Result<(), StanzaError>) {
        self.neg.phase = Phase::Open;
        if let Some(iq) = self.pending_register.take() {
            let reply = match result {
                Ok(()) => Some(unaddressed(iq_result(&iq, None))),
                Err(e) => {
                    self.stanza_errors += 1;
                    error_reply(&iq, &e).map(unaddressed)
                }
            };
            if let Some(r) = reply {
                self.neg.send_stanza(&r);
            }
        }
        self.process();
    }

    /// Closes the stream with an error (also used by the driver for
    /// `conflict` and `system-shutdown`).
    pub fn fail(&mut self, err: StreamError) {
        self.neg.fail(err);
    }

    /// Closes the stream cleanly (the client closed it, or the server is
    /// done).
    pub fn close_stream(&mut self) {
        self.neg.close_stream();
    }

    fn send_el(&mut self, el: &Element) {
        self.neg.send_stanza(el);
    }

    /// Pulls parser events until input runs out or the machine must wait.
    fn process(&mut self) {
        while let Some(event) = self.neg.next_event() {
            match event {
                Event::StreamOpen(h) => self.on_header(h),
                Event::Stanza(el) => self.on_element(el),
                Event::StreamClose => self.close_stream(),
            }
        }
    }

    fn on_header(&mut self, h: StreamHeader) {
        // The host comes first: every error below is sent from it.
        let hosts = &self.settings.hosts;
        let accept = |t: &str| hosts.iter().any(|h| h == t);
        if self
            .neg
            .check_to(&h, accept, "this server does not serve that domain")
            .is_none()
        {
            return;
        }
        self.neg.open();
        if !self.neg.has_content_ns(&h) {
            return self.fail(StreamError::with_text(
                "invalid-namespace",
                "client streams use the jabber:client namespace",
            ));
        }
        let major = h
            .attr("version")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if major != Some(1) {
            return self.fail(StreamError::with_text(
                "unsupported-version",
                "this server speaks XMPP version 1.0",
            ));
        }
        self.send_features();
    }

    fn send_features(&mut self) {
        let mut f = Element::new("features", ns::STREAM);
        let secure = self.neg.secure;
        if self.user.is_some() {
            // After a SASL2 login that bound a resource inline, there is
            // nothing left to bind.
            if self.bound.is_none() {
                f.append_child(Element::new("bind", ns::BIND));
                // RFC 6121 removed session establishment; old clients still
                // ask for it, so it is offered as optional (RFC 3921bis
                // style).
                f.append_child(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
            }
            if self.settings.stream_management && !self.sm_enabled {
                f.append_child(Element::new("sm", sm::NS));
            }
            for feature in &self.settings.extensions.features {
                f.append_child(feature.clone());
            }
            let host = self.neg.host.as_deref();
            for (h, feature) in &self.settings.extensions.host_features {
                if Some(h.as_str()) == host {
                    f.append_child(feature.clone());
                }
            }
        } else if !secure && self.settings.tls_available && self.neg.framing == Framing::Stream {
            let mut st = Element::new("starttls", ns::TLS);
            if self.settings.tls_required {
                st.append_child(Element::new("required", ns::TLS));
            }
            f.append_child(st);
            if !self.settings.tls_required {
                f.append_child(SaslExchange::mechanisms(&self.neg));
            }
        } else if secure || !self.settings.tls_required {
            let mechanisms = SaslExchange::mechanisms(&self.neg);
            // FAST sends a token's proof in one message: only inside TLS.
            let fast = if secure {
                sasl2::fast_mechanisms(self.neg.channel_binding.is_some())
            } else {
                Vec::new()
            };
            f.append_child(sasl2::feature(
                &mechanisms,
                &self.settings.extensions.bind2_inline,
                self.settings.stream_management,
                &fast,
            ));
            f.append_child(mechanisms);
            if self.registration_open() {
                f.append_child(Element::new("register", register::FEATURE_NS));
            }
            if let Some(cb) = SaslExchange::channel_binding_feature(&self.neg) {
                f.append_child(cb);
            }
        }
        self.neg.send_features(&f);
    }

    fn on_element(&mut self, el: Element) {
        if el.is("starttls", ns::TLS) {
            return self.on_starttls();
        }
        if el.ns == ns::SASL {
            return self.on_sasl(el);
        }
        if el.ns == SASL2_NS {
            return self.on_sasl2(el);
        }
        let secure = self.neg.secure;
        let may_negotiate = secure || !self.settings.tls_required;
        if self.user.is_none() && may_negotiate && is_register_iq(&el) {
            return self.on_register(el);
        }
        if self.user.is_none() {
            // Before authentication only negotiation is allowed.
            let (cond, text) = if !secure && self.settings.tls_required {
                (
                    "policy-violation",
                    "STARTTLS is required before anything else",
                )
            } else {
                ("not-authorized", "authenticate first")
            };
            return self.fail(StreamError::with_text(cond, text));
        }
        if el.ns == sm::NS && self.settings.stream_management {
            return self.on_sm(el);
        }
        if self.bound.is_some()
            && self
                .settings
                .extensions
                .nonza_namespaces
                .contains(&el.ns.as_str())
        {
            return self.neg.push(Action::Nonza(el));
        }
        if Kind::of(&el).is_none() || el.ns != ns::CLIENT {
            return self.fail(StreamError::with_text(
                "unsupported-stanza-type",
                format!("<{}/> in {} is not supported here", el.name, el.ns),
            ));
        }
        if self.bound.is_none() {
            return self.on_unbound_stanza(el);
        }
        self.on_stanza(el);
    }

    /// XEP-0198 elements from an authenticated client.
    fn on_sm(&mut self, el: Element) {
        let failed = |m: &mut Self, condition: &str| {
            let f = Element::new("failed", sm::NS).with_child(Element::new(condition, ns::STANZAS));
            m.neg.send_nonza(&f);
        };
        let h = |el: &Element| el.attr("h").and_then(|h| h.parse::<u32>().ok());
        match (el.name.as_str(), self.bound.is_some()) {
            ("enable", true) if !self.sm_enabled => {
                self.sm_enabled = true;
                let resume = matches!(el.attr("resume"), Some("true") | Some("1"));
                let max = el.attr("max").and_then(|m| m.parse().ok());
                self.neg.push(Action::SmEnable { resume, max });
            }
            // Twice, or before binding (XEP-0198 §3: the client "MUST NOT
            // attempt to enable stream management until after it has
            // completed Resource Binding").
            ("enable", _) => failed(self, "unexpected-request"),
            ("resume", false) if !self.sm_enabled => match (el.attr("previd"), h(&el)) {
                (Some(previd), Some(h)) => {
                    self.neg.phase = Phase::Pending;
                    self.neg.push(Action::SmResume {
                        previd: previd.to_string(),
                        h,
                    });
                }
                _ => failed(self, "bad-request"),
            },
            ("resume", _) => failed(self, "unexpected-request"),
            ("r", _) if self.sm_enabled => self.neg.push(Action::SmRequest),
            ("a", _) if self.sm_enabled => match h(&el) {
                Some(h) => self.neg.push(Action::SmAck(h)),
                None => self.fail(StreamError::with_text(
                    "bad-format",
                    "the 'h' of <a/> is not a 32-bit number",
                )),
            },
            ("r" | "a", _) => failed(self, "unexpected-request"),
            (other, _) => self.fail(StreamError::with_text(
                "unsupported-stanza-type",
                format!("<{other}/> is not a stream management element"),
            )),
        }
    }

    /// Writes a nonza the driver built (`<enabled/>`, `<a/>`, `<r/>`).
    /// During a SASL2 login it goes into the `<bound/>` of `<success/>`
    /// instead (an `<enabled/>` asked for inline).
    pub fn send_nonza(&mut self, el: &Element) {
        match self.sasl2.as_mut() {
            Some(c) => c.bound_children.push(el.clone()),
            None => self.neg.send_nonza(el),
        }
    }

    /// Writes a stanza the driver has again (one a resumed session sends
    /// a second time, XEP-0198 §5); during a SASL2 login, after its
    /// `<success/>`.
    pub fn send_stanza(&mut self, el: &Element) {
        match self.sasl2.as_mut() {
            Some(c) => {
                let bytes = self.neg.framing.stanza(el, ns::CLIENT);
                c.after.extend_from_slice(&bytes);
            }
            None => self.neg.send_stanza(el),
        }
    }

    /// The answer to [`Action::SmResume`]: the session is taken over; the
    /// stream is bound to `jid` again and `<resumed/>` (built by the
    /// driver, with its `h`) goes out.
    pub fn resumed(&mut self, jid: Jid, reply: &Element) {
        self.sm_enabled = true;
        self.bound_text = jid.to_string();
        self.bound = Some(jid);
        if let Some(c) = self.sasl2.as_mut() {
            // Inline resumption: `<resumed/>` goes into `<success/>`.
            c.success_children.push(reply.clone());
            c.step = None;
            return self.sasl2_next();
        }
        self.neg.phase = Phase::Open;
        self.neg.send_nonza(reply);
        self.process();
    }

    /// The answer to [`Action::SmResume`] when there is nothing to resume
    /// (unknown, expired, or another account's): `<failed/>` with
    /// `item-not-found`, and the client binds afresh.
    pub fn resume_failed(&mut self) {
        let failed =
            Element::new("failed", sm::NS).with_child(Element::new("item-not-found", ns::STANZAS));
        if let Some(c) = self.sasl2.as_mut() {
            // XEP-0386 §3: the failure goes into `<success/>`, and the bind
            // request (if any) makes a new session.
            c.success_children.push(failed);
            c.step = None;
            return self.sasl2_next();
        }
        self.neg.phase = Phase::Open;
        self.neg.send_nonza(&failed);
        self.process();
    }

    fn registration_open(&self) -> bool {
        self.neg
            .host
            .as_ref()
            .is_some_and(|h| self.settings.open_registration.contains(h))
    }

    /// XEP-0077 before authentication: the form, or an account request.
    fn on_register(&mut self, iq: Element) {
        let query = iq
            .get_child("query", ns::REGISTER)
            .cloned()
            .unwrap_or_default();
        let reply_err = |m: &mut Self, e: StanzaError| {
            if let Some(r) = error_reply(&iq, &e) {
                m.stanza_errors += 1;
                m.send_el(&unaddressed(r));
            }
        };
        if !self.registration_open() {
            return reply_err(
                self,
                StanzaError::not_allowed()
                    .with_text("registration is closed on this server; ask an administrator"),
            );
        }
        match iq.attr("type") {
            Some("get") => self.send_el(&unaddressed(iq_result(&iq, Some(register::form())))),
            Some("set") => match register::parse(&query) {
                Ok(req) => {
                    let host = self.neg.host.clone().unwrap_or_default();
                    self.pending_register = Some(iq);
                    self.neg.phase = Phase::Pending;
                    self.neg.push(Action::Register {
                        host,
                        user: req.user,
                        password: req.password,
                    });
                }
                Err(e) => reply_err(self, e),
            },
            _ => {}
        }
    }

    fn on_starttls(&mut self) {
        let secure = self.neg.secure;
        if secure || !self.settings.tls_available || self.user.is_some() {
            return self.neg.refuse_tls();
        }
        self.neg.start_tls();
    }

    fn on_sasl(&mut self, el: Element) {
        if self.user.is_some() {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "already authenticated",
            ));
        }
        if !self.neg.secure && self.settings.tls_required {
            self.neg.send_nonza(&failure("encryption-required", None));
            return self.neg.close_stream();
        }
        let outcome = self.sasl.handle(&mut self.neg, &el);
        self.sasl_outcome(outcome);
    }

    fn sasl_outcome(&mut self, outcome: SaslOutcome) {
        let host = || self.neg.host.clone().unwrap_or_default();
        match outcome {
            SaslOutcome::Continue => {}
            SaslOutcome::LookupScram { user, hash } => {
                let host = host();
                self.neg.push(Action::LookupScram { host, user, hash });
            }
            SaslOutcome::VerifyPlain { user, password } => {
                let host = host();
                self.neg.push(Action::VerifyPlain {
                    host,
                    user,
                    password,
                });
            }
            SaslOutcome::Success(user) if self.sasl.profile() == Profile::Sasl2 => {
                self.sasl2_authenticated(user)
            }
            SaslOutcome::Success(user) => self.user = Some(user),
        }
    }

    /// An element of the Extensible SASL Profile (XEP-0388).
    fn on_sasl2(&mut self, el: Element) {
        if self.user.is_some() {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "already authenticated",
            ));
        }
        if !self.neg.secure && self.settings.tls_required {
            let f = Element::new("failure", SASL2_NS)
                .with_child(Element::new("encryption-required", ns::SASL));
            self.neg.send_nonza(&f);
            return self.neg.close_stream();
        }
        match el.name.as_str() {
            "authenticate" => self.on_authenticate(&el),
            "response" | "abort" => {
                let outcome = self.sasl.step(&mut self.neg, &el);
                if outcome == SaslOutcome::Continue && el.name == "abort" {
                    self.sasl2 = None;
                }
                self.sasl_outcome(outcome);
            }
            other => self.fail(StreamError::with_text(
                "unsupported-stanza-type",
                format!("<{other}/> is not a SASL2 element a client sends"),
            )),
        }
    }

    fn on_authenticate(&mut self, el: &Element) {
        let request = match Authenticate::parse(el) {
            Ok(r) => r,
            Err((condition, text)) => {
                let f = match condition {
                    "invalid-mechanism" => SaslFailure::InvalidMechanism,
                    _ => SaslFailure::MalformedRequest,
                };
                tracing::debug!("SASL2 request refused: {text}");
                self.sasl2 = None;
                let outcome = self.sasl.fail_with_in(&mut self.neg, f, Profile::Sasl2);
                return self.sasl_outcome(outcome);
            }
        };
        let mechanism = request.mechanism.clone();
        let initial = request.initial.clone();
        let ht = HtMechanism::from_name(&mechanism);
        self.sasl2 = Some(Box::new(Completion {
            request,
            ..Default::default()
        }));
        match ht {
            Some(m) => self.on_fast_login(m, initial),
            None => {
                let outcome = self
                    .sasl
                    .start_sasl2(&mut self.neg, &mechanism, initial.as_deref());
                self.sasl_outcome(outcome);
            }
        }
    }

    /// A login with a FAST token (XEP-0484): one message, checked by the
    /// driver against the stored tokens.
    fn on_fast_login(&mut self, mechanism: HtMechanism, initial: Option<String>) {
        let agent = self.sasl2.as_ref().and_then(|c| c.request.agent_id.clone());
        let cb = match (mechanism.binds_channel(), &self.neg.channel_binding) {
            (false, _) => Some(Vec::new()),
            (true, Some(cb)) => Some(cb.clone()),
            (true, None) => None,
        };
        let parsed = initial
            .as_deref()
            .and_then(|t| {
                use base64::Engine as _;
                let compact: String = t.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .ok()
            })
            .ok_or(SaslFailure::MalformedRequest)
            .and_then(|bytes| ht::parse(&bytes));
        let failure = match (self.neg.secure, cb, agent, parsed) {
            (false, ..) | (_, None, ..) => SaslFailure::InvalidMechanism,
            // XEP-0484 §5: tokens belong to a client, named by its
            // user-agent id.
            (_, _, None, _) => SaslFailure::MalformedRequest,
            (_, _, _, Err(f)) => f,
            (true, Some(cb), Some(agent), Ok(response)) => {
                let Ok(user) = switchboard_jid::normalize_localpart(&response.username) else {
                    return self.fast_verified("", Err(SaslFailure::NotAuthorized));
                };
                let host = self.neg.host.clone().unwrap_or_default();
                let invalidate = self
                    .sasl2
                    .as_ref()
                    .is_some_and(|c| c.request.fast_invalidate);
                self.neg.phase = Phase::Pending;
                return self.neg.push(Action::VerifyFast {
                    host,
                    user,
                    agent,
                    mechanism,
                    proof: response.proof,
                    cb,
                    invalidate,
                });
            }
        };
        self.sasl2 = None;
        let outcome = self
            .sasl
            .fail_with_in(&mut self.neg, failure, Profile::Sasl2);
        self.sasl_outcome(outcome);
    }

    /// Answer to [`Action::VerifyFast`]: the server's proof and whether the
    /// token is due for rotation, or why the login failed.
    pub fn fast_verified(&mut self, user: &str, result: Result<crate::fast::Used, SaslFailure>) {
        self.neg.phase = Phase::Open;
        let outcome = match result {
            Ok(used) => {
                if let Some(c) = self.sasl2.as_mut() {
                    if used.rotate && !c.request.fast_invalidate {
                        c.rotate_token = HtMechanism::from_name(&c.request.mechanism);
                    }
                }
                self.sasl
                    .succeed(&mut self.neg, user.to_string(), Some(used.responder))
            }
            Err(f) => {
                self.sasl2 = None;
                self.sasl.fail_with_in(&mut self.neg, f, Profile::Sasl2)
            }
        };
        self.sasl_outcome(outcome);
        self.process();
    }

    /// Answer to [`Action::IssueFast`]: the `<token/>` for `<success/>`,
    /// or `None` if it could not be stored (the login goes on without).
    pub fn fast_issued(&mut self, token: Option<Element>) {
        if let Some(c) = self.sasl2.as_mut() {
            c.success_children.extend(token);
            c.step = None;
        }
        self.sasl2_next();
    }

    /// Answer to [`Action::Sasl2Step`].
    pub fn sasl2_step(&mut self) {
        if let Some(c) = self.sasl2.as_mut() {
            c.step = None;
        }
        self.sasl2_next();
    }

    /// SASL2 authenticated the client: the inline requests follow, then
    /// `<success/>`.
    fn sasl2_authenticated(&mut self, user: String) {
        self.user = Some(user);
        if let Some(c) = self.sasl2.as_mut() {
            c.additional = self.sasl.take_additional();
        }
        self.sasl2_next();
    }

    /// Runs the next inline step of a SASL2 login, or sends `<success/>`
    /// when none is left. Each step that needs the driver queues its
    /// action, waits (input stays buffered) and comes back here.
    fn sasl2_next(&mut self) {
        let Some(c) = self.sasl2.as_mut() else { return };
        if c.step.is_some() {
            return;
        }
        // 1. Resumption first (XEP-0386 §3: a resumed session ignores the
        // bind request; a failed one binds anew).
        if let Some((previd, h)) = c.request.resume.take() {
            if self.settings.stream_management {
                c.step = Some(Step::Resume);
                self.neg.phase = Phase::Pending;
                return self.neg.push(Action::SmResume { previd, h });
            }
        }
        // 2. Bind 2.
        if let Some(bind) = c.request.bind.take() {
            if self.bound.is_none() {
                let user = self.user.clone().unwrap_or_default();
                let host = self.neg.host.clone().unwrap_or_default();
                let jid = Jid::from_parts(
                    Some(&user),
                    &host,
                    Some(&sasl2::resource(bind.tag.as_deref())),
                )
                .or_else(|_| Jid::from_parts(Some(&user), &host, Some(&random_id())));
                if let Ok(jid) = jid {
                    self.bound_text = jid.to_string();
                    self.bound = Some(jid.clone());
                    c.bound = true;
                    let agent = c.request.agent_id.clone();
                    self.neg.push(Action::Bound(jid));
                    if let Some(agent) = agent {
                        self.neg.push(Action::ClientAgent(agent));
                    }
                    for el in bind.inline {
                        if el.is("enable", sm::NS) && self.settings.stream_management {
                            if !self.sm_enabled {
                                self.sm_enabled = true;
                                let resume = matches!(el.attr("resume"), Some("true" | "1"));
                                let max = el.attr("max").and_then(|m| m.parse().ok());
                                self.neg.push(Action::SmEnable { resume, max });
                            }
                        } else if self
                            .settings
                            .extensions
                            .bind2_inline
                            .contains(&el.ns.as_str())
                        {
                            self.neg.push(Action::Nonza(el));
                        }
                        // Anything else is a feature this server does not
                        // enable inline; XEP-0386 gives it no error.
                    }
                    if let Some(c) = self.sasl2.as_mut() {
                        c.step = Some(Step::Bind);
                    }
                    self.neg.phase = Phase::Pending;
                    return self.neg.push(Action::Sasl2Step);
                }
            }
        }
        // 3. A FAST token, asked for or due for rotation.
        let Some(c) = self.sasl2.as_mut() else { return };
        let token = c.request.request_token.take().or(c.rotate_token.take());
        if let (Some(mechanism), Some(agent), true) =
            (token, c.request.agent_id.clone(), self.neg.secure)
        {
            c.step = Some(Step::Token);
            self.neg.phase = Phase::Pending;
            let host = self.neg.host.clone().unwrap_or_default();
            let user = self.user.clone().unwrap_or_default();
            return self.neg.push(Action::IssueFast {
                host,
                user,
                agent,
                mechanism,
            });
        }
        // 4. Done.
        let Some(mut c) = self.sasl2.take() else {
            return;
        };
        let identifier = if self.bound.is_some() {
            self.bound_text.clone()
        } else {
            format!(
                "{}@{}",
                self.user.as_deref().unwrap_or_default(),
                self.neg.host.as_deref().unwrap_or_default()
            )
        };
        self.neg.phase = Phase::Open;
        let success = c.success(&identifier);
        self.neg.send_nonza(&success);
        if !c.after.is_empty() {
            self.neg.send(std::mem::take(&mut c.after));
        }
        // XEP-0388 §2.6.1: the features of the authenticated stream follow
        // at once, without a restart.
        self.send_features();
        self.process();
    }

    /// Stanzas after authentication but before a resource is bound: only
    /// the bind IQ is allowed.
    fn on_unbound_stanza(&mut self, el: Element) {
        let is_bind = el.name == "iq"
            && el.attr("type") == Some("set")
            && el.get_child("bind", ns::BIND).is_some();
        if !is_bind {
            return self.fail(StreamError::with_text(
                "not-authorized",
                "bind a resource first",
            ));
        }
        let requested = el
            .get_child("bind", ns::BIND)
            .and_then(|b| b.child_text("resource", ns::BIND))
            .filter(|r| !r.is_empty());
        let resource = match requested {
            Some(r) => match normalize_resource(&r) {
                Ok(r) => r,
                Err(_) => {
                    let err = StanzaError::bad_request()
                        .with_text("that resource is not a valid resourcepart");
                    if let Some(reply) = error_reply(&el, &err) {
                        self.stanza_errors += 1;
                        self.send_el(&reply);
                    }
                    return;
                }
            },
            None => random_id(),
        };
        let user = self.user.clone().unwrap_or_default();
        let host = self.neg.host.clone().unwrap_or_default();
        let jid = match Jid::from_parts(Some(&user), &host, Some(&resource)) {
            Ok(j) => j,
            Err(_) => {
                if let Some(reply) = error_reply(&el, &StanzaError::bad_request()) {
                    self.stanza_errors += 1;
                    self.send_el(&reply);
                }
                return;
            }
        };
        let payload = Element::new("bind", ns::BIND)
            .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
        let mut reply = iq_result(&el, Some(payload));
        reply.remove_attr("from");
        reply.remove_attr("to");
        self.send_el(&reply);
        self.bound_text = jid.to_string();
        self.bound = Some(jid.clone());
        self.neg.push(Action::Bound(jid));
    }

    fn on_stanza(&mut self, mut el: Element) {
        let jid = self.bound.as_ref().expect("on_stanza runs after bind");
        // A client may put its own address in `from`; anything else is a
        // spoofing attempt (RFC 6120 §8.1.2.1).
        let spoofed = el.attr("from").is_some_and(|from| {
            from != self.bound_text
                && !Jid::parse(from).is_ok_and(|f| f == *jid || f == jid.to_bare())
        });
        if spoofed {
            return self.fail(StreamError::with_text(
                "invalid-from",
                "'from' must be your own address",
            ));
        }
        el.set_attr("from", self.bound_text.clone());
        let mut parsed_to = None;
        if let Some(to) = el.attr("to") {
            match Jid::parse(to) {
                Ok(t) => {
                    if !t.is_text_of(to) {
                        el.set_attr("to", t.to_string());
                    }
                    parsed_to = Some(t);
                }
                Err(e) => {
                    el.remove_attr("to");
                    let err = StanzaError::jid_malformed().with_text(e.to_string());
                    let reply = error_reply(&el, &err).map(|mut reply| {
                        reply.remove_attr("from");
                        self.stanza_errors += 1;
                        reply
                    });
                    return self.answered(reply);
                }
            }
        }
        if el.name == "iq" {
            if let Err(err) = check_iq(&el) {
                let reply = error_reply(&el, &err).map(|mut reply| {
                    reply.remove_attr("from");
                    self.stanza_errors += 1;
                    reply
                });
                return self.answered(reply);
            }
            // Legacy session establishment (RFC 3921): accepted as a no-op.
            if el.attr("to").is_none()
                && el.attr("type") == Some("set")
                && el.get_child("session", ns::SESSION).is_some()
            {
                let mut reply = iq_result(&el, None);
                reply.remove_attr("from");
                return self.answered(Some(reply));
            }
        }
        self.neg.push(Action::Stanza(el, parsed_to));
    }

    /// A stanza from the bound client that the machine handled itself,
    /// with its answer if it has one. Under stream management the driver
    /// counts both (the client counts every stanza it sends and receives)
    /// and writes the answer in order with the rest; otherwise the answer
    /// goes out at once.
    fn answered(&mut self, reply: Option<Element>) {
        if self.sm_enabled {
            self.neg.push(Action::Answered(reply));
        } else if let Some(reply) = reply {
            self.send_el(&reply);
        }
    }
}

fn is_register_iq(el: &Element) -> bool {
    el.is("iq", ns::CLIENT)
        && el.attr("id").is_some()
        && el.get_child("query", ns::REGISTER).is_some()
}

/// Replies on a stream before binding carry no addresses: the client has
/// no JID yet (RFC 6120 §8.1.2.1 lets the server omit them).
fn unaddressed(mut el: Element) -> Element {
    el.remove_attr("from");
    el.remove_attr("to");
    el
}

/// RFC 6120 §8.2.3: an IQ has an id, a known type, and get/set carry
/// exactly one payload element.
fn check_iq(el: &Element) -> Result<(), StanzaError> {
    if el.attr("id").is_none() {
        return Err(StanzaError::bad_request().with_text("an IQ needs an 'id'"));
    }
    match el.attr("type") {
        Some("get") | Some("set") => {
            if el.elements().count() != 1 {
                return Err(StanzaError::bad_request()
                    .with_text("an IQ get or set carries exactly one child element"));
            }
            Ok(())
        }
        Some("result") | Some("error") => Ok(()),
        _ => {
            Err(StanzaError::bad_request().with_text("IQ 'type' must be get, set, result or error"))
        }
    }
}
