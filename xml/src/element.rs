//! A small owned element tree: what the parser produces and the serializer
//! writes. Names are local names with a resolved namespace URI; prefixes are
//! a serialization detail and never reach the rest of the server.

use crate::escape::{escape_attr, escape_text};

/// Where an element's start tag began in its source document (1-based).
/// Zero for elements built in code. Used for config and spool errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

/// A child of an element: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An XML element with its namespace resolved.
///
/// Attribute names are local names for unqualified attributes, `xml:lang`
/// (and other `xml:` names) for the XML namespace, and `{uri}local` for any
/// other namespaced attribute.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub ns: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub span: Span,
}

/// Equality ignores `span`: two elements are equal when they would
/// serialize to equivalent XML.
impl PartialEq for Element {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.ns == other.ns
            && self.children == other.children
            && self.attrs.len() == other.attrs.len()
            && self
                .attrs
                .iter()
                .all(|(k, v)| other.attr(k) == Some(v.as_str()))
    }
}
impl Eq for Element {}

impl Element {
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            ..Default::default()
        }
    }

    /// Builder: sets an attribute.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends character data.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text(text);
        self
    }

    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }

    /// Child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, ns))
    }

    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.is(name, ns))
    }

    /// Moves this element, when it is in namespace `from`, to namespace
    /// `to`, and with it its descendants in `from` reached only through
    /// elements in `from`. Stanzas change their content namespace this
    /// way between streams (`jabber:component:accept` ↔ `jabber:client`),
    /// and their unprefixed children (`<body>`, `<error>`) move with them;
    /// an element of another namespace (`<forwarded/>`, XEP-0297) keeps
    /// what it holds as it is, so a forwarded `<message
    /// xmlns='jabber:client'/>` stays in `jabber:client`.
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if self.ns != from {
            return;
        }
        self.ns = to.to_string();
        for c in self.elements_mut() {
            c.rename_ns(from, to);
        }
    }

    /// Moves this element and every descendant in namespace `from`, at
    /// any depth, to namespace `to`. For stanzas arriving on a component
    /// stream: `jabber:component:accept` means nothing inside a payload,
    /// so a forwarded `<message/>` a component wrote without its own
    /// `xmlns` (inheriting the stream's) is a `jabber:client` one.
    pub fn rename_ns_everywhere(&mut self, from: &str, to: &str) {
        if self.ns == from {
            self.ns = to.to_string();
        }
        for c in self.elements_mut() {
            c.rename_ns_everywhere(from, to);
        }
    }

    /// The first child element, whatever its name.
    pub fn first_element(&self) -> Option<&Element> {
        self.elements().next()
    }

    pub fn append_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    pub fn append_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(last)) = self.children.last_mut() {
            last.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    /// Removes and returns the first child with this name and namespace.
    pub fn remove_child(&mut self, name: &str, ns: &str) -> Option<Element> {
        let i = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(name, ns)))?;
        match self.children.remove(i) {
            Node::Element(e) => Some(e),
            Node::Text(_) => unreachable!("position matched an element"),
        }
    }

    /// The concatenated character data directly inside this element.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// The text of the first child with this name and namespace.
    pub fn child_text(&self, name: &str, ns: &str) -> Option<String> {
        self.get_child(name, ns).map(|e| e.text())
    }

    /// Serializes this element. `parent_ns` is the default namespace in
    /// scope where it is written (for a stanza on a client stream,
    /// `Some("jabber:client")`); `xmlns` is emitted only where it differs.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: Option<&str>) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        if parent_ns != Some(self.ns.as_str()) {
            out.extend_from_slice(b" xmlns=\"");
            escape_attr(&self.ns, out);
            out.push(b'"');
        }
        let mut prefixes = 0usize;
        for (k, v) in &self.attrs {
            out.push(b' ');
            if let Some(rest) = k.strip_prefix('{') {
                // Split at the last `}`: a local name cannot contain one, a
                // namespace URI can.
                let (uri, local) = rest.rsplit_once('}').unwrap_or(("", rest));
                if uri == crate::ns::XML {
                    // The `xml` prefix is predeclared and must not be
                    // bound again (nor may another prefix be bound to it).
                    out.extend_from_slice(b"xml:");
                } else {
                    // Any other namespaced attribute gets a locally
                    // declared prefix of its own.
                    prefixes += 1;
                    let p = format!("a{prefixes}");
                    out.extend_from_slice(format!("xmlns:{p}=\"").as_bytes());
                    escape_attr(uri, out);
                    out.extend_from_slice(format!("\" {p}:").as_bytes());
                }
                out.extend_from_slice(local.as_bytes());
            } else {
                out.extend_from_slice(k.as_bytes());
            }
            out.extend_from_slice(b"=\"");
            escape_attr(v, out);
            out.push(b'"');
        }
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_to(out, Some(&self.ns)),
                Node::Text(t) => escape_text(t, out),
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serializes into a new buffer (see [`Element::write_to`]).
    pub fn to_bytes(&self, parent_ns: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out, parent_ns);
        out
    }

    /// Serializes as a standalone fragment, always declaring its namespace.
    pub fn to_xml_string(&self) -> String {
        String::from_utf8(self.to_bytes(None)).expect("serializer writes UTF-8")
    }
}

/// `xml:lang` is the one namespaced attribute XMPP uses everywhere.
pub const XML_LANG: &str = "xml:lang";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_a_stanzas_namespace_leaves_forwarded_stanzas_alone() {
        let inner = Element::new("message", "jabber:client")
            .with_child(Element::new("body", "jabber:client").with_text("old"));
        let mut m = Element::new("message", "jabber:client")
            .with_child(Element::new("body", "jabber:client"))
            .with_child(
                Element::new("result", "urn:xmpp:mam:2")
                    .with_child(Element::new("forwarded", "urn:xmpp:forward:0").with_child(inner)),
            );
        m.rename_ns("jabber:client", "jabber:component:accept");
        assert_eq!(m.ns, "jabber:component:accept");
        assert_eq!(m.elements().next().unwrap().ns, "jabber:component:accept");
        let fwd = m
            .get_child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
            .unwrap();
        let kept = fwd.get_child("message", "jabber:client").unwrap();
        assert_eq!(
            kept.child_text("body", "jabber:client").as_deref(),
            Some("old")
        );
    }

    #[test]
    fn stanzas_from_a_component_are_client_stanzas_at_every_depth() {
        let accept = "jabber:component:accept";
        let inner = Element::new("message", accept).with_child(Element::new("body", accept));
        let mut m = Element::new("message", accept)
            .with_child(Element::new("forwarded", "urn:xmpp:forward:0").with_child(inner));
        m.rename_ns_everywhere(accept, "jabber:client");
        assert_eq!(m.ns, "jabber:client");
        let inner = m
            .get_child("forwarded", "urn:xmpp:forward:0")
            .and_then(|f| f.get_child("message", "jabber:client"))
            .expect("the forwarded message in jabber:client");
        assert!(inner.get_child("body", "jabber:client").is_some());
    }
}
