//! The client side of SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-1 (RFC 5802),
//! without channel binding (GS2 header `n,,`). SCRAM-SHA-1 is there for
//! servers that store only SHA-1 keys (Prosody's `internal_hashed`), so
//! that the same load can be run against them.
//!
//! PBKDF2 is by far the most expensive step of a login for the client. The
//! keys derived from it depend only on (password, salt, iterations), so a
//! [`KeyCache`] keeps them per (user, salt, iterations): after the first
//! login of a user the load generator spends microseconds, not
//! milliseconds, while the server still does all of its own work.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mechanism {
    /// SCRAM-SHA-1 (RFC 5802).
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    #[default]
    Sha256,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// The hash's output length in bytes.
    pub fn len(self) -> usize {
        match self {
            Mechanism::Sha1 => 20,
            Mechanism::Sha256 => 32,
        }
    }

    /// Never true: every hash has output.
    pub fn is_empty(self) -> bool {
        false
    }

    /// From a command-line name: `sha-1`, `sha-256` or the SASL name.
    pub fn parse(s: &str) -> Result<Mechanism, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha-1" | "sha1" | "scram-sha-1" => Ok(Mechanism::Sha1),
            "sha-256" | "sha256" | "scram-sha-256" => Ok(Mechanism::Sha256),
            _ => Err(format!("unknown SCRAM hash '{s}' (sha-1, sha-256)")),
        }
    }
}

/// The most iterations accepted from a server: a bound on the work one
/// login can make the client do.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Keys derived from the salted password; for SHA-1 only the first 20
/// bytes of each array are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub mechanism: Mechanism,
    pub client_key: [u8; 32],
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl Keys {
    /// SCRAM-SHA-256 keys.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Keys {
        Keys::derive_with(Mechanism::Sha256, password, salt, iterations)
    }

    /// The keys for `mechanism`.
    pub fn derive_with(mechanism: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Keys {
        let n = mechanism.len();
        let mut salted = [0u8; 32];
        let mut stored_key = [0u8; 32];
        match mechanism {
            Mechanism::Sha1 => {
                pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut salted[..n])
            }
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                password.as_bytes(),
                salt,
                iterations,
                &mut salted[..n],
            ),
        }
        let client_key = hmac(mechanism, &salted[..n], b"Client Key");
        match mechanism {
            Mechanism::Sha1 => stored_key[..n].copy_from_slice(&Sha1::digest(&client_key[..n])),
            Mechanism::Sha256 => stored_key.copy_from_slice(&Sha256::digest(client_key)),
        }
        let server_key = hmac(mechanism, &salted[..n], b"Server Key");
        Keys {
            mechanism,
            client_key,
            stored_key,
            server_key,
        }
    }
}

/// HMAC with the mechanism's hash; SHA-1 output fills the first 20 bytes.
fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    match mechanism {
        Mechanism::Sha1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
            m.update(data);
            out[..20].copy_from_slice(&m.finalize().into_bytes());
        }
        Mechanism::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            m.update(data);
            out.copy_from_slice(&m.finalize().into_bytes());
        }
    }
    out
}

/// What the cache is keyed by: (mechanism, user, salt, iterations).
type CacheKey = (Mechanism, String, Vec<u8>, u32);

/// Derived keys per (user, salt, iterations), shared by all connections.
#[derive(Debug, Default)]
pub struct KeyCache {
    map: Mutex<HashMap<CacheKey, Keys>>,
}

impl KeyCache {
    /// The keys, derived on a miss. The lock is not held while deriving.
    pub fn get(
        &self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Keys {
        let key = (mechanism, user.to_string(), salt.to_vec(), iterations);
        if let Some(k) = self.lock().get(&key) {
            return *k;
        }
        let keys = Keys::derive_with(mechanism, password, salt, iterations);
        self.lock().insert(key, keys);
        keys
    }

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

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SCRAM: {}", self.0)
    }
}
impl std::error::Error for ScramError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, ScramError> {
    Err(ScramError(msg.into()))
}

/// One exchange, from client-first to the check of the server signature.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    user: String,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// The server signature expected in server-final (the first
    /// `mechanism.len()` bytes).
    expected: Option<[u8; 32]>,
}

/// GS2 header: no channel binding, no authzid.
const GS2: &str = "n,,";

