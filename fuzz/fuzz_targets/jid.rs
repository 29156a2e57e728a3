//! JID parsing and the PRECIS profiles (RFC 7622, RFC 8264/8265/8266): no
//! panic, and what comes out is stable: a parsed JID's text parses to the
//! same JID, and normalizing a normalized part changes nothing (RFC 8264
//! §7 requires idempotence; the server relies on it for spool file names
//! and comparisons).
//!
//! Input: the text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_jid::{normalize_domain, normalize_localpart, normalize_resource, Jid};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(j) = Jid::parse(s) {
        let text = j.to_string();
        let again = Jid::parse(&text)
            .unwrap_or_else(|e| panic!("{s:?} parsed as {text:?}, which does not parse: {e:?}"));
        assert_eq!(again, j, "{s:?} → {text:?}");
        assert_eq!(again.to_string(), text);
        assert!(j.is_text_of(&text));
        let bare = j.to_bare();
        assert!(bare.is_bare());
        assert_eq!(Jid::parse(&bare.to_string()).ok(), Some(bare));
    }
    type Normalize = fn(&str) -> Result<String, switchboard_jid::JidError>;
    let parts: [(&str, Normalize); 3] = [
        ("localpart", normalize_localpart),
        ("domain", normalize_domain),
        ("resource", normalize_resource),
    ];
    for (what, f) in parts {
        if let Ok(n) = f(s) {
            match f(&n) {
                Ok(n2) => assert_eq!(n2, n, "{what} of {s:?} is not idempotent"),
                Err(e) => panic!("{what} {s:?} normalizes to {n:?}, which is refused: {e:?}"),
            }
        }
    }
});
