//! XMPP addresses (JIDs) per RFC 7622, normalized with the PRECIS profiles.
//!
//! A JID is `[localpart@]domainpart[/resourcepart]`:
//!
//! * the localpart is enforced with the PRECIS `UsernameCaseMapped` profile
//!   (RFC 8265) and must not contain RFC 7622's extra forbidden characters
//!   `" & ' / : < > @`;
//! * the domainpart is an IPv4 literal, a bracketed IPv6 literal, or a
//!   host name whose labels are lowercased and NFC-normalized;
//! * the resourcepart is enforced with the PRECIS `OpaqueString` profile.
//!
//! Each part must be 1..=1023 bytes after normalization. Normalization is
//! idempotent: every part is re-normalized until it is a fixed point (or
//! rejected), so `Jid::parse(&jid.to_string())` always gives `jid` back.
//! Callers rely on that: a normalized JID is used as a map key, written to
//! the spool and compared byte for byte.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use precis_core::profile::{stabilize, PrecisFastInvocation};
use precis_core::{DerivedPropertyValue, IdentifierClass, StringClass};
use precis_profiles::{OpaqueString, UsernameCaseMapped};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Maximum length of each part, in bytes of UTF-8 (RFC 7622 §3.1).
const MAX_PART_BYTES: usize = 1023;

/// Maximum length of one DNS label, in bytes (RFC 1035 §2.3.4).
const MAX_LABEL_BYTES: usize = 63;

/// Characters RFC 7622 §3.3.1 forbids in a localpart on top of what the
/// `UsernameCaseMapped` profile already refuses.
const LOCALPART_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

/// A normalized JID. Two JIDs that name the same entity compare equal
/// (`Alice@LOCALHOST` == `alice@localhost`); normalizing twice changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
}

/// Why a string is not a valid JID (each maps to the stanza error
/// `jid-malformed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JidError {
    Empty,
    EmptyLocalpart,
    EmptyDomain,
    EmptyResource,
    LocalpartTooLong,
    DomainTooLong,
    ResourceTooLong,
    InvalidLocalpart,
    InvalidDomain,
    InvalidResource,
}

impl JidError {
    /// A human-readable explanation, suitable for the `<text/>` of a
    /// `jid-malformed` stanza error or for a command-line message.
    pub fn message(&self) -> &'static str {
        match self {
            JidError::Empty => "the address is empty",
            JidError::EmptyLocalpart => "the localpart (before '@') is empty",
            JidError::EmptyDomain => "the domainpart is empty",
            JidError::EmptyResource => "the resourcepart (after '/') is empty",
            JidError::LocalpartTooLong => "the localpart is longer than 1023 bytes",
            JidError::DomainTooLong => "the domainpart is longer than 1023 bytes",
            JidError::ResourceTooLong => "the resourcepart is longer than 1023 bytes",
            JidError::InvalidLocalpart => "the localpart contains a forbidden character",
            JidError::InvalidDomain => {
                "the domainpart is not a valid host name or IP address literal"
            }
            JidError::InvalidResource => "the resourcepart contains a forbidden character",
        }
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}
impl std::error::Error for JidError {}

