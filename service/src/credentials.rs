//! Secrets at rest: the key that seals them, and the per-user store of
//! legacy-network registrations sealed with it.
//!
//! The key ([`SecretKey`]) is 32 random bytes, kept hex-encoded in a file
//! readable only by the server (mode 0600), `etc/credentials.key` unless the
//! config names another. It is generated on first run.
//!
//! The store ([`CredentialStore`]) keeps one record per registered user,
//! keyed by the user's bare JID, in a collection of the service's
//! [`ServiceStore`] (`registrations` for a gateway, one per IRC server for
//! the IRC transport). With the file backend that is one file per user,
//! mode 0600, where releases before the storage interface kept it:
//!
//! ```text
//! spool/<service>/<collection>/<encoded bare JID>.xml
//! ```
//!
//! Each record is a small XML document whose only content is the sealed
//! registration:
//!
//! ```xml
//! <registration xmlns='urn:switchboard:spool:1' version='1' user='romeo@example.org'>
//!   <sealed nonce='…base64…'>…base64…</sealed>
//! </registration>
//! ```
//!
//! The whole registration (every field, not only the password: a legacy
//! user name is personal data too) is encrypted with ChaCha20-Poly1305
//! under a fresh random 96-bit nonce on every write. The service's JID and
//! the user's bare JID are the associated data, so a record copied to
//! another user's key, or into another service's store, fails
//! authentication instead of handing that user someone else's credentials.
//! A record that does not parse, fails authentication or decodes to
//! garbage is an error naming where it is: it is never read as "not
//! registered", so it is never silently overwritten either. The store
//! itself keeps every write whole ("old or new, never torn").

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use switchboard_jid::Jid;
use switchboard_spool::store::{ServiceStore, StoreError};
use switchboard_xml::{ns, parse_document, Element, Limits};

