//! Parser errors, each tied to the RFC 6120 stream error it must produce.

use std::fmt;

/// Why a stream or document was rejected. Each variant maps to one RFC 6120
/// §4.9.3 stream error condition (see [`XmlError::condition`]); the string is
/// a human-readable detail for logs and for the error's `<text/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed XML (bad syntax, mismatched tags, invalid UTF-8,
    /// undeclared prefix, unknown entity, invalid character reference).
    NotWellFormed(String),
    /// Well-formed but forbidden in XMPP: DOCTYPE, entity declarations,
    /// processing instructions, comments on a stream.
    RestrictedXml(String),
    /// A size, depth or attribute-count limit was exceeded.
    PolicyViolation(String),
    /// The stream root is not `stream` in the streams namespace.
    InvalidNamespace(String),
    /// Well-formed XML that breaks the stream's shape (text between stanzas).
    BadFormat(String),
    /// The input is in an encoding other than UTF-8: an XML declaration
    /// naming another one, or UTF-16 (a byte order mark, or the first `<`
    /// encoded in two bytes). RFC 6120 §11.6 allows UTF-8 only and names
    /// this condition for it (§4.9.3.22).
    UnsupportedEncoding(String),
}

impl XmlError {
    /// The RFC 6120 stream error condition element name.
    pub fn condition(&self) -> &'static str {
        match self {
            XmlError::NotWellFormed(_) => "not-well-formed",
            XmlError::RestrictedXml(_) => "restricted-xml",
            XmlError::PolicyViolation(_) => "policy-violation",
            XmlError::InvalidNamespace(_) => "invalid-namespace",
            XmlError::BadFormat(_) => "bad-format",
            XmlError::UnsupportedEncoding(_) => "unsupported-encoding",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            XmlError::NotWellFormed(s)
            | XmlError::RestrictedXml(s)
            | XmlError::PolicyViolation(s)
            | XmlError::InvalidNamespace(s)
            | XmlError::BadFormat(s)
            | XmlError::UnsupportedEncoding(s) => s,
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.condition(), self.detail())
    }
}

impl std::error::Error for XmlError {}

/// An error in a whole document (config or spool file), with the 1-based
/// line and column where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub line: u32,
    pub col: u32,
    pub error: XmlError,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.error.detail())
    }
}

impl std::error::Error for DocumentError {}
