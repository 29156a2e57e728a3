//! Service data: one file per key, in one directory per collection, under
//! the service's own directory:
//!
//! ```text
//! <root>/<service>/                       mode 0700
//!   <segment>/…/<segment>/                a collection (`registrations/irc.example.net`)
//!     <key>.xml                           the value, byte for byte, mode 0600
//!     <key>.key                           the key itself, when <key> is a hash (too long a key)
//!     .locks/<key>.lock                   flock(2) serializing the key's writers
//! ```
//!
//! Every segment and key is encoded by [`crate::filename`]; a segment
//! whose encoding ends in `.xml` has that dot escaped (`%2Exml`), so that
//! a collection's directory never takes a value's file name. Values are
//! written by atomic replacement. The file names end in `.xml` because
//! every service so far stores an XML document there (the name is what
//! releases before this interface used): the files are what the
//! transports' sealed registrations and the directory's listings always
//! were, and load unchanged.
//!
//! # Migrations
//!
//! On the first access to a service, under a lock of the service's own
//! (`.locks/+service.lock`), two layouts of earlier releases move:
//!
//! - the user directory kept its listings (`<entry/>` documents) directly
//!   in its directory: every top-level `.xml` file moves into the
//!   collection [`LEGACY_DIRECTORY_COLLECTION`], one `rename(2)` each, so
//!   an interrupted move resumes where it stopped. A directory holding
//!   account documents is a host's, not a service's: that is refused, and
//!   nothing moves.
//! - the IRC transport named each IRC server's directory as the server was
//!   written (`registrations/::1`); a segment spelled that way, that is no
//!   one's encoding, is renamed to its encoding (`%3A%3A1`).
//!
//! In both, a target that already exists beside its source is refused, for
//! an admin to merge: neither copy is guessed away.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use switchboard_xml::{ns, parse_document};

use super::blocking::run;
use super::{FileStores, Inner};
use crate::atomic::{replace_file, sync_dir, WriteError};
use crate::file_spool::{lock_in, new_dir, read_bounded, remove_stale_temp_files_in, spool_limits};
use crate::filename::{decode_name, encode_name, is_hashed};
use crate::record::{HOST, USER};
use crate::store::{rules, BoxFuture, ServiceDataStore, StoreResult};
use crate::SpoolError;

/// The collection the user directory's listings move into (and the one
/// the directory service stores them in).
pub const LEGACY_DIRECTORY_COLLECTION: &str = "entries";

const VALUE_SUFFIX: &str = ".xml";
const KEY_SUFFIX: &str = ".key";
/// The stem of the service-wide lock (no encoding has a `+`).
const SERVICE_LOCK: &str = "+service";

/// Services and collections already migrated and cleaned up in this
/// process.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    done: Mutex<HashSet<PathBuf>>,
}

impl Prepared {
    fn lock(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_done(&self, dir: &Path) -> bool {
        self.lock().contains(dir)
    }
    fn mark(&self, dir: &Path) {
        self.lock().insert(dir.to_owned());
    }
}

/// A collection segment as a directory name.
fn segment(seg: &str) -> String {
    let e = encode_name(seg);
    match e.strip_suffix(VALUE_SUFFIX) {
        Some(stem) => format!("{stem}%2Exml"),
        None => e,
    }
}

/// Whether a segment could be a directory name an older release wrote as
/// it was: an IRC server's name (lowercased), nothing that walks out.
fn legacy_raw(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b':' | b'[' | b']' | b'-'))
}

fn value_name(stem: &str) -> String {
    format!("{stem}{VALUE_SUFFIX}")
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |e| SpoolError::io(path, e)
}

fn write_err(e: WriteError) -> SpoolError {
    SpoolError::io(&e.path, e.source)
}

fn private(dir: &Path) -> Result<(), SpoolError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_at(dir))
}

impl Inner {
    fn service_dir(&self, service: &str) -> PathBuf {
        self.spool.root().join(encode_name(service))
    }

    fn collection_dir(&self, service: &str, collection: &str) -> PathBuf {
        collection
            .split('/')
            .fold(self.service_dir(service), |dir, seg| dir.join(segment(seg)))
    }

