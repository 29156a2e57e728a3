//! Blobs as files, beside the service's other records:
//!
//! ```text
//! <root>/<service>/+blobs/          mode 0700 (no encoding starts with +)
//!   <id>.blob                       the bytes, mode 0600
//!   <id>.meta                       owner, name, content type, size,
//!                                   created, expires: one per line
//!   .<id>.part.tmp.<pid>.<n>        a blob being written
//! ```
//!
//! A writer streams into its `.part` file; commit fsyncs it, renames it to
//! `<id>.blob` and then writes `<id>.meta` atomically: a blob is visible
//! only with both, so a crash at any point leaves a stray file that
//! [`BlobStore::list`] removes once it is an hour old, never half a blob.
//! Metadata text holds no control characters (the rules refuse them), so
//! one value per line is unambiguous.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;

use super::blocking::run;
use super::FileStores;
use crate::atomic::{replace_file, sync_dir};
use crate::file_spool::new_dir;
use crate::filename::encode_name;
use crate::store::{
    rules, BlobMeta, BlobReader, BlobStore, BlobWriter, BoxFuture, StoreError, StoreResult,
};

/// The directory of a scope's blobs.
const DIR: &str = "+blobs";

/// How old a stray file (an abandoned `.part`, half of a crashed commit)
/// must be before [`BlobStore::list`] removes it: older than any upload
/// still in progress.
const STRAY_AGE: Duration = Duration::from_secs(3600);

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    let text = format!("{what} {}: {e}", path.display());
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => StoreError::Full(text),
        _ => StoreError::Unavailable(text),
    }
}

fn dir(root: &Path, scope: &str) -> PathBuf {
    root.join(encode_name(scope)).join(DIR)
}

fn meta_text(m: &BlobMeta) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        m.owner,
        m.name,
        m.content_type,
        m.size,
        m.created,
        m.expires.map(|e| e.to_string()).unwrap_or_default()
    )
}

fn parse_meta(path: &Path, text: &str) -> StoreResult<BlobMeta> {
    let corrupt = || StoreError::Corrupt(format!("{}: not a blob's metadata", path.display()));
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() != 7 || !lines[6].is_empty() {
        return Err(corrupt());
    }
    Ok(BlobMeta {
        owner: lines[0].to_string(),
        name: lines[1].to_string(),
        content_type: lines[2].to_string(),
        size: lines[3].parse().map_err(|_| corrupt())?,
        created: lines[4].parse().map_err(|_| corrupt())?,
        expires: match lines[5] {
            "" => None,
            e => Some(e.parse().map_err(|_| corrupt())?),
        },
    })
}

fn read_meta(path: &Path) -> StoreResult<Option<BlobMeta>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_meta(path, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", path, e)),
    }
}

struct Writer {
    file: Option<tokio::fs::File>,
    part: PathBuf,
    dir: PathBuf,
    id: String,
    meta: BlobMeta,
    written: u64,
    committed: bool,
}

