//! A small reader for the XML of an XMPP stream, written for the load
//! generator so that it checks the server's output with code that shares
//! nothing with the server's own parser.
//!
//! An XMPP stream is one never-ending document: a header
//! `<stream:stream …>` that stays open, then top-level elements (features,
//! SASL steps, stanzas), whitespace keepalives between them, and finally
//! `</stream:stream>`. [`StreamReader`] takes bytes as they arrive and hands
//! out one [`Event`] per complete piece. It checks well-formedness (tags
//! nest and match, attributes are quoted and unique, entity references are
//! valid) and resolves namespaces, starting from the declarations of the
//! stream header. It refuses what XMPP forbids in a stream (comments,
//! processing instructions, DTDs) and text at the top level.
//!
//! It is meant for the modest stanzas of a benchmark: an incomplete element
//! is parsed again from its start when more bytes arrive, and the buffer is
//! capped at [`MAX_BUFFER`].

use std::fmt;

pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_CLIENT: &str = "jabber:client";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAMS_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The most unparsed bytes the reader keeps; more is an error.
pub const MAX_BUFFER: usize = 1 << 20;

/// A parsed element. `name` is the local name, `ns` the resolved
/// namespace URI; `attrs` keeps qualified names (namespace declarations
/// included) in document order; `text` is the concatenated character data
/// directly inside the element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub ns: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with this name and namespace.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name, ns))
    }

    /// A one-line description for error messages: `{ns}name` and, for
    /// errors, the first child's name (the condition).
    pub fn describe(&self) -> String {
        match self.children.first() {
            Some(c) => format!("<{} xmlns='{}'> with <{}/>", self.name, self.ns, c.name),
            None => format!("<{} xmlns='{}'>", self.name, self.ns),
        }
    }
}

/// What the reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The stream header (its attributes; no children).
    Open(Element),
    /// A complete top-level element.
    Element(Element),
    /// `</stream:stream>`.
    Close,
}

/// Malformed or forbidden input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(pub String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad XML from the server: {}", self.0)
    }
}
impl std::error::Error for XmlError {}

fn err<T>(msg: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError(msg.into()))
}

/// Namespace declarations in scope: (prefix, URI); prefix "" is the default.
type Scope = Vec<(String, String)>;

/// Incremental reader for one stream (a restarted stream needs a new one).
#[derive(Debug, Default)]
pub struct StreamReader {
    buf: Vec<u8>,
    pos: usize,
    decl_seen: bool,
    /// The header's qualified name and declarations, once it was read.
    header: Option<(String, Scope)>,
    closed: bool,
}

