//! The spool document: how a [`UserRecord`] becomes XML and back.
//!
//! One document per account:
//!
//! ```xml
//! <?xml version='1.0' encoding='UTF-8'?>
//! <user xmlns="urn:switchboard:spool:1" name="alice">
//!   <scram hash="SHA-256" iterations="4096" salt="…" stored-key="…" server-key="…"/>
//!   <query xmlns="jabber:iq:roster">…</query>
//! </user>
//! ```
//!
//! `<scram/>` children in the spool namespace are the credentials; every
//! other child element is carried in [`UserRecord::extra`] untouched and in
//! order. The account's real name is stored in `name=` because a file name
//! may be a hash (see [`crate::filename`]); a name holding characters XML
//! cannot carry (a NUL byte, say) goes into `encoded-name=` instead,
//! percent-encoded. No password is ever stored, only SCRAM keys.
//!
//! Reading is strict: anything that does not have exactly this shape is an
//! error with a position, because a half-understood record written back
//! would silently lose data.
//!
//! Host-level data (the message of the day, …) lives in one document per
//! host of the same shape, without credentials:
//!
//! ```xml
//! <host xmlns="urn:switchboard:spool:1" name="example.com">
//!   <motd series="3" …>…</motd>
//! </host>
//! ```

use crate::filename::{encode_plain, percent_decode};
use crate::{ScramCredential, UserRecord};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::fmt;
use switchboard_xml::{ns, Element, Node, Span};

/// The root element's local name.
pub const USER: &str = "user";
/// The credential element's local name.
pub const SCRAM: &str = "scram";
/// The host document's root element's local name.
pub const HOST: &str = "host";

