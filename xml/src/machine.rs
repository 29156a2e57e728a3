//! The state machine behind both [`crate::StreamParser`] and
//! [`crate::parse_document`].
//!
//! It works on a byte buffer owned by the caller and a cursor into it. Each
//! [`Machine::step`] consumes as many complete tokens as it can and stops at
//! the first event to report, or when the rest of the buffer cannot be
//! decided yet (a truncated tag, an unterminated reference, a split UTF-8
//! character), leaving those bytes unconsumed for the next call.
//!
//! quick-xml finds where markup ends (a tag's `>` outside quotes, `-->`,
//! `]]>`, `?>`) and splits attributes. A quick-xml `Reader` is only ever
//! pointed at a `<`: character data is scanned here, because deciding how
//! much of a text run is safe to consume (and not confusing "end of buffer"
//! with "end of text") needs knowledge quick-xml does not have. Anything a
//! reader reports as a syntax error can therefore only mean "the token is
//! truncated": every other malformation is either refused from its first
//! bytes before quick-xml sees it (`<!DOCTYPE`, `<?pi`, bogus `<!x`) or
//! checked here afterwards (names, attributes, references, characters).

use std::ops::Range;

use quick_xml::events::{BytesStart, Event as QEvent};
use quick_xml::Reader;

use crate::element::{Element, Node, Span};
use crate::error::XmlError;
use crate::namespaces::{DeclError, Namespaces};
use crate::parser::{Limits, StreamHeader};
use crate::{names, ns, unescape};

/// Streams have a `<stream:stream>` root and yield its children one by one;
/// documents yield their root element once it is complete.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Stream,
    Document,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Nothing consumed yet (except a byte order mark): an XML declaration
    /// may still come.
    Start,
    /// Before the root element.
    Prolog,
    /// Stream mode only: inside the stream root, between stanzas.
    TopLevel,
    /// Inside an element being built (a stanza, or a document's root).
    InElement,
    /// After the root element closed.
    Epilog,
}

/// What a step produced.
#[derive(Debug)]
pub(crate) enum Step {
    /// The buffer holds no further complete token.
    NeedMore,
    /// The stream root was opened.
    Open(StreamHeader),
    /// A stanza (stream mode) or the root element (document mode) is complete.
    Element(Element),
    /// The stream root was closed.
    Close,
    /// Document mode: the end of the input was reached after the root.
    End,
}

/// A fatal error and the buffer offset it refers to.
#[derive(Debug)]
pub(crate) struct Fail {
    pub error: XmlError,
    pub at: usize,
}

fn not_wf(at: usize, msg: impl Into<String>) -> Fail {
    Fail {
        error: XmlError::NotWellFormed(msg.into()),
        at,
    }
}

fn restricted(at: usize, msg: &str) -> Fail {
    Fail {
        error: XmlError::RestrictedXml(msg.into()),
        at,
    }
}

fn policy(at: usize, msg: String) -> Fail {
    Fail {
        error: XmlError::PolicyViolation(msg),
        at,
    }
}

