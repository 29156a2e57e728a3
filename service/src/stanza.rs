//! Stanza-level helpers: the three stanza kinds, stanza errors (RFC 6120
//! §8.3) as values, and building error replies.

use switchboard_xml::{ns, Element};

/// The three stanza kinds of `jabber:client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// A stanza error: a defined condition, its type, optional text and an
/// optional application-specific condition (RFC 6120 §8.3.2: XEP-0060's
/// `<precondition-not-met/>`, say). A protocol failure is a value that
/// travels back to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub condition: &'static str,
    pub kind: ErrorType,
    pub text: Option<String>,
    /// Boxed: most errors have none, and the error travels by value.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: &'static str, kind: ErrorType) -> Self {
        StanzaError {
            condition,
            kind,
            text: None,
            app: None,
        }
    }
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// Adds an application-specific condition element.
    pub fn with_app(mut self, condition: Element) -> Self {
        self.app = Some(Box::new(condition));
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
        // RFC 6120 §8.3.2: the application-specific condition comes last.
        if let Some(app) = &self.app {
            e.append_child((**app).clone());
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
    // Messages and presence keep their payload so the sender can tell
    // which one failed. IQ errors carry none: the payload is optional
    // (RFC 6120 §8.3.1) and may hold a password (XEP-0077 §3.3 says not
    // to echo it), and the `id` already says which request failed.
    if stanza.name != "iq" {
        reply.children = stanza.children.clone();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_condition_comes_after_the_text() {
        let e = StanzaError::new("conflict", ErrorType::Cancel)
            .with_text("no")
            .with_app(Element::new("precondition-not-met", "urn:example:errors"))
            .to_element(ns::CLIENT);
        let names: Vec<&str> = e.elements().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["conflict", "text", "precondition-not-met"]);
        assert_eq!(e.attr("type"), Some("cancel"));
    }

    #[test]
    fn iq_errors_never_echo_the_request_payload() {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", "r1")
            .with_attr("from", "a@localhost/x")
            .with_child(
                Element::new("query", ns::REGISTER)
                    .with_child(Element::new("password", ns::REGISTER).with_text("hunter2")),
            );
        let reply = error_reply(&iq, &StanzaError::bad_request()).unwrap();
        assert!(!reply.to_xml_string().contains("hunter2"));
        assert_eq!(reply.attr("to"), Some("a@localhost/x"));
        assert_eq!(reply.attr("id"), Some("r1"));
    }

    #[test]
    fn message_errors_keep_the_body() {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("to", "b@localhost")
            .with_child(Element::new("body", ns::CLIENT).with_text("hello"));
        let reply = error_reply(&m, &StanzaError::service_unavailable()).unwrap();
        assert_eq!(
            reply.child_text("body", ns::CLIENT).as_deref(),
            Some("hello")
        );
        assert!(
            error_reply(&reply, &StanzaError::service_unavailable()).is_none(),
            "no error for an error"
        );
    }

    #[test]
    fn application_conditions_follow_the_defined_one() {
        let err = StanzaError::new("not-acceptable", ErrorType::Cancel)
            .with_app(Element::new("blocked", "urn:xmpp:blocking:errors"));
        assert_eq!(
            err.to_element(ns::CLIENT).to_xml_string(),
            "<error xmlns=\"jabber:client\" type=\"cancel\">\
             <not-acceptable xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>\
             <blocked xmlns=\"urn:xmpp:blocking:errors\"/></error>"
        );
    }
}
