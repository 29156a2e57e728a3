//! Stand-in storage backends for the services that already use the
//! per-kind storage interface (`switchboard_spool::store`), until the
//! spool crate's own file and in-memory backends take their place:
//!
//! - [`DirServiceData`]: a service's records, one file per key under
//!   `spool/<service>/<collection>/`, written with the spool's atomic
//!   replace (temp → fsync → rename → fsync dir), so group chat rooms
//!   survive a restart;
//! - [`MemArchive`]: message archives kept in memory only; a room's
//!   archive is empty again after a restart.
//!
//! Both are chosen here, in the composition root, and nowhere else: the
//! services receive `Arc<dyn …>` and never know which backend they got.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use switchboard_spool::store::{
    ArchiveEntry, ArchiveOwner, ArchivePage, ArchiveQuery, ArchiveStore, BoxFuture,
    ServiceDataStore, StoreError, StoreResult,
};
use switchboard_spool::{atomic, filename};
use switchboard_xml::Element;

/// A service's records as files under the spool directory.
pub struct DirServiceData {
    root: PathBuf,
}

impl DirServiceData {
    pub fn new(spool: &Path) -> DirServiceData {
        DirServiceData {
            root: spool.to_path_buf(),
        }
    }

    fn dir(&self, service: &str, collection: &str) -> PathBuf {
        self.root
            .join(filename::encode_name(service))
            .join(filename::encode_name(collection))
    }
}

const SUFFIX: &str = ".val";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("a storage task failed: {e}")))?
}

impl ServiceDataStore for DirServiceData {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let path = self
            .dir(service, collection)
            .join(format!("{}{SUFFIX}", filename::encode_name(key)));
        Box::pin(blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(format!("{}: {e}", path.display()))),
        }))
    }

    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let dir = self.dir(service, collection);
        let stem = filename::encode_name(key);
        Box::pin(blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
            atomic::replace_file(&dir, &format!("{stem}{SUFFIX}"), &stem, &value).map_err(|e| {
                if e.source.raw_os_error() == Some(libc::ENOSPC) {
                    StoreError::Full(format!("{}: {}", e.path.display(), e.source))
                } else {
                    unavailable(format!("{}: {}", e.path.display(), e.source))
                }
            })
        }))
    }

    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let dir = self.dir(service, collection);
        let path = dir.join(format!("{}{SUFFIX}", filename::encode_name(key)));
        Box::pin(blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                atomic::sync_dir(&dir)
                    .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(unavailable(format!("{}: {e}", path.display()))),
        }))
    }

    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let dir = self.dir(service, collection);
        Box::pin(blocking(move || {
            let listing = match std::fs::read_dir(&dir) {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(format!("{}: {e}", dir.display()))),
            };
            let mut keys: Vec<String> = listing
                .flatten()
                .filter_map(|f| {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.contains(atomic::TMP_MARK) {
                        return None;
                    }
                    filename::decode_name(name.strip_suffix(SUFFIX)?)
                })
                .collect();
            keys.sort();
            Ok(keys)
        }))
    }
}

/// Archives in memory.
#[derive(Default)]
pub struct MemArchive {
    entries: Mutex<HashMap<String, Vec<ArchiveEntry>>>,
}

fn matches(e: &ArchiveEntry, q: &ArchiveQuery) -> bool {
    let with_ok = match &q.with {
        None => true,
        Some(w) if w.contains('/') => e.with == *w,
        Some(w) => e.with == *w || e.with.starts_with(&format!("{w}/")),
    };
    with_ok
        && q.start.is_none_or(|s| e.timestamp >= s)
        && q.end.is_none_or(|t| e.timestamp <= t)
        && (q.ids.is_empty() || q.ids.contains(&e.id))
}

impl ArchiveStore for MemArchive {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let mut map = self.entries.lock().expect("not poisoned");
        map.entry(owner.to_string())
            .or_default()
            .push(entry.clone());
        Box::pin(async { Ok(()) })
    }

    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        q: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        let map = self.entries.lock().expect("not poisoned");
        let empty = Vec::new();
        let all = map.get(owner).unwrap_or(&empty);
        let pos = |id: &String| all.iter().position(|e| &e.id == id);
        let page = (|| {
            let lo = match &q.after_id {
                Some(id) => pos(id)? + 1,
                None => 0,
            };
            let hi = match &q.before_id {
                Some(id) => pos(id)?,
                None => all.len(),
            };
            let hits: Vec<&ArchiveEntry> = all[lo.min(hi)..hi]
                .iter()
                .filter(|e| matches(e, q))
                .collect();
            let count = hits.len();
            let (entries, complete) = if q.from_end {
                let start = count.saturating_sub(q.max);
                (
                    hits[start..].iter().map(|e| (*e).clone()).collect(),
                    start == 0,
                )
            } else {
                (
                    hits.iter().take(q.max).map(|e| (*e).clone()).collect(),
                    count <= q.max,
                )
            };
            Some(ArchivePage {
                entries,
                complete,
                count: Some(count),
            })
        })();
        Box::pin(async move { Ok(page) })
    }

    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let mut map = self.entries.lock().expect("not poisoned");
        let found = match map
            .get_mut(owner)
            .and_then(|v| v.iter_mut().find(|e| e.id == id))
        {
            Some(e) => {
                e.stanza = stanza.clone();
                true
            }
            None => false,
        };
        Box::pin(async move { Ok(found) })
    }

    fn expire<'a>(&'a self, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        let mut n = 0u64;
        for v in self.entries.lock().expect("not poisoned").values_mut() {
            let len = v.len();
            v.retain(|e| e.timestamp >= before);
            n += (len - v.len()) as u64;
        }
        Box::pin(async move { Ok(n) })
    }

    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        self.entries.lock().expect("not poisoned").remove(owner);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_records_survive_and_list_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let s = DirServiceData::new(dir.path());
        rt.block_on(async {
            s.put(
                "conference.localhost",
                "rooms",
                "kitchen",
                b"<room/>".to_vec(),
            )
            .await
            .unwrap();
            s.put("conference.localhost", "rooms", "Odd/Name", b"x".to_vec())
                .await
                .unwrap();
            let again = DirServiceData::new(dir.path());
            assert_eq!(
                again.keys("conference.localhost", "rooms").await.unwrap(),
                ["Odd/Name", "kitchen"]
            );
            assert_eq!(
                again
                    .get("conference.localhost", "rooms", "kitchen")
                    .await
                    .unwrap(),
                Some(b"<room/>".to_vec())
            );
            assert!(again
                .remove("conference.localhost", "rooms", "kitchen")
                .await
                .unwrap());
            assert!(!again
                .remove("conference.localhost", "rooms", "kitchen")
                .await
                .unwrap());
            assert_eq!(
                again
                    .get("conference.localhost", "rooms", "kitchen")
                    .await
                    .unwrap(),
                None
            );
        });
    }
}
