//! The client's negotiation and delivery state machine, sans-IO.
//!
//! It is fed the events of `switchboard_xml::StreamParser` and answers with
//! [`Action`]s for the driver: bytes to write, "do the TLS handshake now",
//! "reset the parser" (a stream restart), progress notes. It never reads a
//! socket or a clock, so every step of the protocol is tested in memory.
//!
//! The order of things (RFC 6120, RFC 6121):
//!
//! 1. stream header, features; STARTTLS is required (never any
//!    credentials in clear text), so a server that does not offer it is
//!    refused;
//! 2. after TLS: SASL with SCRAM-SHA-256, SCRAM-SHA-1, then PLAIN, checking
//!    the server's SCRAM signature;
//! 3. after SASL: resource binding (and the legacy session, if a server
//!    still requires it);
//! 4. one `<message/>` per recipient, no presence (so nothing is pushed to
//!    us);
//! 5. one confirmation IQ per recipient's bare JID, sent after all the
//!    messages, and a wait for every answer;
//! 6. `</stream:stream>`, and the driver waits briefly for the server's.
//!
//! # Why one confirmation per recipient and not a single ping to the server
//!
//! RFC 6120 §10.1 orders a server's processing per recipient: stanzas to
//! the same bare JID are handled in the order they were sent, but nothing
//! orders a stanza to the server after a message to someone else. A ping
//! to the server can be answered before a message's error comes back:
//! Switchboard hands a message for an offline account to that account's
//! actor (which looks the account up in the spool) while it answers pings
//! at once, and every server answers for a remote domain only after its
//! server-to-server connection succeeded or failed. So the confirmation
//! goes to each recipient's bare JID, where the server handles it after
//! the message, on the recipient's behalf. Its payload is in a namespace
//! of our own that no server implements: every server must answer it
//! (`service-unavailable`, RFC 6120 §8.4), the recipient's clients never
//! see it, and no data about the recipient is fetched. When its answer
//! arrives, the message before it has been stored, delivered or refused,
//! and a refusal has already reached us.

use std::collections::BTreeMap;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element, Event, StreamHeader};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::{Failure, RecipientError};
use switchboard_link::scram::{plain_message, prepare_password, Mechanism, SaslError, ScramClient};

/// The namespace of the confirmation IQ (see the module docs).
pub const CONFIRM_NS: &str = "urn:switchboard:send:confirm:1";

/// The `type` of the messages sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageType {
    /// One-to-one chat: what IM clients show best (the default).
    #[default]
    Chat,
    /// A standalone message (clients may show it as an e-mail-like window).
    Normal,
    /// A notification that is not stored for offline recipients.
    Headline,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Chat => "chat",
            MessageType::Normal => "normal",
            MessageType::Headline => "headline",
        }
    }
}

/// What to send, as whom.
#[derive(Debug, Clone)]
pub struct Params {
    /// The account to log in as; a resource, if any, is requested at bind.
    pub account: Jid,
    pub password: String,
    /// Normalized, without duplicates, at least one.
    pub recipients: Vec<Jid>,
    /// The message text (already checked: non-empty, XML-safe).
    pub body: String,
    pub subject: Option<String>,
    pub kind: MessageType,
    /// Prefix of every stanza id this client sends (random per run, so ids
    /// never collide with anything else the account receives).
    pub id_prefix: String,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Send(Vec<u8>),
    /// `<proceed/>` arrived: reset the parser, do the TLS handshake, then
    /// call [`Machine::tls_established`].
    StartTls,
    /// A stream restart after SASL: reset the parser before feeding more.
    ResetParser,
    /// Every recipient is settled and our `</stream:stream>` went out in a
    /// `Send` just before: wait a little for the server's close (or the end
    /// of the connection), then take [`Machine::outcome`].
    Closing,
    /// Progress for `--verbose`.
    Note(String),
}

/// What was handed over, on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The full JID the server bound.
    pub bound: String,
    /// The SASL mechanism used.
    pub mechanism: &'static str,
    /// Every recipient.
    pub delivered: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Plain,
    Tls,
    Authenticated,
}

#[derive(Debug)]
enum State {
    Start,
    Header(Stage),
    Features(Stage),
    Proceed,
    Handshake,
    Sasl,
    Bind {
        id: String,
    },
    Session {
        id: String,
    },
    /// Messages and confirmations sent; waiting for the confirmations.
    Confirm,
    Closing,
    Closed,
}

