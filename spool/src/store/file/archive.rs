//! The archive store: one append-only log per owner, beside the owner's
//! other files (`<host>/<user>.archive` for an account, `<service>/<room>.archive`
//! for a room; an owner without `@` is `<domain>/+host.archive`), in the
//! format of [`crate::log`]:
//!
//! ```text
//! switchboard archive log 1
//! ␞a 1796647822000000 m1 bob@example.org/phone 231 5f1e09a2
//! <message xmlns="jabber:client" …>…</message>
//! ␞r m1 96 0c77d1e4
//! <message xmlns="jabber:client"><retracted xmlns="urn:xmpp:message-retract:1"/></message>
//! ```
//!
//! `a <timestamp> <id> <with>` appends an entry (id and `with` escaped by
//! [`log::escape`]); `r <id>` replaces the stanza of an earlier entry,
//! which keeps its place, time and `with`. `expire` rewrites the logs of
//! one domain's directory without the expired entries, folding each
//! replacement into its entry; a log left with none is removed.
//!
//! **Queries** run on an index of the log kept in memory: each entry's
//! id, time, `with`, and where its latest record is (about a hundred bytes
//! an entry). It is built by one pass over the log that checks every
//! record's framing and the last record's checksum; each record a query
//! returns is read with one `pread` and checked whole. The index follows
//! the file: appends through this backend extend it, a log that grew
//! otherwise (another process) is read from where the index ends, and a
//! log replaced (compacted) is indexed again. Indexes of recently used
//! archives are kept up to [`MAX_CACHED_ENTRIES`] entries in all, least
//! recently used dropped first. A query for the last page of 100,000
//! entries picks them from the end of the index and reads only those
//! (see `benches/archive_query.rs`).
//!
//! **Appends** need no index: the last RS byte of the file starts its last
//! record, so checking that one (see [`log::tail_is_clean`]) shows the
//! tail is whole; only after a crash does an append scan the log to find
//! where its valid records end, and cut the torn tail off.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_xml::{parse_document, Element};

use super::blocking::run;
use super::{FileStores, Inner};
use crate::atomic::{replace_file, replace_file_with, sync_dir};
use crate::file_spool::{lock_in, spool_limits, ARCHIVE_SUFFIX};
use crate::filename::{encode_name, HOST_DATA_STEM};
use crate::log::{self, Checks, Flush, Record};
use crate::store::archive_query::{self, select};
use crate::store::{
    rules, ArchiveEntry, ArchiveOwner, ArchivePage, ArchiveQuery, ArchiveStore, BoxFuture,
    StoreError, StoreResult,
};
use crate::SpoolError;

/// The log's kind in its header line.
const KIND: &str = "archive";

/// The most index entries kept in memory over all archives (roughly
/// 100 MB); the archive being used is kept whatever its size.
pub const MAX_CACHED_ENTRIES: usize = 1_000_000;

/// One entry as the index knows it.
#[derive(Debug)]
struct Meta {
    id: Box<str>,
    timestamp: u64,
    with: Arc<str>,
    /// Where its latest record (the entry, or its last replacement) is.
    offset: u64,
    len: u64,
    line: u32,
}

impl archive_query::Meta for Meta {
    fn id(&self) -> &str {
        &self.id
    }
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
    fn with(&self) -> &str {
        &self.with
    }
}

/// An archive's index, and the open log it describes.
#[derive(Debug, Default)]
struct Index {
    file: Option<File>,
    /// The log's device and inode: a log replaced is another file.
    dev_ino: (u64, u64),
    /// Where the valid records end, and the line there.
    end: u64,
    line: u32,
    /// Bytes of torn tail after `end` seen last (reported once).
    torn: u64,
    entries: Vec<Meta>,
    /// One copy of each `with`: an archive has few partners and many
    /// entries.
    withs: HashSet<Arc<str>>,
}

/// What a record says.
enum Fields {
    Entry {
        timestamp: u64,
        id: String,
        with: String,
    },
    Replace {
        id: String,
    },
}

fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_fields(fields: &str) -> Option<Fields> {
    let mut parts = fields.split(' ');
    let parsed = match parts.next()? {
        "a" => Fields::Entry {
            timestamp: number(parts.next()?)?,
            id: log::unescape(parts.next()?)?,
            with: log::unescape(parts.next()?)?,
        },
        "r" => Fields::Replace {
            id: log::unescape(parts.next()?)?,
        },
        _ => return None,
    };
    parts.next().is_none().then_some(parsed)
}

