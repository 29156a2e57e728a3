//! The offline store: one append-only log per account,
//! `<host>/<user>.offline`, in the format of [`crate::log`]:
//!
//! ```text
//! switchboard offline log 1 base=4
//! ␞m 5 231 5f1e09a2
//! <message xmlns="jabber:client" from="bob@example.org/phone" type="chat">…</message>
//! ␞m 6 198 0c77d1e4
//! <message …>…</message>
//! ```
//!
//! A record's fields are `m <id>`; its payload is the stanza as the core
//! stored it. Ids increase through the file and start above `base`, the
//! highest id ever removed, so that they are never reused: the next id is
//! one more than the last record's, or than `base` when the log is empty.
//!
//! **Appending** (the account's lock held) writes one record at the end
//! of the valid records and fdatasyncs it before returning; a torn tail
//! left by a crash is cut off first (see [`crate::log`]). What a log
//! holds (its usage, its last id, where it ends) is remembered per file
//! between calls, keyed by the file's identity (device, inode, size,
//! modification time), so an append reads nothing; a log changed by
//! anyone else (another process) no longer matches and is read again.
//!
//! **Removing** the delivered messages (`remove_through`) rewrites the log
//! with the rest, by atomic replacement.
//!
//! **Migration.** Releases before this log kept offline messages in the
//! account's document, in `<offline xmlns='urn:switchboard:spool:1'>`. The
//! first access to an account's offline store moves them, in two durable
//! steps: the log is rewritten (atomically) with the messages appended and
//! `migrated=<SHA-256 of that <offline/> element>` in its header; then the
//! element leaves the document (atomically). A crash between the two
//! leaves both; the next access sees the digest of the element still in
//! the document already in the log's header and only finishes the second
//! step, so nothing is lost and nothing is delivered twice.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use switchboard_xml::{ns, parse_document, Element, Node};

use super::blocking::run;
use super::{FileStores, Inner};
use crate::atomic::{replace_file, replace_file_with};
use crate::file_spool::{read_bounded, spool_limits};
use crate::filename::encode_name;
use crate::lock::FileLock;
use crate::log::{self, Checks};
use crate::store::{
    rules, AccountRef, BoxFuture, OfflineMessage, OfflineStore, OfflineUsage, StoreResult,
};
use crate::SpoolError;

/// The log's kind in its header line.
const KIND: &str = "offline";
/// Where releases before the log kept the queue, in the account document.
const LEGACY_ELEMENT: &str = "offline";
/// Remembered logs at most; past it the memory starts over (a log not
/// remembered is read again, nothing worse).
const MAX_KNOWN: usize = 10_000;

/// What is remembered about the offline logs, by path.
#[derive(Debug, Default)]
pub(super) struct States {
    known: Mutex<HashMap<PathBuf, (Identity, LogState)>>,
}

/// Which file, in which version: any write by anyone changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Identity {
    fn of(file: &File) -> io::Result<Identity> {
        let m = file.metadata()?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

/// The header's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Header {
    base: u64,
    /// The digest of the `<offline/>` element moved in from the document.
    migrated: Option<String>,
}

impl Header {
    fn fields(&self) -> String {
        match &self.migrated {
            Some(d) => format!("base={} migrated={d}", self.base),
            None => format!("base={}", self.base),
        }
    }

    fn parse(path: &Path, fields: &str) -> Result<Header, SpoolError> {
        let bad = |m: String| SpoolError::corrupt(path, 1, 1, m);
        let mut header = Header::default();
        let mut base = None;
        for token in fields.split(' ') {
            match token.split_once('=') {
                Some(("base", v)) if base.is_none() => {
                    base =
                        Some(number(v).ok_or_else(|| bad(format!("base='{v}' is not a number")))?)
                }
                Some(("migrated", v))
                    if header.migrated.is_none()
                        && v.len() == 64
                        && v.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    header.migrated = Some(v.to_owned())
                }
                _ => return Err(bad(format!("'{token}' in the header line"))),
            }
        }
        header.base = base.ok_or_else(|| bad("no base= in the header line".into()))?;
        Ok(header)
    }
}

