//! The server side of SASL negotiation on a stream (RFC 6120 §6): which
//! mechanisms are offered, `<auth/>`, `<response/>` and `<abort/>`, the
//! SCRAM exchange with its credential lookup, PLAIN with its password
//! check, `<success/>` and `<failure/>`, and the count of failed attempts.
//! The same exchange runs under the Extensible SASL Profile (XEP-0388,
//! [`Profile::Sasl2`]): other element names, no stream restart, and the
//! `<success/>` left to the client machine, which adds what was negotiated
//! inline (a bound resource, a resumed session, a FAST token).
//! Shared by the client machine and (with EXTERNAL) the coming
//! server-to-server machine; the mechanisms themselves are in
//! `crate::sasl`.

use base64::Engine as _;
use switchboard_jid::{normalize_localpart, Jid};
use switchboard_spool::ScramCredential;
use switchboard_xml::{ns, Element};

use super::error::StreamError;
use super::negotiation::{Negotiation, Phase, Wire};
use crate::sasl::{plain, SaslFailure, ScramHash, ScramServer, ScramStep};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The Extensible SASL Profile's namespace (XEP-0388).
pub(crate) const SASL2_NS: &str = "urn:xmpp:sasl:2";

/// Which SASL profile the current attempt uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Profile {
    /// RFC 6120 §6: `<auth/>`, `<success/>`, then a stream restart.
    #[default]
    Rfc6120,
    /// XEP-0388: `<authenticate/>`, and `<success/>` built by the caller.
    Sasl2,
}

impl Profile {
    fn ns(self) -> &'static str {
        match self {
            Profile::Rfc6120 => ns::SASL,
            Profile::Sasl2 => SASL2_NS,
        }
    }
}

/// How many failed SASL attempts a connection gets before it is closed.
pub(crate) const MAX_AUTH_FAILURES: u32 = 3;

/// What the machine must do after a SASL element or answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslOutcome {
    /// Nothing more now (a challenge or a failure was queued, or the
    /// stream was closed after too many failures).
    Continue,
    /// Look the user's SCRAM credential up and call
    /// [`SaslExchange::credentials`] (the negotiation waits meanwhile).
    LookupScram { user: String, hash: ScramHash },
    /// Check a PLAIN password and call [`SaslExchange::plain_verified`].
    VerifyPlain { user: String, password: String },
    /// Authenticated as this local part. Under RFC 6120 `<success/>` is
    /// queued and the peer restarts the stream; under SASL2 the caller
    /// sends it (with [`SaslExchange::take_additional`]).
    Success(String),
}

/// One stream's SASL state.
#[derive(Default)]
pub(crate) struct SaslExchange {
    scram: Option<ScramServer>,
    failures: u32,
    /// The client tried a -PLUS mechanism with a channel binding type we
    /// cannot provide (typically `tls-unique`, undefined for TLS 1.3). It
    /// has therefore seen -PLUS advertised, so its fallback to plain SCRAM
    /// with the `y` flag is not a downgrade and is accepted.
    client_saw_plus: bool,
    profile: Profile,
    /// SASL2: the mechanism of an `<authenticate/>` without an initial
    /// response; the next `<response/>` carries it.
    awaiting_initial: Option<String>,
    /// SASL2: the mechanism's final data, for `<additional-data/>`.
    additional: Option<Vec<u8>>,
}

