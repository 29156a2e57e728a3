//! [`FileSpool`]: the [`Storage`] implementation over a directory tree.
//!
//! Layout, with every host and user name encoded by [`crate::filename`]:
//!
//! ```text
//! <root>/                              mode 0700
//!   <host>/                            mode 0700
//!     <user>.xml                       mode 0600, one document per account
//!     +host.xml                        mode 0600, the host's own data (message of the day)
//!     <user>.offline                   the account's offline log (see crate::store::file)
//!     <user>.archive                   the account's message archive (likewise)
//!     .locks/<user>.lock               flock(2) target for that account and its logs
//!     .locks/+host.lock                flock(2) target for the host's data
//!     .<user>.tmp.<pid>.<n>            a write in progress (or a crash's leftover)
//! ```
//!
//! `+host` ([`HOST_DATA_STEM`]) is no encoded user name, so the host file
//! and its lock never collide with an account's; it is locked, written and
//! cleaned up after a crash exactly like an account's file.
//!
//! Locking is per account: `create_user`, `update_user` and `delete_user`
//! hold an exclusive `flock` on the account's lock file for their whole
//! check-then-write or read-modify-write (see [`crate::lock`]). Because
//! `flock` is shared by every process on the machine, `switchboard user
//! passwd` run beside a live server is serialized with it, and distinct
//! accounts never wait for each other. Lock files are kept (an empty file
//! per account) and removed when the account is deleted.
//!
//! Deleting an account removes its logs first and its document last, so
//! that a crash in between leaves an account without messages rather than
//! messages without an account (which a new account of the same name would
//! inherit); creating one clears logs left over from elsewhere all the
//! same.
//!
//! Reads take no lock: every write replaces the file atomically (see
//! [`crate::atomic`]), so a reader sees the old or the new document whole.
//! Nothing is cached either: `load_user` reads and parses the file on each
//! call, which is how an edit made by hand is noticed without a restart —
//! re-reading is the change detection, and at a few kilobytes per account it
//! costs less than watching for changes would.

use crate::atomic::{replace_file, sync_dir, temp_stem};
use crate::filename::{decode_name, encode_name, is_hashed, HOST_DATA_STEM};
use crate::lock::FileLock;
use crate::record::{
    host_from_element, host_to_document, is_representable, stored_user_name, RecordError,
};
use crate::{FileSpool, SpoolError, Storage, UserRecord};
use std::fs::DirBuilder;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use switchboard_xml::{parse_document, Element, Limits, Span};

/// The largest spool file read: generous (offline messages and rosters
/// accumulate), but a bound, so a runaway file cannot exhaust memory.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// Parser limits for spool files. Stanza-sized limits make no sense for a
/// whole account, so these only stop pathological input.
pub fn spool_limits() -> Limits {
    Limits {
        max_stanza_bytes: MAX_FILE_BYTES,
        max_depth: 256,
        max_attrs: 256,
    }
}

/// The subdirectory of a host directory holding the lock files.
pub const LOCK_DIR: &str = ".locks";
const XML_SUFFIX: &str = ".xml";
/// An account's offline log, beside its document.
pub const OFFLINE_SUFFIX: &str = ".offline";
/// An account's (or a room's) archive, beside its document.
pub const ARCHIVE_SUFFIX: &str = ".archive";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { path, source }
}

fn corrupt(path: &Path, e: RecordError) -> SpoolError {
    SpoolError::Corrupt {
        path: path.to_owned(),
        line: e.line,
        col: e.col,
        message: e.message,
    }
}

/// Creates a directory (mode 0700); whether it was new.
pub(crate) fn new_dir(path: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// A spool file, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFile {
    /// The account name the document states, if it states one.
    pub name: Option<String>,
    pub record: UserRecord,
    /// Where the document element starts, for errors about the whole file.
    pub span: Span,
}

/// Parses spool file contents (`path` is only for errors).
pub fn parse_user_file(path: &Path, bytes: &[u8]) -> Result<UserFile, SpoolError> {
    let root: Element = parse_document(bytes, spool_limits()).map_err(|e| SpoolError::Corrupt {
        path: path.to_owned(),
        line: e.line,
        col: e.col,
        message: e.error.to_string(),
    })?;
    let name = stored_user_name(&root).map_err(|e| corrupt(path, e))?;
    let record = UserRecord::from_element(&root).map_err(|e| corrupt(path, e))?;
    Ok(UserFile {
        name,
        record,
        span: root.span,
    })
}

