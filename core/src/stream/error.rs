//! Stream errors (RFC 6120 §4.9) as values: produced by the stream machine,
//! serialized once, and followed by closing the stream.

use switchboard_xml::{ns, Element, XmlError};

/// A stream error condition with optional descriptive text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub condition: &'static str,
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), boxed: it is
    /// rare, and stream errors travel through every session's outbox.
    pub app: Option<Box<Element>>,
}

impl StreamError {
    pub fn new(condition: &'static str) -> Self {
        StreamError {
            condition,
            text: None,
            app: None,
        }
    }
    pub fn with_text(condition: &'static str, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
            app: None,
        }
    }

    /// With an application-specific condition element.
    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }

    /// The children of `<stream:error>`: the condition and the text.
    pub fn children(&self) -> Vec<Element> {
        let mut v = vec![Element::new(self.condition, ns::STREAMS)];
        if let Some(t) = &self.text {
            v.push(
                Element::new("text", ns::STREAMS)
                    .with_attr("xml:lang", "en")
                    .with_text(t.clone()),
            );
        }
        if let Some(app) = &self.app {
            v.push((**app).clone());
        }
        v
    }

    /// `<stream:error>` for an RFC 6120 stream (whose `stream:` prefix is
    /// declared by the header), ready to write.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::framing::Framing::Stream.error(self)
    }
}

impl From<&XmlError> for StreamError {
    fn from(e: &XmlError) -> Self {
        StreamError::with_text(e.condition(), e.detail().to_string())
    }
}
