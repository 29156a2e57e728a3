//! Blobs in memory: a map the writers commit into whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::store::{
    rules, BlobMeta, BlobReader, BlobStore, BlobWriter, BoxFuture, StoreError, StoreResult,
};

type Map = BTreeMap<(String, String), (BlobMeta, Arc<Vec<u8>>)>;

#[derive(Debug, Default)]
pub(super) struct Blobs(Arc<Mutex<Map>>);

fn lock(m: &Mutex<Map>) -> std::sync::MutexGuard<'_, Map> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Writer {
    map: Arc<Mutex<Map>>,
    key: (String, String),
    meta: BlobMeta,
    data: Vec<u8>,
}

impl BlobWriter for Writer {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if self.data.len() as u64 + chunk.len() as u64 > self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "more than the blob's {} bytes",
                    self.meta.size
                )));
            }
            self.data.extend_from_slice(chunk);
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(async move {
            if self.data.len() as u64 != self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "{} bytes of the blob's {}",
                    self.data.len(),
                    self.meta.size
                )));
            }
            let mut map = lock(&self.map);
            if map.contains_key(&self.key) {
                return Err(StoreError::AlreadyExists);
            }
            map.insert(self.key, (self.meta, Arc::new(self.data)));
            Ok(())
        })
    }
}

impl BlobStore for super::MemoryStores {
    fn create<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        meta: BlobMeta,
    ) -> BoxFuture<'a, StoreResult<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            rules::blob(scope, id, &meta)?;
            let key = (scope.to_string(), id.to_string());
            if lock(&self.blobs.0).contains_key(&key) {
                return Err(StoreError::AlreadyExists);
            }
            Ok(Box::new(Writer {
                map: self.blobs.0.clone(),
                key,
                meta,
                data: Vec::new(),
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
            let found = lock(&self.blobs.0)
                .get(&(scope.to_string(), id.to_string()))
                .cloned();
            Ok(found.map(|(meta, data)| {
                let reader: BlobReader = Box::new(std::io::Cursor::new(data.to_vec()));
                (meta, reader)
            }))
        })
    }

    fn list<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, StoreResult<Vec<(String, BlobMeta)>>> {
        Box::pin(async move {
            Ok(lock(&self.blobs.0)
                .iter()
                .filter(|((s, _), _)| s == scope)
                .map(|((_, id), (meta, _))| (id.clone(), meta.clone()))
                .collect())
        })
    }

    fn remove<'a>(&'a self, scope: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(lock(&self.blobs.0)
                .remove(&(scope.to_string(), id.to_string()))
                .is_some())
        })
    }
}
