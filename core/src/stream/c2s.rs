//! The client-to-server stream machine (RFC 6120 §4–§7), sans-IO.
//!
//! It does no I/O and reads no clock: the connection driver feeds it bytes
//! and the current time, and pulls [`Action`]s out — bytes to write, a
//! request to start TLS, a credential lookup, a bound session, a stanza to
//! route. Anything slow (spool reads, PBKDF2 for PLAIN) is the driver's job;
//! while an answer is pending the machine buffers input but processes
//! nothing, so stanzas keep their order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine as _;
use switchboard_jid::{normalize_localpart, normalize_resource, Jid};
use switchboard_spool::ScramCredential;
use switchboard_xml::{ns, Element, Event, Limits, StreamHeader, StreamParser};

use crate::ids::random_id;
use crate::sasl::{plain, SaslFailure, ScramHash, ScramServer, ScramStep};
use crate::stanza::{error_reply, iq_result, Kind, StanzaError};
use crate::stream::error::StreamError;
use crate::stream::register;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How many failed SASL attempts a connection gets before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

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
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
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
    /// Flush what was sent and close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's stream header.
    AwaitHeader,
    /// Header exchanged; negotiating features.
    Open,
    /// The driver is running TLS; nothing is processed.
    Tls,
    /// Waiting for the driver's answer to a lookup.
    Pending,
    Closed,
}

enum Sasl {
    None,
    Scram { server: ScramServer },
}

/// One client stream, from TCP accept to close.
pub struct C2s {
    settings: C2sSettings,
    parser: StreamParser,
    phase: Phase,
    actions: VecDeque<Action>,
    secure: bool,
    /// `tls-exporter` value, when TLS 1.3 makes it safe to offer -PLUS.
    channel_binding: Option<Vec<u8>>,
    /// The host named in the first stream header; restarts must keep it.
    host: Option<String>,
    header_sent: bool,
    sasl: Sasl,
    auth_failures: u32,
    /// Error replies the machine itself sent (the driver counts them).
    stanza_errors: u32,
    /// The client tried a -PLUS mechanism with a channel binding type we
    /// cannot provide (typically `tls-unique`, undefined for TLS 1.3). It
    /// has therefore seen -PLUS advertised, so its fallback to plain SCRAM
    /// with the `y` flag is not a downgrade and is accepted.
    client_saw_plus: bool,
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
    /// A new connection. `secure` is true for direct TLS (XEP-0368): the
    /// driver has already run the handshake and passes its channel binding.
    pub fn new(
        settings: C2sSettings,
        now: Instant,
        secure: bool,
        channel_binding: Option<Vec<u8>>,
    ) -> Self {
        let parser = StreamParser::new(settings.limits);
        C2s {
            settings,
            parser,
            phase: Phase::AwaitHeader,
            actions: VecDeque::new(),
            secure,
            channel_binding,
            host: None,
            header_sent: false,
            sasl: Sasl::None,
            auth_failures: 0,
            stanza_errors: 0,
            client_saw_plus: false,
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

    /// Whether SASL has succeeded on this stream (for the login counter).
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// Failed authentication attempts so far (aborts are not failures).
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// Stanza error replies the machine has sent itself so far (a bad
    /// `to`, a malformed IQ, a refused bind or registration); errors from
    /// the router are counted there.
    pub fn stanza_errors(&self) -> u32 {
        self.stanza_errors
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle session keeps no action buffer (a few hundred bytes
            // each); the next stanza allocates it again.
            self.actions = VecDeque::new();
        }
        action
    }

    /// Bytes received from the client.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(e) = self.parser.feed(data) {
            self.fail(StreamError::from(&e));
            return;
        }
        self.process();
    }

