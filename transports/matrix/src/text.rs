//! Text crossing between the networks, made safe both ways.
//!
//! Matrix JSON strings may hold any Unicode scalar, including characters
//! XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF); the XML layer
//! escapes markup but cannot carry those, so [`clean`] drops them before
//! any text from Matrix becomes an element's text or attribute. It also
//! bounds the length: a body, a topic or a name larger than the limit is
//! cut at a character boundary with a marker, never sent whole.
//!
//! The other way, [`path_segment`] percent-encodes identifiers (room ids,
//! event ids, transaction ids, user ids) before they become path
//! segments, so that a `/`, `?` or `#` in one can never change which
//! endpoint a request reaches.

/// The longest body relayed either way (bytes): far above what people
/// type, well below what would strain a client. Synapse's own limit on a
/// whole event is 64 KiB.
pub const MAX_BODY: usize = 60 * 1024;

/// The longest name, topic or status relayed.
pub const MAX_LINE: usize = 1024;

/// What a cut text ends with.
const CUT: &str = " […]";

/// Whether XML 1.0 allows the character (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// `s` without the characters XML cannot carry, at most `max` bytes.
pub fn clean(s: &str, max: usize) -> String {
    let kept: String = s.chars().filter(|c| xml_char(*c)).collect();
    if kept.len() <= max {
        return kept;
    }
    let mut end = max.saturating_sub(CUT.len());
    while !kept.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = kept[..end].to_owned();
    out.push_str(CUT);
    out
}

/// A one-line text (a name, a nick, a topic line): line breaks become
/// spaces.
pub fn clean_line(s: &str, max: usize) -> String {
    clean(s, max).replace(['\r', '\n'], " ")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_carry_are_dropped() {
        assert_eq!(clean("a\u{0}b\u{1b}[31mc\u{FFFE}d\ne", 100), "ab[31mcd\ne");
        assert_eq!(clean("😀 ok", 100), "😀 ok");
    }

    #[test]
    fn long_text_is_cut_at_a_character_with_a_marker() {
        let s = "é".repeat(100);
        let c = clean(&s, 50);
        assert!(c.len() <= 50, "{}", c.len());
        assert!(c.ends_with(" […]"), "{c}");
        assert_eq!(clean("short", 5), "short");
        assert_eq!(clean_line("a\r\nb", 10), "a  b");
    }

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert_eq!(path_segment("!a/b?c#d:e.f"), "%21a%2Fb%3Fc%23d%3Ae.f");
        assert_eq!(path_segment("$ev_1-2~"), "%24ev_1-2~");
    }
}
