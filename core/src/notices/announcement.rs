//! What an announcement carries: the subject and body of an admin's
//! message (every `xml:lang` variant of each), and nothing else. Built from
//! a `<message/>` an admin sent to `HOST/announce/…`, or from plain text
//! (the admin socket, and later an ad-hoc command form).
//!
//! Announcements go out as `type='normal'`, whatever type the admin used.
//! jabberd 1.4 and ejabberd both pass the admin's own type through, which
//! in practice is `normal` (what a client sends when it is not in a chat
//! window) or `chat`. We pin `normal` rather than relay `chat` (which
//! makes clients open a conversation with the server, which cannot answer)
//! or use `headline` (which RFC 6121 §8.5.2.1.1 lets servers and clients
//! treat as disposable: never stored offline, often shown only
//! transiently). A normal message is what a notice from the operator is: it
//! shows prominently, keeps its subject, and lands in the client's history.

use switchboard_xml::{ns, Element, Node};

/// The subject and body of an announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `<subject/>` and `<body/>` elements in `jabber:client`, in order.
    parts: Vec<Element>,
}

/// Why an announcement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyAnnouncement;

impl std::fmt::Display for EmptyAnnouncement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an announcement needs a body or a subject")
    }
}

impl std::error::Error for EmptyAnnouncement {}

/// Whether text has something besides whitespace in it.
fn has_text(s: &str) -> bool {
    !s.trim().is_empty()
}

impl Announcement {
    /// From plain text. The body and the subject (if any) are kept as given,
    /// line breaks included; at least one of them must hold some text.
    pub fn new(subject: Option<&str>, body: &str) -> Result<Announcement, EmptyAnnouncement> {
        let mut parts = Vec::new();
        if let Some(s) = subject.filter(|s| has_text(s)) {
            parts.push(Element::new("subject", ns::CLIENT).with_text(s));
        }
        if has_text(body) {
            parts.push(Element::new("body", ns::CLIENT).with_text(body));
        }
        Announcement::from_parts(parts)
    }

    /// From an admin's `<message/>`: its `<subject/>` and `<body/>` children
    /// (with their `xml:lang`), and nothing else — no thread, no chat
    /// state, no receipt request, no extension the server cannot vouch for.
    pub fn from_message(message: &Element) -> Result<Announcement, EmptyAnnouncement> {
        let parts = message
            .elements()
            .filter(|e| e.is("subject", &message.ns) || e.is("body", &message.ns))
            .map(|e| {
                let mut part = Element::new(e.name.clone(), ns::CLIENT).with_text(e.text());
                if let Some(lang) = e.attr("xml:lang") {
                    part.set_attr("xml:lang", lang);
                }
                part
            })
            .collect();
        Announcement::from_parts(parts)
    }

    /// From stored parts (the spool form of the message of the day): only
    /// `<subject/>` and `<body/>` in `jabber:client` count.
    pub fn from_parts(parts: Vec<Element>) -> Result<Announcement, EmptyAnnouncement> {
        let parts: Vec<Element> = parts
            .into_iter()
            .filter(|e| e.is("subject", ns::CLIENT) || e.is("body", ns::CLIENT))
            .collect();
        if parts.iter().any(|p| has_text(&p.text())) {
            Ok(Announcement { parts })
        } else {
            Err(EmptyAnnouncement)
        }
    }

    /// The subject and body elements, for storage.
    pub fn parts(&self) -> &[Element] {
        &self.parts
    }

    /// The first body's text (empty if there is only a subject).
    pub fn body(&self) -> String {
        self.first("body")
    }

    /// The first subject's text, if any.
    pub fn subject(&self) -> Option<String> {
        self.parts
            .iter()
            .any(|p| p.name == "subject")
            .then(|| self.first("subject"))
    }

    fn first(&self, name: &str) -> String {
        self.parts
            .iter()
            .find(|p| p.name == name)
            .map(Element::text)
            .unwrap_or_default()
    }

    /// The message a recipient gets: from the host itself, `type='normal'`
    /// (see the module documentation for why).
    pub fn message(&self, from: &str, to: &str) -> Element {
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("type", "normal")
            .with_attr("from", from)
            .with_attr("to", to);
        for p in &self.parts {
            m.children.push(Node::Element(p.clone()));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_keeps_subject_and_body() {
        let a = Announcement::new(Some("Maintenance"), "Down at 22:00.\nBack by 23:00.").unwrap();
        assert_eq!(a.subject().as_deref(), Some("Maintenance"));
        assert_eq!(a.body(), "Down at 22:00.\nBack by 23:00.");
        let m = a.message("example.com", "alice@example.com/desk");
        assert_eq!(m.attr("type"), Some("normal"));
        assert_eq!(m.attr("from"), Some("example.com"));
        assert_eq!(m.attr("to"), Some("alice@example.com/desk"));
        assert_eq!(
            m.child_text("subject", ns::CLIENT).as_deref(),
            Some("Maintenance")
        );
        // A blank subject is left out; only a subject is still something.
        let a = Announcement::new(Some("  "), "body").unwrap();
        assert_eq!(a.subject(), None);
        assert_eq!(Announcement::new(Some("s"), "").unwrap().body(), "");
    }

    #[test]
    fn nothing_to_say_is_refused() {
        assert_eq!(Announcement::new(None, " \n"), Err(EmptyAnnouncement));
        assert_eq!(Announcement::new(Some(""), ""), Err(EmptyAnnouncement));
        let bare = Element::new("message", ns::CLIENT)
            .with_child(Element::new("thread", ns::CLIENT).with_text("t"));
        assert_eq!(Announcement::from_message(&bare), Err(EmptyAnnouncement));
    }

    #[test]
    fn from_a_message_only_subject_and_body_survive_with_their_language() {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("type", "chat")
            .with_attr("id", "x")
            .with_child(Element::new("subject", ns::CLIENT).with_text("Hi"))
            .with_child(Element::new("thread", ns::CLIENT).with_text("t1"))
            .with_child(
                Element::new("body", ns::CLIENT)
                    .with_attr("xml:lang", "de")
                    .with_text("Hallo"),
            )
            .with_child(Element::new("body", ns::CLIENT).with_text("Hello"))
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            ))
            .with_child(Element::new("body", "urn:other").with_text("not a body"));
        let a = Announcement::from_message(&m).unwrap();
        let out = a.message("example.com", "bob@example.com/r");
        let names: Vec<_> = out.elements().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["subject", "body", "body"]);
        assert_eq!(out.attr("type"), Some("normal"));
        assert_eq!(out.attr("id"), None);
        assert_eq!(out.elements().nth(1).unwrap().attr("xml:lang"), Some("de"));
        assert_eq!(a.body(), "Hallo");
        // What is stored reads back the same.
        assert_eq!(Announcement::from_parts(a.parts().to_vec()).unwrap(), a);
    }
}
