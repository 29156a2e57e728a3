//! Secrets at rest: the key that seals them, and the per-user store of
//! legacy-network registrations sealed with it.
//!
//! The key ([`SecretKey`]) is 32 random bytes, kept hex-encoded in a file
//! readable only by the server (mode 0600), `etc/credentials.key` unless the
//! config names another. It is generated on first run.
//!
//! The store ([`CredentialStore`]) keeps one file per registered user in a
//! directory of the service's own (mode 0700):
//!
//! ```text
//! <dir>/<encoded bare JID>.xml        mode 0600, one registration
//! <dir>/.locks/<encoded>.lock         flock(2) target serializing its writers
//! ```
//!
//! Each file is a small XML document whose only content is the sealed
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
//! the user's bare JID are the associated data, so a file copied or renamed
//! to another user's name, or moved to another service's directory, fails
//! authentication instead of handing that user someone else's credentials.
//! A file that does not parse, fails authentication or decodes to garbage
//! is an error naming its path: it is never read as "not registered", so it
//! is never silently overwritten either.
//!
//! Writes go through [`switchboard_spool::atomic::replace_file`] (temporary
//! file, fsync, rename, fsync of the directory), so a crash leaves the old
//! or the new registration, never half of one.

use std::fs::DirBuilder;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use switchboard_jid::Jid;
use switchboard_spool::atomic::{replace_file, sync_dir, temp_stem};
use switchboard_spool::filename::{decode_name, encode_name, is_hashed};
use switchboard_spool::lock::FileLock;
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

/// Why the store could not do what was asked. Both variants name the file.
#[derive(Debug)]
pub enum StoreError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// A registration file that cannot be trusted: it does not parse, has
    /// the wrong shape, belongs to someone else, or fails authentication.
    Corrupt {
        path: PathBuf,
        message: String,
    },
}

impl StoreError {
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Io { path, .. } | StoreError::Corrupt { path, .. } => path,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Corrupt { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { .. } => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}

fn corrupt(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The largest registration file read. Real ones are a few hundred bytes;
/// the bound only keeps a runaway file from being read whole.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

const LOCK_DIR: &str = ".locks";
const XML_SUFFIX: &str = ".xml";
const FORMAT_VERSION: &str = "1";
const NONCE_BYTES: usize = 12;

/// The encrypted registrations of one service (see the module
/// documentation for the layout and the format). Calls block on the file
/// system; async callers use `spawn_blocking`.
#[derive(Debug)]
pub struct CredentialStore {
    dir: PathBuf,
    key: Arc<SecretKey>,
    service: String,
}

impl CredentialStore {
    /// Opens the store in `dir`, creating it if needed. The directory is
    /// made mode 0700 even if it existed with a looser mode. Temporary files
    /// that a crashed writer left behind are removed.
    pub fn open(
        dir: impl Into<PathBuf>,
        key: Arc<SecretKey>,
        service_jid: &str,
    ) -> Result<CredentialStore, StoreError> {
        let dir = dir.into();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(&dir))?;
        let locks = dir.join(LOCK_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&locks)
            .map_err(io_err(&locks))?;
        let store = CredentialStore {
            dir,
            key,
            service: service_jid.to_owned(),
        };
        store.remove_stale_temp_files();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `user`'s registration (whether or not it exists).
    pub fn path_of(&self, user: &Jid) -> PathBuf {
        self.dir.join(file_name(&stem_of(user)))
    }

    /// The registration of `user` (its bare JID is used), `None` if the user
    /// is not registered.
    pub fn load(&self, user: &Jid) -> Result<Option<Registration>, StoreError> {
        let user = user.to_bare();
        let path = self.path_of(&user);
        let Some(bytes) = read_bounded(&path)? else {
            return Ok(None);
        };
        let root =
            parse_document(&bytes, Limits::default()).map_err(|e| corrupt(&path, e.to_string()))?;
        let stored_user = check_shape(&path, &root)?;
        if stored_user != user.to_string() {
            // A file copied or renamed to another user's name. The
            // authentication below would fail too; this says why.
            return Err(corrupt(
                &path,
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
            .ok_or_else(|| corrupt(&path, "the nonce is not 12 bytes of base64"))?;
        let ciphertext = BASE64
            .decode(sealed.text().trim())
            .map_err(|_| corrupt(&path, "the sealed data is not base64"))?;
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
                corrupt(
                    &path,
                    format!(
                        "the registration does not decrypt for '{user}' at '{}': the \
                         credentials key changed, or the file was altered or copied \
                         from another user or service",
                        self.service
                    ),
                )
            })?;
        Registration::decode(&plaintext)
            .map(Some)
            .ok_or_else(|| corrupt(&path, "the decrypted registration is not in a known format"))
    }

    /// Stores (creating or replacing) the registration of `user` (its bare
    /// JID is used).
    pub fn save(&self, user: &Jid, registration: &Registration) -> Result<(), StoreError> {
        let user = user.to_bare();
        let stem = stem_of(&user);
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
        let _lock = self.lock(&stem)?;
        replace_file(&self.dir, &file_name(&stem), &stem, &bytes).map_err(|e| StoreError::Io {
            path: e.path,
            source: e.source,
        })
    }

    /// Deletes the registration of `user`; whether there was one.
    pub fn remove(&self, user: &Jid) -> Result<bool, StoreError> {
        let user = user.to_bare();
        let stem = stem_of(&user);
        let path = self.dir.join(file_name(&stem));
        let lock = self.lock(&stem)?;
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if removed {
            sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        }
        let lock_path = lock.path().to_owned();
        lock.unlink().map_err(io_err(&lock_path))?;
        Ok(removed)
    }

    /// The bare JIDs of every registered user, sorted. Files are not
    /// decrypted (that is [`CredentialStore::load`]'s job), but a file name
    /// that does not stand for a bare JID is an error, as is a hashed name
    /// whose document does not say whose it is.
    pub fn list(&self) -> Result<Vec<Jid>, StoreError> {
        let entries = std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut users = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Lock and temporary files start with a dot; anything not
            // ending in `.xml` (an editor's backup, say) is not ours.
            if name.starts_with('.') {
                continue;
            }
            let Some(stem) = name.strip_suffix(XML_SUFFIX) else {
                continue;
            };
            let path = entry.path();
            let user = if is_hashed(stem) {
                let bytes = read_bounded(&path)?.ok_or_else(|| {
                    corrupt(&path, "the file disappeared while the store was listed")
                })?;
                let root = parse_document(&bytes, Limits::default())
                    .map_err(|e| corrupt(&path, e.to_string()))?;
                check_shape(&path, &root)?
            } else {
                decode_name(stem)
                    .ok_or_else(|| corrupt(&path, "the file name does not name a user"))?
            };
            let jid = Jid::parse(&user)
                .ok()
                .filter(|j| j.is_bare() && j.to_string() == user && stem_of(j) == stem)
                .ok_or_else(|| {
                    corrupt(
                        &path,
                        format!("'{user}' is not the normalized bare JID of this file"),
                    )
                })?;
            users.push(jid);
        }
        users.sort();
        Ok(users)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.key.bytes()))
    }