/// The symmetric key sealing users' legacy-network credentials.
pub struct SecretKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in -D logs.
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey { bytes }
    }

    /// A fresh random key (tests, and first run).
    pub fn generate() -> SecretKey {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        SecretKey { bytes }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Reads the key file, or creates it (mode 0600, parent directories
    /// too) when it does not exist. Errors are sentences for the admin.
    pub fn load_or_generate(path: &Path) -> Result<SecretKey, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).ok_or_else(|| {
                format!(
                    "{}: not a credentials key (expected 64 hex digits); \
                     restore the original file, or delete it only if no \
                     transport registrations need to be kept",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let hex: String = key.bytes.iter().map(|b| format!("{b:02x}")).collect();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts
                    .open(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                f.write_all(format!("{hex}\n").as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(path = %path.display(), "generated a new credentials key; back it up with the spool");
                Ok(key)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn parse(hex: &str) -> Option<SecretKey> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(SecretKey { bytes })
    }
}

/// One user's registration with a service: the submitted fields as
/// `(var, value)` pairs, in the order of the registration form.
///
/// `Debug` shows the field names only, so that a registration logged by
/// mistake does not leak a password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Registration {
    fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Registration")
            .field(&self.fields.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

impl Registration {
    pub fn new() -> Registration {
        Registration::default()
    }

    pub fn from_pairs(fields: Vec<(String, String)>) -> Registration {
        Registration { fields }
    }

    /// The first value of a field.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field (multi-valued fields have one pair each).
    pub fn get_all<'a>(&'a self, var: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == var)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value of `var` with `value` (appended if absent).
    pub fn set(&mut self, var: &str, value: impl Into<String>) {
        let value = value.into();
        match self.fields.iter().position(|(k, _)| k == var) {
            Some(i) => {
                self.fields[i].1 = value;
                let mut seen = false;
                self.fields.retain(|(k, _)| {
                    if k != var {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.fields.push((var.to_owned(), value)),
        }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The plaintext that gets sealed: a format byte, then the number of
    /// pairs and each var and value, all length-prefixed (u32, big
    /// endian). Binary rather than XML so that any string, control
    /// characters included, survives the round trip.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![PLAINTEXT_FORMAT];
        put(&mut out, &(self.fields.len() as u32).to_be_bytes());
        for (k, v) in &self.fields {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Registration> {
        let (&format, mut rest) = bytes.split_first()?;
        if format != PLAINTEXT_FORMAT {
            return None;
        }
        let count = take_u32(&mut rest)?;
        let mut fields = Vec::new();
        for _ in 0..count {
            let k = take_str(&mut rest)?;
            let v = take_str(&mut rest)?;
            fields.push((k, v));
        }
        rest.is_empty().then_some(Registration { fields })
    }
}

const PLAINTEXT_FORMAT: u8 = 1;

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, &(s.len() as u32).to_be_bytes());
    put(out, s.as_bytes());
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let (head, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_be_bytes(*head))
}

fn take_str(rest: &mut &[u8]) -> Option<String> {
    let len = take_u32(rest)? as usize;
    if rest.len() < len {
        return None;
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(s.to_vec()).ok()
}

/// Why the store could not do what was asked.
#[derive(Debug)]
pub enum CredentialError {
    /// The service's store failed (its text says where).
    Store(StoreError),
    /// A registration that cannot be trusted: it does not parse, has the
    /// wrong shape, belongs to someone else, or fails authentication.
    Corrupt {
        /// Where it is ([`ServiceStore::location`]), for the admin.
        location: String,
        message: String,
    },
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::Store(e) => e.fmt(f),
            CredentialError::Corrupt { location, message } => write!(f, "{location}: {message}"),
        }
    }
}

impl std::error::Error for CredentialError {}

impl From<StoreError> for CredentialError {
    fn from(e: StoreError) -> Self {
        CredentialError::Store(e)
    }
}

/// The largest registration read. Real ones are a few hundred bytes; the
/// bound only keeps a runaway record from being decoded.
const MAX_RECORD_BYTES: usize = 1024 * 1024;

const FORMAT_VERSION: &str = "1";
const NONCE_BYTES: usize = 12;

/// The encrypted registrations of one service, in one collection of its
/// store (see the module documentation for the format). Cloning is cheap.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    store: ServiceStore,
    collection: String,
    key: Arc<SecretKey>,
    /// The JID the seal is bound to.
    service: String,
}

impl CredentialStore {
    /// The registrations in `collection` of `store`, sealed with `key` and
    /// bound to `service_jid`.
    pub fn new(
        store: ServiceStore,
        collection: impl Into<String>,
        key: Arc<SecretKey>,
        service_jid: &str,
    ) -> CredentialStore {
        CredentialStore {
            store,
            collection: collection.into(),
            key,
            service: service_jid.to_owned(),
        }
    }

    /// Where `user`'s registration is kept (whether or not it exists).
    pub fn location(&self, user: &Jid) -> String {
        self.store
            .location(&self.collection, &user.to_bare().to_string())
    }

    fn corrupt(&self, user: &Jid, message: impl Into<String>) -> CredentialError {
        CredentialError::Corrupt {
            location: self.location(user),
            message: message.into(),
        }
    }

    /// The registration of `user` (its bare JID is used), `None` if the user
    /// is not registered.
    pub async fn load(&self, user: &Jid) -> Result<Option<Registration>, CredentialError> {
        let user = user.to_bare();
        let Some(bytes) = self.store.get(&self.collection, &user.to_string()).await? else {
            return Ok(None);
        };
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(self.corrupt(&user, format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        let root = parse_document(&bytes, Limits::default())
            .map_err(|e| self.corrupt(&user, e.to_string()))?;
        let stored_user = check_shape(&root).map_err(|m| self.corrupt(&user, m))?;
        if stored_user != user.to_string() {
            // A record copied to another user's key. The authentication
            // below would fail too; this says why.
            return Err(self.corrupt(
                &user,
                format!("the file holds the registration of '{stored_user}', not of '{user}'"),
            ));
        }
        let sealed = root
            .get_child("sealed", ns::SPOOL)
            .expect("check_shape found it");
        let nonce = BASE64
            .decode(sealed.attr("nonce").unwrap_or_default())
            .ok()
            .filter(|n| n.len() == NONCE_BYTES)
            .ok_or_else(|| self.corrupt(&user, "the nonce is not 12 bytes of base64"))?;
        let ciphertext = BASE64
            .decode(sealed.text().trim())
            .map_err(|_| self.corrupt(&user, "the sealed data is not base64"))?;
        let aad = associated_data(&self.service, &user);
        let plaintext = self
            .cipher()
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                self.corrupt(
                    &user,
                    format!(
                        "the registration does not decrypt for '{user}' at '{}': the \
                         credentials key changed, or the file was altered or copied \
                         from another user or service",
                        self.service
                    ),
                )
            })?;
        Registration::decode(&plaintext).map(Some).ok_or_else(|| {
            self.corrupt(&user, "the decrypted registration is not in a known format")
        })
    }

    /// Stores (creating or replacing) the registration of `user` (its bare
    /// JID is used); durable when it returns.
    pub async fn save(
        &self,
        user: &Jid,
        registration: &Registration,
    ) -> Result<(), CredentialError> {
        let user = user.to_bare();
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let aad = associated_data(&self.service, &user);
        let plaintext = registration.encode();
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .expect("encryption cannot fail for in-memory sizes");
        let doc = Element::new("registration", ns::SPOOL)
            .with_attr("version", FORMAT_VERSION)
            .with_attr("user", user.to_string())
            .with_child(
                Element::new("sealed", ns::SPOOL)
                    .with_attr("nonce", BASE64.encode(nonce))
                    .with_text(BASE64.encode(&ciphertext)),
            );
        let mut bytes = doc.to_xml_string().into_bytes();
        bytes.push(b'\n');
        Ok(self
            .store
            .put(&self.collection, &user.to_string(), bytes)
            .await?)
    }

    /// Deletes the registration of `user`; whether there was one.
    pub async fn remove(&self, user: &Jid) -> Result<bool, CredentialError> {
        let user = user.to_bare();
        Ok(self
            .store
            .remove(&self.collection, &user.to_string())
            .await?)
    }

    /// The bare JIDs of every registered user, sorted. Records are not
    /// decrypted (that is [`CredentialStore::load`]'s job), but a key that
    /// is not a normalized bare JID is an error.
    pub async fn list(&self) -> Result<Vec<Jid>, CredentialError> {
        let mut users = Vec::new();
        for key in self.store.keys(&self.collection).await? {
            let jid = Jid::parse(&key)
                .ok()
                .filter(|j| j.is_bare() && j.to_string() == key)
                .ok_or_else(|| CredentialError::Corrupt {
                    location: self.store.location(&self.collection, &key),
                    message: format!("'{key}' is not the normalized bare JID of a user"),
                })?;
            users.push(jid);
        }
        users.sort();
        Ok(users)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.key.bytes()))
    }
}

/// What the seal is bound to: the format, the service and the user, each
/// length-prefixed so that no two different pairs give the same bytes.
fn associated_data(service: &str, user: &Jid) -> Vec<u8> {
    let mut aad = b"switchboard-registration-v1".to_vec();
    put_str(&mut aad, service);
    put_str(&mut aad, &user.to_string());
    aad
}

/// Checks the document's shape; the user it says it belongs to.
fn check_shape(root: &Element) -> Result<String, String> {
    if !root.is("registration", ns::SPOOL) {
        return Err(format!(
            "expected a <registration/> in '{}', found <{}/>",
            ns::SPOOL,
            root.name
        ));
    }
    match root.attr("version") {
        Some(FORMAT_VERSION) => {}
        Some(v) => return Err(format!("unsupported registration format version '{v}'")),
        None => return Err("the registration has no version".into()),
    }
    if root.get_child("sealed", ns::SPOOL).is_none() {
        return Err("the registration has no <sealed/> data".into());
    }
    root.attr("user")
        .map(str::to_owned)
        .ok_or_else(|| "the registration does not say whose it is".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use switchboard_spool::store::file::FileStores;
    use switchboard_spool::store::memory::MemoryStores;

    const IRC: &str = "irc.example.org";

    fn memory(key: &Arc<SecretKey>, service: &str) -> (ServiceStore, CredentialStore) {
        let store = ServiceStore::new(MemoryStores::new().service_data, service);
        let creds = CredentialStore::new(store.clone(), "registrations", key.clone(), service);
        (store, creds)
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn reg(pairs: &[(&str, &str)]) -> Registration {
        Registration::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const PASSWORD: &str = "correct horse battery staple";

    fn romeo() -> Registration {
        reg(&[
            ("username", "RomeoMyRomeo"),
            ("password", PASSWORD),
            ("x", "a\0b\u{1}"),
        ])
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn saved_registrations_load_back_from_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("spool");
        let store = ServiceStore::new(FileStores::open(&root).unwrap().service_data, IRC);
        let key = Arc::new(SecretKey::generate());
        let s = CredentialStore::new(store, "registrations", key, IRC);
        let user = jid("romeo@montague.lit/orchard");
        assert_eq!(s.load(&user).await.unwrap(), None);
        s.save(&user, &romeo()).await.unwrap();
        assert_eq!(
            s.load(&jid("romeo@montague.lit")).await.unwrap(),
            Some(romeo())
        );
        // Where releases before the storage interface kept it.
        let path = root.join("irc.example.org/registrations/romeo%40montague.lit.xml");
        assert_eq!(s.location(&user), path.display().to_string());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        // A new write is a new nonce: the same registration never gives
        // the same file twice.
        let first = std::fs::read(&path).unwrap();
        s.save(&user, &romeo()).await.unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), first);
    }

    #[tokio::test]
    async fn a_loose_directory_is_tightened_and_stale_temporary_files_go() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("spool");
        let dir = root.join("irc.example.org/registrations");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let junk = dir.join(".a%40b.tmp.1.2");
        std::fs::write(&junk, b"half a write").unwrap();
        let store = ServiceStore::new(FileStores::open(&root).unwrap().service_data, IRC);
        let s = CredentialStore::new(store, "registrations", Arc::new(SecretKey::generate()), IRC);
        assert!(s.list().await.unwrap().is_empty());
        assert_eq!(mode(&dir), 0o700);
        assert!(!junk.exists());
    }

    #[tokio::test]
    async fn no_secret_is_readable_in_the_record() {
        let key = Arc::new(SecretKey::generate());
        let (store, s) = memory(&key, IRC);
        let user = jid("romeo@montague.lit");
        s.save(&user, &romeo()).await.unwrap();
        let bytes = store
            .get("registrations", "romeo@montague.lit")
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for secret in [PASSWORD, "horse", "RomeoMyRomeo"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {text}"
            );
        }
        let root = parse_document(&bytes, Limits::default()).unwrap();
        assert!(root.is("registration", ns::SPOOL));
        assert_eq!(root.attr("user"), Some("romeo@montague.lit"));
        assert_eq!(root.attr("version"), Some("1"));
    }

    fn corrupt_message(r: Result<Option<Registration>, CredentialError>, location: &str) -> String {
        match r {
            Err(e @ CredentialError::Corrupt { .. }) => {
                let text = e.to_string();
                assert!(text.starts_with(location), "{text}");
                text
            }
            other => panic!("expected a damaged-record error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tampering_is_detected_and_never_read_as_unregistered() {
        let key = Arc::new(SecretKey::generate());
        let (store, s) = memory(&key, IRC);
        let user = jid("romeo@montague.lit");
        s.save(&user, &romeo()).await.unwrap();
        let where_ = s.location(&user);
        let good = store
            .get("registrations", "romeo@montague.lit")
            .await
            .unwrap()
            .unwrap();
        let good = String::from_utf8(good).unwrap();
        let put = |text: String| {
            let store = store.clone();
            async move {
                store
                    .put("registrations", "romeo@montague.lit", text.into_bytes())
                    .await
                    .unwrap()
            }
        };

        // One flipped bit of ciphertext.
        let root = parse_document(good.as_bytes(), Limits::default()).unwrap();
        let sealed = root.get_child("sealed", ns::SPOOL).unwrap().text();
        let mut ct = BASE64.decode(sealed.trim()).unwrap();
        ct[0] ^= 1;
        let bad = good.replace(sealed.trim(), &BASE64.encode(&ct));
        put(bad.clone()).await;
        let msg = corrupt_message(s.load(&user).await, &where_);
        assert!(msg.contains("does not decrypt"), "{msg}");
        assert_eq!(
            store
                .get("registrations", "romeo@montague.lit")
                .await
                .unwrap(),
            Some(bad.into_bytes()),
            "left as found"
        );

        for (damaged, expect) in [
            ("<registration", "1:"),
            (
                "<registration xmlns='urn:switchboard:spool:1' version='2' user='romeo@montague.lit'><sealed nonce=''/></registration>",
                "unsupported registration format version '2'",
            ),
            (
                "<registration xmlns='urn:switchboard:spool:1' version='1' user='romeo@montague.lit'><sealed nonce='AAAA'>AAAA</sealed></registration>",
                "the nonce is not 12 bytes",
            ),
            ("<other xmlns='urn:x'/>", "expected a <registration/>"),
        ] {
            put(damaged.to_owned()).await;
            let msg = corrupt_message(s.load(&user).await, &where_);
            assert!(msg.contains(expect), "{msg}");
        }
    }

    #[tokio::test]
    async fn a_record_copied_to_another_user_or_service_does_not_open() {
        let key = Arc::new(SecretKey::generate());
        let (store, s) = memory(&key, IRC);
        let romeo_jid = jid("romeo@montague.lit");
        let tybalt = jid("tybalt@capulet.lit");
        s.save(&romeo_jid, &romeo()).await.unwrap();
        let stolen = store
            .get("registrations", "romeo@montague.lit")
            .await
            .unwrap()
            .unwrap();
        let stolen = String::from_utf8(stolen).unwrap();

        // Copied as is: the stated owner gives it away.
        store
            .put(
                "registrations",
                "tybalt@capulet.lit",
                stolen.clone().into_bytes(),
            )
            .await
            .unwrap();
        let msg = corrupt_message(s.load(&tybalt).await, &s.location(&tybalt));
        assert!(
            msg.contains("registration of 'romeo@montague.lit'"),
            "{msg}"
        );

        // Copied with the owner edited: the seal gives it away.
        let edited = stolen.replace("romeo@montague.lit", "tybalt@capulet.lit");
        store
            .put("registrations", "tybalt@capulet.lit", edited.into_bytes())
            .await
            .unwrap();
        let msg = corrupt_message(s.load(&tybalt).await, &s.location(&tybalt));
        assert!(msg.contains("does not decrypt"), "{msg}");

        // Another service with the same key, or this one with another key.
        let other = CredentialStore::new(
            store.clone(),
            "registrations",
            key.clone(),
            "aim.example.org",
        );
        corrupt_message(other.load(&romeo_jid).await, &s.location(&romeo_jid));
        let rekeyed = CredentialStore::new(
            store.clone(),
            "registrations",
            Arc::new(SecretKey::generate()),
            IRC,
        );
        corrupt_message(rekeyed.load(&romeo_jid).await, &s.location(&romeo_jid));
    }

    #[tokio::test]
    async fn list_and_remove() {
        let key = Arc::new(SecretKey::generate());
        let (store, s) = memory(&key, IRC);
        assert!(s.list().await.unwrap().is_empty());
        let long = jid(&format!("{}@example.org", "x".repeat(200)));
        let users = [jid("b@example.org"), jid("a@example.org"), long.clone()];
        for u in &users {
            s.save(u, &romeo()).await.unwrap();
        }
        let mut expect = users.to_vec();
        expect.sort();
        assert_eq!(s.list().await.unwrap(), expect);

        assert!(s.remove(&jid("a@example.org/res")).await.unwrap());
        assert!(!s.remove(&jid("a@example.org")).await.unwrap());
        assert_eq!(s.load(&jid("a@example.org")).await.unwrap(), None);
        assert!(s.remove(&long).await.unwrap());
        assert_eq!(s.list().await.unwrap(), vec![jid("b@example.org")]);
        // A key that is not a user's is reported, not skipped.
        store
            .put("registrations", "Stray", b"<x/>".to_vec())
            .await
            .unwrap();
        match s.list().await {
            Err(CredentialError::Corrupt { location, message }) => {
                assert!(message.contains("'Stray'"), "{message}");
                assert!(location.contains("Stray"), "{location}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn registrations_never_show_values_in_debug() {
        let r = romeo();
        assert_eq!(
            format!("{r:?}"),
            "Registration([\"username\", \"password\", \"x\"])"
        );
        let mut r = reg(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(r.get_all("a").collect::<Vec<_>>(), ["1", "3"]);
        r.set("a", "4");
        r.set("c", "5");
        assert_eq!(r, reg(&[("a", "4"), ("b", "2"), ("c", "5")]));
        assert_eq!(r.get("c"), Some("5"));
        assert_eq!(Registration::decode(&r.encode()), Some(r.clone()));
        let mut enc = r.encode();
        enc.push(0);
        assert_eq!(Registration::decode(&enc), None, "trailing bytes");
        assert_eq!(Registration::decode(&enc[..5]), None, "truncated");
    }

    #[test]
    fn generated_key_is_private_and_reloads_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/credentials.key");
        let a = SecretKey::load_or_generate(&path).unwrap();
        let b = SecretKey::load_or_generate(&path).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(format!("{a:?}"), "SecretKey(..)");
    }

    #[test]
    fn a_damaged_key_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not hex").unwrap();
        let err = SecretKey::load_or_generate(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