    /// Tells the machine the driver wrote bytes to the client at `now`
    /// (stanzas routed to this session included), so keepalives are only
    /// sent on a quiet connection.
    pub fn note_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// When the driver should next call [`C2s::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            _ if self.bound.is_none() => Some(self.connected_at + self.settings.preauth_timeout),
            _ => Some(self.last_sent + self.settings.keepalive),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
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
            // A single space is a valid whitespace keepalive (RFC 6120 §4.6.1).
            self.send(b" ".to_vec());
            self.last_sent = now;
        }
    }

    /// TLS is up. `channel_binding` is the `tls-exporter` value if the
    /// connection negotiated TLS 1.3 (RFC 9266 makes it unsafe on 1.2
    /// without extended master secret, so the driver passes `None` there).
    pub fn tls_established(&mut self, channel_binding: Option<Vec<u8>>) {
        self.secure = true;
        self.channel_binding = channel_binding;
        self.header_sent = false;
        self.parser.reset();
        self.phase = Phase::AwaitHeader;
    }

    /// Answer to [`Action::LookupScram`].
    pub fn scram_credentials(&mut self, cred: Option<ScramCredential>) {
        let Sasl::Scram { server, .. } = &mut self.sasl else {
            return;
        };
        let step = server.credentials(cred);
        self.phase = Phase::Open;
        self.scram_step(step);
        self.process();
    }

    /// Answer to [`Action::VerifyPlain`].
    pub fn plain_verified(&mut self, user: &str, ok: bool) {
        self.phase = Phase::Open;
        if ok {
            self.sasl_success(user.to_string(), None);
        } else {
            self.sasl_failure(SaslFailure::NotAuthorized);
        }
        self.process();
    }

    /// Answer to [`Action::Register`]: `Ok` when the account was created.
    pub fn registered(&mut self, result: Result<(), StanzaError>) {
        self.phase = Phase::Open;
        if let Some(iq) = self.pending_register.take() {
            let reply = match result {
                Ok(()) => Some(unaddressed(iq_result(&iq, None))),
                Err(e) => {
                    self.stanza_errors += 1;
                    error_reply(&iq, &e).map(unaddressed)
                }
            };
            if let Some(r) = reply {
                self.send_el(&r);
            }
        }
        self.process();
    }

    /// Closes the stream with an error (also used by the driver for
    /// `conflict` and `system-shutdown`).
    pub fn fail(&mut self, err: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.send_header(None);
        }
        let mut out = err.to_bytes();
        out.extend_from_slice(b"</stream:stream>");
        self.send(out);
        self.close();
    }

    /// Closes the stream cleanly (the client sent `</stream:stream>`, or
    /// the server is done).
    pub fn close_stream(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.send_header(None);
        }
        self.send(b"</stream:stream>".to_vec());
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.actions.push_back(Action::Close);
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.actions.push_back(Action::Send(bytes));
    }

    fn send_el(&mut self, el: &Element) {
        self.send(el.to_bytes(Some(ns::CLIENT)));
    }

    /// Pulls parser events until input runs out or the machine must wait.
    fn process(&mut self) {
        while matches!(self.phase, Phase::AwaitHeader | Phase::Open) {
            match self.parser.next_event() {
                Ok(None) => {
                    self.parser.shrink_if_idle();
                    return;
                }
                Ok(Some(Event::StreamOpen(h))) => self.on_header(h),
                Ok(Some(Event::Stanza(el))) => {
                    if self.phase == Phase::AwaitHeader {
                        self.fail(StreamError::new("not-well-formed"));
                    } else {
                        self.on_element(el);
                    }
                }
                Ok(Some(Event::StreamClose)) => self.close_stream(),
                Err(e) => self.fail(StreamError::from(&e)),
            }
        }
    }

    fn send_header(&mut self, host: Option<&str>) {
        let id = random_id();
        let from = host
            .or(self.host.as_deref())
            .or(self.settings.hosts.first().map(String::as_str))
            .unwrap_or("localhost");
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"' from='");
        switchboard_xml::escape::escape_attr(from, &mut out);
        out.extend_from_slice(b"' version='1.0' xml:lang='en'>");
        self.send(out);
        self.header_sent = true;
    }

    fn on_header(&mut self, h: StreamHeader) {
        if self.phase != Phase::AwaitHeader {
            self.fail(StreamError::new("not-well-formed"));
            return;
        }
        // The host comes first: every error below is sent from it.
        let to = h.attr("to").map(switchboard_jid::normalize_domain);
        let host = match to {
            Some(Ok(t)) if self.settings.hosts.contains(&t) => t,
            _ => {
                self.fail(StreamError::with_text(
                    "host-unknown",
                    "this server does not serve that domain",
                ));
                return;
            }
        };
        if let Some(prev) = &self.host {
            if *prev != host {
                self.fail(StreamError::with_text(
                    "host-unknown",
                    "the stream 'to' may not change on a stream restart",
                ));
                return;
            }
        }
        self.host = Some(host.clone());
        self.send_header(Some(&host));
        self.phase = Phase::Open;
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            self.fail(StreamError::with_text(
                "invalid-namespace",
                "client streams use the jabber:client namespace",
            ));
            return;
        }
        let major = h
            .attr("version")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if major != Some(1) {
            self.fail(StreamError::with_text(
                "unsupported-version",
                "this server speaks XMPP version 1.0",
            ));
            return;
        }
        self.send_features();
    }

    fn send_features(&mut self) {
        let mut f = Element::new("features", ns::STREAM);
        if self.user.is_some() {
            f.append_child(Element::new("bind", ns::BIND));
            // RFC 6121 removed session establishment; old clients still ask
            // for it, so it is offered as optional (RFC 3921bis style).
            f.append_child(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
        } else if !self.secure && self.settings.tls_available {
            let mut st = Element::new("starttls", ns::TLS);
            if self.settings.tls_required {
                st.append_child(Element::new("required", ns::TLS));
            }
            f.append_child(st);
            if !self.settings.tls_required {
                f.append_child(self.mechanisms());
            }
        } else if self.secure || !self.settings.tls_required {
            f.append_child(self.mechanisms());
            if self.registration_open() {
                f.append_child(Element::new("register", register::FEATURE_NS));
            }
            if self.channel_binding.is_some() {
                // XEP-0440: say which channel binding types we support.
                f.append_child(
                    Element::new("sasl-channel-binding", "urn:xmpp:sasl-cb:0").with_child(
                        Element::new("channel-binding", "urn:xmpp:sasl-cb:0")
                            .with_attr("type", "tls-exporter"),
                    ),
                );
            }
        }
        let mut out = b"<stream:features>".to_vec();
        for c in f.elements() {
            c.write_to(&mut out, None);
        }
        out.extend_from_slice(b"</stream:features>");
        self.send(out);
    }

    fn mechanisms(&self) -> Element {
        let mut m = Element::new("mechanisms", ns::SASL);
        let mut names = Vec::new();
        if self.channel_binding.is_some() {
            names.extend(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
        }
        names.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
        // PLAIN sends the password itself: offered only inside TLS.
        if self.secure {
            names.push("PLAIN");
        }
        for n in names {
            m.append_child(Element::new("mechanism", ns::SASL).with_text(n));
        }
        m
    }

    fn on_element(&mut self, el: Element) {
        if el.is("starttls", ns::TLS) {
            return self.on_starttls();
        }
        if el.ns == ns::SASL {
            return self.on_sasl(el);
        }
        let may_negotiate = self.secure || !self.settings.tls_required;
        if self.user.is_none() && may_negotiate && is_register_iq(&el) {
            return self.on_register(el);
        }
        if self.user.is_none() {
            // Before authentication only negotiation is allowed.
            let cond = if !self.secure && self.settings.tls_required {
                "policy-violation"
            } else {
                "not-authorized"
            };
            let text = if !self.secure && self.settings.tls_required {
                "STARTTLS is required before anything else"
            } else {
                "authenticate first"
            };
            return self.fail(StreamError::with_text(cond, text));
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
        self.host
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
                    let host = self.host.clone().unwrap_or_default();
                    self.pending_register = Some(iq);
                    self.phase = Phase::Pending;
                    self.actions.push_back(Action::Register {
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
        if self.secure || !self.settings.tls_available || self.user.is_some() {
            let mut out = Element::new("failure", ns::TLS).to_bytes(None);
            out.extend_from_slice(b"</stream:stream>");
            self.send(out);
            self.close();
            return;
        }
        self.send(Element::new("proceed", ns::TLS).to_bytes(None));
        // Anything the client pipelined after <starttls/> is plaintext that
        // must not be interpreted once TLS is up (CVE-2011-0411 style
        // injection), so the parser is dropped here, not after the handshake.
        self.parser.reset();
        self.phase = Phase::Tls;
        self.actions.push_back(Action::StartTls);
    }

    fn on_sasl(&mut self, el: Element) {
        if self.user.is_some() {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "already authenticated",
            ));
        }
        if !self.secure && self.settings.tls_required {
            let mut out = failure("encryption-required");
            out.extend_from_slice(b"</stream:stream>");
            self.send(out);
            self.close();
            return;
        }
        match el.name.as_str() {
            "auth" => self.on_auth(el),
            "response" => self.on_response(el),
            "abort" => {
                self.sasl = Sasl::None;
                self.sasl_failure(SaslFailure::Aborted);
            }
            _ => self.fail(StreamError::new("unsupported-stanza-type")),
        }
    }

    fn on_auth(&mut self, el: Element) {
        if !matches!(self.sasl, Sasl::None) {
            self.sasl = Sasl::None;
            return self.sasl_failure(SaslFailure::Aborted);
        }
        let Some(payload) = decode_b64(&el.text()) else {
            return self.send(failure("incorrect-encoding"));
        };
        let mech = el.attr("mechanism").unwrap_or("");
        let (hash, plus) = match mech {
            "SCRAM-SHA-256" => (ScramHash::Sha256, false),
            "SCRAM-SHA-1" => (ScramHash::Sha1, false),
            "SCRAM-SHA-256-PLUS" if self.channel_binding.is_some() => (ScramHash::Sha256, true),
            "SCRAM-SHA-1-PLUS" if self.channel_binding.is_some() => (ScramHash::Sha1, true),
            "PLAIN" if self.secure => return self.on_plain(&payload),
            _ => return self.sasl_failure(SaslFailure::InvalidMechanism),
        };
        if plus {
            if let Some(cb_type) = unsupported_cb_type(&payload) {
                // Not a failed login: the client simply cannot use our
                // binding type and will try its next mechanism.
                self.client_saw_plus = true;
                let text = format!(
                    "channel binding type '{cb_type}' is not supported here; use tls-exporter"
                );
                return self.send(failure_with_text("malformed-request", &text));
            }
        }
        let advertised = self.channel_binding.is_some() && !self.client_saw_plus;
        let mut server = ScramServer::new(hash, plus, self.channel_binding.clone(), advertised);
        match server.client_first(&payload) {
            Ok(ScramStep::NeedCredentials { username }) => {
                self.sasl = Sasl::Scram { server };
                let host = self.host.clone().unwrap_or_default();
                match normalize_localpart(&username) {
                    Ok(user) => {
                        self.phase = Phase::Pending;
                        self.actions
                            .push_back(Action::LookupScram { host, user, hash });
                    }
                    // An impossible user name continues like an unknown
                    // one, so the failure looks the same.
                    Err(_) => self.scram_credentials(None),
                }
            }
            Ok(step) => self.scram_step(Ok(step)),
            Err(f) => self.sasl_failure(f),
        }
    }

    fn on_plain(&mut self, payload: &[u8]) {
        let creds = match plain::parse(payload) {
            Ok(c) => c,
            Err(f) => return self.sasl_failure(f),
        };
        let host = self.host.clone().unwrap_or_default();
        let Ok(user) = normalize_localpart(&creds.username) else {
            return self.sasl_failure(SaslFailure::NotAuthorized);
        };
        if let Some(authz) = creds.authzid.as_deref() {
            let own = Jid::from_parts(Some(&user), &host, None).ok();
            if Jid::parse(authz).ok() != own {
                return self.sasl_failure(SaslFailure::InvalidAuthzid);
            }
        }
        self.phase = Phase::Pending;
        self.actions.push_back(Action::VerifyPlain {
            host,
            user,
            password: creds.password,
        });
    }

    fn on_response(&mut self, el: Element) {
        let Sasl::Scram { server, .. } = &mut self.sasl else {
            return self.sasl_failure(SaslFailure::MalformedRequest);
        };
        let Some(payload) = decode_b64(&el.text()) else {
            self.sasl = Sasl::None;
            return self.send(failure("incorrect-encoding"));
        };
        let step = server.client_final(&payload);
        self.scram_step(step);
    }

    fn scram_step(&mut self, step: Result<ScramStep, SaslFailure>) {
        match step {
            Ok(ScramStep::Challenge(data)) => {
                let el = Element::new("challenge", ns::SASL).with_text(B64.encode(data));
                self.send(el.to_bytes(None));
            }
            Ok(ScramStep::Success {
                username,
                server_final,
            }) => match normalize_localpart(&username) {
                Ok(user) => self.sasl_success(user, Some(server_final)),
                Err(_) => self.sasl_failure(SaslFailure::NotAuthorized),
            },
            Ok(ScramStep::NeedCredentials { .. }) => {
                self.sasl_failure(SaslFailure::MalformedRequest)
            }
            Err(f) => self.sasl_failure(f),
        }
    }

    fn sasl_success(&mut self, user: String, additional: Option<Vec<u8>>) {
        self.sasl = Sasl::None;
        let mut el = Element::new("success", ns::SASL);
        if let Some(data) = additional {
            el.append_text(B64.encode(data));
        }
        self.send(el.to_bytes(None));
        self.user = Some(user);
        // The client restarts the stream (RFC 6120 §6.4.6).
        self.parser.reset();
        self.header_sent = false;
        self.phase = Phase::AwaitHeader;
    }

    fn sasl_failure(&mut self, f: SaslFailure) {
        self.sasl = Sasl::None;
        self.send(failure(f.condition()));
        if f != SaslFailure::Aborted {
            self.auth_failures += 1;
            if self.auth_failures >= MAX_AUTH_FAILURES {
                self.fail(StreamError::with_text(
                    "policy-violation",
                    "too many failed authentication attempts",
                ));
            }
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
        let host = self.host.clone().unwrap_or_default();
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
        self.actions.push_back(Action::Bound(jid));
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
        self.actions.push_back(Action::Stanza(el, parsed_to));
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

/// The cb-name of a `p=` GS2 header when it is not `tls-exporter`.
fn unsupported_cb_type(client_first: &[u8]) -> Option<String> {
    let rest = client_first.strip_prefix(b"p=")?;
    let end = rest.iter().position(|b| *b == b',')?;
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    (name != "tls-exporter").then_some(name)
}

fn failure_with_text(condition: &str, text: &str) -> Vec<u8> {
    let el = Element::new("failure", ns::SASL)
        .with_child(Element::new(condition, ns::SASL))
        .with_child(
            Element::new("text", ns::SASL)
                .with_attr("xml:lang", "en")
                .with_text(text),
        );
    el.to_bytes(None)
}

fn failure(condition: &str) -> Vec<u8> {
    let el = Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL));
    el.to_bytes(None)
}

/// SASL payloads: `=` is an empty response (RFC 6120 §6.4.2).
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t == "=" {
        return Some(Vec::new());
    }
    B64.decode(t).ok()
}
