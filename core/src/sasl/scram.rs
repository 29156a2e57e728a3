//! SCRAM server side (RFC 5802), SHA-1 and SHA-256, with optional
//! `tls-exporter` channel binding for the -PLUS mechanisms.

use super::SaslFailure;
use switchboard_spool::ScramCredential;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// The spool's hash name: `SHA-1` or `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }
}

/// Derives stored credentials from a password (PBKDF2 with a fresh random
/// 16-byte salt). The password must already be SASLprep/OpaqueString
/// prepared by the caller.
pub fn derive_credentials(hash: ScramHash, password: &str, iterations: u32) -> ScramCredential {
    let _ = (hash, password, iterations);
    todo!()
}

/// Derives credentials with a given salt (tests, and PLAIN verification).
pub fn derive_with_salt(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> ScramCredential {
    let _ = (hash, password, salt, iterations);
    todo!()
}

/// What the server does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramStep {
    /// Look this (SASLprep'd, `=2C`/`=3D`-decoded) username up and call
    /// [`ScramServer::credentials`] with the result.
    NeedCredentials { username: String },
    /// Send this challenge and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Authentication succeeded: send this as `<success/>` additional data.
    Success { username: String, server_final: Vec<u8> },
}

/// One SCRAM exchange. States: expecting client-first → awaiting
/// credentials → expecting client-final → done.
pub struct ScramServer {
    _private: (),
}

impl ScramServer {
    /// `plus`: the client chose the -PLUS mechanism. `channel_binding`: the
    /// `tls-exporter` value of this connection (None before TLS). A client
    /// that says `y` (it supports binding but thinks the server does not)
    /// while the server advertised -PLUS must be refused.
    pub fn new(hash: ScramHash, plus: bool, channel_binding: Option<Vec<u8>>, plus_advertised: bool) -> Self {
        let _ = (hash, plus, channel_binding, plus_advertised);
        todo!()
    }

    /// Handles client-first-message (the `<auth/>` payload).
    pub fn client_first(&mut self, msg: &[u8]) -> Result<ScramStep, SaslFailure> {
        let _ = msg;
        todo!()
    }

    /// Feeds the looked-up credentials. `None` (unknown user, or no
    /// credential for this hash) continues with a fake salt derived from the
    /// username so that the exchange is indistinguishable and fails only at
    /// the end with `NotAuthorized`.
    pub fn credentials(&mut self, cred: Option<ScramCredential>) -> Result<ScramStep, SaslFailure> {
        let _ = cred;
        todo!()
    }

    /// Handles client-final-message (the `<response/>` payload).
    pub fn client_final(&mut self, msg: &[u8]) -> Result<ScramStep, SaslFailure> {
        let _ = msg;
        todo!()
    }
}
