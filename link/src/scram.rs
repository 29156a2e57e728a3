//! Client-side SASL: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677)
//! and PLAIN (RFC 4616), sans-IO: bytes from the server in, bytes for the
//! server out; the caller frames them (XMPP `<auth/>`, IRC
//! `AUTHENTICATE`).
//!
//! SCRAM is used without channel binding (`n,,`): no client here picks a
//! `-PLUS` mechanism. Certificate verification ([`crate::tls`]) is what
//! authenticates the server; binding would add nothing against an
//! attacker who cannot present a trusted certificate. The server's
//! signature in `server-final-message` is always checked, so a server
//! that does not know the password cannot pretend the login succeeded.
//!
//! Passwords are enforced with the PRECIS OpaqueString profile (RFC 8265),
//! SASLprep's successor: non-ASCII spaces become ASCII spaces and the text
//! is NFC-normalized, as other clients do. For ASCII passwords this is the
//! identity.
//!
//! PBKDF2 is by far the most expensive step for a client, and its result
//! depends only on (password, salt, iterations). A client that logs in
//! many times (the load generator) shares a [`KeyCache`] so that only the
//! first login of each user pays for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A mechanism a client can use, in order of preference.
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

    /// The SCRAM hash, `None` for PLAIN.
    pub fn scram(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha1 => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }

    /// The best mechanism among `offered` (names as the server sent them).
    pub fn choose<'a>(offered: impl IntoIterator<Item = &'a str> + Clone) -> Option<Mechanism> {
        Mechanism::PREFERENCE
            .into_iter()
            .find(|m| offered.clone().into_iter().any(|o| o.trim() == m.name()))
    }
}

/// Why an exchange cannot go on. The texts are what `switchboard send`
/// prints.
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

impl std::error::Error for SaslError {}

/// Enforces the OpaqueString profile on a password (RFC 8265 §4.2).
pub fn prepare_password(password: &str) -> Result<String, SaslError> {
    use precis_core::profile::Profile;
    precis_profiles::OpaqueString::new()
        .enforce(password)
        .map(|p| p.into_owned())
        .map_err(|_| SaslError::BadPassword)
}

/// The hash a SCRAM variant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScramHash {
    /// SCRAM-SHA-1 (RFC 5802), for servers that keep only SHA-1 keys.
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    #[default]
    Sha256,
}

impl ScramHash {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// From a command-line name: `sha-1`, `sha-256` or the SASL name.
    pub fn parse(s: &str) -> Result<ScramHash, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha-1" | "sha1" | "scram-sha-1" => Ok(ScramHash::Sha1),
            "sha-256" | "sha256" | "scram-sha-256" => Ok(ScramHash::Sha256),
            _ => Err(format!("unknown SCRAM hash '{s}' (sha-1, sha-256)")),
        }
    }

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

/// The keys derived from the salted password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub client_key: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Keys {
    /// Derives the keys (PBKDF2, then two HMACs and a hash).
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Keys {
        let salted = hash.hi(password.as_bytes(), salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        Keys {
            stored_key: hash.h(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
            client_key,
        }
    }
}

/// What the cache is keyed by: (hash, user, salt, iterations).
type CacheKey = (ScramHash, String, Vec<u8>, u32);

/// Derived keys per (hash, user, salt, iterations), shared by every
/// exchange that is given it. One user name stands for one password: a
/// cache serves one set of accounts.
#[derive(Debug, Default)]
pub struct KeyCache {
    map: Mutex<HashMap<CacheKey, Keys>>,
}

impl KeyCache {
    /// The keys, derived on a miss. The lock is not held while deriving.
    fn get(
        &self,
        hash: ScramHash,
        user: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Keys {
        let key = (hash, user.to_owned(), salt.to_vec(), iterations);
        if let Some(k) = self.lock().get(&key) {
            return k.clone();
        }
        let keys = Keys::derive(hash, password, salt, iterations);
        self.lock().insert(key, keys.clone());
        keys
    }

    /// Users whose keys are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Keys>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Above this a server's iteration count is refused: it would only make
/// the client burn CPU (minutes at 10^8), and no deployment uses it.
pub const MAX_ITERATIONS: u32 = 10_000_000;

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
    /// The user name as given, for the key cache.
    user: String,
    /// The same, escaped for the `n=` attribute.
    username: String,
    password: String,
    nonce: String,
    cache: Option<Arc<KeyCache>>,
    state: ScramState,
}

impl ScramClient {
    /// `username` is the account's localpart (already normalized by the
    /// JID parser); `password` is prepared here. The nonce comes from the
    /// operating system's random source.
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
            user: username.to_owned(),
            username: username.replace('=', "=3D").replace(',', "=2C"),
            password: prepare_password(password)?,
            nonce: nonce.to_owned(),
            cache: None,
            state: ScramState::Initial,
        })
    }

    /// Takes derived keys from `cache`, and leaves them there.
    pub fn with_cache(mut self, cache: Arc<KeyCache>) -> Self {
        self.cache = Some(cache);
        self
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
        let keys = match &self.cache {
            Some(cache) => cache.get(h, &self.user, &self.password, &salt, iterations),
            None => Keys::derive(h, &self.password, &salt, iterations),
        };
        // "biws" is base64("n,,"): the GS2 header without channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let client_signature = h.hmac(&keys.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = ScramState::Final {
            server_signature: h.hmac(&keys.server_key, auth_message.as_bytes()),
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

/// The PLAIN message, `authzid NUL authcid NUL password`, as given: XMPP
/// clients pass an empty authzid and a prepared password
/// ([`prepare_password`]); IRC services expect the account twice and the
/// password untouched.
pub fn plain_message(authzid: &str, authcid: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(authcid.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
