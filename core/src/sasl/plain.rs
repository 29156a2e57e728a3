//! SASL PLAIN (RFC 4616): parse `authzid NUL authcid NUL passwd`.

use super::SaslFailure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    pub authzid: Option<String>,
    pub username: String,
    pub password: String,
}

/// Parses a PLAIN message. Empty username or password, a missing NUL, or
/// invalid UTF-8 is `MalformedRequest`.
pub fn parse(msg: &[u8]) -> Result<PlainCredentials, SaslFailure> {
    let _ = msg;
    todo!()
}

/// Checks a password against stored SCRAM credentials by deriving with the
/// stored salt and iteration count and comparing keys in constant time.
pub fn verify(cred: &switchboard_spool::ScramCredential, password: &str) -> bool {
    let _ = (cred, password);
    todo!()
}
