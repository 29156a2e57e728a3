//! SASL PLAIN (RFC 4616): parse `authzid NUL authcid NUL passwd`, and check
//! the password against the stored SCRAM credentials (we never store
//! passwords, so PLAIN re-derives the SCRAM keys and compares them).

use subtle::ConstantTimeEq;

use super::scram::{derive_with_salt, ScramHash};
use super::SaslFailure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    pub authzid: Option<String>,
    pub username: String,
    pub password: String,
}

/// Parses a PLAIN message. Empty username or password, a missing NUL, or
/// invalid UTF-8 is `MalformedRequest`. An empty authzid means none.
pub fn parse(msg: &[u8]) -> Result<PlainCredentials, SaslFailure> {
    use SaslFailure::MalformedRequest as Bad;
    // Exactly two NULs: none of the three fields may contain one.
    let mut fields = msg.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Bad);
    };
    if authcid.is_empty() || passwd.is_empty() {
        return Err(Bad);
    }
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned).map_err(|_| Bad);
    Ok(PlainCredentials {
        authzid: if authzid.is_empty() {
            None
        } else {
            Some(text(authzid)?)
        },
        username: text(authcid)?,
        password: text(passwd)?,
    })
}

/// Checks a password against stored SCRAM credentials by deriving with the
/// stored salt and iteration count and comparing keys in constant time.
/// A credential with an unknown hash name or no iterations never matches.
pub fn verify(cred: &switchboard_spool::ScramCredential, password: &str) -> bool {
    let Some(hash) = ScramHash::from_name(&cred.hash) else {
        return false;
    };
    if cred.iterations == 0 {
        return false;
    }
    let derived = derive_with_salt(hash, password, &cred.salt, cred.iterations);
    // Comparing StoredKey is enough: it is H(ClientKey), a function of the
    // salted password, and it is what SCRAM itself verifies.
    bool::from(derived.stored_key.ct_eq(&cred.stored_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::derive_credentials;

    #[test]
    fn parse_plain() {
        assert_eq!(
            parse(b"\0alice\0secret"),
            Ok(PlainCredentials {
                authzid: None,
                username: "alice".into(),
                password: "secret".into()
            })
        );
        assert_eq!(
            parse(b"alice@example.com\0alice\0se cret"),
            Ok(PlainCredentials {
                authzid: Some("alice@example.com".into()),
                username: "alice".into(),
                password: "se cret".into()
            })
        );
        assert_eq!(
            parse("\0j\u{e9}r\u{f4}me\0p\u{e2}ss".as_bytes())
                .unwrap()
                .username,
            "j\u{e9}r\u{f4}me"
        );
    }

    #[test]
    fn parse_plain_errors() {
        let bad: &[&[u8]] = &[
            b"",
            b"alice",
            b"\0alice",
            b"alicesecret\0",
            b"\0alice\0",
            b"\0\0secret",
            b"\0\0",
            b"\0alice\0sec\0ret",
            b"\0\0alice\0secret",
            b"\0al\xffice\0secret",
            b"\0alice\0\xfe",
            b"\xff\0alice\0secret",
        ];
        for msg in bad {
            assert_eq!(parse(msg), Err(SaslFailure::MalformedRequest), "{msg:?}");
        }
    }

    #[test]
    fn verify_plain() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            let cred = derive_credentials(hash, "correct horse", 64);
            assert!(verify(&cred, "correct horse"));
            assert!(!verify(&cred, "correct horse "));
            assert!(!verify(&cred, ""));
            let mut other = cred.clone();
            other.hash = "MD5".into();
            assert!(!verify(&other, "correct horse"));
            other = cred.clone();
            other.iterations = 0;
            assert!(!verify(&other, "correct horse"));
            other = cred.clone();
            other.stored_key.truncate(4);
            assert!(!verify(&other, "correct horse"));
        }
    }
}
