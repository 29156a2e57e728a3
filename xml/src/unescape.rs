//! Decoding of character data: UTF-8 and XML `Char` validation, line-end
//! normalization, attribute-value normalization and reference expansion.
//!
//! This is done here rather than with quick-xml's unescaping because the
//! latter is more lenient than XMPP allows: only the five predefined entities
//! exist (there is no DTD to declare others), character references must name
//! an XML 1.0 `Char`, and raw control characters are not well-formed.
//!
//! Every function takes a complete segment (the caller decides where segments
//! end, holding back bytes that might continue in the next network read) and
//! appends to an existing `String`, so decoding allocates nothing beyond the
//! output's growth.

use crate::error::XmlError;

/// A decoding failure, `at` bytes into the segment.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub error: XmlError,
    pub at: usize,
}

fn fail(at: usize, msg: impl Into<String>) -> DecodeError {
    DecodeError {
        error: XmlError::NotWellFormed(msg.into()),
        at,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Element content: references expanded, `]]>` refused.
    Text,
    /// Attribute value: references expanded, whitespace normalized, `<` refused.
    Attr,
    /// CDATA section content: taken literally.
    CData,
}

/// Which bytes need a closer look, per kind. Everything else is copied in
/// runs. All flagged bytes are ASCII except 0xEF, the lead byte of U+FFFE and
/// U+FFFF (the only non-characters in valid UTF-8 that XML excludes;
/// surrogates are already impossible in valid UTF-8), so runs always end on
/// character boundaries.
const fn table(kind: Kind) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[0xEF] = true;
    match kind {
        Kind::Text => {
            t[b'\t' as usize] = false;
            t[b'\n' as usize] = false;
            t[b'&' as usize] = true;
            t[b'>' as usize] = true;
        }
        Kind::Attr => {
            t[b'&' as usize] = true;
            t[b'<' as usize] = true;
        }
        Kind::CData => {
            t[b'\t' as usize] = false;
            t[b'\n' as usize] = false;
        }
    }
    t
}

static TEXT: [bool; 256] = table(Kind::Text);
static ATTR: [bool; 256] = table(Kind::Attr);
static CDATA: [bool; 256] = table(Kind::CData);

/// Decodes element character data (between tags) and appends it to `out`.
pub(crate) fn text(seg: &[u8], out: &mut String) -> Result<(), DecodeError> {
    decode(utf8(seg)?, out, Kind::Text)
}

/// Decodes an attribute value (without its quotes, from a tag already
/// checked to be UTF-8) and appends it to `out`.
pub(crate) fn attr(value: &str, out: &mut String) -> Result<(), DecodeError> {
    decode(value, out, Kind::Attr)
}

/// Decodes the content of a CDATA section and appends it to `out`.
pub(crate) fn cdata(seg: &[u8], out: &mut String) -> Result<(), DecodeError> {
    decode(utf8(seg)?, out, Kind::CData)
}

/// Checks that a comment's content is made of XML characters.
pub(crate) fn check_chars(seg: &[u8]) -> Result<(), DecodeError> {
    let s = utf8(seg)?;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return Err(control(i, b));
        }
        if b == 0xEF {
            check_ef(s.as_bytes(), i)?;
        }
    }
    Ok(())
}

fn utf8(seg: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(seg).map_err(|e| fail(e.valid_up_to(), "invalid UTF-8"))
}

fn control(at: usize, b: u8) -> DecodeError {
    fail(at, format!("character U+{b:04X} is not allowed in XML"))
}

/// U+FFFE and U+FFFF are encoded as EF BF BE and EF BF BF.
fn check_ef(bytes: &[u8], i: usize) -> Result<(), DecodeError> {
    if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) {
        return Err(fail(
            i,
            "characters U+FFFE and U+FFFF are not allowed in XML",
        ));
    }
    Ok(())
}

/// The callers validate UTF-8 for a whole segment or tag at once (far
/// faster than per-character work), so runs are copied as `&str` here.
fn decode(s: &str, out: &mut String, kind: Kind) -> Result<(), DecodeError> {
    let seg = s.as_bytes();
    let table = match kind {
        Kind::Text => &TEXT,
        Kind::Attr => &ATTR,
        Kind::CData => &CDATA,
    };
    out.reserve(seg.len());
    let mut run = 0;
    let mut i = 0;
    // Skip to the next flagged byte (the common case is none at all).
    while let Some(n) = seg[i..].iter().position(|&b| table[b as usize]) {
        i += n;
        match seg[i] {
            b'&' => {
                out.push_str(&s[run..i]);
                let (c, len) = reference(&seg[i..]).map_err(|msg| fail(i, msg))?;
                out.push(c);
                i += len;
                run = i;
            }
            b'\r' => {
                // Line-end normalization (XML 1.0 §2.11): CR LF and lone CR
                // become LF; in attribute values that LF then becomes a
                // space (§3.3.3).
                out.push_str(&s[run..i]);
                out.push(if kind == Kind::Attr { ' ' } else { '\n' });
                i += if seg.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                run = i;
            }
            b'\t' | b'\n' => {
                // Only flagged for attribute values: literal whitespace is
                // normalized to a space (character references are not).
                out.push_str(&s[run..i]);
                out.push(' ');
                i += 1;
                run = i;
            }
            b'>' => {
                if i >= 2 && &seg[i - 2..i] == b"]]" {
                    return Err(fail(i - 2, "`]]>` is not allowed in character data"));
                }
                i += 1;
            }
            b'<' => return Err(fail(i, "`<` is not allowed in attribute values")),
            0xEF => {
                check_ef(seg, i)?;
                i += 1;
            }
            b => return Err(control(i, b)),
        }
    }
    out.push_str(&s[run..]);
    Ok(())
}