    /// The collection's directory, migrated and cleaned up; created when
    /// `create` is set, else `None` when it does not exist.
    fn collection(
        &self,
        service: &str,
        collection: &str,
        create: bool,
    ) -> Result<Option<PathBuf>, SpoolError> {
        let root = self.spool.root();
        let sdir = self.service_dir(service);
        let dir = self.collection_dir(service, collection);
        if !self.services.is_done(&dir) && sdir.is_dir() {
            let _lock = lock_in(root, &sdir, SERVICE_LOCK, false)?;
            if !self.services.is_done(&sdir) {
                migrate_directory_entries(&sdir)?;
                private(&sdir)?;
                self.services.mark(&sdir);
            }
            migrate_raw_segments(&sdir, collection)?;
            if dir.is_dir() {
                private(&dir)?;
                remove_stale_temp_files_in(&dir);
                self.services.mark(&dir);
            }
        }
        if dir.is_dir() {
            return Ok(Some(dir));
        }
        if !create {
            return Ok(None);
        }
        let mut parent = root.to_owned();
        let mut here = sdir;
        let segments: Vec<String> = collection.split('/').map(segment).collect();
        for next in std::iter::once(None).chain(segments.iter().map(Some)) {
            if let Some(seg) = next {
                parent = here.clone();
                here = here.join(seg);
            }
            if new_dir(&here).map_err(io_at(&here))? {
                sync_dir(&parent).map_err(io_at(&parent))?;
            }
        }
        self.services.mark(&dir);
        Ok(Some(dir))
    }

    fn service_get(
        &self,
        service: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, SpoolError> {
        let Some(dir) = self.collection(service, collection, false)? else {
            return Ok(None);
        };
        read_bounded(&dir.join(value_name(&encode_name(key))))
    }

    fn service_put(
        &self,
        service: &str,
        collection: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), SpoolError> {
        let dir = self
            .collection(service, collection, true)?
            .expect("created");
        let stem = encode_name(key);
        let _lock = lock_in(self.spool.root(), &dir, &stem, true)?;
        if is_hashed(&stem) {
            // The file name cannot be decoded: the key is kept beside it,
            // first, so that a value never exists without it.
            let name = format!("{stem}{KEY_SUFFIX}");
            replace_file(&dir, &name, &stem, key.as_bytes()).map_err(write_err)?;
        }
        replace_file(&dir, &value_name(&stem), &stem, value).map_err(write_err)
    }

    fn service_remove(
        &self,
        service: &str,
        collection: &str,
        key: &str,
    ) -> Result<bool, SpoolError> {
        let Some(dir) = self.collection(service, collection, false)? else {
            return Ok(false);
        };
        let stem = encode_name(key);
        let Some(lock) = lock_in(self.spool.root(), &dir, &stem, false)? else {
            return Ok(false);
        };
        let path = dir.join(value_name(&stem));
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(SpoolError::io(&path, e)),
        };
        let sidecar = dir.join(format!("{stem}{KEY_SUFFIX}"));
        match std::fs::remove_file(&sidecar) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(&sidecar, e)),
        }
        if removed {
            sync_dir(&dir).map_err(io_at(&dir))?;
        }
        let lock_path = lock.path().to_owned();
        lock.unlink().map_err(io_at(&lock_path))?;
        Ok(removed)
    }

    fn service_keys(&self, service: &str, collection: &str) -> Result<Vec<String>, SpoolError> {
        let Some(dir) = self.collection(service, collection, false)? else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name();
            // Locks, temporary files and anything hidden start with a dot;
            // sub-collections are directories; anything else not ending in
            // `.xml` (an editor's backup) is not a value.
            let Some(stem) = name
                .to_str()
                .filter(|n| !n.starts_with('.'))
                .and_then(|n| n.strip_suffix(VALUE_SUFFIX))
            else {
                continue;
            };
            let path = entry.path();
            if entry.file_type().map_err(io_at(&path))?.is_dir() {
                continue;
            }
            let key = if is_hashed(stem) {
                match hashed_key(&dir, stem, &path)? {
                    Some(k) => k,
                    None => continue, // Removed since the listing.
                }
            } else {
                decode_name(stem).ok_or_else(|| {
                    SpoolError::corrupt(&path, 1, 1, "the file name is not an encoded key")
                })?
            };
            keys.push(key);
        }
        keys.sort();
        Ok(keys)
    }
}

/// The key of a value whose file name is a hash: from the `.key` file
/// beside it, or, for files of releases that did not write one, from an
/// attribute of the document's root that encodes to the file name (the
/// registrations' `user=`, the listings' `jid=`). Either way the hash
/// proves it. `None` when the value is gone.
fn hashed_key(dir: &Path, stem: &str, path: &Path) -> Result<Option<String>, SpoolError> {
    let sidecar = dir.join(format!("{stem}{KEY_SUFFIX}"));
    if let Some(bytes) = read_bounded(&sidecar)? {
        return String::from_utf8(bytes)
            .ok()
            .filter(|k| encode_name(k) == stem)
            .map(Some)
            .ok_or_else(|| {
                SpoolError::corrupt(&sidecar, 1, 1, "the key file does not hold this file's key")
            });
    }
    let Some(bytes) = read_bounded(path)? else {
        return Ok(None);
    };
    let found = parse_document(&bytes, spool_limits())
        .ok()
        .and_then(|root| {
            root.attrs
                .iter()
                .map(|(_, v)| v)
                .find(|v| encode_name(v) == stem)
                .cloned()
        });
    found.map(Some).ok_or_else(|| {
        SpoolError::corrupt(
            path,
            1,
            1,
            "the file name is a hash, and no key file nor the document says whose it is",
        )
    })
}