impl ScramClient {
    /// Starts an exchange with a random nonce. Passwords are limited to
    /// printable ASCII, for which SASLprep/OpaqueString change nothing.
    pub fn new(
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<ScramClient, ScramError> {
        let mut raw = [0u8; 18];
        getrandom::fill(&mut raw).map_err(|e| ScramError(format!("no randomness: {e}")))?;
        Self::with_nonce(mechanism, user, password, &B64.encode(raw))
    }

    /// Starts an exchange with a given nonce (for tests).
    pub fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Result<ScramClient, ScramError> {
        if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) || password.is_empty() {
            return fail("the load generator only supports printable ASCII passwords");
        }
        if nonce.contains(',') || nonce.is_empty() {
            return fail("bad nonce");
        }
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Ok(ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_string(),
            expected: None,
        })
    }

    /// The client-first message.
    pub fn client_first(&self) -> String {
        format!("{GS2}{}", self.client_first_bare)
    }

    /// Takes server-first, returns client-final.
    pub fn client_final(
        &mut self,
        server_first: &[u8],
        cache: &KeyCache,
    ) -> Result<String, ScramError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| ScramError("server-first is not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (i, part) in server_first.split(',').enumerate() {
            match (i, part.split_at_checked(2)) {
                (0, Some(("m=", _))) => return fail("the server requires an extension"),
                (0, Some(("r=", v))) => nonce = Some(v),
                (1, Some(("s=", v))) => {
                    salt = Some(
                        B64.decode(v)
                            .map_err(|_| ScramError("salt is not base64".into()))?,
                    )
                }
                (2, Some(("i=", v))) => iterations = v.parse::<u32>().ok(),
                (0..=2, _) => return fail(format!("malformed server-first: {server_first}")),
                _ => {} // extensions
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return fail(format!("malformed server-first: {server_first}"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return fail("the server nonce does not extend ours");
        }
        if salt.is_empty() || iterations == 0 || iterations > MAX_ITERATIONS {
            return fail(format!(
                "unreasonable salt or iteration count ({iterations})"
            ));
        }
        let m = self.mechanism;
        let n = m.len();
        let keys = cache.get(m, &self.user, &self.password, &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode(GS2));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(m, &keys.stored_key[..n], auth_message.as_bytes());
        let mut proof = keys.client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        self.expected = Some(hmac(m, &keys.server_key[..n], auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(&proof[..n])))
    }

    /// Checks server-final (`v=` must carry the expected signature).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let Some(expected) = self.expected else {
            return fail("server-final before server-first");
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError("server-final is not UTF-8".into()))?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(e) = first.strip_prefix("e=") {
            return fail(format!("the server reported {e}"));
        }
        let Some(v) = first.strip_prefix("v=") else {
            return fail(format!("malformed server-final: {text}"));
        };
        let got = B64
            .decode(v)
            .map_err(|_| ScramError("server signature is not base64".into()))?;
        if got.as_slice() != &expected[..self.mechanism.len()] {
            return fail("wrong server signature: the server does not know the password");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example exchange of RFC 7677 §3.
    #[test]
    fn rfc7677_example() {
        let cache = KeyCache::default();
        let mut c =
            ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
                .unwrap();
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let sf = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let cf = c.client_final(sf, &cache).unwrap();
        assert_eq!(
            cf,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
        assert!(c.verify_server_final(b"e=invalid-proof").is_err());
        assert_eq!(cache.len(), 1);
        // A second exchange reuses the cached keys and gives the same proof.
        let mut c2 =
            ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
                .unwrap();
        assert_eq!(c2.client_final(sf, &cache).unwrap(), cf);
        assert_eq!(cache.len(), 1);
    }

    /// The example exchange of RFC 5802 §5 (SCRAM-SHA-1).
    #[test]
    fn rfc5802_example() {
        let cache = KeyCache::default();
        let mut c = ScramClient::with_nonce(
            Mechanism::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        )
        .unwrap();
        let sf = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let cf = c.client_final(sf, &cache).unwrap();
        assert_eq!(
            cf,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
        assert!(c
            .verify_server_final(b"v=AAF9pqV8S7suAoZWja4dJRkFsKQ=")
            .is_err());
    }

    #[test]
    fn refuses_bad_server_first() {
        let cache = KeyCache::default();
        for sf in [
            "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999",
            "m=ext,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abcdef,i=4096",
        ] {
            let mut c = ScramClient::with_nonce(Mechanism::Sha256, "u", "pw", "abc").unwrap();
            assert!(c.client_final(sf.as_bytes(), &cache).is_err(), "{sf}");
        }
    }

    #[test]
    fn escapes_user_names() {
        let c = ScramClient::with_nonce(Mechanism::Sha256, "a=b,c", "pw", "n").unwrap();
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=n");
    }
}