/// Expands the reference at the start of `bytes` (which begins with `&`),
/// returning the character and the length of the reference.
fn reference(bytes: &[u8]) -> Result<(char, usize), String> {
    let Some(end) = memchr::memchr(b';', bytes) else {
        return Err("`&` must start a reference ending with `;`".into());
    };
    let c = match &bytes[1..end] {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"quot" => '"',
        b"apos" => '\'',
        [b'#', b'x', hex @ ..] => char_ref(hex, 16)?,
        [b'#', dec @ ..] => char_ref(dec, 10)?,
        name => {
            return Err(format!(
                "undefined entity `&{};`",
                String::from_utf8_lossy(name)
            ))
        }
    };
    Ok((c, end + 1))
}

fn char_ref(digits: &[u8], radix: u32) -> Result<char, String> {
    let bad = || {
        format!(
            "invalid character reference `&#{}{};`",
            if radix == 16 { "x" } else { "" },
            String::from_utf8_lossy(digits)
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let mut value: u32 = 0;
    for &d in digits {
        let v = (d as char).to_digit(radix).ok_or_else(bad)?;
        // Saturate just above the Unicode range so that leading zeros are
        // fine but huge values cannot overflow.
        value = (value * radix + v).min(0x11_0000);
    }
    match char::from_u32(value) {
        Some(c) if is_xml_char(c) => Ok(c),
        _ => Err(bad()),
    }
}

/// XML 1.0 `Char`: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
/// [#x10000-#x10FFFF] (surrogates cannot be a `char`).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &[u8]) -> Result<String, usize> {
        let mut out = String::new();
        text(s, &mut out).map(|_| out).map_err(|e| e.at)
    }

    fn a(s: &[u8]) -> Result<String, usize> {
        let mut out = String::new();
        let s = std::str::from_utf8(s).unwrap();
        attr(s, &mut out).map(|_| out).map_err(|e| e.at)
    }

    #[test]
    fn entities_and_char_refs() {
        assert_eq!(
            t(b"a&lt;b&gt;c&amp;d&quot;e&apos;f").unwrap(),
            "a<b>c&d\"e'f"
        );
        assert_eq!(
            t(b"&#65;&#x42;&#x10FFFF;&#0000067;").unwrap(),
            "AB\u{10FFFF}C"
        );
        assert_eq!(t(b"&#9;&#10;&#13;").unwrap(), "\t\n\r");
        assert_eq!(t(b"x&nbsp;"), Err(1));
        assert_eq!(t(b"&#0;"), Err(0));
        assert_eq!(t(b"&#1;"), Err(0));
        assert_eq!(t(b"&#xD800;"), Err(0));
        assert_eq!(t(b"&#xFFFE;"), Err(0));
        assert_eq!(t(b"&#xFFFF;"), Err(0));
        assert_eq!(t(b"&#x110000;"), Err(0));
        assert_eq!(t(b"&#99999999999999999999;"), Err(0));
        assert_eq!(t(b"&#X41;"), Err(0));
        assert_eq!(t(b"&#;"), Err(0));
        assert_eq!(t(b"&#x;"), Err(0));
        assert_eq!(t(b"&#12a;"), Err(0));
        assert_eq!(t(b"AT&T"), Err(2));
        assert_eq!(t(b"&;"), Err(0));
    }

    #[test]
    fn raw_characters() {
        assert_eq!(t(b"a\x01"), Err(1));
        assert_eq!(t(b"\x00"), Err(0));
        assert_eq!(t(b"\x7f\t\n").unwrap(), "\x7f\t\n");
        assert_eq!(t("\u{FFFD}\u{FFFE}".as_bytes()), Err(3));
        assert_eq!(t("\u{FFFF}".as_bytes()), Err(0));
        assert_eq!(t(b"ab\xff"), Err(2));
        assert_eq!(t(b"ab\xed\xa0\x80"), Err(2)); // encoded surrogate
        assert_eq!(t(b"ab]]>"), Err(2));
        assert_eq!(t(b"ab]>]]&gt;").unwrap(), "ab]>]]>");
    }

    #[test]
    fn line_ends() {
        assert_eq!(t(b"a\r\nb\rc\n\r\n").unwrap(), "a\nb\nc\n\n");
        assert_eq!(a(b"a\r\nb\rc\nd\te").unwrap(), "a b c d e");
        assert_eq!(a(b"&#13;&#10;&#9;").unwrap(), "\r\n\t");
        let mut out = String::new();
        cdata(b"x\r\ny&amp;<", &mut out).unwrap();
        assert_eq!(out, "x\ny&amp;<");
    }

    #[test]
    fn attribute_specials() {
        assert_eq!(a(b"a<b"), Err(1));
        assert_eq!(a(b"]]>").unwrap(), "]]>");
        assert_eq!(a(b"&lt;&quot;").unwrap(), "<\"");
    }

    #[test]
    fn comments() {
        assert!(check_chars("ok \t\r\n é".as_bytes()).is_ok());
        assert_eq!(check_chars(b"a\x0bb").unwrap_err().at, 1);
        assert_eq!(check_chars(b"a\xc3").unwrap_err().at, 1);
    }
}
