//! Escaping for character data and attribute values.
//!
//! Text escapes `&`, `<` and `>` (the last so that `]]>` can never appear);
//! attribute values also escape both quote characters and the whitespace
//! characters that attribute-value normalization would otherwise destroy.
//!
//! Characters XML 1.0 does not allow at all (the C0 controls other than
//! tab, line feed and carriage return, and U+FFFE and U+FFFF) cannot be
//! written even as references, so both become U+FFFD REPLACEMENT
//! CHARACTER: whatever text an element was built with (an error message
//! quoting a client's bytes, a line from an IRC server), what goes out is
//! well-formed.

/// U+FFFD in UTF-8.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// How many bytes at `i` (a character boundary) form a character XML
/// forbids: a C0 control other than tab, LF and CR is one byte, U+FFFE
/// and U+FFFF are three (EF BF BE, EF BF BF); 0 for an allowed one.
fn forbidden_at(bytes: &[u8], i: usize) -> usize {
    match bytes[i] {
        b'\t' | b'\n' | b'\r' => 0,
        0x00..=0x1F => 1,
        0xEF if bytes.get(i + 1) == Some(&0xBF)
            && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
        {
            3
        }
        _ => 0,
    }
}

pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape(s, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    });
}

pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape(s, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&apos;"),
        b'\t' => Some(b"&#9;"),
        b'\n' => Some(b"&#10;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    });
}

/// Copies `s` to `out`, replacing the ASCII bytes `rep` names and the
/// characters XML forbids.
fn escape(s: &str, out: &mut Vec<u8>, rep: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (with, len): (&[u8], usize) = match rep(bytes[i]) {
            Some(r) => (r, 1),
            None => match forbidden_at(bytes, i) {
                0 => {
                    i += 1;
                    continue;
                }
                n => (REPLACEMENT, n),
            },
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(with);
        i += len;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = Vec::new();
        escape_text(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn attr(s: &str) -> String {
        let mut out = Vec::new();
        escape_attr(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn markup_and_whitespace_are_escaped() {
        assert_eq!(text("a<b>&c\r\n\t"), "a&lt;b&gt;&amp;c&#13;\n\t");
        assert_eq!(attr("'\"<\t\n"), "&apos;&quot;&lt;&#9;&#10;");
        assert_eq!(text("plain é 😀"), "plain é 😀");
    }

    #[test]
    fn characters_xml_forbids_become_the_replacement_character() {
        assert_eq!(text("a\0b\x07c\x1Fd"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d");
        assert_eq!(attr("\x01\u{FFFE}\u{FFFF}x"), "\u{FFFD}\u{FFFD}\u{FFFD}x");
        // Neighbours of U+FFFE that are allowed stay.
        assert_eq!(text("\u{FFFD}\u{FFEF}\u{EFFF}"), "\u{FFFD}\u{FFEF}\u{EFFF}");
    }
}