impl StreamReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes from the socket.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), XmlError> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.len() - self.pos + data.len() > MAX_BUFFER {
            return err("more than 1 MiB without a complete element");
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// True when no unread bytes but whitespace are buffered.
    pub fn is_drained(&self) -> bool {
        self.buf[self.pos..].iter().all(|b| b.is_ascii_whitespace())
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        loop {
            while self.pos < self.buf.len() && self.buf[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            let rest = &self.buf[self.pos..];
            if rest.is_empty() {
                return Ok(None);
            }
            if self.closed {
                return err("data after </stream:stream>");
            }
            if rest[0] != b'<' {
                return err(format!(
                    "text at the top level of the stream: {}",
                    snippet(rest)
                ));
            }
            let Some(header) = &self.header else {
                if !self.decl_seen && rest.len() < 5 && b"<?xml".starts_with(rest) {
                    return Ok(None); // a declaration split across reads
                }
                if rest.starts_with(b"<?xml") && !self.decl_seen {
                    let Some(end) = find(rest, b"?>") else {
                        return Ok(None);
                    };
                    self.decl_seen = true;
                    self.pos += end + 2;
                    continue;
                }
                let Some((tag, len)) = scan_tag(rest)? else {
                    return Ok(None);
                };
                let Tag::Start { name, attrs } = tag else {
                    return err("the stream did not begin with a <stream:stream> header");
                };
                let mut scope: Scope = vec![("xml".into(), NS_XML.into())];
                let el = make_element(name, attrs, &mut scope)?;
                if !el.is("stream", NS_STREAM) {
                    return err(format!(
                        "the stream header is {}, not <stream:stream>",
                        el.describe()
                    ));
                }
                let qname = match rest[1..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace() || *b == b'>')
                {
                    Some(n) => String::from_utf8_lossy(&rest[1..1 + n]).into_owned(),
                    None => return err("bad stream header"),
                };
                self.pos += len;
                self.header = Some((qname, scope));
                return Ok(Some(Event::Open(el)));
            };
            if rest.starts_with(b"</") {
                let Some((tag, len)) = scan_tag(rest)? else {
                    return Ok(None);
                };
                let Tag::End { name } = tag else {
                    unreachable!("scan_tag of </ is an end tag")
                };
                if name != header.0 {
                    return err(format!("</{name}> closes nothing"));
                }
                self.pos += len;
                self.closed = true;
                return Ok(Some(Event::Close));
            }
            let mut scope = header.1.clone();
            let Some((el, len)) = parse_element(rest, &mut scope)? else {
                return Ok(None);
            };
            self.pos += len;
            return Ok(Some(Event::Element(el)));
        }
    }
}

fn snippet(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One piece of markup.
#[derive(Debug)]
enum Tag {
    Start {
        name: String,
        attrs: Vec<(String, String)>,
    },
    Empty {
        name: String,
        attrs: Vec<(String, String)>,
    },
    End {
        name: String,
    },
    CData(String),
}

/// Scans the markup at the start of `b` (which starts with `<`). Returns
/// the tag and its length, `None` if incomplete.
fn scan_tag(b: &[u8]) -> Result<Option<(Tag, usize)>, XmlError> {
    debug_assert_eq!(b.first(), Some(&b'<'));
    if b.len() < 2 {
        return Ok(None);
    }
    match b[1] {
        b'!' => {
            const CDATA: &[u8] = b"<![CDATA[";
            if b.len() < CDATA.len() && CDATA.starts_with(b) {
                return Ok(None);
            }
            if !b.starts_with(CDATA) {
                return err("comments and DTDs are not allowed in an XMPP stream");
            }
            let Some(end) = find(&b[CDATA.len()..], b"]]>") else {
                return Ok(None);
            };
            let text = utf8(&b[CDATA.len()..CDATA.len() + end])?;
            Ok(Some((Tag::CData(text), CDATA.len() + end + 3)))
        }
        b'?' => err("processing instructions are not allowed in an XMPP stream"),
        b'/' => {
            let Some(end) = b.iter().position(|&c| c == b'>') else {
                return Ok(None);
            };
            let name = utf8(&b[2..end])?;
            let name = name.trim_end();
            check_name(name)?;
            Ok(Some((
                Tag::End {
                    name: name.to_string(),
                },
                end + 1,
            )))
        }
        _ => {
            let mut quote = None;
            let mut end = None;
            for (i, &c) in b.iter().enumerate().skip(1) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'<' => return err("'<' inside a tag"),
                    None if c == b'>' => {
                        end = Some(i);
                        break;
                    }
                    None => {}
                }
            }
            let Some(end) = end else { return Ok(None) };
            let empty = b[end - 1] == b'/';
            let inner = if empty { &b[1..end - 1] } else { &b[1..end] };
            let (name, attrs) = parse_tag_inner(&utf8(inner)?)?;
            let tag = if empty {
                Tag::Empty { name, attrs }
            } else {
                Tag::Start { name, attrs }
            };
            Ok(Some((tag, end + 1)))
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, XmlError> {
    String::from_utf8(b.to_vec()).map_err(|_| XmlError("invalid UTF-8".into()))
}

fn check_name(name: &str) -> Result<(), XmlError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.' || c == ':')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') || !c.is_ascii())
        && name.matches(':').count() <= 1
        && !name.ends_with(':');
    if ok {
        Ok(())
    } else {
        err(format!("'{name}' is not an XML name"))
    }
}