/// Lifts a decoding error `base` bytes into the buffer.
fn decode_fail(base: usize, e: unescape::DecodeError) -> Fail {
    Fail {
        error: e.error,
        at: base + e.at,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// An element whose end tag has not been seen yet.
struct Frame {
    /// Where its raw qualified name starts in `Machine::qnames`.
    qname_start: usize,
    /// The namespace bindings to drop when it ends.
    ns_mark: usize,
}

/// What a `<` starts, decided from the first few bytes.
enum Markup {
    Tag,
    EndTag,
    XmlDecl,
    Comment,
    CData,
}

pub(crate) struct Machine {
    mode: Mode,
    limits: Limits,
    phase: Phase,
    /// Whether the byte-order-mark check at the very start was done.
    bom_checked: bool,
    ns: Namespaces,
    /// Open elements, stream root included.
    frames: Vec<Frame>,
    /// Raw qualified names of the open elements, concatenated, to check end
    /// tags without an allocation per element.
    qnames: Vec<u8>,
    /// Elements being built, outermost first.
    stack: Vec<Element>,
    /// Stream mode: bytes consumed so far by the stanza being parsed, from
    /// its `<`; `None` between stanzas.
    stanza_bytes: Option<usize>,
    /// How many bytes of a truncated token (starting at the cursor) were
    /// already looked at. Markup can only end at a `>`, so the token is not
    /// re-parsed until a `>` arrives after them: a long tag fed in small
    /// pieces costs linear time, not quadratic.
    examined: usize,
    /// A self-closed stream root still owes a `Close` event.
    pending_close: bool,
    /// Scratch space for `start_tag`: key and value positions of the
    /// attributes that are not namespace declarations.
    attr_scratch: Vec<(Range<usize>, Range<usize>)>,
    /// Document mode: line/column bookkeeping for spans.
    lines: Lines,
}

impl Machine {
    pub fn new(mode: Mode, limits: Limits) -> Self {
        Machine {
            mode,
            limits,
            phase: Phase::Start,
            bom_checked: false,
            ns: Namespaces::default(),
            frames: Vec::new(),
            qnames: Vec::new(),
            stack: Vec::new(),
            stanza_bytes: None,
            examined: 0,
            pending_close: false,
            attr_scratch: Vec::new(),
            lines: Lines::default(),
        }
    }

    /// Bytes already consumed by the stanza in progress (0 between stanzas).
    pub fn stanza_bytes(&self) -> usize {
        self.stanza_bytes.unwrap_or(0)
    }

    /// Releases capacity kept from the largest stanza so far, when no stanza
    /// is in progress.
    pub fn shrink_if_idle(&mut self) {
        if self.stack.is_empty() && self.stack.capacity() > 0 {
            self.stack = Vec::new();
        }
        if self.attr_scratch.capacity() > 16 {
            self.attr_scratch = Vec::new();
        }
        if self.qnames.capacity() > 256 || self.frames.capacity() > 16 {
            self.qnames.shrink_to_fit();
            self.frames.shrink_to_fit();
            self.ns.shrink();
        }
    }

    /// Line and column (1-based, in characters) of `at` in `src`.
    pub fn locate(&mut self, src: &[u8], at: usize) -> (u32, u32) {
        self.lines.locate(src, at.min(src.len()))
    }

    /// Consumes complete tokens from `buf[*pos..]` until there is an event to
    /// report or nothing more can be decided. `eof` says that no more bytes
    /// will follow (documents), turning truncation into an error.
    pub fn step(&mut self, buf: &[u8], pos: &mut usize, eof: bool) -> Result<Step, Fail> {
        // One reader per step, re-pointed at each `<`, so that its small
        // internal buffers are reused across the tokens of a stanza.
        let mut reader: Option<Reader<&[u8]>> = None;
        loop {
            if self.pending_close {
                self.pending_close = false;
                return Ok(Step::Close);
            }
            let Some(&first) = buf.get(*pos) else {
                return if eof {
                    self.at_eof(*pos)
                } else {
                    Ok(Step::NeedMore)
                };
            };
            if !self.bom_checked {
                if !self.check_encoding(buf, pos, eof)? {
                    return Ok(Step::NeedMore);
                }
                // The cursor may have moved past a byte order mark.
                continue;
            }
            let step = if first == b'<' {
                self.markup(&mut reader, buf, pos, eof)?
            } else {
                self.text(buf, pos, eof)?
            };
            if let Some(step) = step {
                return Ok(step);
            }
        }
    }

    fn at_eof(&self, at: usize) -> Result<Step, Fail> {
        match self.phase {
            Phase::Epilog => Ok(Step::End),
            Phase::Start | Phase::Prolog => Err(not_wf(at, "no root element")),
            Phase::TopLevel | Phase::InElement => {
                let open = self
                    .frames
                    .last()
                    .map_or(&[][..], |f| &self.qnames[f.qname_start..]);
                Err(not_wf(
                    at,
                    format!(
                        "unexpected end of input: element <{}> is not closed",
                        String::from_utf8_lossy(open)
                    ),
                ))
            }
        }
    }

    /// Moves the cursor, counting the bytes against the stanza in progress.
    fn advance(&mut self, pos: &mut usize, n: usize) -> Result<(), Fail> {
        *pos += n;
        if let Some(count) = &mut self.stanza_bytes {
            *count += n;
            if *count > self.limits.max_stanza_bytes {
                return Err(policy(*pos, self.stanza_too_big()));
            }
        }
        Ok(())
    }

    fn stanza_too_big(&self) -> String {
        format!("stanza larger than {} bytes", self.limits.max_stanza_bytes)
    }

    // ----------------------------------------------------------------------
    // The encoding

    /// Looks at the very first bytes, once: a UTF-8 byte order mark is
    /// skipped (editors put it in config files); UTF-16 is refused as an
    /// unsupported encoding, whether it announces itself with a byte order
    /// mark (either byte order) or not. Without one, its first character
    /// (`<`, or whitespace) has a zero byte beside it, and a zero byte is
    /// no XML character in any encoding XMPP allows, so a zero among the
    /// first two bytes (UTF-32 too) means the same. `Ok(false)` when more
    /// bytes are needed to tell.
    fn check_encoding(&mut self, buf: &[u8], pos: &mut usize, eof: bool) -> Result<bool, Fail> {
        const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
        let start = *pos;
        let rest = &buf[start..];
        let head = &rest[..rest.len().min(2)];
        let utf16 = match head {
            [0xFE, 0xFF] => Some("a UTF-16 (big-endian) byte order mark"),
            [0xFF, 0xFE] => Some("a UTF-16 (little-endian) byte order mark"),
            _ if head.contains(&0) => Some("UTF-16 or UTF-32 text"),
            _ => None,
        };
        if let Some(what) = utf16 {
            return Err(Fail {
                error: XmlError::UnsupportedEncoding(format!(
                    "the input starts with {what}; only UTF-8 is supported"
                )),
                at: start,
            });
        }
        let n = rest.len().min(UTF8_BOM.len());
        let bom_prefix = rest[..n] == UTF8_BOM[..n];
        // Until two bytes are in, a zero may still follow the first; a
        // UTF-8 byte order mark needs its three.
        if !eof && (rest.len() < 2 || (bom_prefix && n < UTF8_BOM.len())) {
            return Ok(false);
        }
        if bom_prefix {
            if n < UTF8_BOM.len() {
                return Err(not_wf(start, "truncated byte order mark"));
            }
            self.advance(pos, n)?;
        }
        self.bom_checked = true;
        Ok(true)
    }

    // ----------------------------------------------------------------------
    // Character data

    fn text(&mut self, buf: &[u8], pos: &mut usize, eof: bool) -> Result<Option<Step>, Fail> {
        let start = *pos;
        let rest = &buf[start..];
        if self.phase == Phase::InElement {
            let seg = match memchr::memchr(b'<', rest) {
                Some(i) => &rest[..i],
                None if eof => rest,
                None => &rest[..safe_text_end(rest)],
            };
            if seg.is_empty() {
                return Ok(Some(Step::NeedMore));
            }
            let el = self
                .stack
                .last_mut()
                .expect("InElement has an open element");
            // Decode straight into the element's trailing text node, so text
            // arriving in several pieces ends up as one node, exactly as if
            // it had arrived at once.
            if !matches!(el.children.last(), Some(Node::Text(_))) {
                el.children.push(Node::Text(String::new()));
            }
            let Some(Node::Text(out)) = el.children.last_mut() else {
                unreachable!("a text node was just ensured");
            };
            let r = unescape::text(seg, out);
            if out.is_empty() {
                el.children.pop();
            }
            r.map_err(|e| decode_fail(start, e))?;
            self.advance(pos, seg.len())?;
            return Ok(None);
        }

        // Outside any element only whitespace may appear.
        let n = rest.iter().position(|&b| !is_ws(b)).unwrap_or(rest.len());
        if n < rest.len() && rest[n] != b'<' {
            let at = start + n;
            return Err(match (self.phase, self.mode) {
                (Phase::TopLevel, _) => Fail {
                    error: XmlError::BadFormat("text between stanzas".into()),
                    at,
                },
                (Phase::Epilog, Mode::Stream) => not_wf(at, "data after the end of the stream"),
                (Phase::Epilog, Mode::Document) => not_wf(at, "text after the root element"),
                _ => not_wf(at, "text before the root element"),
            });
        }
        if self.phase == Phase::Start {
            self.phase = Phase::Prolog;
        }
        self.advance(pos, n)?;
        Ok(None)
    }

    // ----------------------------------------------------------------------
    // Markup

    /// Decides what the `<` at the cursor starts, refusing forbidden markup
    /// from its first bytes. `Ok(None)` means "need more bytes to decide".
    fn classify(&self, rest: &[u8], at: usize) -> Result<Option<Markup>, Fail> {
        /// `Some(true)` if `rest` starts with `lit`, `None` if it is a
        /// proper prefix of it (undecided), `Some(false)` otherwise.
        fn starts(rest: &[u8], lit: &[u8]) -> Option<bool> {
            let n = rest.len().min(lit.len());
            if rest[..n] != lit[..n] {
                Some(false)
            } else if n < lit.len() {
                None
            } else {
                Some(true)
            }
        }
        let Some(&second) = rest.get(1) else {
            return Ok(None);
        };
        Ok(Some(match second {
            b'/' => Markup::EndTag,
            b'?' => {
                // Only the XML declaration, and only as the very first thing.
                if self.phase == Phase::Start {
                    match starts(rest, b"<?xml") {
                        None => return Ok(None),
                        Some(true) => match rest.get(5) {
                            None => return Ok(None),
                            Some(&b) if is_ws(b) || b == b'?' => return Ok(Some(Markup::XmlDecl)),
                            Some(_) => {}
                        },
                        Some(false) => {}
                    }
                }
                return Err(restricted(at, "processing instructions are not allowed"));
            }
            b'!' => match rest.get(2) {
                None => return Ok(None),
                Some(b'-') => match rest.get(3) {
                    None => return Ok(None),
                    Some(b'-') => {
                        if self.mode == Mode::Stream {
                            return Err(restricted(at, "comments are not allowed on a stream"));
                        }
                        Markup::Comment
                    }
                    Some(_) => return Err(not_wf(at, "malformed comment")),
                },
                Some(b'[') => match starts(rest, b"<![CDATA[") {
                    None => return Ok(None),
                    Some(true) => Markup::CData,
                    Some(false) => return Err(not_wf(at, "malformed CDATA section")),
                },
                Some(b) if b.is_ascii_uppercase() => {
                    return Err(restricted(
                        at,
                        "DOCTYPE and markup declarations are not allowed",
                    ))
                }
                Some(_) => return Err(not_wf(at, "malformed markup after `<!`")),
            },
            _ => Markup::Tag,
        }))
    }

    fn markup<'a>(
        &mut self,
        reader: &mut Option<Reader<&'a [u8]>>,
        buf: &'a [u8],
        pos: &mut usize,
        eof: bool,
    ) -> Result<Option<Step>, Fail> {
        let start = *pos;
        let rest = &buf[start..];
        let need_more = |this: &mut Self, examined: usize| {
            if eof {
                return Err(not_wf(start, "unexpected end of input inside markup"));
            }
            this.examined = examined;
            Ok(Some(Step::NeedMore))
        };
        if self.examined > 0
            && self.examined <= rest.len()
            && memchr::memchr(b'>', &rest[self.examined..]).is_none()
        {
            return need_more(self, rest.len());
        }
        let Some(kind) = self.classify(rest, start)? else {
            return need_more(self, 0);
        };
        if matches!(kind, Markup::CData) && self.phase != Phase::InElement {
            return Err(match self.phase {
                Phase::TopLevel => Fail {
                    error: XmlError::BadFormat("character data between stanzas".into()),
                    at: start,
                },
                _ => not_wf(start, "CDATA section outside the root element"),
            });
        }

        let r = reader.get_or_insert_with(|| {
            let mut r = Reader::from_reader(rest);
            let c = r.config_mut();
            // End tags and their nesting are checked here, against names
            // that outlive this reader.
            c.check_end_names = false;
            c.allow_unmatched_ends = true;
            c.check_comments = true;
            c.expand_empty_elements = false;
            c.trim_text(false);
            r
        });
        *r.get_mut() = rest;
        let result = r.read_event();
        let consumed = rest.len() - r.get_ref().len();
        let event = match result {
            Ok(event) => event,
            // Given the classification above, a syntax error can only be
            // quick-xml running out of input before the token's end.
            Err(quick_xml::Error::Syntax(_)) => return need_more(self, rest.len()),
            Err(e) => return Err(not_wf(start, e.to_string())),
        };
        self.examined = 0;
        if self.phase == Phase::TopLevel && matches!(event, QEvent::Start(_) | QEvent::Empty(_)) {
            // A stanza starts: count its bytes from its `<`.
            self.stanza_bytes = Some(0);
        }
        self.advance(pos, consumed)?;

        match event {
            QEvent::Start(tag) => self.start_tag(buf, &tag, start, false),
            QEvent::Empty(tag) => self.start_tag(buf, &tag, start, true),
            QEvent::End(end) => self.end_tag(end.name().as_ref(), start),
            QEvent::Decl(decl) => {
                check_decl(&decl).map_err(|error| Fail { error, at: start })?;
                self.phase = Phase::Prolog;
                Ok(None)
            }
            QEvent::Comment(comment) => {
                unescape::check_chars(&comment).map_err(|e| decode_fail(start + 4, e))?;
                if self.phase == Phase::Start {
                    self.phase = Phase::Prolog;
                }
                Ok(None)
            }
            QEvent::CData(data) => {
                let el = self
                    .stack
                    .last_mut()
                    .expect("InElement has an open element");
                let mut text = String::new();
                unescape::cdata(&data, &mut text).map_err(|e| decode_fail(start + 9, e))?;
                el.append_text(text);
                Ok(None)
            }
            QEvent::PI(_) | QEvent::DocType(_) => Err(restricted(start, "forbidden markup")),
            QEvent::Text(_) | QEvent::GeneralRef(_) | QEvent::Eof => {
                // Cannot happen: the reader always starts at a `<`.
                Err(not_wf(start, "unexpected character data"))
            }
        }
    }

    fn start_tag(
        &mut self,
        buf: &[u8],
        tag: &BytesStart<'_>,
        start: usize,
        empty: bool,
    ) -> Result<Option<Step>, Fail> {
        let stream_root =
            self.mode == Mode::Stream && matches!(self.phase, Phase::Start | Phase::Prolog);
        match self.phase {
            Phase::Epilog => {
                return Err(not_wf(
                    start,
                    match self.mode {
                        Mode::Stream => "data after the end of the stream",
                        Mode::Document => "a second root element",
                    },
                ))
            }
            _ if !stream_root && self.stack.len() >= self.limits.max_depth => {
                return Err(policy(
                    start,
                    format!("elements nested deeper than {}", self.limits.max_depth),
                ))
            }
            _ => {}
        }

        let content: &[u8] = tag;
        // One UTF-8 check for the whole tag; names and values are then
        // taken from `text`. Their delimiters (whitespace, `=`, quotes) are
        // ASCII, so they fall on character boundaries.
        let text = std::str::from_utf8(content)
            .map_err(|e| not_wf(start + 1 + e.valid_up_to(), "invalid UTF-8"))?;
        let piece = |s: &[u8]| {
            let i = index_in(content, s)?;
            text.get(i..i + s.len())
        };
        // Where a piece of the tag (a key, a value) is in the buffer;
        // `content` starts right after the `<`.
        let offset_of = |s: &[u8]| start + 1 + index_in(content, s).unwrap_or(0);

        let qname = tag.name().into_inner();
        let (prefix, local) = piece(qname).and_then(names::split_qname).ok_or_else(|| {
            not_wf(
                start,
                format!("invalid element name `{}`", String::from_utf8_lossy(qname)),
            )
        })?;

        // Pass one: syntax, the attribute limit, and namespace declarations,
        // which must all be known before any name on this tag is resolved.
        let mark = self.ns.mark();
        let mut count = 0usize;
        // The other attributes wait here, as positions in `content`, for
        // pass two (a reused vector: no allocation per element).
        let mut pending = std::mem::take(&mut self.attr_scratch);
        pending.clear();
        let mut iter = tag.attributes();
        iter.with_checks(false); // duplicates are checked after resolution
        for attr in iter {
            let attr = attr.map_err(|e| not_wf(start, format!("malformed attribute: {e}")))?;
            count += 1;
            if count > self.limits.max_attrs {
                return Err(policy(
                    start,
                    format!(
                        "more than {} attributes on one element",
                        self.limits.max_attrs
                    ),
                ));
            }
            let key = attr.key.as_ref();
            let before = index_in(content, key).and_then(|i| i.checked_sub(1));
            if !before.is_some_and(|i| is_ws(content[i])) {
                return Err(not_wf(
                    offset_of(key),
                    "attributes must be separated by whitespace",
                ));
            }
            let decl = if key == b"xmlns" {
                Some("")
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                match piece(p) {
                    Some(p) if names::is_ncname(p) => Some(p),
                    _ => return Err(not_wf(offset_of(key), "invalid namespace prefix")),
                }
            } else {
                None
            };
            let value: &[u8] = &attr.value;
            if let Some(prefix) = decl {
                let uri = piece(value).ok_or_else(|| not_wf(start, "malformed attribute"))?;
                self.ns.declare(prefix, uri, mark).map_err(|e| match e {
                    DeclError::Value(e) => decode_fail(offset_of(value), e),
                    DeclError::Invalid(msg) => not_wf(offset_of(key), msg),
                })?;
            } else {
                let (Some(k), Some(v)) = (index_in(content, key), index_in(content, value)) else {
                    return Err(not_wf(start, "malformed attribute"));
                };
                pending.push((k..k + key.len(), v..v + value.len()));
            }
        }

        // Pass two: the other attributes, resolved and decoded.
        let mut attrs: Vec<(String, String)> = Vec::with_capacity(pending.len());
        for (key, raw) in pending.drain(..) {
            let at = start + 1 + key.start;
            let raw_at = start + 1 + raw.start;
            let (Some(key), Some(raw)) = (text.get(key), text.get(raw)) else {
                return Err(not_wf(at, "malformed attribute"));
            };
            let name = match names::split_qname(key) {
                None => return Err(not_wf(at, format!("invalid attribute name `{}`", key))),
                Some((None, local)) => local.to_owned(),
                // `xml:lang` & co keep their conventional spelling.
                Some((Some("xml"), local)) => ["xml:", local].concat(),
                Some((Some(p), local)) => match self.ns.resolve(p) {
                    Some(uri) => format!("{{{uri}}}{local}"),
                    None => return Err(not_wf(at, format!("undeclared namespace prefix `{p}`"))),
                },
            };
            if attrs.iter().any(|(k, _)| *k == name) {
                return Err(not_wf(at, format!("duplicate attribute `{name}`")));
            }
            let mut value = String::new();
            unescape::attr(raw, &mut value).map_err(|e| decode_fail(raw_at, e))?;
            attrs.push((name, value));
        }
        self.attr_scratch = pending;

        let ns_uri = match prefix {
            None => self.ns.default_ns(),
            Some("xmlns") => {
                return Err(not_wf(start, "elements must not have the prefix `xmlns`"))
            }
            Some(p) => self
                .ns
                .resolve(p)
                .ok_or_else(|| not_wf(start, format!("undeclared namespace prefix `{p}`")))?,
        };

        if stream_root {
            if local != "stream" || ns_uri != ns::STREAM {
                return Err(Fail {
                    error: XmlError::InvalidNamespace(format!(
                        "the root element must be <stream:stream> in {}, not <{}> in `{}`",
                        ns::STREAM,
                        local,
                        ns_uri
                    )),
                    at: start,
                });
            }
            let header = StreamHeader {
                name: local.to_owned(),
                ns: ns_uri.to_owned(),
                default_ns: self.ns.declared_default(mark).map(str::to_owned),
                attrs,
            };
            if empty {
                self.ns.truncate(mark);
                self.phase = Phase::Epilog;
                self.pending_close = true;
            } else {
                self.push_frame(qname, mark);
                self.phase = Phase::TopLevel;
            }
            return Ok(Some(Step::Open(header)));
        }

        let span = match self.mode {
            Mode::Document => {
                let (line, col) = self.lines.locate(buf, start);
                Span { line, col }
            }
            Mode::Stream => Span::default(),
        };
        let el = Element {
            name: local.to_owned(),
            ns: ns_uri.to_owned(),
            attrs,
            children: Vec::new(),
            span,
        };
        if empty {
            self.ns.truncate(mark);
            return Ok(self.complete(el));
        }
        self.push_frame(qname, mark);
        self.stack.push(el);
        self.phase = Phase::InElement;
        Ok(None)
    }

    fn push_frame(&mut self, qname: &[u8], ns_mark: usize) {
        self.frames.push(Frame {
            qname_start: self.qnames.len(),
            ns_mark,
        });
        self.qnames.extend_from_slice(qname);
    }

    /// Attaches a finished element to its parent, or reports it when it is
    /// the stanza or the document root.
    fn complete(&mut self, el: Element) -> Option<Step> {
        if let Some(parent) = self.stack.last_mut() {
            parent.children.push(Node::Element(el));
            return None;
        }
        self.stanza_bytes = None;
        self.phase = match self.mode {
            Mode::Stream => Phase::TopLevel,
            Mode::Document => Phase::Epilog,
        };
        Some(Step::Element(el))
    }

    fn end_tag(&mut self, name: &[u8], start: usize) -> Result<Option<Step>, Fail> {
        if !matches!(self.phase, Phase::InElement | Phase::TopLevel) {
            return Err(not_wf(start, "end tag without a matching start tag"));
        }
        let frame = self.frames.pop().expect("an open element in these phases");
        let expected = &self.qnames[frame.qname_start..];
        if expected != name {
            return Err(not_wf(
                start,
                format!(
                    "end tag </{}> does not match <{}>",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(expected)
                ),
            ));
        }
        self.qnames.truncate(frame.qname_start);
        self.ns.truncate(frame.ns_mark);
        if self.phase == Phase::TopLevel {
            self.phase = Phase::Epilog;
            return Ok(Some(Step::Close));
        }
        let el = self.stack.pop().expect("InElement has an open element");
        Ok(self.complete(el))
    }
}

/// The index of `part` in `whole`, when `part` is a subslice of it (quick-xml
/// hands out attribute keys and values borrowed from the tag).
fn index_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let i = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (i + part.len() <= whole.len()).then_some(i)
}