impl BlobWriter for Writer {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if self.written + chunk.len() as u64 > self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "more than the blob's {} bytes",
                    self.meta.size
                )));
            }
            let file = self
                .file
                .as_mut()
                .ok_or_else(|| StoreError::Unavailable("the blob is closed".into()))?;
            file.write_all(chunk)
                .await
                .map_err(|e| io_error("writing", &self.part, e))?;
            self.written += chunk.len() as u64;
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(async move {
            if self.written != self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "{} bytes of the blob's {}",
                    self.written, self.meta.size
                )));
            }
            let mut file = self.file.take().expect("committed once");
            file.flush()
                .await
                .map_err(|e| io_error("writing", &self.part, e))?;
            file.sync_all()
                .await
                .map_err(|e| io_error("syncing", &self.part, e))?;
            drop(file);
            let (part, dir, id, meta) = (
                self.part.clone(),
                self.dir.clone(),
                self.id.clone(),
                self.meta.clone(),
            );
            let done = tokio::task::spawn_blocking(move || -> StoreResult<()> {
                let blob = dir.join(format!("{id}.blob"));
                if blob.exists() {
                    return Err(StoreError::AlreadyExists);
                }
                std::fs::rename(&part, &blob).map_err(|e| io_error("renaming", &part, e))?;
                replace_file(
                    &dir,
                    &format!("{id}.meta"),
                    &id,
                    meta_text(&meta).as_bytes(),
                )
                .map_err(|e| io_error("writing", &e.path, e.source))?;
                sync_dir(&dir).map_err(|e| io_error("syncing", &dir, e))
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("committing a blob: {e}")))?;
            if done.is_ok() {
                self.committed = true;
            }
            done
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.committed {
            // Abandoned: the part file goes (unlink does not block for
            // long, and a leftover is removed by `list` later anyway).
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

impl BlobStore for FileStores {
    fn create<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        meta: BlobMeta,
    ) -> BoxFuture<'a, StoreResult<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            rules::blob(scope, id, &meta)?;
            let dir = dir(self.root(), scope);
            let (d, i) = (dir.clone(), id.to_string());
            let part = run(&self.inner, "creating a blob", move |_| {
                if let Some(parent) = d.parent() {
                    new_dir(parent).map_err(|e| io_error("creating", parent, e))?;
                }
                new_dir(&d).map_err(|e| io_error("creating", &d, e))?;
                if d.join(format!("{i}.blob")).exists() {
                    return Err(StoreError::AlreadyExists);
                }
                Ok(d.join(crate::atomic::temp_name(&format!("{i}.part"))))
            })
            .await?;
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&part)
                .await
                .map_err(|e| io_error("creating", &part, e))?;
            Ok(Box::new(Writer {
                file: Some(file),
                part,
                dir,
                id: id.to_string(),
                meta,
                written: 0,
                committed: false,
            }) as Box<dyn BlobWriter>)
        })
    }

    fn open<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<(BlobMeta, BlobReader)>>> {
        Box::pin(async move {
            rules::blob_id(id)?;
            let dir = dir(self.root(), scope);
            let meta_path = dir.join(format!("{id}.meta"));
            let Some(meta) = run(&self.inner, "reading a blob", move |_| {
                read_meta(&meta_path)
            })
            .await?
            else {
                return Ok(None);
            };
            let path = dir.join(format!("{id}.blob"));
            match tokio::fs::File::open(&path).await {
                Ok(f) => Ok(Some((meta, Box::new(f) as BlobReader))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error("opening", &path, e)),
            }
        })
    }

    fn list<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, StoreResult<Vec<(String, BlobMeta)>>> {
        let dir = dir(self.root(), scope);
        run(&self.inner, "listing blobs", move |_| {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_error("listing", &dir, e)),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error("listing", &dir, e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            let mut out = Vec::new();
            let now = SystemTime::now();
            let stray = |name: &str| {
                let p = dir.join(name);
                let old = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .map(|t| now.duration_since(t).unwrap_or_default() > STRAY_AGE)
                    .unwrap_or(false);
                if old {
                    tracing::info!(file = %p.display(), "removing a stray blob file");
                    let _ = std::fs::remove_file(&p);
                }
            };
            for name in &names {
                if name.starts_with('.') && name.contains(".part") {
                    stray(name);
                } else if let Some(id) = name.strip_suffix(".meta") {
                    if !names.iter().any(|n| *n == format!("{id}.blob")) {
                        stray(name);
                        continue;
                    }
                    if let Some(meta) = read_meta(&dir.join(name))? {
                        out.push((id.to_string(), meta));
                    }
                } else if let Some(id) = name.strip_suffix(".blob") {
                    if !names.iter().any(|n| *n == format!("{id}.meta")) {
                        stray(name);
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
    }

    fn remove<'a>(&'a self, scope: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let dir = dir(self.root(), scope);
        let id = id.to_string();
        run(&self.inner, "removing a blob", move |_| {
            rules::blob_id(&id)?;
            let blob = dir.join(format!("{id}.blob"));
            let found = match std::fs::remove_file(&blob) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(io_error("removing", &blob, e)),
            };
            let meta = dir.join(format!("{id}.meta"));
            match std::fs::remove_file(&meta) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("removing", &meta, e)),
            }
            if found {
                sync_dir(&dir).map_err(|e| io_error("syncing", &dir, e))?;
            }
            Ok(found)
        })
    }
}
