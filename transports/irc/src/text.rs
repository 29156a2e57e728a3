//! Text between IRC and XMPP.
//!
//! IRC → XMPP: a line's bytes are UTF-8 if they decode as such, else
//! Latin-1 (every byte is a character); mIRC colour and formatting codes
//! are removed, and so is every other control character, and anything XML
//! cannot carry — nothing from IRC reaches the XML writer unfiltered.
//! CTCP ACTION (`\x01ACTION waves\x01`) becomes `/me waves`.
//!
//! XMPP → IRC: a body is split into lines (one PRIVMSG each, empty lines
//! skipped), control characters are dropped, `/me ` becomes CTCP ACTION,
//! and each line is cut at a UTF-8 character boundary (at a space where
//! one is near) so that the whole command line *as the server relays it*,
//! with the sender's `:nick!user@host` prefix, stays within 512 bytes.

/// The IRC line limit, CR LF included (RFC 1459 §2.3).
pub const LINE_LIMIT: usize = 512;

/// Room kept for the `:nick!user@host ` prefix the server puts before a
/// relayed line: a user name of 10 and a host of 63 bytes, plus the nick.
const PREFIX_RESERVE: usize = 1 + 1 + 10 + 1 + 63 + 1;

/// Decodes a line from IRC: UTF-8, else Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Whether XML 1.0 can carry `c` (Rust strings hold no surrogates).
fn xml_char(c: char) -> bool {
    !matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// Removes mIRC formatting (bold, colours with their numbers, hex colours,
/// italics, underline, strike, monospace, reverse, reset) and every other
/// control character except tab.
pub fn strip_formatting(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x03' => {
                // \x03[fg[,bg]], each one or two digits.
                let mut took = 0;
                while took < 2 && chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                    took += 1;
                }
                if took > 0 && chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        let mut n = 0;
                        while n < 2 && chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                            n += 1;
                        }
                    }
                }
            }
            '\x04' => {
                // \x04[RRGGBB[,RRGGBB]]
                let mut ahead = chars.clone();
                if (0..6).all(|_| ahead.next().is_some_and(|c| c.is_ascii_hexdigit())) {
                    for _ in 0..6 {
                        chars.next();
                    }
                    let mut ahead = chars.clone();
                    if ahead.next() == Some(',')
                        && (0..6).all(|_| ahead.next().is_some_and(|c| c.is_ascii_hexdigit()))
                    {
                        for _ in 0..7 {
                            chars.next();
                        }
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() || !xml_char(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A PRIVMSG or NOTICE text from IRC as a message body: `None` for a CTCP
/// request other than ACTION (VERSION, PING, …), which is not for humans.
pub fn from_irc(text: &str) -> Option<String> {
    if let Some(rest) = text.strip_prefix('\x01') {
        let rest = rest.strip_suffix('\x01').unwrap_or(rest);
        let action = rest.strip_prefix("ACTION ")?;
        return Some(format!("/me {}", strip_formatting(action)));
    }
    Some(strip_formatting(text))
}

/// The bytes available for the text of `PRIVMSG target :text` so that the
/// relayed line, with a prefix for `nick`, fits in [`LINE_LIMIT`].
pub fn text_budget(target: &str, nick: &str) -> usize {
    let fixed = "PRIVMSG ".len() + target.len() + " :".len() + 2 + PREFIX_RESERVE + nick.len();
    LINE_LIMIT.saturating_sub(fixed).max(16)
}

/// Cuts `line` into pieces of at most `budget` bytes, at a character
/// boundary, preferring the last space in the second half of a piece.
fn split_line(line: &str, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while rest.len() > budget {
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ') {
            if space >= cut / 2 && space > 0 {
                cut = space;
            }
        }
        out.push(rest[..cut].to_string());
        rest = rest[cut..].strip_prefix(' ').unwrap_or(&rest[cut..]);
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// A message body from XMPP as PRIVMSG texts for `target`, sent by
/// `nick`: one per line of the body, each within the line limit, `/me`
/// as CTCP ACTION, control characters removed.
pub fn to_irc(body: &str, target: &str, nick: &str) -> Vec<String> {
    let (action, body) = match body.strip_prefix("/me ") {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let mut budget = text_budget(target, nick);
    if action {
        budget -= "\x01ACTION \x01".len();
    }
    let mut out = Vec::new();
    for line in body.split('\n') {
        let clean: String = line
            .chars()
            .filter(|c| *c == '\t' || !c.is_control())
            .collect();
        if clean.trim().is_empty() {
            continue;
        }
        for piece in split_line(&clean, budget) {
            out.push(if action {
                format!("\x01ACTION {piece}\x01")
            } else {
                piece
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_else_latin1() {
        assert_eq!(decode("café ☕".as_bytes()), "café ☕");
        assert_eq!(decode(b"caf\xe9"), "café");
        assert_eq!(decode(b"\xff\xfe"), "ÿþ");
    }

    #[test]
    fn strips_colours_formatting_and_controls() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x1ditalic\x1d"),
            "bold italic"
        );
        assert_eq!(
            strip_formatting("\x0304red\x03 \x034,12on blue\x0f!"),
            "red on blue!"
        );
        assert_eq!(strip_formatting("\x0312,3x"), "x");
        assert_eq!(
            strip_formatting("\x03,5x"),
            ",5x",
            "a comma without fg stays"
        );
        assert_eq!(strip_formatting("100\x03 5"), "100 5");
        assert_eq!(strip_formatting("\x04FF0000red\x04"), "red");
        assert_eq!(strip_formatting("\x04ff0000,00ff00x"), "x");
        assert_eq!(strip_formatting("a\x00b\x07c\x1bd\x7fe\u{85}f"), "abcdef");
        assert_eq!(strip_formatting("tab\there\u{FFFF}"), "tab\there");
        assert_eq!(strip_formatting("\x1funder\x1e\x11\x16"), "under");
    }

    #[test]
    fn ctcp_action_and_other_ctcp() {
        assert_eq!(
            from_irc("\x01ACTION waves\x01").as_deref(),
            Some("/me waves")
        );
        assert_eq!(from_irc("\x01ACTION waves").as_deref(), Some("/me waves"));
        assert_eq!(from_irc("\x01VERSION\x01"), None);
        assert_eq!(from_irc("hi \x02there").as_deref(), Some("hi there"));
        assert_eq!(
            to_irc("/me waves", "#t", "alice"),
            vec!["\x01ACTION waves\x01"]
        );
        assert_eq!(to_irc("/mean", "#t", "alice"), vec!["/mean"]);
    }

    #[test]
    fn multi_line_bodies_become_several_lines_without_controls() {
        assert_eq!(
            to_irc("one\r\ntwo\n\n  \nthree\x00\x01", "#t", "a"),
            vec!["one", "two", "three"]
        );
        assert!(to_irc("\n\n", "#t", "a").is_empty());
    }

    #[test]
    fn long_lines_are_split_within_the_limit_at_char_boundaries() {
        let target = "#test";
        let nick = "alice";
        let body: String = "é€😀 word ".repeat(200);
        let pieces = to_irc(&body, target, nick);
        assert!(pieces.len() > 3);
        for p in &pieces {
            let relayed = format!(
                ":{nick}!{}@{} PRIVMSG {target} :{p}\r\n",
                "u".repeat(10),
                "h".repeat(63)
            );
            assert!(relayed.len() <= LINE_LIMIT, "{} bytes", relayed.len());
        }
        let joined = pieces.join(" ");
        assert_eq!(
            joined.split_whitespace().collect::<Vec<_>>(),
            body.split_whitespace().collect::<Vec<_>>()
        );
        let solid = "€".repeat(400);
        let pieces = to_irc(&solid, target, nick);
        assert_eq!(pieces.concat(), solid);
        let actions = to_irc(&format!("/me {}", "x".repeat(1000)), target, nick);
        assert!(actions
            .iter()
            .all(|a| a.starts_with("\x01ACTION ") && a.ends_with('\x01')));
        assert!(actions.iter().all(|a| a.len() <= text_budget(target, nick)));
    }
}