/// `name a='1' b="2"` → name and attributes (values unescaped).
fn parse_tag_inner(s: &str) -> Result<(String, Vec<(String, String)>), XmlError> {
    let name_end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
    let name = &s[..name_end];
    check_name(name)?;
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut rest = &s[name_end..];
    loop {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return err(format!(
                "attributes of <{name}> must be separated by whitespace"
            ));
        }
        let eq = trimmed
            .find('=')
            .ok_or_else(|| XmlError(format!("attribute without value in <{name}>")))?;
        let aname = trimmed[..eq].trim_end();
        check_name(aname)?;
        let after = trimmed[eq + 1..].trim_start();
        let q = after.chars().next().filter(|c| *c == '\'' || *c == '"');
        let Some(q) = q else {
            return err(format!("unquoted attribute {aname} in <{name}>"));
        };
        let close = after[1..]
            .find(q)
            .ok_or_else(|| XmlError("unterminated attribute value".into()))?;
        let raw = &after[1..1 + close];
        if raw.contains('<') {
            return err("'<' in an attribute value");
        }
        if attrs.iter().any(|(n, _)| n == aname) {
            return err(format!("duplicate attribute {aname} in <{name}>"));
        }
        attrs.push((aname.to_string(), unescape(raw)?));
        rest = &after[1 + close + 1..];
    }
    Ok((name.to_string(), attrs))
}