impl Jid {
    /// Parses and normalizes `[localpart@]domainpart[/resourcepart]`.
    ///
    /// Splitting follows RFC 7622 §3.1: the resourcepart is everything after
    /// the first `/` (so it may itself contain `@` and `/`), and the
    /// localpart is everything before the first `@` of what remains. Hence
    /// `a@b@c` has localpart `a` and domainpart `b@c`, which is refused
    /// because `@` is not allowed in a domainpart.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        if s.is_empty() {
            return Err(JidError::Empty);
        }
        let (rest, resource) = match s.split_once('/') {
            Some((rest, res)) => (rest, Some(res)),
            None => (s, None),
        };
        let (node, domain) = match rest.split_once('@') {
            Some((node, domain)) => (Some(node), domain),
            None => (None, rest),
        };
        Jid::from_parts(node, domain, resource)
    }

    /// Builds from parts, normalizing each. `Some("")` for the localpart or
    /// resourcepart is an error (an absent part is `None`).
    pub fn from_parts(
        node: Option<&str>,
        domain: &str,
        resource: Option<&str>,
    ) -> Result<Jid, JidError> {
        // Parts are checked in the order they are written, so the error
        // names the first offending part (`@` reports the empty localpart).
        let node = node.map(normalize_localpart).transpose()?;
        let domain = normalize_domain(domain)?;
        let resource = resource.map(normalize_resource).transpose()?;
        Ok(Jid {
            node,
            domain,
            resource,
        })
    }

    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }
    /// This JID without its resource.
    pub fn to_bare(&self) -> Jid {
        Jid {
            node: self.node.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }
    /// Whether `s` is exactly this JID's text (`to_string()`), compared
    /// without building it: a client that already sends normalized
    /// addresses costs no copy.
    pub fn is_text_of(&self, s: &str) -> bool {
        let rest = match &self.node {
            Some(n) => match s.strip_prefix(n.as_str()).and_then(|r| r.strip_prefix('@')) {
                Some(r) => r,
                None => return false,
            },
            None => s,
        };
        let Some(rest) = rest.strip_prefix(self.domain.as_str()) else {
            return false;
        };
        match &self.resource {
            Some(r) => rest.strip_prefix('/') == Some(r.as_str()),
            None => rest.is_empty(),
        }
    }

    /// This bare JID with a (normalized) resource.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        let resource = normalize_resource(resource)?;
        Ok(Jid {
            node: self.node.clone(),
            domain: self.domain.clone(),
            resource: Some(resource),
        })
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}

/// Normalizes a localpart alone (UsernameCaseMapped plus RFC 7622's extra
/// forbidden characters). Used for user names on the command line.
pub fn normalize_localpart(s: &str) -> Result<String, JidError> {
    if s.is_empty() {
        return Err(JidError::EmptyLocalpart);
    }
    let out = match ascii_localpart(s) {
        Some(fast) => fast,
        None => precis_localpart(s)?,
    };
    if out.len() > MAX_PART_BYTES {
        return Err(JidError::LocalpartTooLong);
    }
    Ok(out)
}

/// The localpart of printable ASCII without RFC 7622's forbidden
/// characters, lowercased; `None` when the full profile must decide.
///
/// For such a string `UsernameCaseMapped` reduces to lowercasing: every
/// printable ASCII character but space is `PVALID` in the
/// IdentifierClass, width mapping and NFC change nothing, and the Bidi
/// Rule only constrains strings with right-to-left characters. The
/// tests check this against the full profile for every such string of up
/// to two characters and for random longer ones. Nearly every address a
/// server sees is ASCII, and the full profile costs a microsecond or
/// more per part: the router parses several addresses per stanza.
fn ascii_localpart(s: &str) -> Option<String> {
    let plain = s
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !LOCALPART_FORBIDDEN.contains(&(b as char)));
    plain.then(|| s.to_ascii_lowercase())
}

/// The localpart through the full `UsernameCaseMapped` profile.
fn precis_localpart(s: &str) -> Result<String, JidError> {
    // `stabilize` re-applies the profile until the output no longer changes,
    // as RFC 8264 §7 recommends; a single pass is not idempotent for every
    // code point (case mapping can expose new decompositions and vice versa).
    let out =
        stabilize(s, |x| UsernameCaseMapped::enforce(x)).map_err(|_| JidError::InvalidLocalpart)?;
    // Checked after enforcement because width mapping can turn e.g. the
    // fullwidth `＠` into a real `@`.
    if out.contains(LOCALPART_FORBIDDEN) {
        return Err(JidError::InvalidLocalpart);
    }
    Ok(out.into_owned())
}

/// Normalizes a domainpart alone (lowercase, NFC, label checks; a trailing
/// dot removed; IPv4 and bracketed IPv6 literals allowed).
///
/// Full UTS #46 / IDNA2008 processing (A-label ⇄ U-label conversion, the
/// Bidi and CONTEXTJ/CONTEXTO rules, width mapping) is deliberately not
/// applied: the server's domains come from its own configuration and remote
/// domains from DNS-resolved peers, which use ASCII (or A-labels) in
/// practice. Lowercasing plus NFC gives RFC 7622's comparison semantics for
/// ASCII and for the common Unicode case, and refusing every non-letter,
/// non-digit non-ASCII code point keeps us strictly inside what IDNA2008
/// would accept, so no address we accept can be confused with one it maps
/// differently.
pub fn normalize_domain(s: &str) -> Result<String, JidError> {
    // RFC 7622 §3.2: a single trailing dot (the DNS root) is not part of the
    // domainpart and is removed before any other processing.
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    let out = if let Some(inner) = s.strip_prefix('[') {
        // IPv6 literal (RFC 3986 IP-literal without IPvFuture). Re-formatted
        // in the canonical RFC 5952 form so that `[::1]` and `[0::1]` are the
        // same address.
        let inner = inner.strip_suffix(']').ok_or(JidError::InvalidDomain)?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| JidError::InvalidDomain)?;
        format!("[{addr}]")
    } else if let Ok(addr) = s.parse::<Ipv4Addr>() {
        addr.to_string()
    } else {
        normalize_hostname(s)?
    };
    if out.len() > MAX_PART_BYTES {
        return Err(JidError::DomainTooLong);
    }
    Ok(out)
}

