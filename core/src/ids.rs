//! Random identifiers: stream ids, generated resources, stanza ids the
//! server makes up.

use base64::Engine as _;

/// 96 random bits from the OS, URL-safe base64 (16 characters).
pub fn random_id() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
