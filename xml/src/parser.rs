//! The restricted, incremental XML parser (on quick-xml): the public face of
//! the private `machine` module, which does the work for both streams and
//! documents.
//!
//! Behaviour the rest of the server relies on:
//!
//! - Stream mode: the first element must be `stream` in the streams
//!   namespace ([`XmlError::InvalidNamespace`] otherwise); each complete
//!   child of it is one [`Event::Stanza`]; whitespace between stanzas
//!   (keepalives) is skipped, any other character data there is
//!   [`XmlError::BadFormat`]. An XML declaration is accepted only as the very
//!   first bytes (after a stream restart too); comments, processing
//!   instructions and DOCTYPE are [`XmlError::RestrictedXml`].
//! - UTF-8 only (RFC 6120 §11.6): a UTF-8 byte order mark is skipped; a
//!   declaration naming another encoding, or UTF-16 (with a byte order
//!   mark of either byte order, or without), is
//!   [`XmlError::UnsupportedEncoding`], in streams and documents alike.
//! - Character data inside elements is kept exactly, whitespace-only runs
//!   included (as [`crate::Node::Text`]); adjacent text and CDATA merge into
//!   one node, so the tree does not depend on how the bytes were split.
//! - Names are resolved: prefixes never reach the tree, `xmlns` declarations
//!   are not attributes, `xml:lang` keeps that spelling and other namespaced
//!   attributes become `{uri}local`.
//! - Limits are checked on raw bytes before they are buffered, see
//!   [`StreamParser::feed`].

use std::collections::VecDeque;

use crate::element::Element;
use crate::error::{DocumentError, XmlError};
use crate::machine::{Machine, Mode, Step};

/// Limits enforced on raw bytes before any buffer grows past them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest stanza (a direct child of the stream root) in bytes, counted
    /// on the wire from its `<` to its closing `>`. Default 256 KiB. It also
    /// bounds the stream header and, in [`parse_document`], the whole
    /// document.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside a stanza (the stanza itself is depth 1;
    /// in documents, the root is).
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
    limits: Limits,
    /// Received bytes; `buf[..pos]` is consumed and dropped lazily (on the
    /// next `feed`, or at once when everything is consumed), so a read
    /// holding many stanzas is not shifted once per stanza.
    buf: Vec<u8>,
    pos: usize,
    machine: Machine,
    /// Events parsed ahead by `feed`'s exact limit check (see there).
    queued: VecDeque<Event>,
    /// Set by the first error: the parser is dead from then on.
    dead: Option<XmlError>,
}