/// The client state machine; see the module docs.
pub struct Machine {
    p: Params,
    state: State,
    mechanism: Option<Mechanism>,
    scram: Option<ScramClient>,
    bound: Option<String>,
    /// The server requires an RFC 3921 session after binding.
    session_required: bool,
    /// Message id → recipient index.
    messages: BTreeMap<String, usize>,
    /// Confirmation id → recipient indices sharing that bare JID.
    pending: BTreeMap<String, Vec<usize>>,
    /// Per recipient: the error the server returned, if any.
    errors: Vec<Option<RecipientError>>,
}

impl Machine {
    pub fn new(p: Params) -> Machine {
        let n = p.recipients.len();
        Machine {
            p,
            state: State::Start,
            mechanism: None,
            scram: None,
            bound: None,
            session_required: false,
            messages: BTreeMap::new(),
            pending: BTreeMap::new(),
            errors: vec![None; n],
        }
    }

    /// The first bytes: our stream header.
    pub fn start(&mut self) -> Vec<Action> {
        self.state = State::Header(Stage::Plain);
        vec![Action::Send(self.header(Stage::Plain))]
    }

    /// The TLS handshake succeeded: a new stream over it.
    pub fn tls_established(&mut self) -> Vec<Action> {
        self.state = State::Header(Stage::Tls);
        vec![Action::Send(self.header(Stage::Tls))]
    }

    /// What the client is waiting for, for the timeout message.
    pub fn waiting_for(&self) -> String {
        match &self.state {
            State::Start => "the connection".into(),
            State::Header(_) => "the server's stream header".into(),
            State::Features(_) => "the server's stream features".into(),
            State::Proceed => "the server's answer to STARTTLS".into(),
            State::Handshake => "the TLS handshake".into(),
            State::Sasl => "the server's answer to the login".into(),
            State::Bind { .. } | State::Session { .. } => "resource binding".into(),
            State::Confirm => {
                let waiting: Vec<String> = self
                    .pending
                    .values()
                    .flatten()
                    .map(|&i| self.p.recipients[i].to_string())
                    .collect();
                format!(
                    "the server to confirm the message to {} (it was sent)",
                    waiting.join(", ")
                )
            }
            State::Closing | State::Closed => "the server to close the stream".into(),
        }
    }

    /// Whether the messages have been sent (and so a failure from now on
    /// leaves them in an unknown state).
    pub fn sent(&self) -> bool {
        matches!(self.state, State::Confirm | State::Closing | State::Closed)
    }

    /// Whether every recipient is settled (we are closing or closed).
    pub fn settled(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
    }

    /// The result once [`Machine::settled`]: the report, or the recipients
    /// the server refused.
    pub fn outcome(&self) -> Result<Report, Failure> {
        let delivered: Vec<String> = self
            .p
            .recipients
            .iter()
            .zip(&self.errors)
            .filter(|(_, e)| e.is_none())
            .map(|(j, _)| j.to_string())
            .collect();
        let failed: Vec<RecipientError> = self.errors.iter().flatten().cloned().collect();
        if !failed.is_empty() {
            return Err(Failure::Recipients { failed, delivered });
        }
        Ok(Report {
            bound: self.bound.clone().unwrap_or_default(),
            mechanism: self.mechanism.map(Mechanism::name).unwrap_or(""),
            delivered,
        })
    }

    /// The connection ended (EOF). Fine once closing; an error before.
    pub fn eof(&mut self) -> Result<(), Failure> {
        if self.settled() {
            self.state = State::Closed;
            return Ok(());
        }
        Err(self.protocol(format!(
            "the server closed the connection while this client was waiting for {}",
            self.waiting_for()
        )))
    }

    /// Handles one parser event.
    pub fn handle(&mut self, event: Event) -> Result<Vec<Action>, Failure> {
        match event {
            Event::StreamOpen(h) => self.on_open(&h),
            Event::StreamClose => {
                if self.settled() {
                    self.state = State::Closed;
                    return Ok(Vec::new());
                }
                Err(self.protocol(format!(
                    "the server closed the stream while this client was waiting for {}",
                    self.waiting_for()
                )))
            }
            Event::Stanza(el) if el.is("error", ns::STREAM) => Err(self.stream_error(&el)),
            Event::Stanza(el) => self.on_element(el),
        }
    }