/// A decimal number as written (digits only).
fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// What a log holds, without the messages.
#[derive(Debug, Clone)]
struct LogState {
    header: Header,
    /// The last record's id (0 without records).
    last: u64,
    usage: OfflineUsage,
    /// Where the valid records end.
    end: u64,
}

impl LogState {
    fn next_id(&self) -> u64 {
        self.header.base.max(self.last) + 1
    }
}

/// A message as read from the log.
struct Stored {
    id: u64,
    payload: Vec<u8>,
    line: u32,
}

/// Opens a log for reading and appending; `None` if there is none.
fn open(path: &Path) -> Result<Option<File>, SpoolError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SpoolError::io(path, e)),
    }
}

/// Reads a whole log, checking every record; the messages too if `keep`.
fn read(path: &Path, file: &File, keep: bool) -> Result<(LogState, Vec<Stored>), SpoolError> {
    let (fields, header_len) = log::read_file_header(path, file, KIND)?;
    let header = Header::parse(path, &fields)?;
    let mut last = header.base;
    let mut usage = OfflineUsage::default();
    let mut stored = Vec::new();
    let scanned = log::scan(path, file, header_len, 2, Checks::All, &mut |r| {
        let id = r
            .fields
            .strip_prefix("m ")
            .and_then(number)
            .ok_or_else(|| {
                SpoolError::corrupt(
                    path,
                    r.line,
                    1,
                    format!("'{}' is not an offline record", r.fields),
                )
            })?;
        if id <= last {
            return Err(SpoolError::corrupt(
                path,
                r.line,
                1,
                format!("message {id} after {last}: ids must increase"),
            ));
        }
        last = id;
        usage.messages += 1;
        usage.bytes += r.payload.len();
        if keep {
            stored.push(Stored {
                id,
                payload: r.payload.to_vec(),
                line: r.line,
            });
        }
        Ok(())
    })?;
    if scanned.torn > 0 {
        tracing::warn!(
            path = %path.display(),
            bytes = scanned.torn,
            "the offline log ends in a record a crash cut short; it is cut off at the next append"
        );
    }
    let state = LogState {
        last: if usage.messages == 0 { 0 } else { last },
        header,
        usage,
        end: scanned.end,
    };
    Ok((state, stored))
}

impl States {
    /// The log at `path`, open, and what it holds: remembered when the file
    /// is the one last seen, read otherwise. `None` when there is no log.
    fn open(&self, path: &Path) -> Result<Option<(File, LogState)>, SpoolError> {
        let Some(file) = open(path)? else {
            self.forget(path);
            return Ok(None);
        };
        let identity = Identity::of(&file).map_err(|e| SpoolError::io(path, e))?;
        let known = self.lock().get(path).cloned();
        if let Some((id, state)) = known {
            if id == identity {
                return Ok(Some((file, state)));
            }
        }
        let (state, _) = read(path, &file, false)?;
        Ok(Some((file, state)))
    }

    fn remember(&self, path: &Path, file: &File, state: LogState) {
        match Identity::of(file) {
            Ok(identity) => {
                let mut known = self.lock();
                if known.len() >= MAX_KNOWN {
                    known.clear();
                }
                known.insert(path.to_owned(), (identity, state));
            }
            Err(_) => self.forget(path),
        }
    }

    pub(super) fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Identity, LogState)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn dir_and_name(path: &Path) -> (&Path, String) {
    let dir = path.parent().expect("a log path has a directory");
    let name = path
        .file_name()
        .expect("a log path has a file name")
        .to_string_lossy()
        .into_owned();
    (dir, name)
}

fn write_err(e: crate::atomic::WriteError) -> SpoolError {
    SpoolError::io(&e.path, e.source)
}

impl Inner {
    /// Locks `a` and moves in the messages an older release left in its
    /// document. `None` without the account.
    fn offline_account(&self, a: &AccountRef) -> Result<Option<(FileLock, PathBuf)>, SpoolError> {
        let stem = encode_name(&a.user);
        let Some(lock) = self.spool.lock_user(&a.host, &stem, false)? else {
            return Ok(None);
        };
        let doc = self.spool.user_path(&a.host, &a.user);
        let Some(bytes) = read_bounded(&doc)? else {
            return Ok(None);
        };
        let path = self.spool.offline_path(&a.host, &a.user);
        // A document without the word cannot hold the element; most
        // accounts are answered without parsing theirs.
        if bytes
            .windows(LEGACY_ELEMENT.len())
            .any(|w| w == LEGACY_ELEMENT.as_bytes())
        {
            self.migrate_offline(a, &stem, &path)?;
        }
        Ok(Some((lock, path)))
    }