fn entry_fields(timestamp: u64, id: &str, with: &str) -> String {
    format!("a {timestamp} {} {}", log::escape(id), log::escape(with))
}

/// An entry on its way to the log: what the index keeps of it, and the
/// length of its record in the batch's bytes.
struct Encoded {
    id: String,
    timestamp: u64,
    with: String,
    len: usize,
}

/// The records of `entries`, one after the other, and what the index
/// needs of each; `Invalid` if a stanza cannot be stored (nothing is).
/// What [`encode`] makes of one archive's entries.
type EncodedBatch = StoreResult<(Vec<Encoded>, Vec<u8>)>;

fn encode(entries: &[ArchiveEntry]) -> EncodedBatch {
    let mut all = Vec::new();
    let mut batch = Vec::with_capacity(entries.len());
    for e in entries {
        let payload = e.stanza.to_bytes(None);
        rules::stanza(&e.stanza, payload.len())?;
        let record = log::record(&entry_fields(e.timestamp, &e.id, &e.with), &payload);
        batch.push(Encoded {
            id: e.id.clone(),
            timestamp: e.timestamp,
            with: e.with.clone(),
            len: record.len(),
        });
        all.extend_from_slice(&record);
    }
    Ok((batch, all))
}

fn lines_in(payload: &[u8]) -> u32 {
    payload.iter().filter(|&&b| b == b'\n').count() as u32
}

impl Index {
    fn intern(&mut self, with: &str) -> Arc<str> {
        if let Some(w) = self.withs.get(with) {
            return w.clone();
        }
        let w: Arc<str> = Arc::from(with);
        self.withs.insert(w.clone());
        w
    }

    /// Takes in one record of the log.
    fn apply(&mut self, path: &Path, r: Record<'_>) -> Result<(), SpoolError> {
        match parse_fields(r.fields) {
            Some(Fields::Entry {
                timestamp,
                id,
                with,
            }) => {
                let with = self.intern(&with);
                self.entries.push(Meta {
                    id: id.into(),
                    timestamp,
                    with,
                    offset: r.offset,
                    len: r.len,
                    line: r.line,
                });
                Ok(())
            }
            Some(Fields::Replace { id }) => match archive_query::position(&self.entries, &id) {
                Some(i) => {
                    let m = &mut self.entries[i];
                    (m.offset, m.len, m.line) = (r.offset, r.len, r.line);
                    Ok(())
                }
                None => Err(SpoolError::corrupt(
                    path,
                    r.line,
                    1,
                    format!("a replacement of '{id}', which is not in the archive"),
                )),
            },
            None => Err(SpoolError::corrupt(
                path,
                r.line,
                1,
                format!("'{}' is not an archive record", r.fields),
            )),
        }
    }

    /// Brings the index up to date with the log at `path`; `false` when
    /// there is no log.
    fn refresh(&mut self, path: &Path) -> Result<bool, SpoolError> {
        let r = self.try_refresh(path);
        if r.is_err() {
            // Half an index is no index.
            *self = Index::default();
        }
        r
    }

