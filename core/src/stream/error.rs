//! Stream errors (RFC 6120 §4.9) as values: produced by the stream machine,
//! serialized once, and followed by closing the stream.

use switchboard_xml::{ns, Element, XmlError};

/// A stream error condition with optional descriptive text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub condition: &'static str,
    pub text: Option<String>,
}

impl StreamError {
    pub fn new(condition: &'static str) -> Self {
        StreamError {
            condition,
            text: None,
        }
    }
    pub fn with_text(condition: &'static str, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
        }
    }

    /// `<stream:error>` with the condition and text, ready to write.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e =
            Element::new("error", ns::STREAM).with_child(Element::new(self.condition, ns::STREAMS));
        if let Some(t) = &self.text {
            e.append_child(
                Element::new("text", ns::STREAMS)
                    .with_attr("xml:lang", "en")
                    .with_text(t.clone()),
            );
        }
        // Written inside a stream whose `stream:` prefix is declared, so use
        // the prefix rather than redeclaring the default namespace.
        let mut out = b"<stream:error>".to_vec();
        for c in e.elements() {
            c.write_to(&mut out, None);
        }
        out.extend_from_slice(b"</stream:error>");
        out
    }
}

impl From<&XmlError> for StreamError {
    fn from(e: &XmlError) -> Self {
        StreamError::with_text(e.condition(), e.detail().to_string())
    }
}
