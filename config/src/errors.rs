//! Building [`ConfigError`]s that point at the offending element.
//!
//! Every error the parser reports carries the file name and the line and
//! column where the element it complains about starts (attributes and text
//! share their element's position: the XML tree does not keep positions
//! finer than that, and the start tag is where an admin looks anyway).

use crate::ConfigError;
use std::io;
use std::path::Path;
use switchboard_xml::{DocumentError, Span, XmlError};

/// The file being parsed, as it should be named in error messages.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) file: &'a str,
}

impl Source<'_> {
    /// An error at `span` without a hint.
    pub(crate) fn error(&self, span: Span, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: span.line,
            col: span.col,
            message: message.into(),
            hint: None,
        }
    }

    /// An XML syntax (or XMPP-restricted XML) error from the parser, at the
    /// parser's position and with its own wording.
    pub(crate) fn xml_error(&self, e: &DocumentError) -> ConfigError {
        let hint = match &e.error {
            // The XML layer is shared with client streams, which forbid
            // DOCTYPEs and processing instructions; an admin who pasted
            // one in from another product should know it is deliberate.
            XmlError::RestrictedXml(_) => Some(
                "the config is read by the same restricted XML parser as client streams: \
                 no DOCTYPE, entity declarations or processing instructions"
                    .to_string(),
            ),
            _ => None,
        };
        ConfigError {
            file: self.file.to_string(),
            line: e.line,
            col: e.col,
            message: e.error.detail().to_string(),
            hint,
        }
    }
}

impl ConfigError {
    /// Adds (or replaces) the hint line.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The error for a config file that could not be read at all. There is no
/// position to point at, so it is reported at 0:0.
pub(crate) fn unreadable(file: &str, path: &Path, e: &io::Error) -> ConfigError {
    let hint = match e.kind() {
        io::ErrorKind::NotFound => Some(
            "create it from the sample: config/switchboard.xml, \
             or run without -c to use the embedded default",
        ),
        io::ErrorKind::PermissionDenied => {
            Some("the user running switchboard must be able to read the config file")
        }
        io::ErrorKind::IsADirectory => Some("-c takes the config file itself, not its directory"),
        _ => None,
    };
    ConfigError {
        file: file.to_string(),
        line: 0,
        col: 0,
        message: format!("cannot read config file {}: {e}", path.display()),
        hint: hint.map(str::to_string),
    }
}

/// The error for a config file that is not UTF-8, at the first bad byte.
pub(crate) fn not_utf8(file: &str, bytes: &[u8], valid_up_to: usize) -> ConfigError {
    let Span { line, col } = position_of(&bytes[..valid_up_to]);
    ConfigError {
        file: file.to_string(),
        line,
        col,
        message: "the config file is not valid UTF-8".to_string(),
        hint: Some("save it as UTF-8 (a Latin-1 editor setting is the usual cause)".to_string()),
    }
}

/// The 1-based line and column just past `valid` (known-good UTF-8), in
/// characters, the way editors count them.
fn position_of(valid: &[u8]) -> Span {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let line = text.matches('\n').count() + 1;
    let last_line = text.rsplit('\n').next().unwrap_or_default();
    let col = last_line.chars().count() + 1;
    Span {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(col).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(position_of(b""), Span { line: 1, col: 1 });
        assert_eq!(position_of(b"ab"), Span { line: 1, col: 3 });
        assert_eq!(position_of(b"ab\n"), Span { line: 2, col: 1 });
        assert_eq!(
            position_of("a\n\u{e9}t\u{e9}".as_bytes()),
            Span { line: 2, col: 4 }
        );
    }
}
