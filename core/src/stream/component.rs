//! The server side of an external component's stream (XEP-0114), sans-IO.
//!
//! ```text
//! component: <stream:stream xmlns='jabber:component:accept' to='irc.example.org'>
//! server:    <stream:stream … from='irc.example.org' id='…'>
//! component: <handshake>hex(SHA-1(id ‖ secret))</handshake>
//! server:    <handshake/>            (or <not-authorized/> and close)
//! then stanzas both ways, in jabber:component:accept on the wire
//! ```
//!
//! The machine checks the hostname and the secret (in constant time) and,
//! once authenticated, that every stanza is from the component's own
//! hostname (`invalid-from` otherwise) and has a `to`
//! (`improper-addressing`). Stanzas leave the machine in `jabber:client`,
//! the namespace the router works in, and enter it the other way round.

use std::collections::{HashMap, VecDeque};

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element, Event, Limits, StreamHeader, StreamParser};

use crate::ids::random_id;
use crate::stream::error::StreamError;

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentAction {
    /// Write these bytes.
    Send(Vec<u8>),
    /// The handshake proved the secret for this hostname: claim its slot in
    /// the router and answer with [`ComponentStream::claimed`].
    Authenticated(String),
    /// A stanza from the component, in `jabber:client`, `from` checked.
    Stanza(Element),
    /// Flush what was sent and close the connection.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    AwaitHeader,
    AwaitHandshake {
        host: String,
        id: String,
    },
    /// Waiting for the driver to claim the hostname; input is buffered.
    Claiming {
        host: String,
    },
    Authenticated {
        host: String,
    },
    Closed,
}

/// One component connection.
pub struct ComponentStream {
    /// Hostname → secret of every configured external service.
    secrets: HashMap<String, String>,
    parser: StreamParser,
    phase: Phase,
    header_sent: bool,
    actions: VecDeque<ComponentAction>,
}

impl ComponentStream {
    pub fn new(secrets: HashMap<String, String>, limits: Limits) -> ComponentStream {
        ComponentStream {
            secrets,
            parser: StreamParser::new(limits),
            phase: Phase::AwaitHeader,
            header_sent: false,
            actions: VecDeque::new(),
        }
    }

