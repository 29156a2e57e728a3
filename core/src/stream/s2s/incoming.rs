//! The receiving side of a server-to-server stream (RFC 6120), sans-IO:
//! another server connected to us to deliver its users' stanzas.
//!
//! ```text
//! peer: <stream:stream xmlns='jabber:server' from='them' to='us' version='1.0'>
//! us:   header (id), features: <starttls><required/></starttls>
//! peer: <starttls/>          us: <proceed/>   … TLS …   restart
//! us:   features: <mechanisms>EXTERNAL</mechanisms> (certificate verifies
//!       for 'from'), <dialback/> (policy allows)
//! peer: <auth mechanism='EXTERNAL'/>   us: <success/>   restart, features
//!  or   <db:result from='them' to='us'>KEY</db:result>
//!       → verified with their authoritative server (or at once when the
//!         certificate verifies for that domain) → <db:result type='valid'/>
//! then stanzas from the authenticated domains, to our domains
//! ```
//!
//! The machine never trusts a `from` it has not authenticated: a stanza
//! from any other domain closes the stream with `invalid-from`, a stanza
//! to a domain we do not serve with `host-unknown`. TLS comes before
//! anything else. It also answers `<db:verify/>` questions about keys we
//! made (we are then the authoritative server), from the secret alone.
//!
//! Stanzas pass at the policy's rate (a token bucket per stream): the
//! one over it is held, and nothing more is parsed and the driver reads
//! nothing ([`S2sIn::wants_input`]) until the bucket lets it go at the
//! deadline. The peer is slowed down by its own TCP window, as a client
//! that does not wait for its answers is; nothing is dropped and the
//! order stays.
//!
//! Checking the peer's certificate for a domain is the driver's
//! [`CertCheck`], handed over with TLS; checking a dialback key with the
//! peer's authoritative server is an action the driver answers later.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use switchboard_jid::{normalize_domain, Jid};
use switchboard_link::bucket::TokenBucket;
use switchboard_xml::{ns, Element, Event, StreamHeader};

use super::{dialback, AuthMethod, CertCheck, S2sPolicy, DB_DECL};
use crate::stream::error::StreamError;
use crate::stream::framing::Framing;
use crate::stream::negotiation::{Negotiation, Wire};
use crate::stream::sasl_exchange::failure;

/// Dialback claims one stream may have under verification at once; a
/// peer piling up more is refused (each costs us an outgoing check).
const MAX_PENDING: usize = 10;

/// Domain pairs one stream may carry (dialback lets a peer add many).
const MAX_PAIRS: usize = 100;

/// Failed authentications (SASL or dialback) before the stream is closed.
const MAX_FAILURES: u32 = 3;

/// What the driver must do next.
#[derive(Debug)]
pub enum InAction {
    /// Write these bytes.
    Send(Vec<u8>),
    /// `<proceed/>` is queued: flush it, run the TLS handshake (asking
    /// for the peer's certificate), then call [`S2sIn::tls_established`].
    StartTls,
    /// `remote` proved it speaks for its domain toward `local`.
    Authenticated {
        remote: String,
        local: String,
        method: AuthMethod,
    },
    /// Ask the authoritative server of `remote` whether `key` is the one
    /// it made for this stream (`id`), over a link from `local`; answer
    /// with [`S2sIn::dialback_verified`].
    VerifyDialback {
        local: String,
        remote: String,
        id: String,
        key: String,
    },
    /// A stanza from `remote`, in `jabber:client`, its `from` authenticated
    /// and its `to` at one of our domains.
    Stanza { remote: String, el: Element },
    /// Flush what was sent and close the connection.
    Close,
}

impl From<Wire> for InAction {
    fn from(w: Wire) -> InAction {
        match w {
            Wire::Send(b) => InAction::Send(b),
            Wire::StartTls => InAction::StartTls,
            Wire::Close => InAction::Close,
        }
    }
}