/// Why an element is not a valid spool document, and where (1-based; zero
/// for elements built in code rather than parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl RecordError {
    fn at(span: Span, message: impl Into<String>) -> Self {
        RecordError {
            line: span.line,
            col: span.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for RecordError {}

impl UserRecord {
    /// Reads a `<user/>` element in the spool namespace. Credentials are
    /// checked (strict base64, a positive decimal iteration count, one per
    /// hash); other child elements are kept as they are. Whitespace between
    /// children is layout and is dropped; any other text is an error.
    pub fn from_element(el: &Element) -> Result<UserRecord, RecordError> {
        check_root(el)?;
        let mut record = UserRecord::default();
        for node in &el.children {
            match node {
                Node::Element(child) if child.is(SCRAM, ns::SPOOL) => {
                    let cred = credential_from_element(child)?;
                    if record.credential(&cred.hash).is_some() {
                        return Err(RecordError::at(
                            child.span,
                            format!("a second <scram/> for {}", cred.hash),
                        ));
                    }
                    record.credentials.push(cred);
                }
                Node::Element(child) => record.extra.push(child.clone()),
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => {
                    return Err(RecordError::at(el.span, "text directly inside <user/>"));
                }
            }
        }
        Ok(record)
    }

    /// Builds the `<user/>` document element for the account `user`:
    /// credentials first, then the extra elements in order, one per line.
    pub fn to_element(&self, user: &str) -> Element {
        let mut el = Element::new(USER, ns::SPOOL);
        set_name(&mut el, user);
        for cred in &self.credentials {
            el.append_text("\n  ");
            el.append_child(credential_to_element(cred));
        }
        for extra in &self.extra {
            el.append_text("\n  ");
            el.append_child(extra.clone());
        }
        el.append_text("\n");
        el
    }

    /// The whole file: an XML declaration, the document element and a final
    /// newline.
    pub fn to_document(&self, user: &str) -> Vec<u8> {
        let mut out = b"<?xml version='1.0' encoding='UTF-8'?>\n".to_vec();
        self.to_element(user).write_to(&mut out, None);
        out.push(b'\n');
        out
    }
}

/// The account name stored in a spool document, if any (hand-written files
/// may leave it out).
pub fn stored_user_name(el: &Element) -> Result<Option<String>, RecordError> {
    check_root(el)?;
    stored_name(el)
}

/// Writes a name as `name=`, or percent-encoded as `encoded-name=` when it
/// holds characters XML cannot carry.
fn set_name(el: &mut Element, name: &str) {
    if name.chars().all(is_xml_char) {
        el.set_attr("name", name);
    } else {
        el.set_attr("encoded-name", encode_plain(name));
    }
}

/// Reads what [`set_name`] wrote.
fn stored_name(el: &Element) -> Result<Option<String>, RecordError> {
    let root = &el.name;
    match (el.attr("name"), el.attr("encoded-name")) {
        (Some(_), Some(_)) => Err(RecordError::at(
            el.span,
            format!("both name= and encoded-name= on <{root}/>"),
        )),
        (Some(name), None) => Ok(Some(name.to_owned())),
        (None, Some(enc)) => percent_decode(enc).map(Some).ok_or_else(|| {
            RecordError::at(el.span, format!("malformed encoded-name= on <{root}/>"))
        }),
        (None, None) => Ok(None),
    }
}

/// The host document for `host` holding `data`, one element per line, as
/// a whole file (XML declaration and final newline included).
pub fn host_to_document(host: &str, data: &[Element]) -> Vec<u8> {
    let mut el = Element::new(HOST, ns::SPOOL);
    set_name(&mut el, host);
    for d in data {
        el.append_text("\n  ");
        el.append_child(d.clone());
    }
    el.append_text("\n");
    let mut out = b"<?xml version='1.0' encoding='UTF-8'?>\n".to_vec();
    el.write_to(&mut out, None);
    out.push(b'\n');
    out
}

/// Reads a `<host/>` document element: the host name it states (if any)
/// and its child elements in order. Whitespace between children is layout;
/// any other text is an error, as in a user document.
pub fn host_from_element(el: &Element) -> Result<(Option<String>, Vec<Element>), RecordError> {
    if !el.is(HOST, ns::SPOOL) {
        return Err(RecordError::at(
            el.span,
            format!(
                "the root element is <{}/> in namespace '{}', not <host/> in '{}'",
                el.name,
                el.ns,
                ns::SPOOL
            ),
        ));
    }
    let name = stored_name(el)?;
    let mut data = Vec::new();
    for node in &el.children {
        match node {
            Node::Element(child) => data.push(child.clone()),
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => return Err(RecordError::at(el.span, "text directly inside <host/>")),
        }
    }
    Ok((name, data))
}

fn check_root(el: &Element) -> Result<(), RecordError> {
    if el.is(USER, ns::SPOOL) {
        Ok(())
    } else {
        Err(RecordError::at(
            el.span,
            format!(
                "the root element is <{}/> in namespace '{}', not <user/> in '{}'",
                el.name,
                el.ns,
                ns::SPOOL
            ),
        ))
    }
}

fn credential_from_element(el: &Element) -> Result<ScramCredential, RecordError> {
    let attr = |name: &str| {
        el.attr(name)
            .ok_or_else(|| RecordError::at(el.span, format!("<scram/> without {name}=")))
    };
    let bytes = |name: &str| {
        let value = attr(name)?;
        BASE64
            .decode(value)
            .map_err(|e| RecordError::at(el.span, format!("<scram/> {name}= is not base64: {e}")))
    };
    let hash = attr("hash")?;
    if hash.is_empty() {
        return Err(RecordError::at(el.span, "<scram/> with an empty hash="));
    }
    let iterations = attr("iterations")?;
    // `u32::from_str` alone would accept a leading `+`; a count is digits.
    let iterations = iterations
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| iterations.parse::<u32>().ok())
        .flatten()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            RecordError::at(
                el.span,
                format!("<scram/> iterations='{iterations}' is not a positive count"),
            )
        })?;
    Ok(ScramCredential {
        hash: hash.to_owned(),
        salt: bytes("salt")?,
        iterations,
        stored_key: bytes("stored-key")?,
        server_key: bytes("server-key")?,
    })
}