/// Moves the directory's listings of older releases into their
/// collection (see the module documentation). The service lock is held.
fn migrate_directory_entries(sdir: &Path) -> Result<(), SpoolError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(sdir).map_err(io_at(sdir))? {
        let entry = entry.map_err(io_at(sdir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(VALUE_SUFFIX) {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().map_err(io_at(&path))?.is_file() {
            continue;
        }
        // A host's directory is no service's: its accounts stay put.
        if let Some(bytes) = read_bounded(&path)? {
            if let Ok(root) = parse_document(&bytes, spool_limits()) {
                if root.ns == ns::SPOOL && (root.name == USER || root.name == HOST) {
                    return Err(SpoolError::corrupt(
                        &path,
                        root.span.line,
                        root.span.col,
                        "a local host's document in what is used as a service's directory: \
                         a service and a host cannot share a name",
                    ));
                }
            }
        }
        files.push(name.to_owned());
    }
    if files.is_empty() {
        return Ok(());
    }
    let target = sdir.join(segment(LEGACY_DIRECTORY_COLLECTION));
    if new_dir(&target).map_err(io_at(&target))? {
        sync_dir(sdir).map_err(io_at(sdir))?;
    }
    for name in &files {
        let (from, to) = (sdir.join(name), target.join(name));
        if to.exists() {
            return Err(SpoolError::corrupt(
                &from,
                1,
                1,
                format!(
                    "{} exists too: an older release wrote this one; keep one of them",
                    to.display()
                ),
            ));
        }
        std::fs::rename(&from, &to).map_err(io_at(&from))?;
    }
    sync_dir(&target).map_err(io_at(&target))?;
    sync_dir(sdir).map_err(io_at(sdir))?;
    tracing::info!(dir = %sdir.display(), files = files.len(), "moved the directory's listings into {LEGACY_DIRECTORY_COLLECTION}/");
    Ok(())
}

/// Renames the segments of `collection` that an older release wrote raw
/// (see the module documentation). The service lock is held.
fn migrate_raw_segments(sdir: &Path, collection: &str) -> Result<(), SpoolError> {
    let mut parent = sdir.to_owned();
    for seg in collection.split('/') {
        let encoded = segment(seg);
        let here = parent.join(&encoded);
        if seg != encoded && legacy_raw(seg) {
            let raw = parent.join(seg);
            if std::fs::symlink_metadata(&raw).is_ok_and(|m| m.is_dir()) {
                if here.exists() {
                    return Err(SpoolError::corrupt(
                        &raw,
                        1,
                        1,
                        format!(
                            "{} exists too: an older release wrote this one; merge them",
                            here.display()
                        ),
                    ));
                }
                std::fs::rename(&raw, &here).map_err(io_at(&raw))?;
                sync_dir(&parent).map_err(io_at(&parent))?;
                tracing::info!(from = %raw.display(), to = %here.display(), "renamed a service directory to its encoded name");
            }
        }
        parent = here;
    }
    Ok(())
}

impl ServiceDataStore for FileStores {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let (service, collection, key) =
            (service.to_owned(), collection.to_owned(), key.to_owned());
        run(&self.inner, "read service data", move |s| {
            rules::service_key(&collection, &key)?;
            Ok(s.service_get(&service, &collection, &key)?)
        })
    }

    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (service, collection, key) =
            (service.to_owned(), collection.to_owned(), key.to_owned());
        run(&self.inner, "store service data", move |s| {
            rules::service_key(&collection, &key)?;
            rules::value(&value)?;
            Ok(s.service_put(&service, &collection, &key, &value)?)
        })
    }

    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (service, collection, key) =
            (service.to_owned(), collection.to_owned(), key.to_owned());
        run(&self.inner, "remove service data", move |s| {
            rules::service_key(&collection, &key)?;
            Ok(s.service_remove(&service, &collection, &key)?)
        })
    }

    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let (service, collection) = (service.to_owned(), collection.to_owned());
        run(&self.inner, "list service data", move |s| {
            rules::collection(&collection)?;
            Ok(s.service_keys(&service, &collection)?)
        })
    }

    fn location(&self, service: &str, collection: &str, key: &str) -> String {
        self.inner
            .collection_dir(service, collection)
            .join(value_name(&encode_name(key)))
            .display()
            .to_string()
    }
}