/// One incoming server-to-server stream.
pub struct S2sIn {
    policy: Arc<S2sPolicy>,
    /// The domains this server answers for (hosts and services).
    local: Arc<[String]>,
    neg: Negotiation<InAction>,
    /// Our current stream id (a dialback key is bound to it).
    stream_id: String,
    /// The domain the peer's header named, normalized.
    peer: Option<String>,
    /// Checks the peer's certificate for a domain (after TLS).
    cert: Option<CertCheck>,
    /// Certificate verdicts so far, by domain.
    checked: Vec<(String, bool)>,
    /// The domain SASL EXTERNAL authenticated, for any of our domains.
    sasl: Option<String>,
    /// (remote, local) pairs dialback authenticated.
    pairs: Vec<(String, String)>,
    /// (remote, local) pairs whose keys are being checked.
    pending: Vec<(String, String)>,
    failures: u32,
    connected_at: Instant,
    last_activity: Instant,
    /// The policy's stanza rate; `None` without one.
    bucket: Option<TokenBucket>,
    /// The stanza the bucket refused, with its authenticated domain:
    /// nothing more is parsed (or read) until it goes.
    held: Option<(String, Element)>,
    /// The time of the input or timeout being handled.
    now: Instant,
}

impl S2sIn {
    /// A new connection. With direct TLS (XEP-0368) the handshake is done
    /// and `cert` checks what the peer presented.
    pub fn new(
        policy: Arc<S2sPolicy>,
        local: Arc<[String]>,
        now: Instant,
        cert: Option<CertCheck>,
    ) -> S2sIn {
        let default_host = local.first().cloned().unwrap_or_default();
        let mut neg = Negotiation::new(
            Framing::Stream,
            ns::SERVER,
            policy.limits,
            default_host,
            true,
        );
        neg.extra_ns = DB_DECL;
        neg.secure = cert.is_some();
        let bucket = policy.stanza_rate.map(|r| r.bucket(now));
        S2sIn {
            policy,
            local,
            neg,
            stream_id: String::new(),
            peer: None,
            cert,
            checked: Vec::new(),
            sasl: None,
            pairs: Vec::new(),
            pending: Vec::new(),
            failures: 0,
            connected_at: now,
            last_activity: now,
            bucket,
            held: None,
            now,
        }
    }

    /// Whether the driver should read: not while a stanza waits for the
    /// rate limit (what the peer sends meanwhile stays in its socket).
    pub fn wants_input(&self) -> bool {
        self.held.is_none() && !self.neg.is_closed()
    }

    pub fn poll_action(&mut self) -> Option<InAction> {
        self.neg.poll()
    }

    pub fn is_closed(&self) -> bool {
        self.neg.is_closed()
    }

    /// The domain the peer named in its header.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// The local domain the peer opened the stream to.
    pub fn host(&self) -> Option<&str> {
        self.neg.host.as_deref()
    }

    /// Whether any domain is authenticated on this stream.
    pub fn is_authenticated(&self) -> bool {
        self.sasl.is_some() || !self.pairs.is_empty()
    }