    fn header(&self, stage: Stage) -> Vec<u8> {
        let from = self.p.account.to_bare().to_string();
        switchboard_xml::stream::open_stream(&switchboard_xml::stream::StreamOpen {
            ns: ns::CLIENT,
            to: Some(self.p.account.domain()),
            // RFC 6120 §4.7.1: `from` only once the stream is encrypted.
            from: (stage != Stage::Plain).then_some(from.as_str()),
            version: true,
            lang: Some("en"),
            ..Default::default()
        })
    }

    fn on_open(&mut self, h: &StreamHeader) -> Result<Vec<Action>, Failure> {
        let State::Header(stage) = self.state else {
            return Err(self.protocol("the server opened a second stream unasked".into()));
        };
        let major = h
            .attr("version")
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if major < 1 {
            return Err(self.protocol(
                "the server does not speak XMPP 1.0 (no version='1.0' in its stream header), so it cannot do STARTTLS".into(),
            ));
        }
        self.state = State::Features(stage);
        Ok(Vec::new())
    }

    fn on_element(&mut self, el: Element) -> Result<Vec<Action>, Failure> {
        match &self.state {
            State::Features(stage) => {
                if !el.is("features", ns::STREAM) {
                    return Err(self.unexpected(&el));
                }
                match stage {
                    Stage::Plain => self.plain_features(&el),
                    Stage::Tls => self.tls_features(&el),
                    Stage::Authenticated => self.auth_features(&el),
                }
            }
            State::Proceed => {
                if el.is("proceed", ns::TLS) {
                    self.state = State::Handshake;
                    Ok(vec![Action::StartTls])
                } else if el.is("failure", ns::TLS) {
                    Err(Failure::Protocol(
                        "the server refused STARTTLS; nothing was sent".into(),
                    ))
                } else {
                    Err(self.unexpected(&el))
                }
            }
            State::Sasl => self.sasl_step(&el),
            State::Bind { id } => {
                if el.name != "iq" || el.attr("id") != Some(id) {
                    return Ok(self.ignore_or_refuse(&el));
                }
                self.bind_result(&el)
            }
            State::Session { id } => {
                if el.name != "iq" || el.attr("id") != Some(id) {
                    return Ok(self.ignore_or_refuse(&el));
                }
                if el.attr("type") != Some("result") {
                    return Err(Failure::Protocol(format!(
                        "the server refused to open a session ({}); nothing was sent",
                        stanza_condition(&el).0
                    )));
                }
                Ok(self.send_messages())
            }
            State::Confirm | State::Closing | State::Closed => Ok(self.while_confirming(&el)),
            State::Start | State::Header(_) | State::Handshake => Err(self.unexpected(&el)),
        }
    }

    fn plain_features(&mut self, features: &Element) -> Result<Vec<Action>, Failure> {
        if features.get_child("starttls", ns::TLS).is_none() {
            return Err(Failure::Protocol(format!(
                "the server {} does not offer STARTTLS, so the password would travel in clear text; refusing to log in (nothing was sent)",
                self.p.account.domain()
            )));
        }
        self.state = State::Proceed;
        Ok(vec![Action::Send(
            Element::new("starttls", ns::TLS).to_bytes(Some(ns::CLIENT)),
        )])
    }

