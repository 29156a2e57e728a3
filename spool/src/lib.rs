//! Storage for user data: the [`Storage`] trait the core talks to, and
//! [`FileSpool`], the embedded default that keeps one XML document per user
//! under `spool/<host>/`, as jabberd did, plus one for the host's own data
//! (the message of the day).
//!
//! Only this crate touches the spool directory.
//!
//! * [`record`]: the spool document, [`UserRecord`] ↔ XML;
//! * [`filename`]: host and user names made safe as file names;
//! * [`file_spool`]: the layout, the locking and the [`Storage`] impl;
//! * [`atomic`]: crash-safe replacement of a file;
//! * [`lock`]: the cross-process `flock(2)` lock;
//! * [`log`]: the append-only log format (offline queues, archives), with
//!   [`checksum`] (CRC-32C) telling whole records from torn ones;
//! * [`store`]: the async, per-kind storage interface ([`store::Stores`])
//!   that the core and the services are moving to.

pub mod atomic;
pub mod checksum;
pub mod file_spool;
pub mod filename;
pub mod lock;
pub mod log;
pub mod record;
pub mod store;

pub use record::RecordError;

use std::fmt;
use std::path::PathBuf;
use switchboard_xml::Element;

/// SCRAM credentials for one hash function: what the server needs to verify
/// a login (RFC 5802), never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The SCRAM hash name as in the mechanism: `SHA-1` or `SHA-256`.
    pub hash: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Everything stored for one account. Data this crate does not interpret
/// (roster, vCard, offline messages, private XML, per-service registrations)
/// travels as elements in `extra`, in the order found, and is written back
/// unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub credentials: Vec<ScramCredential>,
    pub extra: Vec<Element>,
}

impl UserRecord {
    /// The credential for a SCRAM hash name, if stored.
    pub fn credential(&self, hash: &str) -> Option<&ScramCredential> {
        self.credentials.iter().find(|c| c.hash == hash)
    }
}

#[derive(Debug)]
pub enum SpoolError {
    /// An I/O failure, with the path involved.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A spool file that does not parse or has the wrong shape: refused and
    /// reported, never treated as empty (and so never overwritten).
    Corrupt {
        path: PathBuf,
        line: u32,
        col: u32,
        message: String,
    },
    AlreadyExists,
    NotFound,
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SpoolError::Corrupt {
                path,
                line,
                col,
                message,
            } => {
                write!(f, "{}:{line}:{col}: {message}", path.display())
            }
            SpoolError::AlreadyExists => f.write_str("the account already exists"),
            SpoolError::NotFound => f.write_str("no such account"),
        }
    }
}
impl std::error::Error for SpoolError {}

impl SpoolError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: &std::path::Path,
        line: u32,
        col: u32,
        message: impl Into<String>,
    ) -> SpoolError {
        SpoolError::Corrupt {
            path: path.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// The storage interface the core uses. Host names and user names arrive
/// already normalized (RFC 7622); implementations must not assume they are
/// safe file names. Calls block; async callers use `spawn_blocking`.
pub trait Storage: Send + Sync + 'static {
    fn load_user(&self, host: &str, user: &str) -> Result<Option<UserRecord>, SpoolError>;
    fn user_exists(&self, host: &str, user: &str) -> Result<bool, SpoolError>;
    /// Fails with `AlreadyExists` if the account exists.
    fn create_user(&self, host: &str, user: &str, record: &UserRecord) -> Result<(), SpoolError>;
    /// Read-modify-write under the account's lock (held across processes,
    /// so `switchboard user passwd` is safe while the server runs).
    /// Fails with `NotFound` if the account does not exist.
    fn update_user(
        &self,
        host: &str,
        user: &str,
        f: &mut dyn FnMut(&mut UserRecord),
    ) -> Result<(), SpoolError>;
    /// Returns whether an account was removed.
    fn delete_user(&self, host: &str, user: &str) -> Result<bool, SpoolError>;
    /// The (decoded) user names of a host, sorted.
    fn list_users(&self, host: &str) -> Result<Vec<String>, SpoolError>;
    /// The host's own data (the message of the day, …): the child
    /// elements of its host document, in order; empty when it has none.
    fn load_host(&self, host: &str) -> Result<Vec<Element>, SpoolError>;
    /// Read-modify-write of the host's data under the host's lock (held
    /// across processes), durable before it returns. The document is
    /// created when missing and removed when `f` leaves it empty.
    fn update_host(
        &self,
        host: &str,
        f: &mut dyn FnMut(&mut Vec<Element>),
    ) -> Result<(), SpoolError>;
}

/// The file spool: `<root>/<host>/<encoded-user>.xml` (see [`file_spool`]).
#[derive(Debug)]
pub struct FileSpool {
    root: PathBuf,
}

impl FileSpool {
    /// Opens (creating if needed, mode 0700) the spool root.
    /// Temporary files that crashed writers left behind are removed (see
    /// [`atomic`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<FileSpool, SpoolError> {
        file_spool::open(root.into())
    }
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}