/// How much of a text run that reached the end of the buffer can be decoded
/// now. Held back, because the next bytes could change their meaning: an
/// incomplete UTF-8 character, a reference without its `;`, a CR that may be
/// the first half of CR LF, and up to two `]` that may start `]]>`.
fn safe_text_end(rest: &[u8]) -> usize {
    let mut end = complete_utf8_len(rest);
    if let Some(amp) = memchr::memrchr(b'&', &rest[..end]) {
        if memchr::memchr(b';', &rest[amp..end]).is_none() {
            end = amp;
        }
    }
    if end > 0 && rest[end - 1] == b'\r' {
        end -= 1;
    } else {
        for _ in 0..2 {
            if end > 0 && rest[end - 1] == b']' {
                end -= 1;
            }
        }
    }
    end
}

/// The length of `bytes` without a trailing, incomplete UTF-8 sequence.
/// Invalid sequences are left in: decoding reports them.
fn complete_utf8_len(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let b = bytes[len - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xF0..=0xFF => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if needed > back { len - back } else { len };
    }
    len
}

/// Checks an XML declaration: `version` (1.x), then optionally `encoding`
/// and `standalone`, in this order. Any encoding but UTF-8 (in any case)
/// is [`XmlError::UnsupportedEncoding`], the condition RFC 6120 §11.6
/// names for it; everything else wrong is not well-formed.
fn check_decl(content: &[u8]) -> Result<(), XmlError> {
    let nwf = |msg: &str| XmlError::NotWellFormed(msg.to_owned());
    let s =
        std::str::from_utf8(content).map_err(|_| nwf("invalid UTF-8 in the XML declaration"))?;
    let mut iter = quick_xml::events::attributes::Attributes::new(s, 3);
    let mut next = 0; // index of the next allowed pseudo-attribute
    for attr in iter.with_checks(true) {
        let attr =
            attr.map_err(|e| XmlError::NotWellFormed(format!("malformed XML declaration: {e}")))?;
        let key = attr.key.as_ref();
        let before = index_in(content, key).and_then(|i| i.checked_sub(1));
        if !before.is_some_and(|i| is_ws(content[i])) {
            return Err(nwf("malformed XML declaration"));
        }
        let value: &[u8] = &attr.value;
        match key {
            b"version" if next == 0 => {
                let ok = value.len() > 2
                    && value.starts_with(b"1.")
                    && value[2..].iter().all(u8::is_ascii_digit);
                if !ok {
                    return Err(nwf("unsupported XML version"));
                }
                next = 1;
            }
            b"encoding" if next == 1 => {
                if !value.eq_ignore_ascii_case(b"UTF-8") {
                    return Err(XmlError::UnsupportedEncoding(format!(
                        "the XML declaration names the encoding \"{}\"; only UTF-8 is supported",
                        String::from_utf8_lossy(value)
                    )));
                }
                next = 2;
            }
            b"standalone" if (1..=2).contains(&next) => {
                if value != b"yes" && value != b"no" {
                    return Err(nwf("standalone must be `yes` or `no`"));
                }
                next = 3;
            }
            _ => return Err(nwf("malformed XML declaration")),
        }
    }
    if next == 0 {
        return Err(nwf("the XML declaration lacks a version"));
    }
    Ok(())
}

