//! Blobs: metadata in `blobs`, bytes in `blob_chunks` (see the crate
//! documentation for why in the database). A writer draws an upload number
//! and appends a chunk each time [`CHUNK`] bytes have arrived; its commit
//! writes the last chunk and the `blobs` row in one transaction. A reader
//! fetches one chunk at a time as it is read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use switchboard_spool::store::{
    rules, BlobMeta, BlobReader, BlobStore, BlobWriter, BoxFuture, StoreError, StoreResult,
};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::errors::{corrupt, is_duplicate, map};
use crate::pool::Pool;
use crate::PgStores;

/// The bytes of one `blob_chunks` row.
const CHUNK: usize = 256 * 1024;

fn meta_from(table: &str, r: &tokio_postgres::Row, at: usize) -> StoreResult<BlobMeta> {
    let size: i64 = r.get(at + 3);
    let created: i64 = r.get(at + 4);
    let expires: Option<i64> = r.get(at + 5);
    let bad = || corrupt(table, "a negative size or time");
    Ok(BlobMeta {
        owner: r.get(at),
        name: r.get(at + 1),
        content_type: r.get(at + 2),
        size: u64::try_from(size).map_err(|_| bad())?,
        created: u64::try_from(created).map_err(|_| bad())?,
        expires: expires
            .map(|e| u64::try_from(e).map_err(|_| bad()))
            .transpose()?,
    })
}

struct Writer {
    pool: Arc<Pool>,
    scope: String,
    id: String,
    meta: BlobMeta,
    upload: i64,
    /// Chunks already written.
    written: i32,
    /// Bytes taken so far.
    taken: u64,
    buffer: Vec<u8>,
    committed: bool,
}

impl Writer {
    async fn flush_chunk(&mut self) -> StoreResult<()> {
        let mut c = self.pool.get().await?;
        c.execute(
            "storing a blob chunk",
            "INSERT INTO blob_chunks (upload, n, bytes) VALUES ($1, $2, $3)",
            &[&self.upload, &self.written, &self.buffer],
        )
        .await?;
        self.written += 1;
        self.buffer.clear();
        Ok(())
    }
}

impl BlobWriter for Writer {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if self.taken + chunk.len() as u64 > self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "more than the blob's {} bytes",
                    self.meta.size
                )));
            }
            self.taken += chunk.len() as u64;
            let mut rest = chunk;
            while !rest.is_empty() {
                let room = CHUNK - self.buffer.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                self.buffer.extend_from_slice(now);
                rest = later;
                if self.buffer.len() == CHUNK {
                    self.flush_chunk().await?;
                }
            }
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(async move {
            if self.taken != self.meta.size {
                return Err(StoreError::Invalid(format!(
                    "{} bytes of the blob's {}",
                    self.taken, self.meta.size
                )));
            }
            let pool = self.pool.clone();
            let mut c = pool.get().await?;
            c.begin().await?;
            if !self.buffer.is_empty() {
                c.execute(
                    "storing a blob chunk",
                    "INSERT INTO blob_chunks (upload, n, bytes) VALUES ($1, $2, $3)",
                    &[&self.upload, &self.written, &self.buffer],
                )
                .await?;
            }
            let m = &self.meta;
            let inserted = c
                .execute_raw(
                    "INSERT INTO blobs (scope, id, owner, name, content_type, size, created, \
                       expires, upload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &self.scope,
                        &self.id,
                        &m.owner,
                        &m.name,
                        &m.content_type,
                        &crate::to_i64("a blob size", m.size)?,
                        &crate::to_i64("a blob's time", m.created)?,
                        &m.expires
                            .map(|e| crate::to_i64("a blob's expiry", e))
                            .transpose()?,
                        &self.upload,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    c.rollback().await?;
                    return Err(StoreError::AlreadyExists);
                }
                Err(e) => return Err(map("storing a blob", e)),
            }
            c.commit().await?;
            self.committed = true;
            Ok(())
        })
    }
}

impl Drop for Writer {
    /// An abandoned upload's chunks go now if they can; `list` removes
    /// them later otherwise.
    fn drop(&mut self) {
        if self.committed || self.written == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, upload) = (self.pool.clone(), self.upload);
        runtime.spawn(async move {
            if let Ok(mut c) = pool.get().await {
                let _ = c
                    .execute(
                        "removing an abandoned blob",
                        "DELETE FROM blob_chunks WHERE upload = $1",
                        &[&upload],
                    )
                    .await;
            }
        });
    }
}