    /// Bytes from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.last_activity = now;
        self.now = now;
        if self.neg.feed(data) {
            self.process();
        }
    }

    /// When the driver should call [`S2sIn::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.neg.is_closed() {
            return None;
        }
        let deadline = if self.is_authenticated() {
            self.last_activity + self.policy.idle_timeout
        } else {
            self.connected_at + self.policy.timeout
        };
        let release = self
            .held
            .as_ref()
            .zip(self.bucket.as_ref())
            .map(|(_, b)| b.ready_at(self.now));
        Some(release.map_or(deadline, |r| r.min(deadline)))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.neg.is_closed() {
            return;
        }
        self.now = now;
        if self.held.is_some() && self.bucket.as_mut().is_some_and(|b| b.try_take(now)) {
            if let Some((remote, el)) = self.held.take() {
                // Delivering counts as activity, as reading it would have.
                self.last_activity = now;
                self.neg.push(InAction::Stanza { remote, el });
            }
            // What was already read comes next, up to the next refusal.
            self.process();
            return;
        }
        if !self.is_authenticated() {
            if now >= self.connected_at + self.policy.timeout {
                self.fail(StreamError::with_text(
                    "connection-timeout",
                    "authentication did not complete in time",
                ));
            }
        } else if self.held.is_none() && now >= self.last_activity + self.policy.idle_timeout {
            // An idle stream is closed cleanly; the peer opens a new one
            // when it has something to send.
            self.neg.close_stream();
        }
    }

    /// TLS is up; `cert` checks the certificate the peer presented.
    pub fn tls_established(&mut self, cert: CertCheck) {
        self.cert = Some(cert);
        self.checked.clear();
        self.neg.tls_established(None);
    }

    /// The answer to [`InAction::VerifyDialback`]: whether the
    /// authoritative server of `remote` vouched for the key.
    pub fn dialback_verified(&mut self, remote: &str, local: &str, valid: bool) {
        let Some(at) = self
            .pending
            .iter()
            .position(|(r, l)| r == remote && l == local)
        else {
            return;
        };
        self.pending.remove(at);
        if self.neg.is_closed() {
            return;
        }
        self.neg
            .send_nonza(&dialback::result_answer(local, remote, valid));
        if valid {
            self.accept_pair(remote, local, AuthMethod::Dialback);
        } else {
            self.failed();
        }
    }

    /// Closes the stream with an error.
    pub fn fail(&mut self, err: StreamError) {
        self.neg.fail(err);
    }

    /// Closes the stream cleanly (shutdown).
    pub fn close_stream(&mut self) {
        self.neg.close_stream();
    }

    fn process(&mut self) {
        while self.held.is_none() {
            let Some(event) = self.neg.next_event() else {
                break;
            };
            match event {
                Event::StreamOpen(h) => self.on_header(h),
                Event::Stanza(el) => self.on_element(el),
                Event::StreamClose => self.neg.close_stream(),
            }
        }
    }

    /// Whether the peer's certificate verifies for `domain` (remembered
    /// per domain; false before TLS).
    fn cert_ok(&mut self, domain: &str) -> bool {
        if let Some((_, ok)) = self.checked.iter().find(|(d, _)| d == domain) {
            return *ok;
        }
        let Some(check) = &self.cert else {
            return false;
        };
        let ok = check(domain);
        self.checked.push((domain.to_string(), ok));
        ok
    }

    fn on_header(&mut self, h: StreamHeader) {
        let local = self.local.clone();
        let Some(_host) = self.neg.check_to(
            &h,
            |t| local.iter().any(|l| l == t),
            "this server does not serve that domain",
        ) else {
            return;
        };
        if !self.neg.has_content_ns(&h) {
            return self.fail(StreamError::with_text(
                "invalid-namespace",
                "this port speaks the server-to-server protocol (jabber:server)",
            ));
        }
        if h.attr("version") != Some("1.0") {
            return self.fail(StreamError::with_text(
                "unsupported-version",
                "this server speaks XMPP 1.0 (RFC 6120) only",
            ));
        }
        match h.attr("from").map(normalize_domain) {
            None => {}
            Some(Ok(from)) => {
                if !self.policy.allows(&from) {
                    return self.fail(StreamError::with_text(
                        "policy-violation",
                        format!("this server does not federate with {from}"),
                    ));
                }
                if self.peer.as_ref().is_some_and(|p| *p != from) {
                    return self.fail(StreamError::with_text(
                        "invalid-from",
                        "the stream 'from' may not change on a stream restart",
                    ));
                }
                self.peer = Some(from);
            }
            Some(Err(_)) => {
                return self.fail(StreamError::with_text(
                    "invalid-from",
                    "the stream 'from' is not a domain",
                ))
            }
        }
        self.stream_id = self.neg.open();
        let features = self.features();
        self.neg.send_features(&features);
    }

    fn features(&mut self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        if !self.neg.secure {
            // TLS is required on every server-to-server stream here.
            f.append_child(
                Element::new("starttls", ns::TLS).with_child(Element::new("required", ns::TLS)),
            );
            return f;
        }
        if self.sasl.is_some() {
            return f;
        }
        if let Some(peer) = self.peer.clone() {
            if self.cert_ok(&peer) {
                f.append_child(
                    Element::new("mechanisms", ns::SASL)
                        .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
                );
            }
        }
        if self.policy.dialback {
            f.append_child(dialback::feature());
        }
        f
    }

    fn on_element(&mut self, el: Element) {
        if el.is("error", ns::STREAM) {
            // The peer gave up on the stream; we close our side.
            tracing::debug!(peer = ?self.peer, "the peer sent a stream error: {}", el.to_xml_string());
            return self.neg.close_stream();
        }
        if el.is("starttls", ns::TLS) {
            if self.neg.secure {
                return self.fail(StreamError::with_text(
                    "policy-violation",
                    "TLS is already in place",
                ));
            }
            return self.neg.start_tls();
        }
        if !self.neg.secure {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "this server requires TLS (STARTTLS) before anything else",
            ));
        }
        match (el.ns.as_str(), el.name.as_str()) {
            (ns::SASL, "auth") => self.on_auth(&el),
            (ns::SASL, "abort") => self.neg.send_nonza(&failure("aborted", None)),
            (ns::SASL, _) => self.fail(StreamError::with_text(
                "policy-violation",
                "EXTERNAL has no challenges: send <auth/> alone",
            )),
            (ns::DIALBACK, "result") => self.on_db_result(&el),
            (ns::DIALBACK, "verify") => self.on_db_verify(&el),
            (ns::SERVER, "message" | "presence" | "iq") => self.on_stanza(el),
            _ => self.fail(StreamError::with_text(
                "unsupported-stanza-type",
                format!("<{}/> in {} is not understood here", el.name, el.ns),
            )),
        }
    }

    /// SASL EXTERNAL (RFC 6120 §13.7.1.2.1): the certificate must verify
    /// for the domain the header named; an authorization identity, if
    /// given, must be that domain.
    fn on_auth(&mut self, el: &Element) {
        if self.sasl.is_some() {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "this stream is authenticated already",
            ));
        }
        if el.attr("mechanism") != Some("EXTERNAL") {
            self.neg.send_nonza(&failure(
                "invalid-mechanism",
                Some("only EXTERNAL is offered to servers"),
            ));
            return self.failed();
        }
        let Some(peer) = self.peer.clone() else {
            self.neg.send_nonza(&failure(
                "not-authorized",
                Some("the stream header must name your domain ('from')"),
            ));
            return self.failed();
        };
        let text = el.text();
        let text = text.trim();
        if !text.is_empty() && text != "=" {
            let authzid = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|a| normalize_domain(&a).ok());
            if authzid.as_deref() != Some(peer.as_str()) {
                self.neg.send_nonza(&failure(
                    "invalid-authzid",
                    Some("the authorization identity must be the stream's 'from'"),
                ));
                return self.failed();
            }
        }
        if !self.cert_ok(&peer) {
            let text = format!("your certificate does not verify for {peer}");
            self.neg.send_nonza(&failure("not-authorized", Some(&text)));
            return self.failed();
        }
        self.neg.send_nonza(&Element::new("success", ns::SASL));
        // The peer restarts the stream (RFC 6120 §6.4.6).
        self.neg.restart();
        self.sasl = Some(peer.clone());
        let local = self.neg.host.clone().unwrap_or_default();
        self.neg.push(InAction::Authenticated {
            remote: peer,
            local,
            method: AuthMethod::Certificate,
        });
    }

    /// The originating server claims a domain (XEP-0220 §2.1.1).
    fn on_db_result(&mut self, el: &Element) {
        if el.attr("type").is_some() {
            return self.fail(StreamError::with_text(
                "not-authorized",
                "a dialback result with a type is an answer, and this server asked nothing",
            ));
        }
        let Some((remote, local)) = self.db_addresses(el) else {
            return;
        };
        if !self.local.contains(&local) {
            let e = dialback::result_error(
                &local,
                &remote,
                "item-not-found",
                "this server does not serve that domain",
            );
            return self.neg.send_nonza(&e);
        }
        if !self.policy.allows(&remote) {
            let text = format!("this server does not federate with {remote}");
            let e = dialback::result_error(&local, &remote, "not-allowed", &text);
            return self.neg.send_nonza(&e);
        }
        if self.authorized(&remote, &local) {
            return self
                .neg
                .send_nonza(&dialback::result_answer(&local, &remote, true));
        }
        if !self.policy.dialback {
            let e = dialback::result_error(
                &local,
                &remote,
                "not-allowed",
                "this server does not accept dialback: authenticate with SASL EXTERNAL",
            );
            return self.neg.send_nonza(&e);
        }
        if self.cert_ok(&remote) {
            // XEP-0344 §2.4: the certificate already proves the domain, so
            // the key need not be checked with anyone.
            self.neg
                .send_nonza(&dialback::result_answer(&local, &remote, true));
            return self.accept_pair(&remote, &local, AuthMethod::DialbackWithCertificate);
        }
        if self.policy.secure_auth {
            let text = format!(
                "your certificate does not verify for {remote}, and this server requires one"
            );
            let e = dialback::result_error(&local, &remote, "not-authorized", &text);
            self.neg.send_nonza(&e);
            return self.failed();
        }
        if self
            .pending
            .iter()
            .any(|(r, l)| *r == remote && *l == local)
        {
            return;
        }
        if self.pending.len() >= MAX_PENDING || self.pairs.len() >= MAX_PAIRS {
            return self.fail(StreamError::with_text(
                "policy-violation",
                "too many dialback claims on one stream",
            ));
        }
        self.pending.push((remote.clone(), local.clone()));
        self.neg.push(InAction::VerifyDialback {
            local,
            remote,
            id: self.stream_id.clone(),
            key: el.text().trim().to_string(),
        });
    }

    /// A receiving server asks whether a key is ours (we are the
    /// authoritative server, XEP-0220 §2.1.3).
    fn on_db_verify(&mut self, el: &Element) {
        if el.attr("type").is_some() {
            return self.fail(StreamError::with_text(
                "not-authorized",
                "a dialback verification with a type is an answer, and this server asked nothing",
            ));
        }
        let Some((receiving, originating)) = self.db_addresses(el) else {
            return;
        };
        let Some(id) = el.attr("id") else {
            return self.fail(StreamError::with_text(
                "improper-addressing",
                "<db:verify/> needs the 'id' of the stream it is about",
            ));
        };
        let valid = self.local.contains(&originating)
            && self
                .policy
                .secret
                .verify(&receiving, &originating, id, &el.text());
        let answer = dialback::verify_answer(&originating, &receiving, id, valid);
        self.neg.send_nonza(&answer);
    }

    /// The `from` and `to` domains of a `db:` element; the stream is
    /// closed when they are missing or not domains.
    fn db_addresses(&mut self, el: &Element) -> Option<(String, String)> {
        let from = el.attr("from").map(normalize_domain);
        let to = el.attr("to").map(normalize_domain);
        match (from, to) {
            (Some(Ok(f)), Some(Ok(t))) => Some((f, t)),
            _ => {
                self.fail(StreamError::with_text(
                    "improper-addressing",
                    format!("<db:{}/> needs 'from' and 'to' domains", el.name),
                ));
                None
            }
        }
    }

    fn accept_pair(&mut self, remote: &str, local: &str, method: AuthMethod) {
        self.pairs.push((remote.to_string(), local.to_string()));
        self.neg.push(InAction::Authenticated {
            remote: remote.to_string(),
            local: local.to_string(),
            method,
        });
    }

    /// A failed authentication; too many close the stream.
    fn failed(&mut self) {
        self.failures += 1;
        if self.failures >= MAX_FAILURES {
            self.fail(StreamError::with_text(
                "policy-violation",
                "too many failed authentication attempts",
            ));
        }
    }

    /// Whether stanzas from `remote` to `local` may pass.
    fn authorized(&self, remote: &str, local: &str) -> bool {
        self.sasl.as_deref() == Some(remote)
            || self.pairs.iter().any(|(r, l)| r == remote && l == local)
    }

    fn on_stanza(&mut self, mut el: Element) {
        let from = el.attr("from").map(Jid::parse);
        let to = el.attr("to").map(Jid::parse);
        let (from, to) = match (from, to) {
            (Some(Ok(f)), Some(Ok(t))) => (f, t),
            (Some(Err(_)), _) => {
                return self.fail(StreamError::with_text(
                    "invalid-from",
                    "the stanza's 'from' is not a valid JID",
                ))
            }
            _ => {
                return self.fail(StreamError::with_text(
                    "improper-addressing",
                    "stanzas between servers need a valid 'from' and 'to'",
                ))
            }
        };
        if !self.local.iter().any(|l| l == to.domain()) {
            return self.fail(StreamError::with_text(
                "host-unknown",
                format!("this server does not serve {}", to.domain()),
            ));
        }
        if !self.authorized(from.domain(), to.domain()) {
            return self.fail(StreamError::with_text(
                "invalid-from",
                format!(
                    "this stream is not authenticated for {} to {}",
                    from.domain(),
                    to.domain()
                ),
            ));
        }
        el.rename_ns(ns::SERVER, ns::CLIENT);
        let remote = from.domain().to_string();
        if let Some(bucket) = &mut self.bucket {
            if !bucket.try_take(self.now) {
                self.held = Some((remote, el));
                return;
            }
        }
        self.neg.push(InAction::Stanza { remote, el });
    }
}
