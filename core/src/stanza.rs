//! Stanza-level helpers: the three stanza kinds, stanza errors (RFC 6120
//! §8.3) as values, and building error replies.

use switchboard_xml::{ns, Element};

/// The three stanza kinds of `jabber:client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Presence,
    Iq,
}

impl Kind {
    pub fn of(el: &Element) -> Option<Kind> {
        if el.ns != ns::CLIENT && el.ns != ns::SERVER && el.ns != ns::COMPONENT_ACCEPT {
            return None;
        }
        match el.name.as_str() {
            "message" => Some(Kind::Message),
            "presence" => Some(Kind::Presence),
            "iq" => Some(Kind::Iq),
            _ => None,
        }
    }
}

/// The `type` attribute with the RFC default for each kind (`normal` for
/// messages, `available` for presence, none for IQ).
pub fn stanza_type(el: &Element) -> &str {
    match el.attr("type") {
        Some(t) => t,
        None if el.name == "message" => "normal",
        None if el.name == "presence" => "available",
        None => "",
    }
}

/// Whether a reply error must never be generated for this stanza: errors
/// are never answered with errors, and IQ results are never answered.
pub fn must_not_answer(el: &Element) -> bool {
    matches!(el.attr("type"), Some("error"))
        || (el.name == "iq" && el.attr("type") == Some("result"))
}

/// The error `type` attribute (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// A stanza error: a defined condition, its type, and optional text. A
/// protocol failure is a value that travels back to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub condition: &'static str,
    pub kind: ErrorType,
    pub text: Option<String>,
}

impl StanzaError {
    pub fn new(condition: &'static str, kind: ErrorType) -> Self {
        StanzaError {
            condition,
            kind,
            text: None,
        }
    }
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    pub fn service_unavailable() -> Self {
        Self::new("service-unavailable", ErrorType::Cancel)
    }
    pub fn bad_request() -> Self {
        Self::new("bad-request", ErrorType::Modify)
    }
    pub fn jid_malformed() -> Self {
        Self::new("jid-malformed", ErrorType::Modify)
    }
    pub fn remote_server_not_found() -> Self {
        Self::new("remote-server-not-found", ErrorType::Cancel)
    }
    pub fn feature_not_implemented() -> Self {
        Self::new("feature-not-implemented", ErrorType::Cancel)
    }
    pub fn not_allowed() -> Self {
        Self::new("not-allowed", ErrorType::Cancel)
    }
    pub fn forbidden() -> Self {
        Self::new("forbidden", ErrorType::Auth)
    }
    pub fn internal_server_error() -> Self {
        Self::new("internal-server-error", ErrorType::Cancel)
    }

    /// The `<error/>` child element.
    pub fn to_element(&self, stanza_ns: &str) -> Element {
        let mut e = Element::new("error", stanza_ns)
            .with_attr("type", self.kind.as_str())
            .with_child(Element::new(self.condition, ns::STANZAS));
        if let Some(t) = &self.text {
            e.append_child(
                Element::new("text", ns::STANZAS)
                    .with_attr("xml:lang", "en")
                    .with_text(t.clone()),
            );
        }
        e
    }
}

/// Turns a stanza into its error reply: addresses swapped, `type='error'`,
/// the original payload kept (RFC 6120 §8.3.1) and the error appended.
/// Returns `None` where no reply may be sent (an error or an IQ result).
pub fn error_reply(stanza: &Element, err: &StanzaError) -> Option<Element> {
    if must_not_answer(stanza) {
        return None;
    }
    let mut reply = Element::new(stanza.name.clone(), stanza.ns.clone());
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = stanza.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = stanza.attr("from") {
        reply.set_attr("to", to);
    }
    reply.set_attr("type", "error");
    // An IQ error carries at most the request's payload; other stanzas keep
    // theirs so the sender can tell which message failed.
    reply.children = stanza.children.clone();
    reply.append_child(err.to_element(&stanza.ns));
    Some(reply)
}

/// An IQ result for `request`, with an optional payload.
pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::new("iq", request.ns.clone()).with_attr("type", "result");
    if let Some(id) = request.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = request.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = request.attr("from") {
        reply.set_attr("to", to);
    }
    if let Some(p) = payload {
        reply.append_child(p);
    }
    reply
}