    /// Moves `<offline/>` from the document into the log (see the module
    /// documentation). The account's lock is held.
    fn migrate_offline(&self, a: &AccountRef, stem: &str, path: &Path) -> Result<(), SpoolError> {
        let Some(mut record) = self.spool.read_user(&a.host, &a.user)? else {
            return Ok(());
        };
        let Some(at) = record
            .extra
            .iter()
            .position(|e| e.is(LEGACY_ELEMENT, ns::SPOOL))
        else {
            return Ok(());
        };
        let queued = &record.extra[at];
        let mut messages = Vec::new();
        for node in &queued.children {
            match node {
                Node::Element(m) => messages.push(m.to_bytes(None)),
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => {
                    let doc = self.spool.user_path(&a.host, &a.user);
                    return Err(SpoolError::corrupt(
                        &doc,
                        queued.span.line,
                        queued.span.col,
                        "text directly inside <offline/>",
                    ));
                }
            }
        }
        let digest: String = Sha256::digest(queued.to_bytes(Some(ns::SPOOL)))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let existing = match open(path)? {
            Some(file) => Some(read(path, &file, true)?),
            None => None,
        };
        let done = existing
            .as_ref()
            .is_some_and(|(state, _)| state.header.migrated.as_deref() == Some(digest.as_str()));
        if !done {
            let (mut header, last, old) = match existing {
                Some((state, old)) => (state.header, state.last, old),
                None => (Header::default(), 0, Vec::new()),
            };
            let first = header.base.max(last) + 1;
            header.migrated = Some(digest);
            let (dir, name) = dir_and_name(path);
            replace_file_with(dir, &name, stem, &mut |w: &mut dyn Write| {
                w.write_all(&log::file_header(KIND, &header.fields()))?;
                for m in &old {
                    w.write_all(&log::record(&format!("m {}", m.id), &m.payload))?;
                }
                for (i, m) in messages.iter().enumerate() {
                    w.write_all(&log::record(&format!("m {}", first + i as u64), m))?;
                }
                Ok(())
            })
            .map_err(write_err)?;
            tracing::info!(account = %a, messages = messages.len(), "moved offline messages from the account's document into its offline log");
        }
        self.offline.forget(path);
        record.extra.remove(at);
        self.spool.write_user(&a.host, &a.user, &record)
    }

    /// Appends the records of `payloads` with one write and one flush.
    fn offline_append(
        &self,
        a: &AccountRef,
        payloads: &[Vec<u8>],
    ) -> Result<OfflineUsage, SpoolError> {
        let Some((_lock, path)) = self.offline_account(a)? else {
            return Err(SpoolError::NotFound);
        };
        let (file, mut state) = match self.offline.open(&path)? {
            Some(open) => open,
            None => {
                let (dir, name) = dir_and_name(&path);
                let header = log::file_header(KIND, &Header::default().fields());
                replace_file(dir, &name, &encode_name(&a.user), &header).map_err(write_err)?;
                let file = open(&path)?.ok_or_else(|| {
                    SpoolError::io(&path, io::Error::from(io::ErrorKind::NotFound))
                })?;
                let (state, _) = read(&path, &file, false)?;
                (file, state)
            }
        };
        let size = file.metadata().map_err(|e| SpoolError::io(&path, e))?.len();
        if size > state.end {
            log::truncate(&path, &file, state.end)?;
            tracing::info!(path = %path.display(), bytes = size - state.end, "cut a torn record off an offline log");
        }
        let mut records = Vec::new();
        let mut id = state.last;
        for (i, payload) in payloads.iter().enumerate() {
            id = if i == 0 { state.next_id() } else { id + 1 };
            records.extend_from_slice(&log::record(&format!("m {id}"), payload));
        }
        if records.is_empty() {
            let usage = state.usage;
            self.offline.remember(&path, &file, state);
            return Ok(usage);
        }
        // One write and one flush for the whole batch; a failure cuts the
        // file back to where it was, so none of them is stored.
        if let Err(e) = log::append(&path, &file, state.end, &records) {
            self.offline.forget(&path);
            return Err(e);
        }
        state.last = id;
        state.usage.messages += payloads.len();
        state.usage.bytes += payloads.iter().map(Vec::len).sum::<usize>();
        state.end += records.len() as u64;
        let usage = state.usage;
        self.offline.remember(&path, &file, state);
        Ok(usage)
    }