/// Lowercases and NFC-normalizes a host name, then checks its labels.
fn normalize_hostname(s: &str) -> Result<String, JidError> {
    // For ASCII, lowercasing is the whole mapping (NFC changes nothing).
    if s.is_ascii() {
        let out = s.to_ascii_lowercase();
        for label in out.split('.') {
            check_label(label)?;
        }
        return Ok(out);
    }
    // Case mapping followed by NFC is not idempotent for every code point in
    // one pass, so iterate to a fixed point like PRECIS does.
    let mut cur: Cow<'_, str> = Cow::Borrowed(s);
    let mut stable = false;
    for _ in 0..4 {
        let next: String = cur.to_lowercase().nfc().collect();
        if next == cur {
            stable = true;
            break;
        }
        cur = Cow::Owned(next);
    }
    if !stable {
        return Err(JidError::InvalidDomain);
    }
    for label in cur.split('.') {
        check_label(label)?;
    }
    Ok(cur.into_owned())
}

/// One host name label: 1..=63 bytes, not starting with a combining mark;
/// ASCII letters, digits and inner hyphens (the LDH rule of RFC 952/1123, which also rules out whitespace,
/// control characters and `/ @ : " & ' < > \` and the like); non-ASCII code
/// points only if they are letters or digits (PRECIS `PVALID` in the
/// IdentifierClass, close to IDNA2008's `PVALID`).
fn check_label(label: &str) -> Result<(), JidError> {
    if label.is_empty() || label.len() > MAX_LABEL_BYTES {
        return Err(JidError::InvalidDomain);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(JidError::InvalidDomain);
    }
    // IDNA2008 (RFC 5891 §4.2.3.2): a label must not begin with a combining
    // mark, which would otherwise attach to the preceding dot when shown.
    if label.chars().next().is_some_and(is_combining_mark) {
        return Err(JidError::InvalidDomain);
    }
    let class = IdentifierClass::default();
    let ok = label.chars().all(|c| {
        if c.is_ascii() {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        } else {
            class.get_value_from_char(c) == DerivedPropertyValue::PValid
        }
    });
    if ok {
        Ok(())
    } else {
        Err(JidError::InvalidDomain)
    }
}

/// Normalizes a resourcepart alone (OpaqueString).
pub fn normalize_resource(s: &str) -> Result<String, JidError> {
    if s.is_empty() {
        return Err(JidError::EmptyResource);
    }
    let out = match ascii_resource(s) {
        Some(fast) => fast,
        None => precis_resource(s)?,
    };
    if out.len() > MAX_PART_BYTES {
        return Err(JidError::ResourceTooLong);
    }
    Ok(out)
}

/// A resourcepart of printable ASCII (space included) is its own
/// `OpaqueString` form: the profile has no case mapping, those characters
/// are all valid in the FreeformClass, and NFC changes nothing. `None`
/// when the full profile must decide (see [`ascii_localpart`]).
fn ascii_resource(s: &str) -> Option<String> {
    s.bytes()
        .all(|b| (0x20..=0x7e).contains(&b))
        .then(|| s.to_owned())
}