    fn lock(&self, stem: &str) -> Result<FileLock, StoreError> {
        let path = self.dir.join(LOCK_DIR).join(format!("{stem}.lock"));
        FileLock::acquire(&path).map_err(io_err(&path))
    }

    /// Best effort, as in the spool: a temporary file is stale when nobody
    /// holds its user's lock, because every write happens under that lock.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(temp_stem) else {
                continue;
            };
            let lock_path = self.dir.join(LOCK_DIR).join(format!("{stem}.lock"));
            if let Ok(Some(_held)) = FileLock::try_acquire(&lock_path) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn stem_of(user: &Jid) -> String {
    encode_name(&user.to_string())
}

fn file_name(stem: &str) -> String {
    format!("{stem}{XML_SUFFIX}")
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
fn check_shape(path: &Path, root: &Element) -> Result<String, StoreError> {
    if !root.is("registration", ns::SPOOL) {
        return Err(corrupt(
            path,
            format!(
                "expected a <registration/> in '{}', found <{}/>",
                ns::SPOOL,
                root.name
            ),
        ));
    }
    match root.attr("version") {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(corrupt(
                path,
                format!("unsupported registration format version '{v}'"),
            ))
        }
        None => return Err(corrupt(path, "the registration has no version")),
    }
    if root.get_child("sealed", ns::SPOOL).is_none() {
        return Err(corrupt(path, "the registration has no <sealed/> data"));
    }
    root.attr("user")
        .map(str::to_owned)
        .ok_or_else(|| corrupt(path, "the registration does not say whose it is"))
}