impl SaslExchange {
    /// Failed attempts so far (aborts are not failures).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// `<mechanisms/>` as offered on this stream: -PLUS with channel
    /// binding, SCRAM, and PLAIN only inside TLS.
    pub(crate) fn mechanisms<A>(neg: &Negotiation<A>) -> Element {
        let mut m = Element::new("mechanisms", ns::SASL);
        let mut names = Vec::new();
        if neg.channel_binding.is_some() {
            names.extend(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
        }
        names.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
        // PLAIN sends the password itself: offered only inside TLS.
        if neg.secure {
            names.push("PLAIN");
        }
        for n in names {
            m.append_child(Element::new("mechanism", ns::SASL).with_text(n));
        }
        m
    }

    /// XEP-0440: the channel binding types supported, when there is one.
    pub(crate) fn channel_binding_feature<A>(neg: &Negotiation<A>) -> Option<Element> {
        neg.channel_binding.as_ref()?;
        Some(
            Element::new("sasl-channel-binding", "urn:xmpp:sasl-cb:0").with_child(
                Element::new("channel-binding", "urn:xmpp:sasl-cb:0")
                    .with_attr("type", "tls-exporter"),
            ),
        )
    }

    /// An element in the SASL namespace (RFC 6120) from the peer.
    pub(crate) fn handle<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        el: &Element,
    ) -> SaslOutcome {
        match el.name.as_str() {
            "auth" => {
                self.profile = Profile::Rfc6120;
                let payload = decode_b64(&el.text());
                self.start(neg, el.attr("mechanism").unwrap_or(""), payload)
            }
            "response" | "abort" => self.step(neg, el),
            _ => {
                neg.fail(StreamError::new("unsupported-stanza-type"));
                SaslOutcome::Continue
            }
        }
    }