    fn try_refresh(&mut self, path: &Path) -> Result<bool, SpoolError> {
        let now = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                *self = Index::default();
                return Ok(false);
            }
            Err(e) => return Err(SpoolError::io(path, e)),
        };
        let same =
            self.file.is_some() && (now.dev(), now.ino()) == self.dev_ino && now.len() >= self.end;
        if !same {
            *self = Index::default();
            let Some(file) = open(path)? else {
                return Ok(false);
            };
            let header_len = read_header(path, &file)?;
            let m = file.metadata().map_err(|e| SpoolError::io(path, e))?;
            self.dev_ino = (m.dev(), m.ino());
            self.end = header_len;
            self.line = 2;
            self.file = Some(file);
        }
        let file = self.file.take().expect("opened above");
        let size = file.metadata().map_err(|e| SpoolError::io(path, e))?.len();
        if size > self.end {
            let scanned = log::scan(
                path,
                &file,
                self.end,
                self.line,
                Checks::Framing,
                &mut |r| self.apply(path, r),
            );
            let scanned = match scanned {
                Ok(s) => s,
                Err(e) => {
                    self.file = Some(file);
                    return Err(e);
                }
            };
            if scanned.torn > 0 && scanned.torn != self.torn {
                tracing::warn!(path = %path.display(), bytes = scanned.torn, "the archive ends in a record a crash cut short; it is cut off at the next append");
            }
            (self.end, self.line, self.torn) = (scanned.end, scanned.line, scanned.torn);
        }
        self.file = Some(file);
        Ok(true)
    }

    /// Whether the index describes the log at `path` exactly as it is (so
    /// that an append can go at `end` without reading anything).
    fn in_sync(&self, path: &Path) -> bool {
        self.file.is_some()
            && std::fs::metadata(path)
                .is_ok_and(|m| (m.dev(), m.ino()) == self.dev_ino && m.len() == self.end)
    }

    /// Appends `records` (whole records, one or more) at the end of the
    /// valid records, cutting off a torn tail first; returns where they
    /// start (offset and line). `flush` says whether the file is flushed
    /// here or by the caller.
    fn append(
        &mut self,
        path: &Path,
        records: &[u8],
        flush: Flush,
    ) -> Result<(u64, u32), SpoolError> {
        let file = self.file.as_ref().expect("refreshed");
        let size = file.metadata().map_err(|e| SpoolError::io(path, e))?.len();
        if size > self.end {
            log::truncate(path, file, self.end)?;
            self.torn = 0;
        }
        let at = (self.end, self.line);
        if let Err(e) = log::write_end(path, file, self.end, records, flush) {
            *self = Index::default();
            return Err(e);
        }
        self.end += records.len() as u64;
        // A record holds its header line, its payload's lines and the
        // newline after it: counting the newlines counts the lines.
        self.line += lines_in(records);
        Ok(at)
    }

    /// Reads and checks the latest record of entry `i`: its payload.
    fn payload(&self, path: &Path, i: usize) -> Result<Vec<u8>, SpoolError> {
        let m = &self.entries[i];
        let file = self.file.as_ref().expect("refreshed");
        let (fields, payload) = log::read_at(path, file, m.offset, m.len, m.line)?;
        let id = match parse_fields(&fields) {
            Some(Fields::Entry { id, .. } | Fields::Replace { id }) => id,
            None => String::new(),
        };
        if *id != *m.id {
            return Err(SpoolError::corrupt(
                path,
                m.line,
                1,
                "the record is not the one indexed there",
            ));
        }
        Ok(payload)
    }

    /// Entry `i`, read and checked.
    fn read(&self, path: &Path, i: usize) -> Result<ArchiveEntry, SpoolError> {
        let m = &self.entries[i];
        let payload = self.payload(path, i)?;
        let stanza = parse_document(&payload, spool_limits())
            .map_err(|e| SpoolError::corrupt(path, m.line + e.line, e.col, e.error.to_string()))?;
        Ok(ArchiveEntry {
            id: m.id.to_string(),
            timestamp: m.timestamp,
            with: m.with.to_string(),
            stanza,
        })
    }
}

fn open(path: &Path) -> Result<Option<File>, SpoolError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SpoolError::io(path, e)),
    }
}

/// Checks the header line; its length.
fn read_header(path: &Path, file: &File) -> Result<u64, SpoolError> {
    let (fields, len) = log::read_file_header(path, file, KIND)?;
    if !fields.is_empty() {
        return Err(SpoolError::corrupt(
            path,
            1,
            1,
            format!("'{fields}' in the header line"),
        ));
    }
    Ok(len)
}

/// The indexes of recently used archives.
#[derive(Debug, Default)]
pub(super) struct IndexCache {
    slots: Mutex<HashMap<PathBuf, Slot>>,
    tick: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    index: Arc<Mutex<Index>>,
    used: u64,
    entries: usize,
}

impl IndexCache {
    fn slots(&self) -> MutexGuard<'_, HashMap<PathBuf, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of the archive at `path` (empty when new).
    fn get(&self, path: &Path) -> Arc<Mutex<Index>> {
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots();
        let slot = slots.entry(path.to_owned()).or_insert_with(|| Slot {
            index: Default::default(),
            used,
            entries: 0,
        });
        slot.used = used;
        slot.index.clone()
    }

    /// The index of the archive at `path`, if one is kept.
    fn peek(&self, path: &Path) -> Option<Arc<Mutex<Index>>> {
        self.slots().get(path).map(|s| s.index.clone())
    }