/// The file's bytes, `None` if it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(corrupt(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, key: &Arc<SecretKey>, service: &str) -> CredentialStore {
        CredentialStore::open(dir.join("registrations"), key.clone(), service).unwrap()
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

    #[test]
    fn saved_registrations_load_back_from_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "irc.example.org");
        let user = jid("romeo@montague.lit/orchard");
        assert_eq!(s.load(&user).unwrap(), None);
        s.save(&user, &romeo()).unwrap();
        assert_eq!(s.load(&jid("romeo@montague.lit")).unwrap(), Some(romeo()));
        let path = s.path_of(&user.to_bare());
        assert_eq!(path, s.dir().join("romeo%40montague.lit.xml"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(s.dir()), 0o700);

        // A new write is a new nonce: the same registration never gives
        // the same file twice.
        let first = std::fs::read(&path).unwrap();
        s.save(&user, &romeo()).unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), first);
    }

    #[test]
    fn a_loose_directory_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        CredentialStore::open(&dir, Arc::new(SecretKey::generate()), "s").unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn no_secret_is_readable_in_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "irc.example.org");
        let user = jid("romeo@montague.lit");
        s.save(&user, &romeo()).unwrap();
        let bytes = std::fs::read(s.path_of(&user)).unwrap();
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

    fn corrupt_message(r: Result<Option<Registration>, StoreError>, path: &Path) -> String {
        match r {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert_eq!(e.path(), path);
                let text = e.to_string();
                assert!(text.starts_with(&path.display().to_string()), "{text}");
                text
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
    }

    #[test]
    fn tampering_is_detected_and_never_read_as_unregistered() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "irc.example.org");
        let user = jid("romeo@montague.lit");
        s.save(&user, &romeo()).unwrap();
        let path = s.path_of(&user);
        let good = std::fs::read_to_string(&path).unwrap();

        // One flipped bit of ciphertext.
        let root = parse_document(good.as_bytes(), Limits::default()).unwrap();
        let sealed = root.get_child("sealed", ns::SPOOL).unwrap().text();
        let mut ct = BASE64.decode(sealed.trim()).unwrap();
        ct[0] ^= 1;
        let bad = good.replace(sealed.trim(), &BASE64.encode(&ct));
        std::fs::write(&path, &bad).unwrap();
        let msg = corrupt_message(s.load(&user), &path);
        assert!(msg.contains("does not decrypt"), "{msg}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            bad,
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
            std::fs::write(&path, damaged).unwrap();
            let msg = corrupt_message(s.load(&user), &path);
            assert!(msg.contains(expect), "{msg}");
        }
    }

    #[test]
    fn a_file_copied_to_another_user_or_service_does_not_open() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "irc.example.org");
        let romeo_jid = jid("romeo@montague.lit");
        let tybalt = jid("tybalt@capulet.lit");
        s.save(&romeo_jid, &romeo()).unwrap();
        let stolen = std::fs::read_to_string(s.path_of(&romeo_jid)).unwrap();

        // Copied as is: the stated owner gives it away.
        std::fs::write(s.path_of(&tybalt), &stolen).unwrap();
        let msg = corrupt_message(s.load(&tybalt), &s.path_of(&tybalt));
        assert!(
            msg.contains("registration of 'romeo@montague.lit'"),
            "{msg}"
        );

        // Copied with the owner edited: the seal gives it away.
        std::fs::write(
            s.path_of(&tybalt),
            stolen.replace("romeo@montague.lit", "tybalt@capulet.lit"),
        )
        .unwrap();
        let msg = corrupt_message(s.load(&tybalt), &s.path_of(&tybalt));
        assert!(msg.contains("does not decrypt"), "{msg}");

        // Another service with the same key, or this one with another key.
        let other = CredentialStore::open(s.dir(), key.clone(), "aim.example.org").unwrap();
        corrupt_message(other.load(&romeo_jid), &s.path_of(&romeo_jid));
        let rekeyed =
            CredentialStore::open(s.dir(), Arc::new(SecretKey::generate()), "irc.example.org")
                .unwrap();
        corrupt_message(rekeyed.load(&romeo_jid), &s.path_of(&romeo_jid));
    }

    #[test]
    fn list_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "irc.example.org");
        assert!(s.list().unwrap().is_empty());
        let long = jid(&format!("{}@example.org", "x".repeat(200)));
        let users = [jid("b@example.org"), jid("a@example.org"), long.clone()];
        for u in &users {
            s.save(u, &romeo()).unwrap();
        }
        assert!(is_hashed(&stem_of(&long)), "the long name is stored hashed");
        let mut expect = users.to_vec();
        expect.sort();
        assert_eq!(s.list().unwrap(), expect);

        assert!(s.remove(&jid("a@example.org/res")).unwrap());
        assert!(!s.remove(&jid("a@example.org")).unwrap());
        assert_eq!(s.load(&jid("a@example.org")).unwrap(), None);
        assert!(s.remove(&long).unwrap());
        assert_eq!(s.list().unwrap(), vec![jid("b@example.org")]);
        // Neither lock files nor temporary files count as users.
        std::fs::write(s.dir().join(".b%40example.org.tmp.1.2"), b"junk").unwrap();
        assert_eq!(s.list().unwrap(), vec![jid("b@example.org")]);
        // A file name that is not a user's is reported, not skipped.
        let stray = s.dir().join("Stray.xml");
        std::fs::write(&stray, b"<x/>").unwrap();
        assert_eq!(s.list().unwrap_err().path(), stray);
    }

    #[test]
    fn stale_temporary_files_are_cleaned_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::generate());
        let s = store(tmp.path(), &key, "s");
        let junk = s.dir().join(".a%40b.tmp.1.2");
        std::fs::write(&junk, b"half a write").unwrap();
        store(tmp.path(), &key, "s");
        assert!(!junk.exists());
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
