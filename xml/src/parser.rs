//! The restricted, incremental XML parser (on quick-xml).
//!
//! TO BE IMPLEMENTED (helper): see the doc comments on each item for the
//! contract the rest of the server relies on.

use crate::element::Element;
use crate::error::{DocumentError, XmlError};

/// Limits enforced on raw bytes before any buffer grows past them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest stanza (a direct child of the stream root) in bytes, counted
    /// on the wire from its `<` to its closing `>`. Default 256 KiB.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside a stanza (the stanza itself is depth 1).
    pub max_depth: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attrs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 64,
            max_attrs: 64,
        }
    }
}

/// The opening `<stream:stream …>` tag, with its namespaces resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name of the root (must be `stream`; checked by the parser).
    pub name: String,
    /// Resolved namespace of the root (must be the streams namespace).
    pub ns: String,
    /// The default namespace declared on the root (`jabber:client`, …),
    /// which is the namespace unprefixed stanzas are in.
    pub default_ns: Option<String>,
    /// Unqualified attributes (`to`, `from`, `version`, `id`) and `xml:lang`.
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the stream parser yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StreamOpen(StreamHeader),
    /// A complete top-level child of the stream (a stanza or a nonza).
    Stanza(Element),
    StreamClose,
}

/// An incremental parser for one XML stream. Feed it bytes as they arrive
/// (in pieces of any size, even splitting a UTF-8 character), then pull
/// events until it returns `Ok(None)`.
pub struct StreamParser {
    _private: (),
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        let _ = limits;
        todo!()
    }

    /// Appends bytes read from the network. Fails with `PolicyViolation`
    /// if the bytes not yet consumed would exceed the stanza limit.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), XmlError> {
        let _ = bytes;
        todo!()
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    /// After an error the parser is dead: every later call returns it again.
    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        todo!()
    }

    /// Forgets everything (buffered bytes included): a stream restart after
    /// STARTTLS or SASL success expects a fresh stream header.
    pub fn reset(&mut self) {
        todo!()
    }

    /// Gives back buffer capacity when nothing is buffered, so an idle
    /// session does not hold buffers at their peak size.
    pub fn shrink_if_idle(&mut self) {
        todo!()
    }
}

/// Parses a whole document (config file, spool file). Comments and an XML
/// declaration are allowed here; DOCTYPE, entity declarations and processing
/// instructions are not. Elements carry their `span`.
pub fn parse_document(bytes: &[u8], limits: Limits) -> Result<Element, DocumentError> {
    let _ = (bytes, limits);
    todo!()
}