/// [`FileSpool::open`]: creates the root (mode 0700) if needed and removes
/// temporary files that crashed writers left behind.
pub(crate) fn open(root: PathBuf) -> Result<FileSpool, SpoolError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(io_err(&root))?;
    let spool = FileSpool { root };
    spool.remove_stale_temp_files();
    Ok(spool)
}

impl FileSpool {
    /// The directory of a host's accounts.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.root.join(encode_name(host))
    }

    /// The spool file of an account (whether or not it exists).
    pub fn user_path(&self, host: &str, user: &str) -> PathBuf {
        self.host_dir(host).join(file_name(&encode_name(user)))
    }

    /// The file of a host's own data (whether or not it exists).
    pub fn host_data_path(&self, host: &str) -> PathBuf {
        self.host_dir(host).join(file_name(HOST_DATA_STEM))
    }

    /// An account's offline log (whether or not it exists).
    pub fn offline_path(&self, host: &str, user: &str) -> PathBuf {
        self.host_dir(host)
            .join(format!("{}{OFFLINE_SUFFIX}", encode_name(user)))
    }

    /// An account's archive (whether or not it exists).
    pub fn archive_path(&self, host: &str, user: &str) -> PathBuf {
        self.host_dir(host)
            .join(format!("{}{ARCHIVE_SUFFIX}", encode_name(user)))
    }

    /// Reads and checks a host's data file; empty if there is none.
    fn read_host(&self, host: &str) -> Result<Vec<Element>, SpoolError> {
        let path = self.host_data_path(host);
        let Some(bytes) = read_bounded(&path)? else {
            return Ok(Vec::new());
        };
        let root: Element =
            parse_document(&bytes, spool_limits()).map_err(|e| SpoolError::Corrupt {
                path: path.clone(),
                line: e.line,
                col: e.col,
                message: e.error.to_string(),
            })?;
        let (name, data) = host_from_element(&root).map_err(|e| corrupt(&path, e))?;
        match name {
            // Like an account's file, a host file copied from another host
            // must not silently become this host's data.
            Some(name) if name != host => Err(SpoolError::Corrupt {
                path,
                line: root.span.line,
                col: root.span.col,
                message: format!("the file belongs to the host '{name}', not '{host}'"),
            }),
            _ => Ok(data),
        }
    }

    /// Checks and atomically writes a host's data file, or removes it when
    /// there is nothing left to keep.
    fn write_host(&self, host: &str, data: &[Element]) -> Result<(), SpoolError> {
        let dir = self.host_dir(host);
        let path = self.host_data_path(host);
        if data.is_empty() {
            return match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(&dir).map_err(io_err(&dir)),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(io_err(&path)(e)),
            };
        }
        let invalid = |message: String| SpoolError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, message),
        };
        if let Some(bad) = data.iter().find(|e| !is_representable(e)) {
            return Err(invalid(format!(
                "refusing to write <{}/>: it holds characters XML cannot carry",
                bad.name
            )));
        }
        let bytes = host_to_document(host, data);
        // Read back what is about to be written, as for accounts.
        let back = parse_document(&bytes, spool_limits())
            .ok()
            .and_then(|root| host_from_element(&root).ok());
        if back.is_none_or(|(name, d)| name.as_deref() != Some(host) || d.len() != data.len()) {
            return Err(invalid(
                "refusing to write host data that would read back differently".into(),
            ));
        }
        replace_file(&dir, &file_name(HOST_DATA_STEM), HOST_DATA_STEM, &bytes).map_err(|e| {
            SpoolError::Io {
                path: e.path,
                source: e.source,
            }
        })
    }

    /// Locks one account (or whatever else is named `stem` in the host's
    /// directory: the host's data, a room's archive). `None` if the host
    /// has no directory (so there is nothing to lock) and `create` is
    /// false.
    pub(crate) fn lock_user(
        &self,
        host: &str,
        stem: &str,
        create: bool,
    ) -> Result<Option<FileLock>, SpoolError> {
        lock_in(&self.root, &self.host_dir(host), stem, create)
    }

    /// Reads and checks an account's file; `None` if there is none. The
    /// caller holds the account's lock or accepts a lock-free read.
    pub(crate) fn read_user(
        &self,
        host: &str,
        user: &str,
    ) -> Result<Option<UserRecord>, SpoolError> {
        let path = self.user_path(host, user);
        let Some(bytes) = read_bounded(&path)? else {
            return Ok(None);
        };
        let file = parse_user_file(&path, &bytes)?;
        match file.name {
            // A file copied or renamed by hand to another account's name
            // must not silently grant that account its credentials.
            Some(name) if name != user => Err(SpoolError::Corrupt {
                path,
                line: file.span.line,
                col: file.span.col,
                message: format!("the file belongs to the account '{name}', not '{user}'"),
            }),
            _ => Ok(Some(file.record)),
        }
    }

    /// Serializes, checks and atomically writes an account's file. The
    /// caller holds the account's lock.
    pub(crate) fn write_user(
        &self,
        host: &str,
        user: &str,
        record: &UserRecord,
    ) -> Result<(), SpoolError> {
        let stem = encode_name(user);
        let dir = self.host_dir(host);
        let path = dir.join(file_name(&stem));
        let bytes = record.to_document(user);
        verify_document(&path, user, record, &bytes)?;
        replace_file(&dir, &file_name(&stem), &stem, &bytes).map_err(|e| SpoolError::Io {
            path: e.path,
            source: e.source,
        })
    }

    /// Best effort, in every host's (and service's) directory; see
    /// [`remove_stale_temp_files_in`].
    fn remove_stale_temp_files(&self) {
        let Ok(hosts) = std::fs::read_dir(&self.root) else {
            return;
        };
        for host in hosts.flatten() {
            let dir = host.path();
            if dir.is_dir() {
                remove_stale_temp_files_in(&dir);
            }
        }
    }

    /// Removes an account's logs, under its lock (held by the caller):
    /// they go before its document, and a new account starts without them.
    fn remove_logs(&self, host: &str, user: &str) -> Result<bool, SpoolError> {
        let mut removed = false;
        for path in [self.offline_path(host, user), self.archive_path(host, user)] {
            match std::fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(removed)
    }
}