    /// Notes how large the index at `path` now is, and drops the least
    /// recently used others while all of them hold too many entries.
    fn note(&self, path: &Path, entries: usize) {
        let mut slots = self.slots();
        if let Some(s) = slots.get_mut(path) {
            s.entries = entries;
        }
        while slots.values().map(|s| s.entries).sum::<usize>() > MAX_CACHED_ENTRIES {
            let oldest = slots
                .iter()
                .filter(|(p, _)| p.as_path() != path)
                .min_by_key(|(_, s)| s.used)
                .map(|(p, _)| p.clone());
            match oldest {
                Some(p) => slots.remove(&p),
                None => break,
            };
        }
    }

    pub(super) fn forget(&self, path: &Path) {
        self.slots().remove(path);
    }
}

fn lock_index(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    // A panic while the index was locked may have left it half updated:
    // start it over rather than trust it.
    index.lock().unwrap_or_else(|e| {
        let mut guard = e.into_inner();
        *guard = Index::default();
        guard
    })
}

/// An owner's host (or service) and file stem.
fn place(owner: &str) -> (&str, String) {
    match owner.split_once('@') {
        Some((local, domain)) => (domain, encode_name(local)),
        None => (owner, HOST_DATA_STEM.to_owned()),
    }
}

fn write_err(e: crate::atomic::WriteError) -> SpoolError {
    SpoolError::io(&e.path, e.source)
}

impl Inner {
    fn archive_path(&self, domain: &str, stem: &str) -> PathBuf {
        self.spool
            .host_dir(domain)
            .join(format!("{stem}{ARCHIVE_SUFFIX}"))
    }

