//! Names as PostgreSQL text holds them. A name may be any Rust string (the
//! conformance suite stores `a\0b`), but PostgreSQL text cannot hold
//! U+0000. Names are therefore escaped with U+FFFF, a noncharacter that no
//! JID can contain (PRECIS refuses it): U+0000 becomes U+FFFF `0` and
//! U+FFFF itself U+FFFF `e`. Every other name is stored exactly as given,
//! so a table reads as the server's own names. The escaping keeps `/` and
//! `@` where they were, and maps a prefix to a prefix, which the archive's
//! `with` and domain columns rely on. Names travel as query parameters,
//! never inside SQL text.

use std::borrow::Cow;

const ESC: char = '\u{FFFF}';

/// The stored form of a name.
pub(crate) fn enc(name: &str) -> Cow<'_, str> {
    if !name.contains(['\0', ESC]) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push('0');
            }
            ESC => {
                out.push(ESC);
                out.push('e');
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A name back from its stored form; the text itself when [`enc`] never
/// writes it.
pub(crate) fn dec(stored: String) -> Result<String, String> {
    if !stored.contains(ESC) {
        return Ok(stored);
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            match chars.next() {
                Some('0') => out.push('\0'),
                Some('e') => out.push(ESC),
                _ => return Err(stored),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_plain_ones_are_unchanged() {
        for name in ["alice", "a\0b", "\u{FFFF}", "\u{FFFF}0", "%41", "a/b@c", ""] {
            assert_eq!(dec(enc(name).into_owned()).as_deref(), Ok(name));
            assert!(!enc(name).contains('\0'));
        }
        assert!(matches!(enc("alice%example.org"), Cow::Borrowed(_)));
        assert!(dec("x\u{FFFF}".into()).is_err());
        assert!(dec("x\u{FFFF}q".into()).is_err());
        // A prefix stays a prefix.
        assert!(enc("a\0b/res").starts_with(&*enc("a\0b")));
    }
}
