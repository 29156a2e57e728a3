//! Upload slots and their signatures, pure: what the service hands out and
//! what the web side checks. A slot is:
//!
//! ```text
//! GET  {base}/upload/{service}/{id}/{name}
//! PUT  {base}/upload/{service}/{id}/{name}?o={owner}&s={size}&t={type}&e={expires}&sig={mac}
//! ```
//!
//! `mac` is HMAC-SHA256, under a key derived for this service from the
//! server's secret key, over every field, so none can be changed: a
//! forged or altered URL, a bigger body, another owner (to dodge a
//! quota), a later expiry are all refused. The id is 128 random bits: the
//! GET URL is the capability to read the file, as XEP-0363 intends.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key for one service's slots.
pub fn derive_key(secret: &[u8; 32], service: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("any key length");
    mac.update(b"switchboard xep-0363 slots\n");
    mac.update(service.as_bytes());
    mac.finalize().into_bytes().into()
}

/// What a slot allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub service: String,
    pub id: String,
    /// The file name (already made safe by [`file_name`]).
    pub name: String,
    /// The uploader's bare JID.
    pub owner: String,
    pub size: u64,
    pub content_type: String,
    /// Until when the PUT URL is good (seconds since the epoch).
    pub expires: u64,
}

/// Why a PUT URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The URL is not a slot's (a field missing or malformed).
    Malformed(&'static str),
    /// The signature does not match: forged or altered.
    BadSignature,
    /// The slot's time is up.
    Expired,
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Malformed(what) => write!(f, "not an upload slot: {what}"),
            SlotError::BadSignature => {
                f.write_str("the upload slot's signature is not valid (a forged or altered URL)")
            }
            SlotError::Expired => f.write_str("the upload slot has expired; ask for a new one"),
        }
    }
}

impl Slot {
    fn mac(&self, key: &[u8; 32]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
        for part in [
            self.service.as_str(),
            &self.id,
            &self.name,
            &self.owner,
            &self.size.to_string(),
            &self.content_type,
            &self.expires.to_string(),
        ] {
            // Length-prefixed, so no two slots sign the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The path the file is read from (and written to).
    pub fn path(&self) -> String {
        format!(
            "/upload/{}/{}/{}",
            self.service,
            self.id,
            percent_encode(&self.name)
        )
    }

    /// The PUT URL's query, signed.
    pub fn put_query(&self, key: &[u8; 32]) -> String {
        let sig = hex(&self.mac(key).finalize().into_bytes());
        format!(
            "o={}&s={}&t={}&e={}&sig={sig}",
            percent_encode(&self.owner),
            self.size,
            percent_encode(&self.content_type),
            self.expires
        )
    }

    /// The slot a PUT request names: `service`, `id` and `name` from its
    /// path (decoded), the rest from its query; checked against `key` at
    /// `now`.
    pub fn verify(
        service: &str,
        id: &str,
        name: &str,
        query: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Slot, SlotError> {
        let field = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let text = |k: &'static str| {
            field(k)
                .and_then(percent_decode)
                .ok_or(SlotError::Malformed(k))
        };
        let number = |k: &'static str| {
            field(k)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(SlotError::Malformed(k))
        };
        let slot = Slot {
            service: service.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            owner: text("o")?,
            size: number("s")?,
            content_type: text("t")?,
            expires: number("e")?,
        };
        let sig = field("sig")
            .and_then(unhex)
            .ok_or(SlotError::Malformed("sig"))?;
        slot.mac(key)
            .verify_slice(&sig)
            .map_err(|_| SlotError::BadSignature)?;
        if now > slot.expires {
            return Err(SlotError::Expired);
        }
        Ok(slot)
    }
}

/// A file name as a client gave it, made safe to store and show: the last
/// path component only, no control characters, not empty, `.` or `..`,
/// at most 255 bytes. `Err` says what was wrong.
pub fn file_name(raw: &str) -> Result<String, &'static str> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if last.is_empty() || last == "." || last == ".." {
        return Err("the file name is empty");
    }
    if last.chars().any(char::is_control) {
        return Err("the file name has control characters");
    }
    if last.len() > 255 {
        return Err("the file name is longer than 255 bytes");
    }
    Ok(last.to_string())
}

