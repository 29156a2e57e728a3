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

use std::collections::HashMap;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element, Event, Limits, StreamHeader};

use crate::stream::error::StreamError;
use crate::stream::framing::Framing;
use crate::stream::negotiation::{Negotiation, Phase, Wire};

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

impl From<Wire> for ComponentAction {
    fn from(w: Wire) -> ComponentAction {
        match w {
            Wire::Send(b) => ComponentAction::Send(b),
            Wire::Close => ComponentAction::Close,
            // XEP-0114 streams have no STARTTLS; the machine never asks.
            Wire::StartTls => ComponentAction::Close,
        }
    }
}

/// Where the handshake stands (the negotiation holds the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// No header yet.
    None,
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
}

/// One component connection.
pub struct ComponentStream {
    /// Hostname → secret of every configured external service.
    secrets: HashMap<String, String>,
    neg: Negotiation<ComponentAction>,
    auth: Auth,
}

impl ComponentStream {
    pub fn new(secrets: HashMap<String, String>, limits: Limits) -> ComponentStream {
        ComponentStream {
            secrets,
            // An error before the component names its host goes out under
            // a header without `from`; XEP-0114 headers carry no version.
            neg: Negotiation::new(
                Framing::Stream,
                ns::COMPONENT_ACCEPT,
                limits,
                String::new(),
                false,
            ),
            auth: Auth::None,
        }
    }

    pub fn poll_action(&mut self) -> Option<ComponentAction> {
        self.neg.poll()
    }

    pub fn is_closed(&self) -> bool {
        self.neg.is_closed()
    }

    /// The authenticated hostname, once the handshake succeeded.
    pub fn host(&self) -> Option<&str> {
        match &self.auth {
            Auth::Authenticated { host } if !self.neg.is_closed() => Some(host),
            _ => None,
        }
    }

    /// Bytes received from the component.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.neg.feed(data) {
            self.process();
        }
    }

    /// The driver's answer to [`ComponentAction::Authenticated`]: whether
    /// the hostname was free. The component learns it succeeded only now,
    /// so it is never told `<handshake/>` and then `conflict`.
    pub fn claimed(&mut self, ok: bool) {
        let Auth::Claiming { host } = self.auth.clone() else {
            return;
        };
        if !ok {
            return self.conflict();
        }
        self.neg.send(b"<handshake/>".to_vec());
        self.neg.phase = Phase::Open;
        self.auth = Auth::Authenticated { host };
        self.process();
    }

    fn process(&mut self) {
        while let Some(event) = self.neg.next_event() {
            match event {
                Event::StreamOpen(h) => self.on_header(h),
                Event::Stanza(el) => self.on_element(el),
                Event::StreamClose => self.close_stream(),
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
        self.neg.fail(err);
    }

    /// Closes the stream cleanly.
    pub fn close_stream(&mut self) {
        self.neg.close_stream();
    }

    fn on_header(&mut self, h: StreamHeader) {
        if self.auth != Auth::None {
            return self.fail(StreamError::new("not-well-formed"));
        }
        if !self.neg.has_content_ns(&h) {
            return self.fail(StreamError::with_text(
                "invalid-namespace",
                "this port speaks the component protocol (jabber:component:accept)",
            ));
        }
        let secrets = &self.secrets;
        let Some(host) = self.neg.check_to(
            &h,
            |t| secrets.contains_key(t),
            "no external <service> with that hostname is configured",
        ) else {
            return;
        };
        let id = self.neg.open();
        self.auth = Auth::AwaitHandshake { host, id };
    }

    fn on_element(&mut self, el: Element) {
        match self.auth.clone() {
            Auth::None => self.fail(StreamError::new("not-well-formed")),
            Auth::AwaitHandshake { host, id } => {
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
                self.auth = Auth::Claiming { host: host.clone() };
                self.neg.phase = Phase::Pending;
                self.neg.push(ComponentAction::Authenticated(host));
            }
            Auth::Authenticated { host } => self.on_stanza(&host, el),
            Auth::Claiming { .. } => {}
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
        el.rename_ns_everywhere(ns::COMPONENT_ACCEPT, ns::CLIENT);
        self.neg.push(ComponentAction::Stanza(el));
    }
}

#[cfg(test)]
#[path = "component_tests.rs"]
mod tests;