/// Locks `stem` in `dir` (`dir/.locks/<stem>.lock`), creating `dir` (and
/// syncing its parent, `root`) when `create` is set; `None` when `dir`
/// does not exist and `create` is not set.
pub(crate) fn lock_in(
    root: &Path,
    dir: &Path,
    stem: &str,
    create: bool,
) -> Result<Option<FileLock>, SpoolError> {
    if create {
        if new_dir(dir).map_err(io_err(dir))? {
            // The new directory must survive a crash along with the file
            // about to be written into it.
            sync_dir(root).map_err(io_err(root))?;
        }
    } else if !dir.is_dir() {
        return Ok(None);
    }
    let locks = dir.join(LOCK_DIR);
    new_dir(&locks).map_err(io_err(&locks))?;
    let path = locks.join(lock_name(stem));
    FileLock::acquire(&path).map(Some).map_err(io_err(&path))
}

/// Best effort: removes the temporary files in `dir` that crashed writers
/// left behind. A temporary file is stale when nobody holds its stem's
/// lock, because every write happens under that lock. Checking the lock
/// rather than the pid in the name also works when processes from
/// different pid namespaces share the spool.
pub(crate) fn remove_stale_temp_files_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(temp_stem) else {
            continue;
        };
        let lock = dir.join(LOCK_DIR).join(lock_name(stem));
        if new_dir(&dir.join(LOCK_DIR)).is_err() {
            continue;
        }
        match FileLock::try_acquire(&lock) {
            Ok(Some(_held)) => {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a stale temporary spool file")
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary spool file")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %lock.display(), error = %e, "cannot lock to clean up")
            }
        }
    }
}

fn file_name(stem: &str) -> String {
    format!("{stem}{XML_SUFFIX}")
}

fn lock_name(stem: &str) -> String {
    format!("{stem}.lock")
}

/// Reads a whole file, `None` if it does not exist. Larger than
/// [`MAX_FILE_BYTES`] is refused as corrupt rather than read.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, SpoolError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(SpoolError::Corrupt {
            path: path.to_owned(),
            line: 1,
            col: 1,
            message: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Parses what is about to be written, so that a record this crate could