/// A content type as a client gave it, or `application/octet-stream` when
/// it is not a plain `type/subtype` (parameters dropped).
pub fn content_type(raw: Option<&str>) -> String {
    let t = raw
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.split_once('/') {
        Some((a, b)) if token(a) && token(b) => t,
        _ => "application/octet-stream".into(),
    }
}

/// A new slot id: 128 random bits, hex.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    hex(&b)
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` decoding (`+` is not a space here); `None` for a malformed
/// escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn slot() -> Slot {
        Slot {
            service: "upload.example.org".into(),
            id: new_id(),
            name: "holiday photo.jpg".into(),
            owner: "alice@example.org".into(),
            size: 12345,
            content_type: "image/jpeg".into(),
            expires: 1000,
        }
    }

    #[test]
    fn a_signed_slot_verifies_and_nothing_in_it_can_change() {
        let s = slot();
        let q = s.put_query(&KEY);
        let ok = Slot::verify(&s.service, &s.id, &s.name, &q, &KEY, 999).unwrap();
        assert_eq!(ok, s);
        assert_eq!(
            Slot::verify(&s.service, &s.id, &s.name, &q, &KEY, 1001),
            Err(SlotError::Expired)
        );
        let bad = |service: &str, id: &str, name: &str, q: &str, key: &[u8; 32]| {
            Slot::verify(service, id, name, q, key, 0)
        };
        assert_eq!(
            bad(&s.service, &s.id, "other.jpg", &q, &KEY),
            Err(SlotError::BadSignature)
        );
        assert_eq!(
            bad(&s.service, "00", &s.name, &q, &KEY),
            Err(SlotError::BadSignature)
        );
        assert_eq!(
            bad("up.other.org", &s.id, &s.name, &q, &KEY),
            Err(SlotError::BadSignature)
        );
        assert_eq!(
            bad(&s.service, &s.id, &s.name, &q, &[8; 32]),
            Err(SlotError::BadSignature)
        );
        let bigger = q.replace("s=12345", "s=99999999");
        assert_eq!(
            bad(&s.service, &s.id, &s.name, &bigger, &KEY),
            Err(SlotError::BadSignature)
        );
        let other_owner = q.replace("o=alice", "o=bob");
        assert_eq!(
            bad(&s.service, &s.id, &s.name, &other_owner, &KEY),
            Err(SlotError::BadSignature)
        );
        let later = q.replace("e=1000", "e=9999");
        assert_eq!(
            bad(&s.service, &s.id, &s.name, &later, &KEY),
            Err(SlotError::BadSignature)
        );
        assert!(matches!(
            bad(&s.service, &s.id, &s.name, "o=a&s=1", &KEY),
            Err(SlotError::Malformed(_))
        ));
    }

    #[test]
    fn names_and_types_are_made_safe() {
        assert_eq!(file_name("C:\\Users\\me\\cat.png").unwrap(), "cat.png");
        assert_eq!(file_name("../../etc/passwd").unwrap(), "passwd");
        assert!(file_name("..").is_err());
        assert!(file_name("dir/").is_err());
        assert!(file_name("a\nb").is_err());
        assert!(file_name(&"x".repeat(300)).is_err());
        assert_eq!(content_type(Some("Image/PNG; charset=x")), "image/png");
        assert_eq!(
            content_type(Some("text/html\"><script>")),
            "application/octet-stream"
        );
        assert_eq!(content_type(None), "application/octet-stream");
        assert_eq!(
            percent_decode(&percent_encode("a b/ü?&=")).unwrap(),
            "a b/ü?&="
        );
    }
}
