//! The namespace prefix stack.
//!
//! Kept by the parser itself (not quick-xml's `NsReader`) because the
//! quick-xml reader is recreated for every parse attempt over a changing
//! buffer, while bindings must live as long as the element that declared them
//! (for the stream root: the whole stream).
//!
//! All prefixes and URIs live in one string arena, so declaring a namespace
//! allocates nothing once the arena has grown to the working size.

use crate::ns;
use crate::unescape;

/// The namespace that `xmlns` attributes are in; nothing may be bound to it.
const XMLNS: &str = "http://www.w3.org/2000/xmlns/";

#[derive(Clone, Copy)]
struct Binding {
    /// `arena[start..split]` is the prefix (empty for the default namespace),
    /// `arena[split..end]` the URI (empty when `xmlns=""` undeclares it).
    start: usize,
    split: usize,
    end: usize,
}

#[derive(Default)]
pub(crate) struct Namespaces {
    arena: String,
    bindings: Vec<Binding>,
}

/// Why a declaration was refused (`at` is relative to the value, for
/// decoding errors; `None` when the declaration as a whole is wrong).
pub(crate) enum DeclError {
    Value(unescape::DecodeError),
    Invalid(String),
}

impl Namespaces {
    /// A point to return to with [`Namespaces::truncate`] when the element
    /// about to declare namespaces ends.
    pub fn mark(&self) -> usize {
        self.bindings.len()
    }

    pub fn truncate(&mut self, mark: usize) {
        if let Some(b) = self.bindings.get(mark) {
            self.arena.truncate(b.start);
            self.bindings.truncate(mark);
        }
    }

    fn prefix(&self, b: &Binding) -> &str {
        &self.arena[b.start..b.split]
    }

    fn uri(&self, b: &Binding) -> &str {
        &self.arena[b.split..b.end]
    }

    /// Declares `prefix` (empty for the default namespace) with the raw,
    /// still escaped (but UTF-8 checked) attribute value `raw`. `mark` is the element's mark,
    /// used to refuse a second declaration of the same prefix on one element.
    pub fn declare(&mut self, prefix: &str, raw: &str, mark: usize) -> Result<(), DeclError> {
        if self.bindings[mark..]
            .iter()
            .any(|b| self.prefix(b) == prefix)
        {
            return Err(DeclError::Invalid(if prefix.is_empty() {
                "duplicate attribute `xmlns`".into()
            } else {
                format!("duplicate attribute `xmlns:{prefix}`")
            }));
        }
        let start = self.arena.len();
        self.arena.push_str(prefix);
        let split = self.arena.len();
        if let Err(e) = unescape::attr(raw, &mut self.arena) {
            self.arena.truncate(start);
            return Err(DeclError::Value(e));
        }
        let end = self.arena.len();
        let uri = &self.arena[split..end];
        // Namespaces in XML 1.0 §3: the reserved prefixes and URIs.
        let problem = if prefix == "xmlns" {
            Some("the prefix `xmlns` must not be declared")
        } else if uri == XMLNS {
            Some("nothing may be bound to the xmlns namespace")
        } else if prefix == "xml" && uri != ns::XML {
            Some("the prefix `xml` must not be bound to another namespace")
        } else if prefix != "xml" && uri == ns::XML {
            Some("the XML namespace must not be bound to another prefix")
        } else if !prefix.is_empty() && uri.is_empty() {
            Some("a prefix must not be bound to an empty namespace name")
        } else {
            None
        };
        if let Some(p) = problem {
            self.arena.truncate(start);
            return Err(DeclError::Invalid(p.into()));
        }
        self.bindings.push(Binding { start, split, end });
        Ok(())
    }

    /// The namespace a prefix is bound to; `xml` is always bound.
    pub fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(ns::XML);
        }
        self.bindings
            .iter()
            .rev()
            .find(|b| self.prefix(b) == prefix)
            .map(|b| self.uri(b))
    }

    /// The default namespace in scope (empty when there is none).
    pub fn default_ns(&self) -> &str {
        self.resolve("").unwrap_or("")
    }

    /// The default namespace declared at or after `mark` (on one element).
    pub fn declared_default(&self, mark: usize) -> Option<&str> {
        self.bindings[mark..]
            .iter()
            .find(|b| b.start == b.split)
            .map(|b| self.uri(b))
    }

    /// Releases spare capacity (the stream root's bindings stay).
    pub fn shrink(&mut self) {
        self.arena.shrink_to_fit();
        self.bindings.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoping() {
        let mut n = Namespaces::default();
        assert_eq!(n.default_ns(), "");
        let m0 = n.mark();
        assert!(n.declare("", "jabber:client", m0).is_ok());
        assert!(n
            .declare("stream", "http://etherx.jabber.org/streams", m0)
            .is_ok());
        assert!(n.declare("stream", "x", m0).is_err());
        let m1 = n.mark();
        assert!(n.declare("", "urn:a&amp;b", m1).is_ok());
        assert!(n.declare("p", "urn:p", m1).is_ok());
        assert_eq!(n.default_ns(), "urn:a&b");
        assert_eq!(n.declared_default(m1), Some("urn:a&b"));
        assert_eq!(n.resolve("p"), Some("urn:p"));
        assert_eq!(n.resolve("xml"), Some(ns::XML));
        n.truncate(m1);
        assert_eq!(n.default_ns(), "jabber:client");
        assert_eq!(n.resolve("p"), None);
        assert_eq!(n.resolve("stream"), Some(ns::STREAM));
        assert!(n.declare("", "", n.mark()).is_ok());
        assert_eq!(n.default_ns(), "");
    }

    #[test]
    fn reserved() {
        let mut n = Namespaces::default();
        let m = n.mark();
        assert!(n.declare("xmlns", "urn:x", m).is_err());
        assert!(n.declare("p", "", m).is_err());
        assert!(n.declare("p", ns::XML, m).is_err());
        assert!(n.declare("", ns::XML, m).is_err());
        assert!(n.declare("xml", "urn:x", m).is_err());
        assert!(n.declare("p", XMLNS, m).is_err());
        assert!(n.declare("xml", ns::XML, m).is_ok());
        assert_eq!(n.mark(), 1);
    }
}