/// Replaces the five predefined entities and character references.
pub fn unescape(s: &str) -> Result<String, XmlError> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..]
            .find(';')
            .ok_or_else(|| XmlError("'&' without ';'".into()))?;
        let ent = &rest[amp + 1..amp + semi];
        match ent {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ => {
                let code = if let Some(hex) = ent.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                match code.and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => return err(format!("unknown entity &{ent};")),
                }
            }
        }
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Builds an element from a start tag, pushing its declarations onto
/// `scope` (the caller truncates `scope` when the element ends).
fn make_element(
    qname: String,
    attrs: Vec<(String, String)>,
    scope: &mut Scope,
) -> Result<Element, XmlError> {
    for (n, v) in &attrs {
        if n == "xmlns" {
            scope.push((String::new(), v.clone()));
        } else if let Some(p) = n.strip_prefix("xmlns:") {
            if v.is_empty() {
                return err(format!("prefix {p} declared empty"));
            }
            scope.push((p.to_string(), v.clone()));
        }
    }
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname.as_str()),
    };
    let ns = match scope.iter().rev().find(|(p, _)| p == prefix) {
        Some((_, uri)) => uri.clone(),
        None if prefix.is_empty() => String::new(),
        None => return err(format!("undeclared prefix in <{qname}>")),
    };
    Ok(Element {
        name: local.to_string(),
        ns,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parses one complete element at the start of `b`. Returns it and its
/// length in bytes, or `None` if it is not complete yet.
fn parse_element(b: &[u8], scope: &mut Scope) -> Result<Option<(Element, usize)>, XmlError> {
    // Open elements: (qualified name, element, scope length before it).
    let mut stack: Vec<(String, Element, usize)> = Vec::new();
    let mut i = 0;
    loop {
        if i >= b.len() {
            return Ok(None);
        }
        if b[i] != b'<' {
            let end = b[i..].iter().position(|&c| c == b'<').map(|n| i + n);
            let Some(end) = end else { return Ok(None) };
            let text = unescape(&utf8(&b[i..end])?)?;
            match stack.last_mut() {
                Some((_, el, _)) => el.text.push_str(&text),
                None => unreachable!("parse_element starts at '<'"),
            }
            i = end;
            continue;
        }
        let Some((tag, len)) = scan_tag(&b[i..])? else {
            return Ok(None);
        };
        i += len;
        match tag {
            Tag::Start { name, attrs } => {
                let mark = scope.len();
                let el = make_element(name.clone(), attrs, scope)?;
                stack.push((name, el, mark));
            }
            Tag::Empty { name, attrs } => {
                let mark = scope.len();
                let el = make_element(name, attrs, scope)?;
                scope.truncate(mark);
                match stack.last_mut() {
                    Some((_, parent, _)) => parent.children.push(el),
                    None => return Ok(Some((el, i))),
                }
            }
            Tag::End { name } => {
                let Some((open, el, mark)) = stack.pop() else {
                    return err(format!("</{name}> closes nothing"));
                };
                if open != name {
                    return err(format!("<{open}> closed by </{name}>"));
                }
                scope.truncate(mark);
                match stack.last_mut() {
                    Some((_, parent, _)) => parent.children.push(el),
                    None => return Ok(Some((el, i))),
                }
            }
            Tag::CData(text) => match stack.last_mut() {
                Some((_, el, _)) => el.text.push_str(&text),
                None => return err("CDATA at the top level of the stream"),
            },
        }
    }
}

/// Escapes text or an attribute value for output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0'>";

    fn all(r: &mut StreamReader) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            v.push(e);
        }
        v
    }

    #[test]
    fn reads_a_stream_fed_byte_by_byte() {
        let doc = format!(
            "{HEADER}<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features> \
             <iq type='result' id='b&amp;1'><bind xmlns=\"{NS_BIND}\"><jid>u@localhost/r &lt;1&gt;</jid></bind></iq>\
             <presence/></stream:stream>"
        );
        let mut r = StreamReader::new();
        let mut events = Vec::new();
        for b in doc.as_bytes() {
            r.feed(std::slice::from_ref(b)).unwrap();
            events.extend(all(&mut r));
        }
        assert_eq!(events.len(), 5);
        let Event::Open(h) = &events[0] else { panic!() };
        assert_eq!(h.attr("from"), Some("localhost"));
        let Event::Element(f) = &events[1] else {
            panic!()
        };
        assert!(f.is("features", NS_STREAM));
        let st = f.child("starttls", NS_TLS).unwrap();
        assert!(st.child("required", NS_TLS).is_some());
        let Event::Element(iq) = &events[2] else {
            panic!()
        };
        assert!(iq.is("iq", NS_CLIENT));
        assert_eq!(iq.attr("id"), Some("b&1"));
        assert_eq!(
            iq.child("bind", NS_BIND)
                .unwrap()
                .child("jid", NS_BIND)
                .unwrap()
                .text,
            "u@localhost/r <1>"
        );
        assert_eq!(
            events[3],
            Event::Element(Element {
                name: "presence".into(),
                ns: NS_CLIENT.into(),
                ..Default::default()
            })
        );
        assert_eq!(events[4], Event::Close);
        assert!(r.is_drained());
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "<a><b></a>",
            "<a x='1' x='2'/>",
            "<a x=1/>",
            "<a>&bogus;</a>",
            "<!-- c --><a/>",
            "<?pi?>",
            "<p:a/>",
            "text",
            "</b>",
        ] {
            let mut r = StreamReader::new();
            r.feed(HEADER.as_bytes()).unwrap();
            r.feed(bad.as_bytes()).unwrap();
            let res = (|| {
                while let Some(_e) = r.next_event()? {}
                Ok::<(), XmlError>(())
            })();
            assert!(res.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn header_must_be_a_stream() {
        let mut r = StreamReader::new();
        r.feed(b"<stream xmlns='jabber:client'>").unwrap();
        assert!(r.next_event().is_err());
    }

    #[test]
    fn whitespace_keepalives_and_namespaced_prefixes() {
        let mut r = StreamReader::new();
        r.feed(HEADER.as_bytes()).unwrap();
        r.feed(b"  \n <stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>").unwrap();
        let ev = all(&mut r);
        let Event::Element(e) = &ev[1] else { panic!() };
        assert!(e.is("error", NS_STREAM));
        assert!(e.child("conflict", NS_STREAMS_ERRORS).is_some());
    }

    #[test]
    fn escape_roundtrip() {
        let s = "a<b>&'\"";
        assert_eq!(unescape(&escape(s)).unwrap(), s);
        assert_eq!(unescape("&#65;&#x42;").unwrap(), "AB");
    }
}