/// Reads a blob's chunks in order from a task that fetches them one at a
/// time, each as the reader wants it (a channel of one).
struct Reader {
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.at < self.current.len() {
                let n = buf.remaining().min(self.current.len() - self.at);
                let at = self.at;
                buf.put_slice(&self.current[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            match self.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn send_chunks(
    pool: Arc<Pool>,
    upload: i64,
    count: i64,
    size: u64,
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
) {
    let mut sent = 0u64;
    for n in 0..count {
        let n = n as i32;
        let got = match pool.get().await {
            Ok(mut c) => c
                .query_opt(
                    "reading a blob",
                    "SELECT bytes FROM blob_chunks WHERE upload = $1 AND n = $2",
                    &[&upload, &n],
                )
                .await
                .and_then(|r| {
                    r.map(|r| r.get::<_, Vec<u8>>(0)).ok_or_else(|| {
                        corrupt("blob_chunks", format!("upload {upload} lacks chunk {n}"))
                    })
                }),
            Err(e) => Err(e),
        };
        let item = got.map_err(|e| std::io::Error::other(e.to_string()));
        if let Ok(bytes) = &item {
            sent += bytes.len() as u64;
        }
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
    if sent != size {
        let e = corrupt(
            "blob_chunks",
            format!("upload {upload} has {sent} bytes of {size}"),
        );
        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
    }
}

impl BlobStore for PgStores {
    fn create<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        meta: BlobMeta,
    ) -> BoxFuture<'a, StoreResult<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            rules::blob(scope, id, &meta)?;
            let scope = crate::names::enc(scope).into_owned();
            let mut c = self.pool.get().await?;
            if c.query_opt(
                "looking up a blob",
                "SELECT 1 FROM blobs WHERE scope = $1 AND id = $2",
                &[&scope, &id],
            )
            .await?
            .is_some()
            {
                return Err(StoreError::AlreadyExists);
            }
            let upload: i64 = c
                .query_opt("starting a blob", "SELECT nextval('blob_uploads')", &[])
                .await?
                .map(|r| r.get(0))
                .ok_or_else(|| StoreError::Unavailable("nextval returned nothing".into()))?;
            Ok(Box::new(Writer {
                pool: self.pool.clone(),
                scope,
                id: id.to_owned(),
                meta,
                upload,
                written: 0,
                taken: 0,
                buffer: Vec::new(),
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
            let mut c = self.pool.get().await?;
            let Some(r) = c
                .query_opt(
                    "opening a blob",
                    "SELECT owner, name, content_type, size, created, expires, upload, \
                       (SELECT count(*) FROM blob_chunks k WHERE k.upload = b.upload) \
                     FROM blobs b WHERE scope = $1 AND id = $2",
                    &[&crate::names::enc(scope), &id],
                )
                .await?
            else {
                return Ok(None);
            };
            let meta = meta_from("blobs", &r, 0)?;
            let (upload, count): (i64, i64) = (r.get(6), r.get(7));
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(send_chunks(self.pool.clone(), upload, count, meta.size, tx));
            let reader: BlobReader = Box::new(Reader {
                chunks: rx,
                current: Vec::new(),
                at: 0,
            });
            Ok(Some((meta, reader)))
        })
    }

    fn list<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, StoreResult<Vec<(String, BlobMeta)>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            // Abandoned uploads (a crash, a lost connection) go first.
            c.execute(
                "removing abandoned blobs",
                "DELETE FROM blob_chunks k WHERE k.written < now() - interval '1 hour' \
                 AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.upload = k.upload)",
                &[],
            )
            .await?;
            let rows = c
                .query(
                    "listing blobs",
                    "SELECT owner, name, content_type, size, created, expires, id \
                     FROM blobs WHERE scope = $1 ORDER BY id",
                    &[&crate::names::enc(scope)],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.get::<_, String>(6), meta_from("blobs", r, 0)?)))
                .collect()
        })
    }

    fn remove<'a>(&'a self, scope: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            c.begin().await?;
            let gone = c
                .query_opt(
                    "removing a blob",
                    "DELETE FROM blobs WHERE scope = $1 AND id = $2 RETURNING upload",
                    &[&crate::names::enc(scope), &id],
                )
                .await?;
            if let Some(r) = &gone {
                let upload: i64 = r.get(0);
                c.execute(
                    "removing a blob",
                    "DELETE FROM blob_chunks WHERE upload = $1",
                    &[&upload],
                )
                .await?;
            }
            c.commit().await?;
            Ok(gone.is_some())
        })
    }
}
