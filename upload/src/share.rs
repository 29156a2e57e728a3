//! The upload service as a [`FileShare`]: other services (the Matrix
//! transport) store files here for XMPP users and get the same kind of
//! GET URL an XEP-0363 upload gets (an unguessable id, the file's name,
//! expiring with the service's `expire=`), counted against the owner's
//! quota; and they read back files behind URLs of this service without
//! going through HTTP.

use switchboard_service::files::{FileFuture, FileShare, SharedFile};
use switchboard_spool::store::{BlobMeta, StoreError};
use tokio::io::AsyncReadExt;

use crate::slot::{self, percent_decode, Slot};
use crate::store::{unix_now, usage};
use crate::Uploads;

impl FileShare for Uploads {
    fn max_size(&self) -> u64 {
        self.settings.max_file_size
    }

    fn store<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        content_type: &'a str,
        data: Vec<u8>,
    ) -> FileFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let size = data.len() as u64;
            if size > self.settings.max_file_size {
                return Err(format!(
                    "it is larger than the upload service's limit of {} bytes",
                    self.settings.max_file_size
                ));
            }
            let Some(base) = self.base_url() else {
                return Err("the server has no HTTP listener for files".into());
            };
            let name = slot::file_name(name).unwrap_or_else(|_| "file".into());
            let used = usage(self.blobs.as_ref(), &self.jid, owner)
                .await
                .map_err(|e| storage(&self.jid, e))?;
            if used.saturating_add(size) > self.settings.quota {
                return Err(format!(
                    "it would take {owner} over the upload quota ({used} of {} bytes used)",
                    self.settings.quota
                ));
            }
            let now = unix_now();
            let slot = Slot {
                service: self.jid.clone(),
                id: slot::new_id(),
                name: name.clone(),
                owner: owner.to_string(),
                size,
                content_type: slot::content_type(Some(content_type)),
                expires: now,
            };
            let meta = BlobMeta {
                owner: slot.owner.clone(),
                name,
                content_type: slot.content_type.clone(),
                size,
                created: now,
                expires: self.settings.expire.map(|e| now + e),
            };
            let mut w = self
                .blobs
                .create(&self.jid, &slot.id, meta)
                .await
                .map_err(|e| storage(&self.jid, e))?;
            for chunk in data.chunks(64 << 10) {
                w.write(chunk).await.map_err(|e| storage(&self.jid, e))?;
            }
            w.commit().await.map_err(|e| storage(&self.jid, e))?;
            tracing::info!(service = %self.jid, %owner, size, "file stored for another service");
            Ok(format!("{base}{}", slot.path()))
        })
    }

    fn open<'a>(
        &'a self,
        url: &'a str,
        limit: u64,
    ) -> FileFuture<'a, Option<Result<SharedFile, String>>> {
        Box::pin(async move {
            let (id, name) = self.own_file(url)?;
            Some(self.read(&id, &name, limit).await)
        })
    }
}

impl Uploads {
    /// The blob id and file name a GET URL of this service names; `None`
    /// for any other URL.
    fn own_file(&self, url: &str) -> Option<(String, String)> {
        let base = self.base_url()?;
        let rest = url
            .strip_prefix(base.as_str())?
            .strip_prefix("/upload/")?
            .strip_prefix(self.jid.as_str())?
            .strip_prefix('/')?;
        let (id, raw_name) = rest.split_once('/')?;
        if raw_name.contains(['?', '#', '/']) {
            return None;
        }
        Some((id.to_string(), percent_decode(raw_name)?))
    }

    async fn read(&self, id: &str, name: &str, limit: u64) -> Result<SharedFile, String> {
        let gone = || "the file is no longer there".to_string();
        let (meta, mut reader) = match self.blobs.open(&self.jid, id).await {
            Ok(Some(found)) => found,
            Ok(None) | Err(StoreError::Invalid(_)) => return Err(gone()),
            Err(e) => return Err(storage(&self.jid, e)),
        };
        if meta.name != name || meta.expires.is_some_and(|e| e <= unix_now()) {
            return Err(gone());
        }
        if meta.size > limit {
            return Err(format!(
                "the file is {} bytes, more than the {limit} allowed",
                meta.size
            ));
        }
        let mut data = Vec::with_capacity(meta.size as usize);
        (&mut reader)
            .take(limit + 1)
            .read_to_end(&mut data)
            .await
            .map_err(|e| {
                tracing::error!(service = %self.jid, "reading an upload: {e}");
                "the file cannot be read".to_string()
            })?;
        if data.len() as u64 != meta.size {
            return Err("the file cannot be read whole".into());
        }
        Ok(SharedFile {
            name: meta.name,
            content_type: meta.content_type,
            data,
        })
    }
}

fn storage(service: &str, e: StoreError) -> String {
    tracing::error!(%service, "upload storage: {e}");
    match e {
        StoreError::Full(_) => "the server's storage is full".into(),
        _ => "the server's file store failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_spool::store::memory::MemoryStores;

    use super::*;
    use crate::UploadSettings;

    fn uploads(quota: u64) -> Arc<Uploads> {
        let settings = UploadSettings {
            max_file_size: 1000,
            quota,
            expire: Some(3600),
            slot_lifetime: 300,
            domains: vec!["example.org".into()],
            url: Some("https://example.org:5281".into()),
        };
        Uploads::new("upload.example.org", settings, MemoryStores::new().blobs)
    }

    #[tokio::test]
    async fn a_stored_file_has_an_upload_url_and_reads_back() {
        let up = uploads(10_000);
        let url = up
            .store(
                "alice@example.org",
                "cat pic.png",
                "image/png",
                b"png!".to_vec(),
            )
            .await
            .unwrap();
        assert!(
            url.starts_with("https://example.org:5281/upload/upload.example.org/")
                && url.ends_with("/cat%20pic.png"),
            "{url}"
        );
        let f = up.open(&url, 100).await.unwrap().unwrap();
        assert_eq!(
            (f.name.as_str(), f.content_type.as_str(), f.data.as_slice()),
            ("cat pic.png", "image/png", &b"png!"[..])
        );
        let meta = &up.blobs.list(&up.jid).await.unwrap()[0].1;
        assert_eq!(meta.owner, "alice@example.org");
        assert!(meta.expires.is_some());
        // Too large to read back, another name, another host.
        assert!(up.open(&url, 3).await.unwrap().is_err());
        let renamed = url.replace("cat%20pic.png", "dog.png");
        assert!(up.open(&renamed, 100).await.unwrap().is_err());
        assert!(up
            .open(
                "https://elsewhere.example/upload/upload.example.org/x/y",
                100
            )
            .await
            .is_none());
    }

    #[tokio::test]
    async fn limits_and_quota_hold() {
        let up = uploads(6);
        assert!(up
            .store("a@example.org", "big", "image/png", vec![0; 1001])
            .await
            .unwrap_err()
            .contains("limit"));
        up.store("a@example.org", "one", "image/png", vec![0; 4])
            .await
            .unwrap();
        assert!(up
            .store("a@example.org", "two", "image/png", vec![0; 4])
            .await
            .unwrap_err()
            .contains("quota"));
    }
}