    fn offline_usage(&self, a: &AccountRef) -> Result<OfflineUsage, SpoolError> {
        let Some((_lock, path)) = self.offline_account(a)? else {
            return Ok(OfflineUsage::default());
        };
        Ok(match self.offline.open(&path)? {
            Some((file, state)) => {
                let usage = state.usage;
                self.offline.remember(&path, &file, state);
                usage
            }
            None => OfflineUsage::default(),
        })
    }

    fn offline_list(&self, a: &AccountRef) -> Result<Vec<OfflineMessage>, SpoolError> {
        let Some((_lock, path)) = self.offline_account(a)? else {
            return Ok(Vec::new());
        };
        let Some(file) = open(&path)? else {
            return Ok(Vec::new());
        };
        let (_, stored) = read(&path, &file, true)?;
        stored
            .into_iter()
            .map(|m| {
                let stanza = parse_document(&m.payload, spool_limits()).map_err(|e| {
                    SpoolError::corrupt(&path, m.line + e.line, e.col, e.error.to_string())
                })?;
                Ok(OfflineMessage { id: m.id, stanza })
            })
            .collect()
    }

    fn offline_remove_through(&self, a: &AccountRef, through: u64) -> Result<(), SpoolError> {
        let Some((_lock, path)) = self.offline_account(a)? else {
            return Ok(());
        };
        let Some(file) = open(&path)? else {
            return Ok(());
        };
        let (state, stored) = read(&path, &file, true)?;
        let Some(removed) = stored
            .iter()
            .take_while(|m| m.id <= through)
            .last()
            .map(|m| m.id)
        else {
            return Ok(());
        };
        let header = Header {
            base: state.header.base.max(removed),
            migrated: None,
        };
        let (dir, name) = dir_and_name(&path);
        replace_file_with(
            dir,
            &name,
            &encode_name(&a.user),
            &mut |w: &mut dyn Write| {
                w.write_all(&log::file_header(KIND, &header.fields()))?;
                for m in stored.iter().filter(|m| m.id > through) {
                    w.write_all(&log::record(&format!("m {}", m.id), &m.payload))?;
                }
                Ok(())
            },
        )
        .map_err(write_err)?;
        self.offline.forget(&path);
        Ok(())
    }
}

impl OfflineStore for FileStores {
    fn append<'a>(
        &'a self,
        account: &'a AccountRef,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        let a = account.clone();
        let payload = stanza.to_bytes(None);
        let checked = rules::stanza(stanza, payload.len());
        run(&self.inner, "store an offline message", move |s| {
            checked?;
            Ok(s.offline_append(&a, &[payload])?)
        })
    }

    fn append_batch<'a>(
        &'a self,
        account: &'a AccountRef,
        stanzas: &'a [Element],
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        let a = account.clone();
        let payloads: Vec<Vec<u8>> = stanzas.iter().map(|s| s.to_bytes(None)).collect();
        let checked: StoreResult<()> = stanzas
            .iter()
            .zip(&payloads)
            .try_for_each(|(s, p)| rules::stanza(s, p.len()));
        run(&self.inner, "store offline messages", move |s| {
            checked?;
            Ok(s.offline_append(&a, &payloads)?)
        })
    }

    fn usage<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        let a = account.clone();
        run(&self.inner, "measure an offline log", move |s| {
            Ok(s.offline_usage(&a)?)
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<OfflineMessage>>> {
        let a = account.clone();
        run(&self.inner, "read offline messages", move |s| {
            Ok(s.offline_list(&a)?)
        })
    }

    fn remove_through<'a>(
        &'a self,
        account: &'a AccountRef,
        through: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let a = account.clone();
        run(&self.inner, "remove delivered offline messages", move |s| {
            Ok(s.offline_remove_through(&a, through)?)
        })
    }
}