/// Above this, an idle parser's buffer is given back (see
/// [`StreamParser::shrink_if_idle`]).
const IDLE_CAPACITY: usize = 4096;

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            buf: Vec::new(),
            pos: 0,
            machine: Machine::new(Mode::Stream, limits),
            queued: VecDeque::new(),
            dead: None,
        }
    }

    fn die(&mut self, error: XmlError) -> XmlError {
        self.dead = Some(error.clone());
        error
    }

    /// Bytes that count against the stanza limit right now: those already
    /// consumed by the stanza in progress plus everything unconsumed.
    fn pending(&self) -> usize {
        self.machine.stanza_bytes() + (self.buf.len() - self.pos)
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Appends bytes read from the network. Fails with `PolicyViolation`
    /// if the bytes not yet consumed would exceed the stanza limit.
    ///
    /// The buffer never holds more than `max_stanza_bytes`. The common case
    /// is a quick, conservative check (stanza bytes so far + unconsumed +
    /// new bytes must fit, as if they all belonged to one stanza). Only when
    /// that fails, e.g. because one read holds the end of a big stanza and
    /// the start of the next, are the new bytes parsed right here, in pieces
    /// that fit, so that only a stanza really over the limit is refused; the
    /// events found that way are queued for [`StreamParser::next_event`].
    /// An error found while doing so is returned by `feed` if no event is
    /// queued before it, otherwise by `next_event` once they are delivered.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), XmlError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        self.compact();
        let max = self.limits.max_stanza_bytes;
        if self.pending().saturating_add(bytes.len()) <= max {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = max.saturating_sub(self.pending());
            if room == 0 {
                let err = self.die(XmlError::PolicyViolation(format!(
                    "stanza larger than {max} bytes"
                )));
                return if self.queued.is_empty() {
                    Err(err)
                } else {
                    Ok(())
                };
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
            loop {
                match self.step() {
                    Ok(Some(ev)) => self.queued.push_back(ev),
                    Ok(None) => break,
                    Err(err) => {
                        return if self.queued.is_empty() {
                            Err(err)
                        } else {
                            Ok(())
                        };
                    }
                }
            }
            self.compact();
        }
        Ok(())
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    /// After an error the parser is dead: every later call returns it again.
    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        if let Some(ev) = self.queued.pop_front() {
            return Ok(Some(ev));
        }
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        self.step()
    }

    fn step(&mut self) -> Result<Option<Event>, XmlError> {
        match self.machine.step(&self.buf, &mut self.pos, false) {
            Ok(Step::NeedMore | Step::End) => {
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                Ok(None)
            }
            Ok(Step::Open(header)) => Ok(Some(Event::StreamOpen(header))),
            Ok(Step::Element(el)) => Ok(Some(Event::Stanza(el))),
            Ok(Step::Close) => Ok(Some(Event::StreamClose)),
            Err(fail) => Err(self.die(fail.error)),
        }
    }

    /// Forgets everything (buffered bytes included): a stream restart after
    /// STARTTLS or SASL success expects a fresh stream header.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.machine = Machine::new(Mode::Stream, self.limits);
        self.queued.clear();
        self.dead = None;
    }

    /// Gives back buffer capacity when nothing is buffered, so an idle
    /// session does not hold buffers at their peak size.
    pub fn shrink_if_idle(&mut self) {
        if self.pos < self.buf.len() || !self.queued.is_empty() {
            return;
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > IDLE_CAPACITY {
            self.buf = Vec::new();
        }
        if self.queued.capacity() > 0 {
            self.queued = VecDeque::new();
        }
        self.machine.shrink_if_idle();
    }

    /// Capacity of the receive buffer in bytes, for tests and metrics.
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Parses a whole document (config file, spool file). Comments and an XML
/// declaration are allowed here; DOCTYPE, entity declarations and processing
/// instructions are not. Elements carry their `span`.
///
/// `limits.max_stanza_bytes` bounds the whole document, `max_depth` counts
/// the root as depth 1. Whitespace-only text inside elements is kept as
/// text nodes (callers that do not care skip them).
pub fn parse_document(bytes: &[u8], limits: Limits) -> Result<Element, DocumentError> {
    if bytes.len() > limits.max_stanza_bytes {
        return Err(DocumentError {
            line: 1,
            col: 1,
            error: XmlError::PolicyViolation(format!(
                "document larger than {} bytes",
                limits.max_stanza_bytes
            )),
        });
    }
    let mut machine = Machine::new(Mode::Document, limits);
    let mut pos = 0;
    let mut root = None;
    loop {
        match machine.step(bytes, &mut pos, true) {
            Ok(Step::Element(el)) => root = Some(el),
            Ok(step) => {
                // With `eof` set, the machine only stops at the end of the
                // input, which it reports as `End` once the root is done.
                if let (Step::End, Some(root)) = (&step, root.take()) {
                    return Ok(root);
                }
                let (line, col) = machine.locate(bytes, pos);
                return Err(DocumentError {
                    line,
                    col,
                    error: XmlError::NotWellFormed(format!("unexpected parser state {step:?}")),
                });
            }
            Err(fail) => {
                let (line, col) = machine.locate(bytes, fail.at);
                return Err(DocumentError {
                    line,
                    col,
                    error: fail.error,
                });
            }
        }
    }
}
