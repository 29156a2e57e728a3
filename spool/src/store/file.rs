//! [`FileStores`]: every kind of store over the spool directory, the
//! embedded default. A spool written by earlier releases is read as it is;
//! what this backend adds sits beside it, and the two things earlier
//! releases kept elsewhere move on first access (see *Migrations*).
//!
//! ```text
//! <root>/<host>/                         a local host (names encoded: crate::filename)
//!   <user>.xml                           the account's document (crate::record): credentials
//!                                        <scram/>, <roster/>, and the account data
//!                                        (<vcard/>, <private/>, <last/>, <motd-seen/>, …)
//!   <user>.offline                       its offline log (file/offline.rs)
//!   <user>.archive                       its message archive (file/archive.rs)
//!   +host.xml                            the host's data (<motd/>, …)
//!   .locks/<user>.lock                   one flock(2) per account, over all of its files
//! <root>/<service>/                      a service (conference.example.org, irc.example.org)
//!   <room>.archive                       a room's archive (owner room@service)
//!   <collection>/…/<key>.xml             service data: one file per key (file/service.rs)
//! ```
//!
//! Every account's files are written under that account's lock (shared
//! with `switchboard user` run beside the server, and with the older
//! synchronous [`crate::Storage`] over the same files), documents by atomic
//! replacement, logs by fsynced appends; see [`crate::file_spool`],
//! [`crate::atomic`] and [`crate::log`].
//!
//! # Migrations
//!
//! - **Offline messages** that earlier releases kept in the account's
//!   document (`<offline>`) move into its log on the first access to that
//!   account's offline store, durably and exactly once (`file/offline.rs`).
//! - **Service files**: the IRC transport kept each IRC server's
//!   registrations in a directory named after the server as it was
//!   written (`registrations/::1`); the user directory kept its listings
//!   directly in its directory. Both move to where the collection names
//!   lead on first access (`file/service.rs`).
//!
//! All file I/O runs on tokio's blocking pool through one helper
//! (`file/blocking.rs`).

mod accounts;
mod archive;
mod blobs;
mod blocking;
mod errors;
mod inventory;
mod offline;
mod roster_form;
mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use service::LEGACY_DIRECTORY_COLLECTION;

use super::{StoreResult, Stores};
use crate::FileSpool;

/// The file backend; [`FileStores::open`] hands out its [`Stores`].
#[derive(Debug, Clone)]
pub struct FileStores {
    inner: Arc<Inner>,
}

/// What the blocking tasks share.
#[derive(Debug)]
struct Inner {
    spool: FileSpool,
    offline: offline::States,
    archives: archive::IndexCache,
    services: service::Prepared,
}

impl FileStores {
    /// Opens (creating if needed, mode 0700) the spool at `root`, removing
    /// temporary files that crashed writers left behind, and returns every
    /// store over it.
    #[allow(clippy::new_ret_no_self)]
    pub fn open(root: impl Into<PathBuf>) -> StoreResult<Stores> {
        Ok(FileStores::open_backend(root)?.stores())
    }

    /// The backend itself, for callers that also want [`FileStores::root`].
    pub fn open_backend(root: impl Into<PathBuf>) -> StoreResult<FileStores> {
        let spool = FileSpool::open(root)?;
        Ok(FileStores {
            inner: Arc::new(Inner {
                spool,
                offline: Default::default(),
                archives: Default::default(),
                services: Default::default(),
            }),
        })
    }

    /// Every store of this backend.
    pub fn stores(&self) -> Stores {
        let me = Arc::new(self.clone());
        Stores {
            accounts: me.clone(),
            rosters: me.clone(),
            offline: me.clone(),
            archive: me.clone(),
            account_data: me.clone(),
            host_data: me.clone(),
            service_data: me.clone(),
            blobs: me,
        }
    }

    /// The spool directory.
    pub fn root(&self) -> &Path {
        self.inner.spool.root()
    }
}

impl Inner {
    /// Drops what is remembered of an account's logs: it was deleted, or
    /// is created afresh.
    fn forget_logs(&self, a: &super::AccountRef) {
        self.offline
            .forget(&self.spool.offline_path(&a.host, &a.user));
        self.forget_archive(&self.spool.archive_path(&a.host, &a.user));
    }
}

#[cfg(test)]
mod tests;
