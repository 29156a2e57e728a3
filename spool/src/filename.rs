//! Turning host and user names into safe file names, and back.
//!
//! Names reach the spool already normalized (RFC 7622), but a normalized
//! localpart may still be `..`, `con`, contain `/`, `\`, a NUL byte, upper- or
//! non-ASCII letters, or be a thousand bytes long. None of that may reach the
//! file system as is, so every host directory and user file name goes
//! through [`encode_name`]:
//!
//! * `a`–`z`, `0`–`9`, `_` and `-` are kept;
//! * `.` is kept too, except as the first or last character (so `.`, `..`,
//!   hidden files and the trailing dots Windows strips can never appear), so
//!   that `example.com` and `john.doe` stay readable;
//! * every other byte of the UTF-8 form, `%` and `~` included, becomes `%XX`
//!   with upper-case hex digits;
//! * a Windows device name (`con`, `prn`, `aux`, `nul`, `com1`–`com9`,
//!   `lpt1`–`lpt9`) before the first `.` gets its first character
//!   percent-encoded, so `con` becomes `%63on`;
//! * a result longer than [`MAX_ENCODED_LEN`] bytes (or an empty name) is
//!   replaced by a prefix of the encoding, `~`, and the lower-case hex
//!   SHA-256 of the name. Such a name cannot be decoded from the file name;
//!   the spool document stores the real name for that case.
//!
//! The encoding is injective: for names that are not hashed,
//! [`decode_name`] inverts it exactly, and hashed names are told apart by the
//! `~`, which an unhashed encoding never contains. It stays injective on
//! case-insensitive file systems too, because literal letters are always
//! lower case and escape digits always upper case, so two encodings that
//! differ only in case cannot both be produced.

use sha2::{Digest, Sha256};

/// The longest encoding kept as is; longer ones are hashed. With `.xml`, or
/// the temporary-file decoration (`.` + name + `.tmp.<pid>.<counter>`), the
/// file name stays well under the usual 255-byte limit.
pub const MAX_ENCODED_LEN: usize = 150;

/// How much of a too-long encoding is kept, for the admin's benefit, in
/// front of the hash.
const HASHED_PREFIX_LEN: usize = 64;

/// Marks a hashed encoding. Never produced by the plain encoding, which
/// percent-encodes `~`.
const HASH_MARK: char = '~';

/// Device names Windows reserves in every directory, whatever the extension.
const WINDOWS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The file stem of a host's own data (`<host>/+host.xml`, see
/// [`crate::file_spool`]). It can never be the encoding of a user name:
/// [`encode_name`] percent-encodes `+` (it keeps only `[a-z0-9_.-]`, and
/// writes `%`, `~` and upper-case hex digits of its own), so no account,
/// however it is named, gets this file or its lock. Since `+` has no case,
/// that holds on case-insensitive file systems too.
pub const HOST_DATA_STEM: &str = "+host";

/// Encodes a host or user name as a single, safe path component (see the
/// module documentation for the scheme). The result is never empty, never
/// starts with `.`, and holds only `[a-z0-9_.%~A-F-]`.
pub fn encode_name(name: &str) -> String {
    let plain = encode_plain(name);
    if plain.is_empty() || plain.len() > MAX_ENCODED_LEN {
        hashed(name, &plain)
    } else {
        plain
    }
}

/// Whether an encoding is the hashed form, which [`decode_name`] cannot
/// invert.
pub fn is_hashed(encoded: &str) -> bool {
    encoded.contains(HASH_MARK)
}

/// Inverts [`encode_name`] for names that were not hashed. Returns `None` for
/// hashed encodings and for anything `encode_name` would not have produced
/// (such as a file someone dropped into the spool by hand), so that each
/// file name maps back to at most one user.
pub fn decode_name(encoded: &str) -> Option<String> {
    if is_hashed(encoded) {
        return None;
    }
    let name = percent_decode(encoded)?;
    // Only the canonical spelling decodes, which rejects lower-case hex,
    // needlessly escaped characters and literal characters the encoder
    // never leaves alone.
    (encode_name(&name) == encoded).then_some(name)
}

/// Undoes `%XX` escapes (upper-case hex only) and leaves every other
/// character alone. Unlike [`decode_name`] it accepts non-canonical input;
/// `None` if an escape is malformed or the bytes are not UTF-8.
pub fn percent_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The plain (never hashed) encoding, whatever its length: what
/// [`encode_name`] produces for names that are short enough.
pub fn encode_plain(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let device = is_windows_device(name);
    for (i, &b) in bytes.iter().enumerate() {
        let keep = match b {
            b'a'..=b'z' => !(i == 0 && device),
            b'0'..=b'9' | b'_' | b'-' => true,
            b'.' => i != 0 && i != bytes.len() - 1,
            _ => false,
        };
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[usize::from(b >> 4)] as char);
            out.push(HEX_UPPER[usize::from(b & 0xF)] as char);
        }
    }
    out
}

/// Whether the part of a name before its first `.` is a Windows device
/// name. Only exact lower-case matches count: upper-case letters are
/// percent-encoded anyway, so `CON` can never come out as a device name.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    WINDOWS_DEVICES.contains(&stem)
}