/// The resourcepart through the full `OpaqueString` profile.
fn precis_resource(s: &str) -> Result<String, JidError> {
    let out = stabilize(s, |x| OpaqueString::enforce(x)).map_err(|_| JidError::InvalidResource)?;
    Ok(out.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn case_insensitive_local_and_domain() {
        assert_eq!(jid("Alice@LOCALHOST"), jid("alice@localhost"));
        assert_eq!(jid("Alice@LOCALHOST").to_string(), "alice@localhost");
    }

    #[test]
    fn is_text_of_matches_only_the_exact_text() {
        for text in [
            "alice@localhost/Res",
            "alice@localhost",
            "localhost",
            "localhost/r",
        ] {
            assert!(jid(text).is_text_of(text), "{text}");
        }
        let full = jid("alice@localhost/Res");
        for other in [
            "Alice@localhost/Res",
            "alice@localhost/res",
            "alice@localhost",
            "alice@localhost/Res/",
            "alice@localhost/Re",
            "alice@localhostx/Res",
            "alicelocalhost/Res",
            "",
        ] {
            assert!(!full.is_text_of(other), "{other}");
        }
        assert!(!jid("alice@localhost").is_text_of("alice@localhost/r"));
    }

    #[test]
    fn resource_keeps_case() {
        let j = jid("alice@localhost/Res");
        assert_eq!(j.node(), Some("alice"));
        assert_eq!(j.domain(), "localhost");
        assert_eq!(j.resource(), Some("Res"));
        assert!(!j.is_bare());
        assert_eq!(j.to_bare(), jid("alice@localhost"));
        assert!(j.to_bare().is_bare());
        assert_ne!(j, jid("alice@localhost/res"));
    }

    #[test]
    fn resource_may_contain_at_and_slash() {
        let j = jid("a@b/c@d/e f");
        assert_eq!(j.node(), Some("a"));
        assert_eq!(j.domain(), "b");
        assert_eq!(j.resource(), Some("c@d/e f"));
        // A domain-only JID with a resource that contains '@'.
        let j = jid("b/c@d");
        assert_eq!(j.node(), None);
        assert_eq!(j.domain(), "b");
        assert_eq!(j.resource(), Some("c@d"));
    }

    #[test]
    fn empty_parts() {
        assert_eq!(Jid::parse(""), Err(JidError::Empty));
        assert_eq!(Jid::parse("@x"), Err(JidError::EmptyLocalpart));
        assert_eq!(Jid::parse("a@"), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("a@/r"), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("/r"), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("a@b/"), Err(JidError::EmptyResource));
        assert_eq!(Jid::parse("a@."), Err(JidError::EmptyDomain));
        assert_eq!(
            Jid::from_parts(Some(""), "b", None),
            Err(JidError::EmptyLocalpart)
        );
        assert_eq!(
            Jid::from_parts(None, "b", Some("")),
            Err(JidError::EmptyResource)
        );
    }

    #[test]
    fn invalid_examples() {
        // Space is not allowed in a localpart.
        assert_eq!(Jid::parse("a b@c"), Err(JidError::InvalidLocalpart));
        // RFC 7622 §3.1: the localpart ends at the first '@', so the domain
        // would be "b@c", which is not a host name.
        assert_eq!(Jid::parse("a@b@c"), Err(JidError::InvalidDomain));
        for c in ['"', '&', '\'', ':', '<', '>'] {
            assert_eq!(
                Jid::parse(&format!("a{c}b@c")),
                Err(JidError::InvalidLocalpart),
                "{c}"
            );
        }
        // Fullwidth '＠' is width-mapped to '@' and must then be refused.
        assert_eq!(Jid::parse("a\u{FF20}b@c"), Err(JidError::InvalidLocalpart));
        // Control characters anywhere.
        assert_eq!(Jid::parse("a\u{7}@b"), Err(JidError::InvalidLocalpart));
        assert_eq!(Jid::parse("a@b\u{0}c"), Err(JidError::InvalidDomain));
        assert_eq!(Jid::parse("a@b/c\u{1b}"), Err(JidError::InvalidResource));
        assert_eq!(Jid::parse("a@b/c\nd"), Err(JidError::InvalidResource));
        // Characters forbidden in host names.
        for c in [
            '/', ':', '"', '&', '\'', '<', '>', '\\', ' ', '\t', '_', '!', ',',
        ] {
            let d = format!("ex{c}ample.com");
            assert_eq!(normalize_domain(&d), Err(JidError::InvalidDomain), "{d:?}");
        }
        for d in [
            "\u{301}",
            "a.\u{301}b",
            "a..b",
            ".a",
            "a.b..",
            "-a.b",
            "a-.b",
            "[::1",
            "[zz]",
            "[127.0.0.1]",
            "\u{2603}.com",
        ] {
            assert_eq!(normalize_domain(d), Err(JidError::InvalidDomain), "{d:?}");
        }
    }

    #[test]
    fn lengths() {
        let long = "a".repeat(1024);
        assert_eq!(
            Jid::parse(&format!("{long}@b")),
            Err(JidError::LocalpartTooLong)
        );
        assert!(Jid::parse(&format!("{}@b", &long[..1023])).is_ok());
        assert_eq!(
            Jid::parse(&format!("a@b/{long}")),
            Err(JidError::ResourceTooLong)
        );
        assert!(Jid::parse(&format!("a@b/{}", &long[..1023])).is_ok());
        // 16 labels of 63 bytes plus dots = 1023 bytes; one more label is too long.
        let label = "a".repeat(63);
        let d = vec![label.as_str(); 16].join(".");
        assert_eq!(d.len(), 1023);
        assert!(normalize_domain(&d).is_ok());
        assert_eq!(
            normalize_domain(&format!("{d}.a")),
            Err(JidError::DomainTooLong)
        );
        assert_eq!(
            normalize_domain(&format!("{}.com", "a".repeat(64))),
            Err(JidError::InvalidDomain)
        );
        // Multibyte: 512 'é' are 1024 bytes.
        assert_eq!(
            normalize_localpart(&"é".repeat(512)),
            Err(JidError::LocalpartTooLong)
        );
    }

    #[test]
    fn ip_literals_and_trailing_dot() {
        let j = jid("x@[::1]");
        assert_eq!(j.domain(), "[::1]");
        assert_eq!(jid("x@[0:0::1]"), j);
        assert_eq!(jid("x@[2001:DB8::A]").domain(), "[2001:db8::a]");
        assert_eq!(jid("x@127.0.0.1").domain(), "127.0.0.1");
        assert_eq!(jid("x@Example.COM.").to_string(), "x@example.com");
        assert_eq!(jid("x@Example.COM."), jid("x@example.com"));
        assert_eq!(jid("Example.COM./r").to_string(), "example.com/r");
    }

    #[test]
    fn unicode_normalization() {
        // Decomposed é (e + U+0301) composes to U+00E9 in every part.
        assert_eq!(
            jid("Re\u{301}my@E\u{301}x.com/e\u{301}"),
            jid("r\u{e9}my@\u{e9}x.com/\u{e9}")
        );
        // Non-ASCII spaces in a resource become ASCII spaces (OpaqueString).
        assert_eq!(jid("a@b/x\u{a0}y").resource(), Some("x y"));
        // Fullwidth letters in a localpart are width-mapped.
        assert_eq!(jid("\u{FF41}@b").node(), Some("a"));
        assert_eq!(jid("bücher.example").domain(), "bücher.example");
        assert_eq!(jid("BÜCHER.example").domain(), "bücher.example");
    }

    #[test]
    fn with_resource_and_from_parts() {
        let j = jid("Alice@Localhost/old");
        let k = j.with_resource("New\u{a0}One").unwrap();
        assert_eq!(k.to_string(), "alice@localhost/New One");
        assert_eq!(j.with_resource(""), Err(JidError::EmptyResource));
        assert_eq!(
            Jid::from_parts(Some("Bob"), "EXAMPLE.org", Some("r")).unwrap(),
            jid("bob@example.org/r")
        );
        assert_eq!(
            "bob@example.org".parse::<Jid>().unwrap(),
            jid("bob@example.org")
        );
    }

    #[test]
    fn error_display_is_human() {
        assert_eq!(
            JidError::InvalidLocalpart.to_string(),
            "the localpart contains a forbidden character"
        );
        assert!(!JidError::DomainTooLong
            .to_string()
            .contains("DomainTooLong"));
    }

    /// Strings built from characters likely to exercise the parser and the
    /// normalizers: separators, case, IP literal syntax, width-mapped and
    /// combining characters, odd spaces and controls.
    fn jidish() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just("@".to_string()),
            Just("/".to_string()),
            Just(".".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(":".to_string()),
            Just("-".to_string()),
            Just(" ".to_string()),
            Just("\u{a0}".to_string()),
            Just("\u{301}".to_string()),
            Just("\u{130}".to_string()),
            Just("\u{3a3}".to_string()),
            Just("\u{1c5}".to_string()),
            Just("\u{212a}".to_string()),
            Just("\u{fb01}".to_string()),
            Just("\u{ff21}".to_string()),
            Just("\u{ff20}".to_string()),
            Just("\u{df}".to_string()),
            Just("::1".to_string()),
            Just("127.0.0.1".to_string()),
            "[a-zA-Z0-9]{1,4}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
    }

    /// JID-shaped strings: optional localpart, domain, optional resource,
    /// each drawn from [`jidish`] or a plain name, so that far more of them
    /// parse than with unstructured input.
    fn structured() -> impl Strategy<Value = String> {
        let part = || prop_oneof!["[a-zA-Z0-9.-]{1,10}", jidish()];
        (prop::option::of(part()), part(), prop::option::of(part())).prop_map(|(l, d, r)| {
            let mut s = String::new();
            if let Some(l) = l {
                s.push_str(&l);
                s.push('@');
            }
            s.push_str(&d);
            if let Some(r) = r {
                s.push('/');
                s.push_str(&r);
            }
            s
        })
    }

    /// Every string of up to two ASCII characters: the fast paths agree
    /// with the full PRECIS profiles wherever they answer.
    #[test]
    fn ascii_fast_paths_match_precis_exhaustively() {
        let mut strings: Vec<String> = (0u8..0x80).map(|a| (a as char).to_string()).collect();
        for a in 0u8..0x80 {
            for b in 0u8..0x80 {
                strings.push([a as char, b as char].iter().collect());
            }
        }
        let mut fast_answers = 0;
        for s in &strings {
            if let Some(fast) = ascii_localpart(s) {
                fast_answers += 1;
                assert_eq!(Ok(fast), precis_localpart(s), "localpart {s:?}");
            }
            if let Some(fast) = ascii_resource(s) {
                assert_eq!(Ok(fast), precis_resource(s), "resource {s:?}");
            }
        }
        // 94 printable characters less the 8 forbidden ones, and their pairs.
        assert_eq!(fast_answers, 86 + 86 * 86);
    }

    #[test]
    fn ascii_fast_paths_refuse_what_precis_refuses() {
        // Space and control characters are not in the localpart fast
        // path; the full profile refuses them.
        for s in ["a b", "a\tb", "a\u{7f}", "\u{0}"] {
            assert_eq!(ascii_localpart(s), None);
            assert!(normalize_localpart(s).is_err(), "{s:?}");
        }
        assert_eq!(ascii_resource("a\u{7f}"), None);
        assert!(normalize_resource("a\u{7f}").is_err());
        assert_eq!(normalize_resource("My Phone").unwrap(), "My Phone");
    }

    proptest! {
        #[test]
        fn ascii_fast_paths_match_precis(s in "[ -~]{3,40}") {
            if let Some(fast) = ascii_localpart(&s) {
                prop_assert_eq!(Ok(fast), precis_localpart(&s));
            }
            if let Some(fast) = ascii_resource(&s) {
                prop_assert_eq!(Ok(fast), precis_resource(&s));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn structured_normalization_is_idempotent(s in structured()) {
            if let Ok(j) = Jid::parse(&s) {
                prop_assert_eq!(Jid::parse(&j.to_string()), Ok(j));
            }
        }

        #[test]
        fn normalization_is_idempotent(s in jidish()) {
            if let Ok(j) = Jid::parse(&s) {
                let again = Jid::parse(&j.to_string());
                prop_assert_eq!(again, Ok(j));
            }
        }

        #[test]
        fn arbitrary_strings_idempotent(s in any::<String>()) {
            if let Ok(j) = Jid::parse(&s) {
                prop_assert_eq!(Jid::parse(&j.to_string()), Ok(j));
            }
        }

        #[test]
        fn parts_idempotent(s in jidish()) {
            if let Ok(n) = normalize_localpart(&s) {
                prop_assert_eq!(normalize_localpart(&n), Ok(n.clone()));
            }
            if let Ok(d) = normalize_domain(&s) {
                prop_assert_eq!(normalize_domain(&d), Ok(d.clone()));
            }
            if let Ok(r) = normalize_resource(&s) {
                prop_assert_eq!(normalize_resource(&r), Ok(r.clone()));
            }
        }
    }
}