    /// A SASL2 `<authenticate/>` (parsed by the caller, which keeps what
    /// it asks for besides): `initial` is the `<initial-response/>` text,
    /// `None` without one.
    pub(crate) fn start_sasl2<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        mechanism: &str,
        initial: Option<&str>,
    ) -> SaslOutcome {
        self.profile = Profile::Sasl2;
        self.additional = None;
        match initial {
            Some(text) => self.start(neg, mechanism, decode_sasl2(text)),
            None => {
                // The mechanism starts with the client (SCRAM, PLAIN): an
                // empty challenge asks for its first message.
                self.awaiting_initial = Some(mechanism.to_string());
                neg.send_nonza(&Element::new("challenge", SASL2_NS));
                SaslOutcome::Continue
            }
        }
    }

    /// `<response/>` or `<abort/>`, in either profile's namespace.
    pub(crate) fn step<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        el: &Element,
    ) -> SaslOutcome {
        match el.name.as_str() {
            "response" => {
                if let Some(mechanism) = self.awaiting_initial.take() {
                    let payload = decode_sasl2(&el.text());
                    return self.start(neg, &mechanism, payload);
                }
                self.on_response(neg, el)
            }
            _ => {
                self.scram = None;
                self.awaiting_initial = None;
                self.failure(neg, SaslFailure::Aborted)
            }
        }
    }

    /// The profile of the attempt under way (or the last one).
    pub(crate) fn profile(&self) -> Profile {
        self.profile
    }

    /// SASL2: the mechanism's final data from a success, once.
    pub(crate) fn take_additional(&mut self) -> Option<Vec<u8>> {
        self.additional.take()
    }

    /// A failure the caller decided (a malformed SASL2 request, a FAST
    /// token refused) in `profile`: counted like any other.
    pub(crate) fn fail_with_in<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        f: SaslFailure,
        profile: Profile,
    ) -> SaslOutcome {
        self.profile = profile;
        self.failure(neg, f)
    }

    /// A SASL2 success decided by the caller (a FAST token accepted), with
    /// the mechanism's final data.
    pub(crate) fn succeed<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        user: String,
        additional: Option<Vec<u8>>,
    ) -> SaslOutcome {
        self.profile = Profile::Sasl2;
        self.success(neg, user, additional)
    }

    fn start<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        mechanism: &str,
        payload: Option<Vec<u8>>,
    ) -> SaslOutcome {
        if self.scram.is_some() {
            self.scram = None;
            return self.failure(neg, SaslFailure::Aborted);
        }
        let Some(payload) = payload else {
            neg.send_nonza(&self.failure_element("incorrect-encoding", None));
            return SaslOutcome::Continue;
        };
        let cb = neg.channel_binding.is_some();
        let (hash, plus) = match mechanism {
            "SCRAM-SHA-256" => (ScramHash::Sha256, false),
            "SCRAM-SHA-1" => (ScramHash::Sha1, false),
            "SCRAM-SHA-256-PLUS" if cb => (ScramHash::Sha256, true),
            "SCRAM-SHA-1-PLUS" if cb => (ScramHash::Sha1, true),
            "PLAIN" if neg.secure => return self.on_plain(neg, &payload),
            _ => return self.failure(neg, SaslFailure::InvalidMechanism),
        };
        if plus {
            if let Some(cb_type) = unsupported_cb_type(&payload) {
                // Not a failed login: the client simply cannot use our
                // binding type and will try its next mechanism.
                self.client_saw_plus = true;
                let text = format!(
                    "channel binding type '{cb_type}' is not supported here; use tls-exporter"
                );
                neg.send_nonza(&self.failure_element("malformed-request", Some(&text)));
                return SaslOutcome::Continue;
            }
        }
        let advertised = cb && !self.client_saw_plus;
        let mut server = ScramServer::new(hash, plus, neg.channel_binding.clone(), advertised);
        match server.client_first(&payload) {
            Ok(ScramStep::NeedCredentials { username }) => {
                self.scram = Some(server);
                match normalize_localpart(&username) {
                    Ok(user) => {
                        neg.phase = Phase::Pending;
                        SaslOutcome::LookupScram { user, hash }
                    }
                    // An impossible user name continues like an unknown
                    // one, so the failure looks the same.
                    Err(_) => self.credentials(neg, None),
                }
            }
            Ok(step) => self.scram_step(neg, Ok(step)),
            Err(f) => self.failure(neg, f),
        }
    }

    fn on_plain<A: From<Wire>>(&mut self, neg: &mut Negotiation<A>, payload: &[u8]) -> SaslOutcome {
        let creds = match plain::parse(payload) {
            Ok(c) => c,
            Err(f) => return self.failure(neg, f),
        };
        let host = neg.host.clone().unwrap_or_default();
        let Ok(user) = normalize_localpart(&creds.username) else {
            return self.failure(neg, SaslFailure::NotAuthorized);
        };
        if let Some(authz) = creds.authzid.as_deref() {
            let own = Jid::from_parts(Some(&user), &host, None).ok();
            if Jid::parse(authz).ok() != own {
                return self.failure(neg, SaslFailure::InvalidAuthzid);
            }
        }
        neg.phase = Phase::Pending;
        SaslOutcome::VerifyPlain {
            user,
            password: creds.password,
        }
    }

    fn on_response<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        el: &Element,
    ) -> SaslOutcome {
        let Some(server) = self.scram.as_mut() else {
            return self.failure(neg, SaslFailure::MalformedRequest);
        };
        let payload = match self.profile {
            Profile::Rfc6120 => decode_b64(&el.text()),
            Profile::Sasl2 => decode_sasl2(&el.text()),
        };
        let Some(payload) = payload else {
            self.scram = None;
            neg.send_nonza(&self.failure_element("incorrect-encoding", None));
            return SaslOutcome::Continue;
        };
        let step = server.client_final(&payload);
        self.scram_step(neg, step)
    }

    /// The answer to [`SaslOutcome::LookupScram`].
    pub(crate) fn credentials<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        cred: Option<ScramCredential>,
    ) -> SaslOutcome {
        neg.phase = Phase::Open;
        let Some(server) = self.scram.as_mut() else {
            return SaslOutcome::Continue;
        };
        let step = server.credentials(cred);
        self.scram_step(neg, step)
    }

    /// The answer to [`SaslOutcome::VerifyPlain`].
    pub(crate) fn plain_verified<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        user: &str,
        ok: bool,
    ) -> SaslOutcome {
        neg.phase = Phase::Open;
        if ok {
            self.success(neg, user.to_string(), None)
        } else {
            self.failure(neg, SaslFailure::NotAuthorized)
        }
    }

    fn scram_step<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        step: Result<ScramStep, SaslFailure>,
    ) -> SaslOutcome {
        match step {
            Ok(ScramStep::Challenge(data)) => {
                let ns = self.profile.ns();
                neg.send_nonza(&Element::new("challenge", ns).with_text(B64.encode(data)));
                SaslOutcome::Continue
            }
            Ok(ScramStep::Success {
                username,
                server_final,
            }) => match normalize_localpart(&username) {
                Ok(user) => self.success(neg, user, Some(server_final)),
                Err(_) => self.failure(neg, SaslFailure::NotAuthorized),
            },
            Ok(ScramStep::NeedCredentials { .. }) => {
                self.failure(neg, SaslFailure::MalformedRequest)
            }
            Err(f) => self.failure(neg, f),
        }
    }

    fn success<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        user: String,
        additional: Option<Vec<u8>>,
    ) -> SaslOutcome {
        self.scram = None;
        if self.profile == Profile::Sasl2 {
            // The caller completes what was asked inline and sends
            // `<success/>`; there is no restart (XEP-0388 §2.6.1).
            self.additional = additional;
            return SaslOutcome::Success(user);
        }
        let mut el = Element::new("success", ns::SASL);
        if let Some(data) = additional {
            el.append_text(B64.encode(data));
        }
        neg.send_nonza(&el);
        // The peer restarts the stream (RFC 6120 §6.4.6).
        neg.restart();
        SaslOutcome::Success(user)
    }

    /// `<failure/>` in the attempt's profile.
    fn failure_element(&self, condition: &str, text: Option<&str>) -> Element {
        match self.profile {
            Profile::Rfc6120 => failure(condition, text),
            Profile::Sasl2 => {
                // XEP-0388 §2.6.2: the RFC 6120 condition, in its own
                // namespace, inside the SASL2 failure.
                let mut el =
                    Element::new("failure", SASL2_NS).with_child(Element::new(condition, ns::SASL));
                if let Some(t) = text {
                    el.append_child(Element::new("text", SASL2_NS).with_text(t));
                }
                el
            }
        }
    }

    fn failure<A: From<Wire>>(&mut self, neg: &mut Negotiation<A>, f: SaslFailure) -> SaslOutcome {
        self.scram = None;
        neg.send_nonza(&self.failure_element(f.condition(), None));
        if f != SaslFailure::Aborted {
            self.failures += 1;
            if self.failures >= MAX_AUTH_FAILURES {
                neg.fail(StreamError::with_text(
                    "policy-violation",
                    "too many failed authentication attempts",
                ));
            }
        }
        SaslOutcome::Continue
    }
}

/// `<failure/>` with a condition and optional text.
pub(crate) fn failure(condition: &str, text: Option<&str>) -> Element {
    let mut el = Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL));
    if let Some(t) = text {
        el.append_child(
            Element::new("text", ns::SASL)
                .with_attr("xml:lang", "en")
                .with_text(t),
        );
    }
    el
}

/// The cb-name of a `p=` GS2 header when it is not `tls-exporter`.
fn unsupported_cb_type(client_first: &[u8]) -> Option<String> {
    let rest = client_first.strip_prefix(b"p=")?;
    let end = rest.iter().position(|b| *b == b',')?;
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    (name != "tls-exporter").then_some(name)
}

/// SASL2 payloads: plain base64, empty for an empty response (XEP-0388
/// §2.2 drops RFC 6120's `=`).
fn decode_sasl2(text: &str) -> Option<Vec<u8>> {
    // Clients must not wrap the base64, but the XEP's own examples do:
    // line breaks and indentation are tolerated.
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(compact).ok()
}

/// SASL payloads: `=` is an empty response (RFC 6120 §6.4.2).
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t == "=" {
        return Some(Vec::new());
    }
    B64.decode(t).ok()
}