/// The hashed form: a prefix of the plain encoding that does not cut an
/// escape in half, the mark, and the SHA-256 of the name.
fn hashed(name: &str, plain: &str) -> String {
    let mut cut = plain.len().min(HASHED_PREFIX_LEN);
    // An escape is three bytes starting at `%`; back off if one straddles
    // the cut.
    if let Some(pct) = plain[..cut].rfind('%') {
        if pct + 3 > cut {
            cut = pct;
        }
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::with_capacity(cut + 1 + 64);
    out.push_str(&plain[..cut]);
    out.push(HASH_MARK);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    // Upper case only: the encoder never writes lower-case hex, and
    // accepting it would give one name two spellings.
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(encode_name("alice"), "alice");
        assert_eq!(encode_name("john.doe"), "john.doe");
        assert_eq!(encode_name("example.com"), "example.com");
        assert_eq!(encode_name("a_b-c9"), "a_b-c9");
    }

    #[test]
    fn dangerous_names_are_escaped() {
        assert_eq!(encode_name("."), "%2E");
        assert_eq!(encode_name(".."), "%2E%2E");
        assert_eq!(encode_name(".hidden"), "%2Ehidden");
        assert_eq!(encode_name("trailing."), "trailing%2E");
        assert_eq!(encode_name("a/b"), "a%2Fb");
        assert_eq!(encode_name("a\\b"), "a%5Cb");
        assert_eq!(encode_name("a\0b"), "a%00b");
        assert_eq!(encode_name("A"), "%41");
        assert_eq!(encode_name("%41"), "%2541");
        assert_eq!(encode_name("Ä"), "%C3%84");
        assert_eq!(encode_name("a~b"), "a%7Eb");
        assert_eq!(encode_name("a b"), "a%20b");
    }

    #[test]
    fn windows_devices_are_escaped() {
        assert_eq!(encode_name("con"), "%63on");
        assert_eq!(encode_name("nul"), "%6Eul");
        assert_eq!(encode_name("com1"), "%63om1");
        assert_eq!(encode_name("lpt9"), "%6Cpt9");
        assert_eq!(encode_name("con.txt"), "%63on.txt");
        assert_eq!(encode_name("CON"), "%43%4F%4E");
        assert_eq!(encode_name("console"), "console");
        assert_eq!(encode_name("com10"), "com10");
        for n in ["con", "nul", "com1", "lpt9", "con.txt"] {
            assert_eq!(decode_name(&encode_name(n)).as_deref(), Some(n));
        }
    }

    #[test]
    fn long_and_empty_names_are_hashed() {
        let long = "x".repeat(1000);
        let e = encode_name(&long);
        assert!(is_hashed(&e));
        assert!(e.len() <= MAX_ENCODED_LEN);
        assert!(e.starts_with(&"x".repeat(HASHED_PREFIX_LEN)));
        assert_eq!(decode_name(&e), None);
        assert_ne!(encode_name(&"x".repeat(1001)), e);

        let e = encode_name("");
        assert!(e.starts_with('~') && e.len() == 65, "{e}");

        // Exactly at the limit stays plain; one more byte hashes.
        let at = "y".repeat(MAX_ENCODED_LEN);
        assert_eq!(encode_name(&at), at);
        assert!(is_hashed(&encode_name(&"y".repeat(MAX_ENCODED_LEN + 1))));
    }

    #[test]
    fn hashed_prefix_never_cuts_an_escape() {
        for pad in 0..4 {
            let name = format!("{}{}", "a".repeat(pad), "Ä".repeat(200));
            let e = encode_name(&name);
            let prefix = e.split('~').next().unwrap();
            assert!(prefix.len() <= HASHED_PREFIX_LEN);
            let b = prefix.as_bytes();
            for (i, _) in prefix.match_indices('%') {
                assert!(i + 2 < b.len(), "escape cut in {prefix}");
                assert!(hex_value(b[i + 1]).is_some() && hex_value(b[i + 2]).is_some());
            }
        }
    }

    #[test]
    fn decode_rejects_non_canonical_spellings() {
        for bad in [
            "%41%",
            "%4",
            "%4a",
            "%61",
            "A",
            ".x",
            "x.",
            "%63on.xml%2",
            "con",
            "%FF",
            "a%2Fb/",
        ] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_host_data_stem_is_no_user_encoding() {
        assert_eq!(encode_name(HOST_DATA_STEM), "%2Bhost");
        assert_eq!(decode_name(HOST_DATA_STEM), None);
        assert!(!HOST_DATA_STEM.starts_with('.'));
    }

    fn safe_component(e: &str) -> bool {
        !e.is_empty()
            && e.len() <= MAX_ENCODED_LEN
            && !e.starts_with('.')
            && !e.ends_with('.')
            && e
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'%' | b'~' | b'A'..=b'F'))
            && !is_windows_device(e)
    }

    proptest! {
        #[test]
        fn encoding_is_safe_and_invertible(name in any::<String>()) {
            let e = encode_name(&name);
            prop_assert!(safe_component(&e), "{:?} -> {:?}", name, e);
            prop_assert!(!e.contains('+') && e != HOST_DATA_STEM);
            if !is_hashed(&e) {
                prop_assert_eq!(decode_name(&e), Some(name));
            }
        }

        #[test]
        fn ascii_ish_names_round_trip(name in "[a-zA-Z0-9.%~/\\\\_ -]{0,40}") {
            let e = encode_name(&name);
            prop_assert!(safe_component(&e));
            if !name.is_empty() {
                prop_assert_eq!(decode_name(&e), Some(name));
            }
        }

        #[test]
        fn distinct_names_give_distinct_file_names(
            a in "[a-dA-D.%~/\\x00Ä_-]{0,8}|.{0,200}",
            b in "[a-dA-D.%~/\\x00Ä_-]{0,8}|.{0,200}",
        ) {
            prop_assume!(a != b);
            let (ea, eb) = (encode_name(&a), encode_name(&b));
            // Distinct even on a case-insensitive file system.
            prop_assert_ne!(ea.to_ascii_lowercase(), eb.to_ascii_lowercase());
        }
    }
}
