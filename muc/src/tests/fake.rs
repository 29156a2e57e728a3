//! Minimal in-memory stores for the tests: an [`ArchiveStore`] and a
//! [`ServiceDataStore`] with the semantics `spool/src/store.rs` gives
//! them (paging from either end, `with` matching a bare JID's
//! resources, unknown paging ids answered with `None`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use switchboard_spool::store::{
    ArchiveEntry, ArchiveOwner, ArchivePage, ArchiveQuery, ArchiveStore, BoxFuture,
    ServiceDataStore, StoreResult,
};
use switchboard_xml::Element;

#[derive(Default)]
pub struct MemArchive {
    pub entries: Mutex<BTreeMap<String, Vec<ArchiveEntry>>>,
}

impl MemArchive {
    pub fn len(&self, owner: &str) -> usize {
        self.entries.lock().unwrap().get(owner).map_or(0, Vec::len)
    }
}

fn matches(e: &ArchiveEntry, q: &ArchiveQuery) -> bool {
    if let Some(w) = &q.with {
        let ok = e.with == *w || (!w.contains('/') && e.with.starts_with(&format!("{w}/")));
        if !ok {
            return false;
        }
    }
    q.start.is_none_or(|s| e.timestamp >= s)
        && q.end.is_none_or(|t| e.timestamp <= t)
        && (q.ids.is_empty() || q.ids.contains(&e.id))
}

impl ArchiveStore for MemArchive {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.entries
                .lock()
                .unwrap()
                .entry(owner.to_string())
                .or_default()
                .push(entry.clone());
            Ok(())
        })
    }

    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        q: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        Box::pin(async move {
            let map = self.entries.lock().unwrap();
            let all = map.get(owner).cloned().unwrap_or_default();
            let pos = |id: &String| all.iter().position(|e| &e.id == id);
            let lo = match &q.after_id {
                Some(id) => match pos(id) {
                    Some(i) => i + 1,
                    None => return Ok(None),
                },
                None => 0,
            };
            let hi = match &q.before_id {
                Some(id) => match pos(id) {
                    Some(i) => i,
                    None => return Ok(None),
                },
                None => all.len(),
            };
            let hits: Vec<ArchiveEntry> = all[lo.min(hi)..hi]
                .iter()
                .filter(|e| matches(e, q))
                .cloned()
                .collect();
            let count = hits.len();
            let (entries, complete) = if q.from_end {
                let start = count.saturating_sub(q.max);
                (hits[start..].to_vec(), start == 0)
            } else {
                (hits.iter().take(q.max).cloned().collect(), count <= q.max)
            };
            Ok(Some(ArchivePage {
                entries,
                complete,
                count: Some(count),
            }))
        })
    }

    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut map = self.entries.lock().unwrap();
            let Some(e) = map
                .get_mut(owner)
                .and_then(|v| v.iter_mut().find(|e| e.id == id))
            else {
                return Ok(false);
            };
            e.stanza = stanza.clone();
            Ok(true)
        })
    }

    fn expire<'a>(&'a self, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let mut n = 0;
            for v in self.entries.lock().unwrap().values_mut() {
                let len = v.len();
                v.retain(|e| e.timestamp >= before);
                n += (len - v.len()) as u64;
            }
            Ok(n)
        })
    }

    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.entries.lock().unwrap().remove(owner);
            Ok(())
        })
    }
}

#[derive(Default)]
pub struct MemServiceData {
    pub map: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
}

impl ServiceDataStore for MemServiceData {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            Ok(self
                .map
                .lock()
                .unwrap()
                .get(&(service.into(), collection.into(), key.into()))
                .cloned())
        })
    }

    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.map
                .lock()
                .unwrap()
                .insert((service.into(), collection.into(), key.into()), value);
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(self
                .map
                .lock()
                .unwrap()
                .remove(&(service.into(), collection.into(), key.into()))
                .is_some())
        })
    }

    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .map
                .lock()
                .unwrap()
                .keys()
                .filter(|(s, c, _)| s == service && c == collection)
                .map(|(_, _, k)| k.clone())
                .collect())
        })
    }
}
