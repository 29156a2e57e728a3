//! The server side of SASL negotiation on a stream (RFC 6120 §6): which
//! mechanisms are offered, `<auth/>`, `<response/>` and `<abort/>`, the
//! SCRAM exchange with its credential lookup, PLAIN with its password
//! check, `<success/>` and `<failure/>`, and the count of failed attempts.
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
    /// Authenticated as this local part: `<success/>` is queued and the
    /// peer restarts the stream.
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

    /// An element in the SASL namespace from the peer.
    pub(crate) fn handle<A: From<Wire>>(
        &mut self,
        neg: &mut Negotiation<A>,
        el: &Element,
    ) -> SaslOutcome {
        match el.name.as_str() {
            "auth" => self.on_auth(neg, el),
            "response" => self.on_response(neg, el),
            "abort" => {
                self.scram = None;
                self.failure(neg, SaslFailure::Aborted)
            }
            _ => {
                neg.fail(StreamError::new("unsupported-stanza-type"));
                SaslOutcome::Continue
            }
        }
    }

    fn on_auth<A: From<Wire>>(&mut self, neg: &mut Negotiation<A>, el: &Element) -> SaslOutcome {
        if self.scram.is_some() {
            self.scram = None;
            return self.failure(neg, SaslFailure::Aborted);
        }
        let Some(payload) = decode_b64(&el.text()) else {
            neg.send_nonza(&failure("incorrect-encoding", None));
            return SaslOutcome::Continue;
        };
        let cb = neg.channel_binding.is_some();
        let (hash, plus) = match el.attr("mechanism").unwrap_or("") {
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
                neg.send_nonza(&failure("malformed-request", Some(&text)));
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
        let Some(payload) = decode_b64(&el.text()) else {
            self.scram = None;
            neg.send_nonza(&failure("incorrect-encoding", None));
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
                neg.send_nonza(&Element::new("challenge", ns::SASL).with_text(B64.encode(data)));
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
        let mut el = Element::new("success", ns::SASL);
        if let Some(data) = additional {
            el.append_text(B64.encode(data));
        }
        neg.send_nonza(&el);
        // The peer restarts the stream (RFC 6120 §6.4.6).
        neg.restart();
        SaslOutcome::Success(user)
    }

    fn failure<A: From<Wire>>(&mut self, neg: &mut Negotiation<A>, f: SaslFailure) -> SaslOutcome {
        self.scram = None;
        neg.send_nonza(&failure(f.condition(), None));
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

/// SASL payloads: `=` is an empty response (RFC 6120 §6.4.2).
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t == "=" {
        return Some(Vec::new());
    }
    B64.decode(t).ok()
}