    /// Appends a batch of encoded entries (see [`encode`]) to one archive
    /// with one write: all of them or (on an error) none. With
    /// [`Flush::Now`] the file is flushed here; with [`Flush::Later`] the
    /// caller flushes its filesystem.
    fn archive_append(
        &self,
        owner: &str,
        batch: &[Encoded],
        all: &[u8],
        flush: Flush,
    ) -> Result<(), SpoolError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (domain, stem) = place(owner);
        let _lock = self.spool.lock_user(domain, &stem, true)?;
        let path = self.archive_path(domain, &stem);
        // An index that describes the log as it is knows where it ends.
        if let Some(index) = self.archives.peek(&path) {
            let mut index = lock_index(&index);
            if index.in_sync(&path) {
                let (mut offset, mut line) = index.append(&path, all, flush)?;
                let mut at = 0;
                for e in batch {
                    let record = &all[at..at + e.len];
                    at += e.len;
                    let with = index.intern(&e.with);
                    index.entries.push(Meta {
                        id: e.id.as_str().into(),
                        timestamp: e.timestamp,
                        with,
                        offset,
                        len: e.len as u64,
                        line,
                    });
                    offset += e.len as u64;
                    line += lines_in(record);
                }
                return Ok(());
            }
        }
        let file = match open(&path)? {
            Some(f) => f,
            None => {
                let dir = self.spool.host_dir(domain);
                let name = format!("{stem}{ARCHIVE_SUFFIX}");
                replace_file(&dir, &name, &stem, &log::file_header(KIND, "")).map_err(write_err)?;
                open(&path)?.ok_or_else(|| SpoolError::io(&path, io::ErrorKind::NotFound.into()))?
            }
        };
        let header_len = read_header(&path, &file)?;
        let size = file.metadata().map_err(|e| SpoolError::io(&path, e))?.len();
        let end = if log::tail_is_clean(&file, header_len, size)
            .map_err(|e| SpoolError::io(&path, e))?
        {
            size
        } else {
            let scanned = log::scan(
                &path,
                &file,
                header_len,
                2,
                Checks::Framing,
                &mut |_| Ok(()),
            )?;
            if scanned.torn > 0 {
                log::truncate(&path, &file, scanned.end)?;
                tracing::info!(path = %path.display(), bytes = scanned.torn, "cut a torn record off an archive");
            }
            scanned.end
        };
        log::write_end(&path, &file, end, all, flush)
    }

    /// Appends to several archives with one flush of their filesystem for
    /// all of them (the group commit of [`ArchiveStore::append_many`]):
    /// each archive's records are written without a flush, then every host
    /// directory written to is synced once. One result per archive, in
    /// order; an archive whose write or sync failed reports the error (its
    /// records may be on disk but are not known to be durable).
    fn archive_append_many(&self, batches: Vec<(String, EncodedBatch)>) -> Vec<StoreResult<()>> {
        // One archive alone is flushed by itself: a flush of one file is
        // cheaper than a flush of its filesystem.
        let flush = if batches.len() == 1 {
            Flush::Now
        } else {
            Flush::Later
        };
        let mut results: Vec<StoreResult<()>> = Vec::with_capacity(batches.len());
        let mut written: Vec<&str> = Vec::new();
        for (owner, encoded) in &batches {
            let result = match encoded {
                Ok((batch, all)) => self
                    .archive_append(owner, batch, all, flush)
                    .map_err(StoreError::from),
                Err(e) => Err(e.clone()),
            };
            let domain = place(owner).0;
            if result.is_ok() && flush == Flush::Later && !written.contains(&domain) {
                written.push(domain);
            }
            results.push(result);
        }
        for domain in written {
            if let Err(e) = log::sync_filesystem(&self.spool.host_dir(domain)) {
                let e = StoreError::from(e);
                for ((owner, _), r) in batches.iter().zip(results.iter_mut()) {
                    if r.is_ok() && place(owner).0 == domain {
                        *r = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    fn archive_query(
        &self,
        owner: &str,
        q: &ArchiveQuery,
    ) -> Result<Option<ArchivePage>, SpoolError> {
        let empty = || {
            select::<Meta>(&[], q).map(|s| ArchivePage {
                entries: Vec::new(),
                complete: s.complete,
                count: Some(s.count),
            })
        };
        let (domain, stem) = place(owner);
        let Some(_lock) = self.spool.lock_user(domain, &stem, false)? else {
            return Ok(empty());
        };
        let path = self.archive_path(domain, &stem);
        let slot = self.archives.get(&path);
        let mut index = lock_index(&slot);
        if !index.refresh(&path)? {
            drop(index);
            self.archives.forget(&path);
            return Ok(empty());
        }
        let page = match select(&index.entries, q) {
            Some(sel) => Some(ArchivePage {
                entries: sel
                    .picks
                    .iter()
                    .map(|&i| index.read(&path, i))
                    .collect::<Result<_, _>>()?,
                complete: sel.complete,
                count: Some(sel.count),
            }),
            None => None,
        };
        let entries = index.entries.len();
        drop(index);
        self.archives.note(&path, entries);
        Ok(page)
    }

    fn archive_replace(&self, owner: &str, id: &str, payload: &[u8]) -> Result<bool, SpoolError> {
        let (domain, stem) = place(owner);
        let Some(_lock) = self.spool.lock_user(domain, &stem, false)? else {
            return Ok(false);
        };
        let path = self.archive_path(domain, &stem);
        let slot = self.archives.get(&path);
        let mut index = lock_index(&slot);
        if !index.refresh(&path)? {
            return Ok(false);
        }
        let Some(i) = archive_query::position(&index.entries, id) else {
            return Ok(false);
        };
        let record = log::record(&format!("r {}", log::escape(id)), payload);
        let (offset, line) = index.append(&path, &record, Flush::Now)?;
        let m = &mut index.entries[i];
        (m.offset, m.len, m.line) = (offset, record.len() as u64, line);
        Ok(true)
    }

    fn archive_expire(&self, domain: &str, before: u64) -> Result<u64, SpoolError> {
        let dir = self.spool.host_dir(domain);
        let mut gone = 0;
        let files = match std::fs::read_dir(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(SpoolError::io(&dir, e)),
        };
        for file in files {
            let name = file.map_err(|e| SpoolError::io(&dir, e))?.file_name();
            let Some(stem) = name
                .to_str()
                .filter(|n| !n.starts_with('.'))
                .and_then(|n| n.strip_suffix(ARCHIVE_SUFFIX))
            else {
                continue;
            };
            gone += self.expire_one(&dir, stem, before)?;
        }
        Ok(gone)
    }

    /// Expires one archive, `dir/<stem>.archive`, under its owner's lock.
    fn expire_one(&self, dir: &Path, stem: &str, before: u64) -> Result<u64, SpoolError> {
        let Some(_lock) = lock_in(self.spool.root(), dir, stem, false)? else {
            return Ok(0);
        };
        let name = format!("{stem}{ARCHIVE_SUFFIX}");
        let path = dir.join(&name);
        let slot = self.archives.get(&path);
        let mut index = lock_index(&slot);
        if !index.refresh(&path)? {
            return Ok(0);
        }
        let expired = index
            .entries
            .iter()
            .filter(|m| m.timestamp < before)
            .count();
        if expired == 0 {
            return Ok(0);
        }
        if expired == index.entries.len() {
            std::fs::remove_file(&path).map_err(|e| SpoolError::io(&path, e))?;
            sync_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
        } else {
            // Errors reading a record come out of the writer as this.
            let mut failed = None;
            let written = replace_file_with(dir, &name, stem, &mut |w: &mut dyn Write| {
                w.write_all(&log::file_header(KIND, ""))?;
                for i in 0..index.entries.len() {
                    let m = &index.entries[i];
                    if m.timestamp < before {
                        continue;
                    }
                    let payload = match index.payload(&path, i) {
                        Ok(p) => p,
                        Err(e) => {
                            failed = Some(e);
                            return Err(io::Error::other("a record could not be read"));
                        }
                    };
                    let fields = entry_fields(m.timestamp, &m.id, &m.with);
                    w.write_all(&log::record(&fields, &payload))?;
                }
                Ok(())
            });
            if let Some(e) = failed {
                return Err(e);
            }
            written.map_err(write_err)?;
        }
        *index = Index::default();
        drop(index);
        self.archives.forget(&path);
        Ok(expired as u64)
    }

    fn archive_remove_owner(&self, owner: &str) -> Result<(), SpoolError> {
        let (domain, stem) = place(owner);
        let Some(_lock) = self.spool.lock_user(domain, &stem, false)? else {
            return Ok(());
        };
        let path = self.archive_path(domain, &stem);
        self.archives.forget(&path);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                let dir = self.spool.host_dir(domain);
                sync_dir(&dir).map_err(|e| SpoolError::io(&dir, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::io(&path, e)),
        }
    }

    /// Drops what is remembered of an account's archive (it was deleted
    /// or is being created).
    pub(super) fn forget_archive(&self, path: &Path) {
        self.archives.forget(path);
    }
}

impl ArchiveStore for FileStores {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.append_batch(owner, std::slice::from_ref(entry))
    }

    fn append_batch<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entries: &'a [ArchiveEntry],
    ) -> BoxFuture<'a, StoreResult<()>> {
        let owner = owner.to_owned();
        // Encoded here, so that only bytes and ids go to the blocking pool.
        let encoded = encode(entries);
        let what = if entries.len() == 1 {
            "archive a message"
        } else {
            "archive messages"
        };
        run(&self.inner, what, move |s| {
            let (batch, all) = encoded?;
            Ok(s.archive_append(&owner, &batch, &all, Flush::Now)?)
        })
    }

    fn append_many<'a>(
        &'a self,
        batches: &'a [(String, Vec<ArchiveEntry>)],
    ) -> BoxFuture<'a, Vec<StoreResult<()>>> {
        // Encoded here, so that only bytes and ids go to the blocking pool.
        let encoded: Vec<(String, EncodedBatch)> = batches
            .iter()
            .map(|(owner, entries)| (owner.clone(), encode(entries)))
            .collect();
        let count = batches.len();
        let done = run(&self.inner, "archive messages", move |s| {
            Ok(s.archive_append_many(encoded))
        });
        Box::pin(async move {
            match done.await {
                Ok(results) => results,
                Err(e) => vec![Err(e); count],
            }
        })
    }

    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        query: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        let (owner, query) = (owner.to_owned(), query.clone());
        run(&self.inner, "query an archive", move |s| {
            Ok(s.archive_query(&owner, &query)?)
        })
    }

    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        let payload = stanza.to_bytes(None);
        let checked = rules::stanza(stanza, payload.len());
        run(&self.inner, "replace an archived message", move |s| {
            checked?;
            Ok(s.archive_replace(&owner, &id, &payload)?)
        })
    }

    fn expire<'a>(&'a self, domain: &'a str, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        let domain = domain.to_owned();
        run(&self.inner, "expire archives", move |s| {
            Ok(s.archive_expire(&domain, before)?)
        })
    }

    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        let owner = owner.to_owned();
        run(&self.inner, "remove an archive", move |s| {
            Ok(s.archive_remove_owner(&owner)?)
        })
    }
}