fn credential_to_element(cred: &ScramCredential) -> Element {
    Element::new(SCRAM, ns::SPOOL)
        .with_attr("hash", cred.hash.as_str())
        .with_attr("iterations", cred.iterations.to_string())
        .with_attr("salt", BASE64.encode(&cred.salt))
        .with_attr("stored-key", BASE64.encode(&cred.stored_key))
        .with_attr("server-key", BASE64.encode(&cred.server_key))
}

/// Whether every name, attribute and piece of text in `el` (recursively)
/// consists of characters XML can carry. The serializer does not check this
/// (it cannot fail), so the spool does before writing.
pub fn is_representable(el: &Element) -> bool {
    let ok = |s: &str| s.chars().all(is_xml_char);
    ok(&el.name)
        && ok(&el.ns)
        && el.attrs.iter().all(|(k, v)| ok(k) && ok(v))
        && el.children.iter().all(|n| match n {
            Node::Element(e) => is_representable(e),
            Node::Text(t) => ok(t),
        })
}

/// The XML 1.0 `Char` production: what a document may contain at all, even
/// as a character reference.
pub fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(hash: &str) -> ScramCredential {
        ScramCredential {
            hash: hash.into(),
            salt: b"salty".to_vec(),
            iterations: 4096,
            stored_key: vec![1, 2, 3, 255],
            server_key: vec![0; 32],
        }
    }

    fn sample() -> UserRecord {
        UserRecord {
            credentials: vec![cred("SHA-1"), cred("SHA-256")],
            extra: vec![
                Element::new("query", "jabber:iq:roster").with_child(
                    Element::new("item", "jabber:iq:roster")
                        .with_attr("jid", "bob@example.com")
                        .with_text("  spaced  "),
                ),
                Element::new("vCard", "vcard-temp"),
                Element::new("note", ns::SPOOL).with_text("kept"),
            ],
        }
    }

    #[test]
    fn element_round_trip_in_memory() {
        let rec = sample();
        let el = rec.to_element("alice");
        assert_eq!(el.attr("name"), Some("alice"));
        assert_eq!(UserRecord::from_element(&el).unwrap(), rec);
        assert_eq!(stored_user_name(&el).unwrap().as_deref(), Some("alice"));
    }

    #[test]
    fn document_layout() {
        let doc = String::from_utf8(sample().to_document("alice")).unwrap();
        assert!(doc.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<user xmlns=\"urn:switchboard:spool:1\" name=\"alice\">\n  <scram hash=\"SHA-1\" iterations=\"4096\" salt=\"c2FsdHk=\""), "{doc}");
        assert!(doc.ends_with("\n</user>\n"), "{doc}");
        assert!(doc.contains("\n  <vCard xmlns=\"vcard-temp\"/>"), "{doc}");
        assert!(doc.contains("\n  <note>kept</note>"), "{doc}");
    }

    #[test]
    fn names_xml_cannot_carry_are_percent_encoded() {
        let el = UserRecord::default().to_element("a\0b");
        assert_eq!(el.attr("name"), None);
        assert_eq!(el.attr("encoded-name"), Some("a%00b"));
        assert_eq!(stored_user_name(&el).unwrap().as_deref(), Some("a\0b"));
        let el = UserRecord::default().to_element("Ä<&'\"");
        assert_eq!(el.attr("name"), Some("Ä<&'\""));
    }

    fn err(el: &Element) -> RecordError {
        UserRecord::from_element(el).unwrap_err()
    }

    #[test]
    fn wrong_root_is_refused() {
        let mut el = Element::new("user", "jabber:client");
        el.span = Span { line: 2, col: 3 };
        let e = err(&el);
        assert_eq!((e.line, e.col), (2, 3));
        assert!(e.message.contains("namespace"), "{e}");
        assert!(UserRecord::from_element(&Element::new("xuser", ns::SPOOL)).is_err());
        assert!(stored_user_name(&Element::new("xuser", ns::SPOOL)).is_err());
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let good = credential_to_element(&cred("SHA-256"));
        let base = |c: Element| Element::new(USER, ns::SPOOL).with_child(c);
        assert!(UserRecord::from_element(&base(good.clone())).is_ok());
        for (attr, value) in [
            ("salt", "not base64!"),
            ("stored-key", "AAA"),
            ("server-key", "=="),
            ("iterations", "many"),
            ("iterations", "0"),
            ("iterations", "-1"),
            ("iterations", "+5"),
            ("iterations", "4294967296"),
            ("iterations", ""),
            ("hash", ""),
        ] {
            let mut c = good.clone();
            c.set_attr(attr, value);
            c.span = Span { line: 7, col: 9 };
            let e = err(&base(c));
            assert_eq!((e.line, e.col), (7, 9), "{attr}={value}");
            assert!(e.message.contains(attr), "{attr}={value}: {e}");
        }
        for attr in ["hash", "salt", "iterations", "stored-key", "server-key"] {
            let mut c = good.clone();
            c.remove_attr(attr);
            assert!(err(&base(c)).message.contains(attr));
        }
        let dup = base(good.clone()).with_child(good);
        assert!(err(&dup).message.contains("second"));
    }

    #[test]
    fn representability() {
        assert!(is_representable(&sample().extra[0]));
        assert!(!is_representable(&Element::new("x", "u").with_text("a\0b")));
        assert!(!is_representable(
            &Element::new("x", "u").with_attr("a", "\u{FFFE}")
        ));
        let nested = Element::new("x", "u").with_child(Element::new("y", "u").with_text("\u{1}"));
        assert!(!is_representable(&nested));
    }

    #[test]
    fn stray_text_is_refused_but_whitespace_is_layout() {
        let el = Element::new(USER, ns::SPOOL).with_text(" \n\t ");
        assert_eq!(
            UserRecord::from_element(&el).unwrap(),
            UserRecord::default()
        );
        let el = Element::new(USER, ns::SPOOL).with_text("password=hunter2");
        assert!(err(&el).message.contains("text"));
    }

    #[test]
    fn host_documents_round_trip_and_are_strict() {
        let data = vec![
            Element::new("motd", ns::SPOOL).with_attr("series", "2"),
            Element::new("other", "urn:x").with_text("kept"),
        ];
        let doc = host_to_document("example.com", &data);
        let text = String::from_utf8(doc.clone()).unwrap();
        assert!(
            text.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<host xmlns=\"urn:switchboard:spool:1\" name=\"example.com\">\n  <motd series=\"2\"/>"),
            "{text}"
        );
        let root =
            switchboard_xml::parse_document(&doc, switchboard_xml::Limits::default()).unwrap();
        let (name, back) = host_from_element(&root).unwrap();
        assert_eq!(name.as_deref(), Some("example.com"));
        assert_eq!(back, data);
        assert!(host_from_element(&Element::new(USER, ns::SPOOL)).is_err());
        let stray = Element::new(HOST, ns::SPOOL).with_text("motd=hello");
        assert!(host_from_element(&stray)
            .unwrap_err()
            .message
            .contains("text"));
    }

    #[test]
    fn conflicting_name_attributes_are_refused() {
        let el = Element::new(USER, ns::SPOOL)
            .with_attr("name", "a")
            .with_attr("encoded-name", "a");
        assert!(stored_user_name(&el).is_err());
        let el = Element::new(USER, ns::SPOOL).with_attr("encoded-name", "%zz");
        assert!(stored_user_name(&el).is_err());
        assert_eq!(
            stored_user_name(&Element::new(USER, ns::SPOOL)).unwrap(),
            None
        );
    }
}