    pub fn poll_action(&mut self) -> Option<ComponentAction> {
        self.actions.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The authenticated hostname, once the handshake succeeded.
    pub fn host(&self) -> Option<&str> {
        match &self.phase {
            Phase::Authenticated { host } => Some(host),
            _ => None,
        }
    }

    /// Bytes received from the component.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(e) = self.parser.feed(data) {
            return self.fail(StreamError::from(&e));
        }
        self.process();
    }

    /// The driver's answer to [`ComponentAction::Authenticated`]: whether
    /// the hostname was free. The component learns it succeeded only now,
    /// so it is never told `<handshake/>` and then `conflict`.
    pub fn claimed(&mut self, ok: bool) {
        let Phase::Claiming { host } = self.phase.clone() else {
            return;
        };
        if !ok {
            return self.conflict();
        }
        self.actions
            .push_back(ComponentAction::Send(b"<handshake/>".to_vec()));
        self.phase = Phase::Authenticated { host };
        self.process();
    }

    fn process(&mut self) {
        while !matches!(self.phase, Phase::Closed | Phase::Claiming { .. }) {
            match self.parser.next_event() {
                Ok(None) => {
                    self.parser.shrink_if_idle();
                    return;
                }
                Ok(Some(Event::StreamOpen(h))) => self.on_header(h),
                Ok(Some(Event::Stanza(el))) => self.on_element(el),
                Ok(Some(Event::StreamClose)) => self.close_stream(),
                Err(e) => self.fail(StreamError::from(&e)),
            }
        }
    }

    /// Serializes a routed stanza (in `jabber:client`) for the component.
    pub fn encode(&self, stanza: &Element) -> Vec<u8> {
        let mut s = stanza.clone();
        s.rename_ns(ns::CLIENT, ns::COMPONENT_ACCEPT);
        s.to_bytes(Some(ns::COMPONENT_ACCEPT))
    }

    /// Another connection already serves this hostname (XEP-0114 §3.1
    /// leaves the choice; refusing the newcomer keeps a working component
    /// working, as Prosody does).
    pub fn conflict(&mut self) {
        self.fail(StreamError::with_text(
            "conflict",
            "another component is already connected for this hostname",
        ));
    }

    /// Closes the stream with an error.
    pub fn fail(&mut self, err: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.send_header(None, &random_id());
        }
        let mut out = err.to_bytes();
        out.extend_from_slice(b"</stream:stream>");
        self.actions.push_back(ComponentAction::Send(out));
        self.phase = Phase::Closed;
        self.actions.push_back(ComponentAction::Close);
    }

    /// Closes the stream cleanly.
    pub fn close_stream(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.send_header(None, &random_id());
        }
        self.actions
            .push_back(ComponentAction::Send(b"</stream:stream>".to_vec()));
        self.phase = Phase::Closed;
        self.actions.push_back(ComponentAction::Close);
    }

    fn send_header(&mut self, from: Option<&str>, id: &str) {
        let mut out = Vec::with_capacity(200);
        out.extend_from_slice(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
              xmlns:stream='http://etherx.jabber.org/streams' id='",
        );
        switchboard_xml::escape::escape_attr(id, &mut out);
        out.push(b'\'');
        if let Some(from) = from {
            out.extend_from_slice(b" from='");
            switchboard_xml::escape::escape_attr(from, &mut out);
            out.push(b'\'');
        }
        out.push(b'>');
        self.actions.push_back(ComponentAction::Send(out));
        self.header_sent = true;
    }

    fn on_header(&mut self, h: StreamHeader) {
        if self.phase != Phase::AwaitHeader {
            return self.fail(StreamError::new("not-well-formed"));
        }
        if h.default_ns.as_deref() != Some(ns::COMPONENT_ACCEPT) {
            return self.fail(StreamError::with_text(
                "invalid-namespace",
                "this port speaks the component protocol (jabber:component:accept)",
            ));
        }
        let host = h.attr("to").map(switchboard_jid::normalize_domain);
        let host = match host {
            Some(Ok(host)) if self.secrets.contains_key(&host) => host,
            _ => {
                return self.fail(StreamError::with_text(
                    "host-unknown",
                    "no external <service> with that hostname is configured",
                ))
            }
        };
        let id = random_id();
        self.send_header(Some(&host), &id);
        self.phase = Phase::AwaitHandshake { host, id };
    }

    fn on_element(&mut self, el: Element) {
        match self.phase.clone() {
            Phase::AwaitHeader => self.fail(StreamError::new("not-well-formed")),
            Phase::AwaitHandshake { host, id } => {
                if !el.is("handshake", ns::COMPONENT_ACCEPT) {
                    return self.fail(StreamError::with_text(
                        "not-authorized",
                        "send <handshake/> before any stanza",
                    ));
                }
                let secret = &self.secrets[&host];
                if !switchboard_service::handshake::verify(&id, secret, &el.text()) {
                    return self.fail(StreamError::with_text(
                        "not-authorized",
                        "the handshake does not match the secret configured for this service",
                    ));
                }
                self.phase = Phase::Claiming { host: host.clone() };
                self.actions.push_back(ComponentAction::Authenticated(host));
            }
            Phase::Authenticated { host } => self.on_stanza(&host, el),
            Phase::Claiming { .. } | Phase::Closed => {}
        }
    }

    fn on_stanza(&mut self, host: &str, mut el: Element) {
        if el.ns != ns::COMPONENT_ACCEPT
            || !matches!(el.name.as_str(), "message" | "presence" | "iq")
        {
            return self.fail(StreamError::with_text(
                "unsupported-stanza-type",
                format!("<{}/> is not a stanza", el.name),
            ));
        }
        let from_ok = el
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .is_some_and(|f| f.domain() == host);
        if !from_ok {
            return self.fail(StreamError::with_text(
                "invalid-from",
                format!("stanzas from this component must be from {host} or a JID at it"),
            ));
        }
        if el.attr("to").is_none() {
            return self.fail(StreamError::with_text(
                "improper-addressing",
                "a stanza from a component needs a 'to'",
            ));
        }
        el.rename_ns(ns::COMPONENT_ACCEPT, ns::CLIENT);
        self.actions.push_back(ComponentAction::Stanza(el));
    }
}

#[cfg(test)]
#[path = "component_tests.rs"]
mod tests;