    fn tls_features(&mut self, features: &Element) -> Result<Vec<Action>, Failure> {
        let offered: Vec<String> = features
            .get_child("mechanisms", ns::SASL)
            .map(|m| {
                m.elements()
                    .filter(|e| e.is("mechanism", ns::SASL))
                    .map(|e| e.text().trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let Some(mech) = Mechanism::choose(offered.iter().map(String::as_str)) else {
            return Err(Failure::Protocol(format!(
                "the server offers no login mechanism this client supports (it offers {}; this client does SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN); nothing was sent",
                if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
            )));
        };
        let username = self.p.account.node().unwrap_or_default().to_owned();
        let initial = match mech {
            Mechanism::ScramSha256 | Mechanism::ScramSha1 => {
                let hash = mech.scram().expect("a SCRAM mechanism");
                let mut scram = ScramClient::new(hash, &username, &self.p.password)
                    .map_err(|e| self.sasl_failure(e))?;
                let first = scram.initial();
                self.scram = Some(scram);
                first
            }
            // An empty authzid: the server derives it from the login.
            Mechanism::Plain => {
                let password =
                    prepare_password(&self.p.password).map_err(|e| self.sasl_failure(e))?;
                plain_message("", &username, &password)
            }
        };
        self.mechanism = Some(mech);
        self.state = State::Sasl;
        let auth = Element::new("auth", ns::SASL)
            .with_attr("mechanism", mech.name())
            .with_text(B64.encode(initial));
        Ok(vec![
            Action::Note(format!(
                "logging in as {} with {}",
                self.p.account,
                mech.name()
            )),
            Action::Send(auth.to_bytes(Some(ns::CLIENT))),
        ])
    }

    fn sasl_step(&mut self, el: &Element) -> Result<Vec<Action>, Failure> {
        if el.ns != ns::SASL {
            return Err(self.unexpected(el));
        }
        let data = decode_sasl(el)?;
        match el.name.as_str() {
            "challenge" => {
                let Some(scram) = self.scram.as_mut() else {
                    return Err(Failure::Protocol(
                        "the server sent a SASL challenge to PLAIN; nothing was sent".into(),
                    ));
                };
                let answer = if scram.is_done() {
                    return Err(Failure::Protocol(
                        "the server sent another SASL challenge after its final one; nothing was sent".into(),
                    ));
                } else if data.starts_with(b"v=") || data.starts_with(b"e=") {
                    // Some servers send the server-final-message as a last
                    // challenge (RFC 6120 §6.4.6 allows either way).
                    scram.finish(&data).map_err(|e| self.sasl_failure(e))?;
                    Vec::new()
                } else {
                    scram.challenge(&data).map_err(|e| self.sasl_failure(e))?
                };
                let mut response = Element::new("response", ns::SASL);
                if !answer.is_empty() {
                    response.append_text(B64.encode(answer));
                }
                Ok(vec![Action::Send(response.to_bytes(Some(ns::CLIENT)))])
            }
            "success" => {
                if let Some(scram) = self.scram.as_mut() {
                    if !scram.is_done() {
                        scram.finish(&data).map_err(|e| self.sasl_failure(e))?;
                    }
                }
                self.scram = None;
                self.state = State::Header(Stage::Authenticated);
                Ok(vec![
                    Action::Note("authenticated".into()),
                    Action::ResetParser,
                    Action::Send(self.header(Stage::Authenticated)),
                ])
            }
            "failure" => {
                let condition = el
                    .elements()
                    .find(|e| e.name != "text")
                    .map(|e| e.name.clone())
                    .unwrap_or_else(|| "unknown".into());
                let text = el
                    .child_text("text", ns::SASL)
                    .filter(|t| !t.trim().is_empty());
                match condition.as_str() {
                    "not-authorized"
                    | "account-disabled"
                    | "credentials-expired"
                    | "invalid-authzid" => Err(Failure::Auth {
                        account: self.p.account.to_bare().to_string(),
                        condition,
                        text,
                    }),
                    _ => Err(Failure::Protocol(format!(
                        "the server refused the login ({condition}{}); nothing was sent",
                        text.map(|t| format!(": {t}")).unwrap_or_default()
                    ))),
                }
            }
            _ => Err(self.unexpected(el)),
        }
    }

    fn sasl_failure(&self, e: SaslError) -> Failure {
        match e {
            SaslError::BadPassword => Failure::Usage(format!(
                "the password of {} {}",
                self.p.account.to_bare(),
                e
            )),
            e => Failure::Protocol(format!("{e}; nothing was sent")),
        }
    }

    fn auth_features(&mut self, features: &Element) -> Result<Vec<Action>, Failure> {
        if features.get_child("bind", ns::BIND).is_none() {
            return Err(Failure::Protocol(
                "the server offers no resource binding after the login; nothing was sent".into(),
            ));
        }
        // RFC 3921 sessions: only if the server still requires one
        // (RFC 6121 dropped them; servers that keep them mark them
        // `<optional/>`).
        self.session_required = features
            .get_child("session", ns::SESSION)
            .is_some_and(|s| s.get_child("optional", ns::SESSION).is_none());
        let id = self.id("bind");
        let mut bind = Element::new("bind", ns::BIND);
        if let Some(r) = self.p.account.resource() {
            bind.append_child(Element::new("resource", ns::BIND).with_text(r));
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(bind);
        self.state = State::Bind { id };
        Ok(vec![Action::Send(iq.to_bytes(Some(ns::CLIENT)))])
    }

    fn bind_result(&mut self, iq: &Element) -> Result<Vec<Action>, Failure> {
        if iq.attr("type") != Some("result") {
            return Err(Failure::Protocol(format!(
                "the server refused resource binding ({}); nothing was sent",
                stanza_condition(iq).0
            )));
        }
        let jid = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.child_text("jid", ns::BIND))
            .map(|j| j.trim().to_owned())
            .filter(|j| !j.is_empty())
            .ok_or_else(|| {
                Failure::Protocol(
                    "the server's answer to resource binding has no JID; nothing was sent".into(),
                )
            })?;
        self.bound = Some(jid.clone());
        let mut out = vec![Action::Note(format!("bound {jid}"))];
        if self.session_required {
            let id = self.id("session");
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", id.clone())
                .with_child(Element::new("session", ns::SESSION));
            self.state = State::Session { id };
            out.push(Action::Send(iq.to_bytes(Some(ns::CLIENT))));
            return Ok(out);
        }
        out.extend(self.send_messages());
        Ok(out)
    }

    /// Every message, then one confirmation per distinct bare JID.
    fn send_messages(&mut self) -> Vec<Action> {
        let mut bytes = Vec::new();
        for (i, to) in self.p.recipients.iter().enumerate() {
            let id = format!("{}-m{}", self.p.id_prefix, i + 1);
            let mut msg = Element::new("message", ns::CLIENT)
                .with_attr("type", self.p.kind.as_str())
                .with_attr("to", to.to_string())
                .with_attr("id", id.clone());
            if let Some(s) = &self.p.subject {
                msg.append_child(Element::new("subject", ns::CLIENT).with_text(s.clone()));
            }
            msg.append_child(Element::new("body", ns::CLIENT).with_text(self.p.body.clone()));
            msg.write_to(&mut bytes, Some(ns::CLIENT));
            self.messages.insert(id, i);
        }
        let mut by_bare: Vec<(Jid, Vec<usize>)> = Vec::new();
        for (i, to) in self.p.recipients.iter().enumerate() {
            let bare = to.to_bare();
            match by_bare.iter_mut().find(|(b, _)| *b == bare) {
                Some((_, v)) => v.push(i),
                None => by_bare.push((bare, vec![i])),
            }
        }
        for (n, (bare, indices)) in by_bare.into_iter().enumerate() {
            let id = format!("{}-c{}", self.p.id_prefix, n + 1);
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("to", bare.to_string())
                .with_attr("id", id.clone())
                .with_child(Element::new("query", CONFIRM_NS))
                .write_to(&mut bytes, Some(ns::CLIENT));
            self.pending.insert(id, indices);
        }
        self.state = State::Confirm;
        vec![
            Action::Send(bytes),
            Action::Note(format!(
                "sent to {}; waiting for the server to confirm",
                self.p
                    .recipients
                    .iter()
                    .map(Jid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ]
    }

    fn while_confirming(&mut self, el: &Element) -> Vec<Action> {
        let id = el.attr("id").unwrap_or_default();
        if el.name == "message" && el.attr("type") == Some("error") {
            if let Some(&i) = self.messages.get(id) {
                let (condition, text) = stanza_condition(el);
                if self.errors[i].is_none() {
                    self.errors[i] = Some(RecipientError {
                        jid: self.p.recipients[i].to_string(),
                        condition,
                        text,
                    });
                }
            }
            return Vec::new();
        }
        if el.name == "iq" && matches!(el.attr("type"), Some("result" | "error")) {
            let Some(indices) = self.pending.remove(id) else {
                return Vec::new();
            };
            if el.attr("type") == Some("error") {
                let (condition, text) = stanza_condition(el);
                // The confirmation took the message's route: if the server
                // could not reach the recipient's domain for it, it could
                // not for the message either, error or not.
                if matches!(
                    condition.as_str(),
                    "remote-server-not-found" | "remote-server-timeout"
                ) {
                    for i in indices {
                        if self.errors[i].is_none() {
                            self.errors[i] = Some(RecipientError {
                                jid: self.p.recipients[i].to_string(),
                                condition: condition.clone(),
                                text: text.clone(),
                            });
                        }
                    }
                }
            }
            if self.pending.is_empty() && matches!(self.state, State::Confirm) {
                self.state = State::Closing;
                return vec![
                    Action::Note("confirmed; closing the stream".into()),
                    Action::Send(switchboard_xml::stream::CLOSE_STREAM.to_vec()),
                    Action::Closing,
                ];
            }
            return Vec::new();
        }
        self.ignore_or_refuse(el)
    }

    /// Stanzas nobody asked for: an IQ get/set must be answered (RFC 6120
    /// §8.2.3), everything else is ignored.
    fn ignore_or_refuse(&self, el: &Element) -> Vec<Action> {
        if el.name != "iq" || !matches!(el.attr("type"), Some("get" | "set")) {
            return Vec::new();
        }
        let mut reply = Element::new("iq", ns::CLIENT)
            .with_attr("type", "error")
            .with_attr("id", el.attr("id").unwrap_or_default());
        if let Some(from) = el.attr("from") {
            reply.set_attr("to", from);
        }
        reply.append_child(
            Element::new("error", ns::CLIENT)
                .with_attr("type", "cancel")
                .with_child(Element::new("service-unavailable", ns::STANZAS)),
        );
        vec![Action::Send(reply.to_bytes(Some(ns::CLIENT)))]
    }

    fn id(&self, what: &str) -> String {
        format!("{}-{what}", self.p.id_prefix)
    }

    fn unexpected(&self, el: &Element) -> Failure {
        let mut xml = el.to_xml_string();
        if xml.len() > 200 {
            let mut cut = 200;
            while !xml.is_char_boundary(cut) {
                cut -= 1;
            }
            xml.truncate(cut);
            xml.push('…');
        }
        self.protocol(format!(
            "the server sent {xml} while this client was waiting for {}",
            self.waiting_for()
        ))
    }

    fn stream_error(&self, el: &Element) -> Failure {
        let condition = el
            .elements()
            .find(|e| e.ns == ns::STREAMS && e.name != "text")
            .map(|e| e.name.clone())
            .unwrap_or_else(|| "undefined-condition".into());
        let text = el
            .child_text("text", ns::STREAMS)
            .filter(|t| !t.trim().is_empty())
            .map(|t| format!(": {t}"))
            .unwrap_or_default();
        let hint = match condition.as_str() {
            "host-unknown" => format!(
                " (the server does not serve {}; check the account's domain and --server)",
                self.p.account.domain()
            ),
            "policy-violation" => " (a message larger than the server accepts?)".into(),
            _ => String::new(),
        };
        self.protocol(format!(
            "the server ended the stream with the error {condition}{text}{hint}"
        ))
    }

    /// A protocol failure, saying whether the messages already went out.
    fn protocol(&self, what: String) -> Failure {
        if self.sent() && !self.settled() {
            Failure::Protocol(format!(
                "{what}; the message was sent but not confirmed, so it may or may not have been delivered"
            ))
        } else if self.settled() {
            Failure::Protocol(format!("{what}; the message was handed over before that"))
        } else {
            Failure::Protocol(format!("{what}; nothing was sent"))
        }
    }
}

/// The defined condition and text of a stanza's `<error/>`.
fn stanza_condition(stanza: &Element) -> (String, Option<String>) {
    let Some(error) = stanza.elements().find(|e| e.name == "error") else {
        return ("undefined-condition".into(), None);
    };
    let condition = error
        .elements()
        .find(|e| e.ns == ns::STANZAS && e.name != "text")
        .map(|e| e.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    let text = error
        .child_text("text", ns::STANZAS)
        .filter(|t| !t.trim().is_empty());
    (condition, text)
}

/// The base64 payload of a SASL element (`=` or nothing is empty).
fn decode_sasl(el: &Element) -> Result<Vec<u8>, Failure> {
    let text = el.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text).map_err(|_| {
        Failure::Protocol(format!(
            "the server's SASL <{}/> is not valid base64; nothing was sent",
            el.name
        ))
    })
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
