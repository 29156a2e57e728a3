//! Client-side SASL: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677)
//! and PLAIN (RFC 4616), sans-IO.
//!
//! SCRAM is used without channel binding (`n,,`): the client never picks a
//! `-PLUS` mechanism. Certificate verification (system roots, a CA file or
//! a pinned fingerprint) is what authenticates the server here; binding
//! would add nothing against an attacker who cannot present a trusted
//! certificate. The server's signature in `server-final-message` is always
//! checked, so a server that does not know the password cannot pretend
//! that the login succeeded.
//!
//! Passwords are enforced with the PRECIS OpaqueString profile (RFC 8265),
//! SASLprep's successor: non-ASCII spaces become ASCII spaces and the text
//! is NFC-normalized, as other clients do. For ASCII passwords this is the
//! identity.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A mechanism this client can use, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    /// Best first. PLAIN is the last resort and only ever runs inside TLS.
    pub const PREFERENCE: [Mechanism; 3] = [
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA name, as in `<mechanism/>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// The best mechanism among `offered` (names as the server sent them).
    pub fn choose<'a>(offered: impl IntoIterator<Item = &'a str> + Clone) -> Option<Mechanism> {
        Mechanism::PREFERENCE
            .into_iter()
            .find(|m| offered.clone().into_iter().any(|o| o.trim() == m.name()))
    }
}

/// Why an exchange cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The password is not valid under OpaqueString (e.g. empty, or control
    /// characters).
    BadPassword,
    /// The server's message does not follow the mechanism.
    Malformed(String),
    /// The server sent `e=…` in its final message.
    ServerError(String),
    /// The server's signature is wrong: it does not know the password (or
    /// something in between changed the exchange).
    BadServerSignature,
}

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaslError::BadPassword => {
                f.write_str("the password is empty or contains characters a password cannot have")
            }
            SaslError::Malformed(m) => write!(f, "malformed SASL message from the server: {m}"),
            SaslError::ServerError(e) => write!(f, "the server ended SCRAM with e={e}"),
            SaslError::BadServerSignature => f.write_str(
                "the server's SCRAM signature is wrong, so it does not know this account's password",
            ),
        }
    }
}

/// Enforces the OpaqueString profile on a password (RFC 8265 §4.2).
pub fn prepare_password(password: &str) -> Result<String, SaslError> {
    use precis_core::profile::Profile;
    precis_profiles::OpaqueString::new()
        .enforce(password)
        .map(|p| p.into_owned())
        .map_err(|_| SaslError::BadPassword)
}

/// The hash a SCRAM variant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// Above this a server's iteration count is refused: it would only make
/// the client burn CPU (minutes at 10^8), and no deployment uses it.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Bytes of randomness in the client nonce (base64-encoded on the wire).
const NONCE_BYTES: usize = 18;

enum ScramState {
    Initial,
    /// `client-first-message-bare` sent.
    First {
        client_first_bare: String,
    },
    /// `client-final-message` sent; the server must prove it knows the
    /// password with this signature.
    Final {
        server_signature: Vec<u8>,
    },
    Done,
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    state: ScramState,
}

impl ScramClient {
    /// `username` is the account's localpart (already normalized by the
    /// JID parser); `password` is prepared here.
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Result<Self, SaslError> {
        let mut raw = [0u8; NONCE_BYTES];
        getrandom::fill(&mut raw).expect("the operating system's random source works");
        Self::with_nonce(hash, username, password, &B64.encode(raw))
    }

    /// With a fixed nonce: only for replaying published test vectors.
    pub fn with_nonce(
        hash: ScramHash,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<Self, SaslError> {
        Ok(ScramClient {
            hash,
            username: username.replace('=', "=3D").replace(',', "=2C"),
            password: prepare_password(password)?,
            nonce: nonce.to_owned(),
            state: ScramState::Initial,
        })
    }

    /// The `client-first-message` (no channel binding, no authzid).
    pub fn initial(&mut self) -> Vec<u8> {
        let bare = format!("n={},r={}", self.username, self.nonce);
        let msg = format!("n,,{bare}");
        self.state = ScramState::First {
            client_first_bare: bare,
        };
        msg.into_bytes()
    }

    /// Answers the `server-first-message` with the `client-final-message`.
    pub fn challenge(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let ScramState::First { client_first_bare } = &self.state else {
            return Err(SaslError::Malformed("a challenge out of turn".into()));
        };
        let text = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::Malformed("server-first-message is not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (i, part) in text.split(',').enumerate() {
            let (key, value) = part.split_at_checked(2).unwrap_or((part, ""));
            match key {
                // RFC 5802 §5.1: a mandatory extension we cannot know
                // means we must fail.
                "m=" if i == 0 => {
                    return Err(SaslError::Malformed(
                        "the server requires an unknown SCRAM extension".into(),
                    ))
                }
                "r=" => nonce = Some(value),
                "s=" => {
                    salt =
                        Some(B64.decode(value).map_err(|_| {
                            SaslError::Malformed("the salt is not valid base64".into())
                        })?)
                }
                "i=" => {
                    iterations = Some(value.parse::<u32>().map_err(|_| {
                        SaslError::Malformed(format!("bad iteration count {value:?}"))
                    })?)
                }
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(SaslError::Malformed(format!(
                "server-first-message lacks r, s or i: {text:?}"
            )));
        };
        // The server's nonce must extend ours, or this is a replay of some
        // other exchange.
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::Malformed(
                "the server nonce does not extend the client nonce".into(),
            ));
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(SaslError::Malformed(format!(
                "iteration count {iterations} out of range"
            )));
        }
        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.h(&client_key);
        // "biws" is base64("n,,"): the GS2 header without channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.state = ScramState::Final {
            server_signature: h.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the `server-final-message` (from `<success/>`, or from a
    /// last challenge on servers that send it that way).
    pub fn finish(&mut self, server_final: &[u8]) -> Result<(), SaslError> {
        let ScramState::Final { server_signature } = &self.state else {
            return Err(SaslError::Malformed(
                "the server declared success before the exchange was complete".into(),
            ));
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| SaslError::Malformed("server-final-message is not UTF-8".into()))?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(e) = first.strip_prefix("e=") {
            return Err(SaslError::ServerError(e.to_owned()));
        }
        let Some(v) = first.strip_prefix("v=") else {
            return Err(SaslError::Malformed(format!(
                "server-final-message has no verifier: {text:?}"
            )));
        };
        let v = B64
            .decode(v)
            .map_err(|_| SaslError::Malformed("the verifier is not valid base64".into()))?;
        // Not secret: the comparison leaks nothing an attacker could use,
        // since the client aborts on the first mismatch anyway.
        if v != *server_signature {
            return Err(SaslError::BadServerSignature);
        }
        self.state = ScramState::Done;
        Ok(())
    }

    /// Whether the server's signature has been verified.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ScramState::Done)
    }
}

/// The PLAIN message: empty authzid, the localpart, the prepared password.
pub fn plain_message(username: &str, password: &str) -> Result<Vec<u8>, SaslError> {
    let password = prepare_password(password)?;
    let mut out = Vec::with_capacity(username.len() + password.len() + 2);
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays an RFC example from the client's side.
    fn replay(
        hash: ScramHash,
        nonce: &str,
        client_first: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let mut c = ScramClient::with_nonce(hash, "user", "pencil", nonce).unwrap();
        assert_eq!(String::from_utf8(c.initial()).unwrap(), client_first);
        let answer = c.challenge(server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(answer).unwrap(), client_final);
        assert!(!c.is_done());
        c.finish(server_final.as_bytes()).unwrap();
        assert!(c.is_done());
    }

    #[test]
    fn rfc5802_scram_sha1_example() {
        replay(
            ScramHash::Sha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc7677_scram_sha256_example() {
        replay(
            ScramHash::Sha256,
            "rOprNGfwEbeRWgbNEkqO",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    fn after_first_step() -> ScramClient {
        let mut c =
            ScramClient::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
                .unwrap();
        c.initial();
        c.challenge(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        )
        .unwrap();
        c
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut c = after_first_step();
        // The RFC 5802 (SHA-1) verifier: well-formed, but not this exchange's.
        assert_eq!(
            c.finish(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
            Err(SaslError::BadServerSignature)
        );
        assert!(!c.is_done());
        let mut c = after_first_step();
        assert_eq!(
            c.finish(b"e=invalid-proof"),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn success_before_the_proof_is_refused() {
        let mut c = ScramClient::with_nonce(ScramHash::Sha1, "user", "pencil", "abc").unwrap();
        c.initial();
        assert!(matches!(
            c.finish(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
            Err(SaslError::Malformed(_))
        ));
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_refused() {
        for first in [
            "r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",
            // Exactly our nonce: the server added nothing.
            "r=fyko,s=QSXCR+Q6sek8bf92,i=4096",
            "r=fykoX,s=QSXCR+Q6sek8bf92,i=0",
            "r=fykoX,s=***,i=4096",
            "r=fykoX,i=4096",
            "m=ext,r=fykoX,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            let mut c = ScramClient::with_nonce(ScramHash::Sha1, "user", "pencil", "fyko").unwrap();
            c.initial();
            assert!(
                matches!(c.challenge(first.as_bytes()), Err(SaslError::Malformed(_))),
                "{first}"
            );
        }
    }

    #[test]
    fn usernames_are_escaped_and_nonces_are_random() {
        let mut c = ScramClient::new(ScramHash::Sha256, "a,b=c", "pw").unwrap();
        let first = String::from_utf8(c.initial()).unwrap();
        assert!(first.starts_with("n,,n=a=2Cb=3Dc,r="), "{first}");
        let mut d = ScramClient::new(ScramHash::Sha256, "a", "pw").unwrap();
        let other = String::from_utf8(d.initial()).unwrap();
        assert_ne!(first.rsplit("r=").next(), other.rsplit("r=").next());
    }

    #[test]
    fn plain_and_password_preparation() {
        assert_eq!(plain_message("bot", "s3cret").unwrap(), b"\0bot\0s3cret");
        assert_eq!(plain_message("bot", ""), Err(SaslError::BadPassword));
        // OpaqueString maps non-ASCII spaces to ASCII space.
        assert_eq!(prepare_password("a\u{00A0}b").unwrap(), "a b");
    }

    #[test]
    fn mechanisms_are_chosen_best_first() {
        assert_eq!(
            Mechanism::choose(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(
            Mechanism::choose(["PLAIN", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]),
            Some(Mechanism::ScramSha1)
        );
        // -PLUS alone is not usable without channel binding.
        assert_eq!(
            Mechanism::choose(["SCRAM-SHA-256-PLUS", "PLAIN"]),
            Some(Mechanism::Plain)
        );
        assert_eq!(Mechanism::choose(["EXTERNAL", "DIGEST-MD5"]), None);
    }
}