/// not read back (text XML cannot carry, an extra element posing as a
/// credential, a zero iteration count) is refused instead of turning the
/// account into a corrupt file.
fn verify_document(
    path: &Path,
    user: &str,
    record: &UserRecord,
    bytes: &[u8],
) -> Result<(), SpoolError> {
    let invalid = |message: String| SpoolError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, message),
    };
    if let Some(bad) = record.extra.iter().find(|e| !is_representable(e)) {
        return Err(invalid(format!(
            "refusing to write <{}/>: it holds characters XML cannot carry",
            bad.name
        )));
    }
    let back = match parse_user_file(path, bytes) {
        Ok(parsed) => parsed,
        Err(SpoolError::Corrupt {
            line, col, message, ..
        }) => {
            return Err(invalid(format!(
                "refusing to write an unreadable record ({line}:{col}: {message})"
            )))
        }
        Err(e) => return Err(e),
    };
    if back.name.as_deref() != Some(user)
        || back.record.credentials != record.credentials
        || back.record.extra.len() != record.extra.len()
    {
        return Err(invalid(
            "refusing to write a record that would read back differently".into(),
        ));
    }
    Ok(())
}

impl Storage for FileSpool {
    fn load_user(&self, host: &str, user: &str) -> Result<Option<UserRecord>, SpoolError> {
        self.read_user(host, user)
    }

    fn user_exists(&self, host: &str, user: &str) -> Result<bool, SpoolError> {
        // Existence is the file's presence: a corrupt file still blocks
        // registering the name again.
        let path = self.user_path(host, user);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn create_user(&self, host: &str, user: &str, record: &UserRecord) -> Result<(), SpoolError> {
        let _lock = self.lock_user(host, &encode_name(user), true)?;
        if self.user_exists(host, user)? {
            return Err(SpoolError::AlreadyExists);
        }
        self.remove_logs(host, user)?;
        self.write_user(host, user, record)
    }

    fn update_user(
        &self,
        host: &str,
        user: &str,
        f: &mut dyn FnMut(&mut UserRecord),
    ) -> Result<(), SpoolError> {
        let Some(_lock) = self.lock_user(host, &encode_name(user), false)? else {
            return Err(SpoolError::NotFound);
        };
        // A corrupt file fails here, before anything is written.
        let Some(mut record) = self.read_user(host, user)? else {
            return Err(SpoolError::NotFound);
        };
        let before = record.clone();
        f(&mut record);
        if record == before {
            return Ok(());
        }
        self.write_user(host, user, &record)
    }

    fn delete_user(&self, host: &str, user: &str) -> Result<bool, SpoolError> {
        let Some(lock) = self.lock_user(host, &encode_name(user), false)? else {
            return Ok(false);
        };
        let logs = self.remove_logs(host, user)?;
        let path = self.user_path(host, user);
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if removed || logs {
            let dir = self.host_dir(host);
            sync_dir(&dir).map_err(io_err(&dir))?;
        }
        let lock_path = lock.path().to_owned();
        lock.unlink().map_err(io_err(&lock_path))?;
        Ok(removed)
    }

    fn load_host(&self, host: &str) -> Result<Vec<Element>, SpoolError> {
        self.read_host(host)
    }

    fn update_host(
        &self,
        host: &str,
        f: &mut dyn FnMut(&mut Vec<Element>),
    ) -> Result<(), SpoolError> {
        // The host directory is created if needed: a host may get data
        // before its first account.
        let _lock = self.lock_user(host, HOST_DATA_STEM, true)?;
        let mut data = self.read_host(host)?;
        let before = data.clone();
        f(&mut data);
        if data == before {
            return Ok(());
        }
        self.write_host(host, &data)
    }

    fn list_users(&self, host: &str) -> Result<Vec<String>, SpoolError> {
        let dir = self.host_dir(host);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut users = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let file_name = entry.file_name();
            // Encoded names never start with `.`, so this skips temporary
            // files, the lock directory and anything hidden.
            let Some(stem) = file_name
                .to_str()
                .filter(|n| !n.starts_with('.'))
                .and_then(|n| n.strip_suffix(XML_SUFFIX))
                .filter(|stem| *stem != HOST_DATA_STEM)
            else {
                continue;
            };
            if entry.file_type().map_err(io_err(&path))?.is_dir() {
                continue;
            }
            let name = if is_hashed(stem) {
                // The file name is a digest; the document knows the name.
                let Some(bytes) = read_bounded(&path)? else {
                    continue; // Deleted since the directory was read.
                };
                parse_user_file(&path, &bytes)?
                    .name
                    .filter(|name| encode_name(name) == stem)
            } else {
                decode_name(stem)
            };
            match name {
                Some(name) => users.push(name),
                None => tracing::warn!(
                    path = %path.display(),
                    "ignoring a spool file whose name is not an encoded account name"
                ),
            }
        }
        users.sort();
        Ok(users)
    }
}
