//! The XEP-0114 handshake digest, shared by the server's component
//! listener and the component connector: lowercase hex of
//! SHA-1(stream id ‖ secret).

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The `<handshake>` text a component sends for this stream id.
pub fn digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `received` is the right digest, compared in constant time so
/// that timing does not reveal how much of it matched. Upper-case hex is
/// accepted: XEP-0114 says hex, and some components send it that way.
pub fn verify(stream_id: &str, secret: &str, received: &str) -> bool {
    let expected = digest(stream_id, secret);
    let received = received.trim().to_ascii_lowercase();
    expected.len() == received.len() && bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha1_of_id_then_secret() {
        // Reference value computed independently (Python's hashlib).
        assert_eq!(
            digest("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }

    #[test]
    fn verify_accepts_the_right_digest_only() {
        let d = digest("abc", "s3cret");
        assert!(verify("abc", "s3cret", &d));
        assert!(verify("abc", "s3cret", &d.to_uppercase()));
        assert!(!verify("abc", "other", &d));
        assert!(!verify("abd", "s3cret", &d));
        assert!(!verify("abc", "s3cret", ""));
        assert!(!verify("abc", "s3cret", &d[..39]));
    }
}
