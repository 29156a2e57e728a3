//! SASL for client streams: SCRAM-SHA-1/256 (RFC 5802, RFC 7677) with their
//! -PLUS variants over `tls-exporter` channel binding (RFC 9266), and PLAIN
//! (RFC 4616). Sans-IO: the caller looks credentials up and feeds them in.

pub mod ht;
pub mod plain;
pub mod scram;

pub use scram::{derive_credentials, ScramHash, ScramServer, ScramStep};

/// SASL failure conditions (RFC 6120 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslFailure {
    /// Wrong password or unknown user: the two are indistinguishable.
    NotAuthorized,
    MalformedRequest,
    InvalidMechanism,
    /// The client asked to act as another identity.
    InvalidAuthzid,
    /// Channel binding mismatch or misuse.
    EncryptionRequired,
    Aborted,
    TemporaryAuthFailure,
    /// A FAST token that expired, was replaced or revoked (XEP-0484 §5).
    CredentialsExpired,
}

impl SaslFailure {
    /// The condition element name inside `<failure/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::Aborted => "aborted",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
            SaslFailure::CredentialsExpired => "credentials-expired",
        }
    }
}
