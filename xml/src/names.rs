//! XML name validation (XML 1.0 fifth edition `Name`, Namespaces in XML
//! `NCName`/`QName`).
//!
//! quick-xml only splits a tag at the first whitespace and does not look at
//! the characters of a name, so `<1a>`, `<a"b>` or `<:x>` would get through;
//! every element and attribute name passes through [`split_qname`] instead
//! (after the whole tag was checked to be UTF-8).

/// Splits a qualified name into `(prefix, local)` after checking that both
/// parts are `NCName`s (at most one colon, neither part empty). Returns
/// `None` for anything that is not a valid `QName`.
pub(crate) fn split_qname(s: &str) -> Option<(Option<&str>, &str)> {
    let (prefix, local) = match s.split_once(':') {
        None => (None, s),
        Some((p, l)) => (Some(p), l),
    };
    let ok = is_ncname(local) && prefix.is_none_or(is_ncname);
    ok.then_some((prefix, local))
}

/// An XML `Name` without colons.
pub(crate) fn is_ncname(s: &str) -> bool {
    if s.is_ascii() {
        // Fast path for the usual all-ASCII name: byte checks only.
        return match s.as_bytes().split_first() {
            Some((first, rest)) => {
                (first.is_ascii_alphabetic() || *first == b'_')
                    && rest
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            }
            None => false,
        };
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => chars.all(is_name_char),
        _ => false,
    }
}

fn is_name_start(c: char) -> bool {
    // ASCII first: nearly every name on the wire is ASCII.
    if c.is_ascii() {
        return c.is_ascii_alphabetic() || c == '_';
    }
    matches!(c,
        '\u{C0}'..='\u{D6}'
        | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}'
        | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    }
    is_name_start(c) || matches!(c, '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qnames() {
        assert_eq!(split_qname("message"), Some((None, "message")));
        assert_eq!(split_qname("c:message"), Some((Some("c"), "message")));
        assert_eq!(split_qname("a-b.c_d9"), Some((None, "a-b.c_d9")));
        assert_eq!(split_qname("été"), Some((None, "été")));
        assert_eq!(split_qname("日本:語"), Some((Some("日本"), "語")));
        for bad in [
            "", ":", ":a", "a:", "a:b:c", "1a", "-a", ".a", "a b", "a\"b", "a=b", "a/", "a<",
            "a&b", "é:1", "a\u{0}",
        ] {
            assert_eq!(split_qname(bad), None, "{bad:?}");
        }
        // U+00D7 (multiplication sign) is excluded from names.
        assert_eq!(split_qname("a×"), None);
        // U+00B7 may follow but not start a name.
        assert!(split_qname("a·").is_some());
        assert!(split_qname("·a").is_none());
    }
}
