//! Room nicknames: the PRECIS Nickname profile (RFC 8266), as XEP-0045
//! §7.2 asks, plus the look-alike tricks the profile lets through.
//!
//! [`enforce`] gives the form a nick is shown in (spaces trimmed and
//! collapsed, NFKC); [`key`] gives the form two nicks are compared in
//! (also case-folded), so "Romeo" and "romeo " are one occupant.
//!
//! The Nickname profile is built on the FreeformClass, which admits
//! characters that make one nick look like another: bidirectional
//! overrides and isolates (U+202A–U+202E, U+2066–U+2069) that show
//! "olleh" as "hello", marks of direction (U+200E, U+200F, U+061C), and
//! invisible characters (zero-width space and joiners, word joiner,
//! byte-order mark, soft hyphen, the invisible operators). Prosody and
//! ejabberd users expect a nick to be what it looks like, so those are
//! refused here as well.

use std::borrow::Cow;

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::Nickname;
use unicode_normalization::UnicodeNormalization;

/// The longest nick, in characters, after enforcement.
pub const MAX_CHARS: usize = 64;

/// Why a nick is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    /// The Nickname profile refuses it (a control character, …).
    Profile,
    /// A character that changes how the nick looks without being seen.
    Invisible(char),
}

impl std::fmt::Display for NickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NickError::Empty => f.write_str("the nickname is empty"),
            NickError::TooLong => write!(f, "the nickname is longer than {MAX_CHARS} characters"),
            NickError::Profile => {
                f.write_str("the nickname has a character nicknames may not contain")
            }
            NickError::Invisible(c) => write!(
                f,
                "the nickname contains the invisible or direction-changing character U+{:04X}",
                *c as u32
            ),
        }
    }
}

/// Characters refused on top of the profile (see the module docs).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                 // soft hyphen
        | '\u{061C}'               // Arabic letter mark
        | '\u{115F}' | '\u{1160}'  // Hangul fillers
        | '\u{180E}'               // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'  // zero-width space, joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'  // embeddings and overrides
        | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'  // isolates
        | '\u{3164}'               // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'  // variation selectors
        | '\u{FEFF}'               // byte-order mark
        | '\u{FFA0}'               // halfwidth Hangul filler
    )
}

/// The nick as it is shown, or why it is refused.
pub fn enforce(nick: &str) -> Result<String, NickError> {
    if nick.trim().is_empty() {
        return Err(NickError::Empty);
    }
    if let Some(c) = nick.chars().find(|c| invisible(*c)) {
        return Err(NickError::Invisible(c));
    }
    let out: Cow<'_, str> = Nickname::enforce(nick).map_err(|_| NickError::Profile)?;
    if let Some(c) = out.chars().find(|c| invisible(*c)) {
        return Err(NickError::Invisible(c));
    }
    if out.chars().count() > MAX_CHARS {
        return Err(NickError::TooLong);
    }
    Ok(out.into_owned())
}

/// The comparison form of an enforced nick: RFC 8266 §2.4 compares after
/// case mapping, so occupants "Romeo" and "ROMEO" collide.
pub fn key(enforced: &str) -> String {
    let lower: String = enforced.to_lowercase();
    lower.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_trimmed_and_case_is_kept_for_display() {
        assert_eq!(enforce("  Romeo   Montague ").unwrap(), "Romeo Montague");
        assert_eq!(key("Romeo"), key(&enforce("ROMEO").unwrap()));
    }

    #[test]
    fn compatibility_forms_fold() {
        // Fullwidth letters are NFKC-mapped to ASCII.
        assert_eq!(enforce("ｒｏｍｅｏ").unwrap(), "romeo");
    }

    #[test]
    fn direction_overrides_and_invisibles_are_refused() {
        assert_eq!(
            enforce("abc\u{202E}def"),
            Err(NickError::Invisible('\u{202E}'))
        );
        assert_eq!(
            enforce("ro\u{200B}meo"),
            Err(NickError::Invisible('\u{200B}'))
        );
        assert_eq!(enforce("\u{2066}x"), Err(NickError::Invisible('\u{2066}')));
        assert_eq!(enforce("   "), Err(NickError::Empty));
        assert_eq!(enforce("a\u{0007}b"), Err(NickError::Profile));
        assert_eq!(enforce(&"x".repeat(MAX_CHARS + 1)), Err(NickError::TooLong));
    }

    #[test]
    fn ordinary_unicode_nicks_pass() {
        assert_eq!(enforce("Джульетта").unwrap(), "Джульетта");
        assert_eq!(enforce("ロミオ").unwrap(), "ロミオ");
        assert_eq!(enforce("naïve ☕").unwrap(), "naïve ☕");
    }
}
