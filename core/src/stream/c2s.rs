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

use crate::sasl::ScramHash;
use crate::stanza::{error_reply, iq_result, Kind, StanzaError};
use crate::stream::error::StreamError;
use crate::stream::framing::Framing;
use crate::stream::negotiation::{Negotiation, Phase, Wire};
use crate::stream::register;
use crate::stream::sasl_exchange::{failure, SaslExchange, SaslOutcome};

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
            f.append_child(Element::new("bind", ns::BIND));
            // RFC 6121 removed session establishment; old clients still ask
            // for it, so it is offered as optional (RFC 3921bis style).
            f.append_child(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
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
            f.append_child(SaslExchange::mechanisms(&self.neg));
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
            SaslOutcome::Success(user) => self.user = Some(user),
        }
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
                    if let Some(mut reply) = error_reply(&el, &err) {
                        reply.remove_attr("from");
                        self.stanza_errors += 1;
                        self.send_el(&reply);
                    }
                    return;
                }
            }
        }
        if el.name == "iq" {
            if let Err(err) = check_iq(&el) {
                if let Some(mut reply) = error_reply(&el, &err) {
                    reply.remove_attr("from");
                    self.stanza_errors += 1;
                    self.send_el(&reply);
                }
                return;
            }
            // Legacy session establishment (RFC 3921): accepted as a no-op.
            if el.attr("to").is_none()
                && el.attr("type") == Some("set")
                && el.get_child("session", ns::SESSION).is_some()
            {
                let mut reply = iq_result(&el, None);
                reply.remove_attr("from");
                self.send_el(&reply);
                return;
            }
        }
        self.neg.push(Action::Stanza(el, parsed_to));
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