/// Incremental offset → line/column conversion for document errors and
/// spans. Queries come in increasing order, so each byte is looked at once.
#[derive(Default)]
struct Lines {
    /// The offset the counts below are for.
    pos: usize,
    /// 0-based line of `pos`.
    line: u32,
    /// Offset where that line starts.
    line_start: usize,
    /// Characters between `line_start` and `pos`.
    col: u32,
}

impl Lines {
    fn locate(&mut self, src: &[u8], at: usize) -> (u32, u32) {
        if at < self.pos {
            *self = Lines::default();
        }
        let chunk = &src[self.pos..at];
        let mut from = self.pos;
        for i in memchr::memchr2_iter(b'\n', b'\r', chunk) {
            let i = self.pos + i;
            // CR LF is one line end; the CR already counted it.
            if !(src[i] == b'\n' && i > 0 && src[i - 1] == b'\r') {
                self.line += 1;
            }
            self.line_start = i + 1;
            self.col = 0;
            from = i + 1;
        }
        // Columns count characters: skip UTF-8 continuation bytes.
        self.col += src[from..at].iter().filter(|&&b| b & 0xC0 != 0x80).count() as u32;
        self.pos = at;
        (self.line + 1, self.col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_end() {
        assert_eq!(safe_text_end(b"abc"), 3);
        assert_eq!(safe_text_end(b"ab&am"), 2);
        assert_eq!(safe_text_end(b"ab&amp;c"), 8);
        assert_eq!(safe_text_end(b"ab\r"), 2);
        assert_eq!(safe_text_end(b"ab]]"), 2);
        assert_eq!(safe_text_end(b"a]]]"), 2);
        assert_eq!(safe_text_end("aé".as_bytes()), 3);
        assert_eq!(safe_text_end(&"aé".as_bytes()[..2]), 1);
        assert_eq!(safe_text_end(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(safe_text_end(&"a😀".as_bytes()[..2]), 1);
        assert_eq!(safe_text_end("a😀".as_bytes()), 5);
    }

    #[test]
    fn lines() {
        let src = "ab\ncd\r\neé\rf".as_bytes();
        let mut l = Lines::default();
        assert_eq!(l.locate(src, 0), (1, 1));
        assert_eq!(l.locate(src, 1), (1, 2));
        assert_eq!(l.locate(src, 4), (2, 2));
        assert_eq!(l.locate(src, 5), (2, 3)); // the CR
        assert_eq!(l.locate(src, 6), (3, 1)); // between CR and LF
        assert_eq!(l.locate(src, 7), (3, 1));
        assert_eq!(l.locate(src, 10), (3, 3)); // after the two-byte é
        assert_eq!(l.locate(src, 11), (4, 1));
        assert_eq!(l.locate(src, 2), (1, 3)); // going back recounts
    }

    #[test]
    fn decls() {
        assert!(check_decl(b"xml version='1.0'").is_ok());
        assert!(check_decl(b"xml version=\"1.0\" encoding='utf-8' standalone='yes'").is_ok());
        assert!(check_decl(b"xml version='1.0' standalone='no'").is_ok());
        assert!(check_decl(b"xml").is_err());
        assert!(check_decl(b"xml encoding='UTF-8'").is_err());
        assert!(check_decl(b"xml version='2.0'").is_err());
        assert!(matches!(
            check_decl(b"xml version='1.0' encoding='ISO-8859-1'"),
            Err(XmlError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            check_decl(b"xml version='1.0' encoding='utf-16'"),
            Err(XmlError::UnsupportedEncoding(_))
        ));
        assert!(check_decl(b"xml version='1.0' encoding='Utf-8'").is_ok());
        assert!(check_decl(b"xml version='1.0'encoding='UTF-8'").is_err());
        assert!(check_decl(b"xml version='1.0' foo='bar'").is_err());
        assert!(check_decl(b"xml version='1.0' version='1.0'").is_err());
    }
}
