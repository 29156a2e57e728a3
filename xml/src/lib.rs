//! The one XML layer of Switchboard: a restricted, incremental parser built on
//! quick-xml, a small element tree, and a serializer.
//!
//! The same parser reads client streams (bytes arrive in arbitrary pieces),
//! spool files and the configuration file, so every restriction XMPP places on
//! XML (RFC 6120 §11: no DTDs, no entity declarations, no processing
//! instructions, only the predefined entities) is enforced in one place.

pub mod element;
pub mod error;
pub mod escape;
mod machine;
mod names;
mod namespaces;
pub mod ns;
pub mod parser;
pub mod stream;
mod unescape;

pub use element::{Element, Node, Span};
pub use error::{DocumentError, XmlError};
pub use parser::{parse_document, Event, Limits, StreamHeader, StreamParser};
