//! HTTP file upload (XEP-0363) as a service at its own hostname
//! (`upload.example.org`, `type="upload"`).
//!
//! A client asks the service for a slot (an IQ with the file's name, size
//! and type); the service checks the size limit and the user's quota and
//! answers with a PUT URL and a GET URL on the web side. The PUT URL
//! carries a signature over everything the slot allows (the service, the
//! slot id, the file name, the owner, the size, the type and an expiry),
//! so the web side needs no state shared with the service but the key and
//! the blob store: it checks the signature, the quota again, and streams
//! the body into the storage layer's blob store. Files older than the
//! configured expiry are removed by a background task of the service.
//!
//! Map: [`settings`] (the `<service>` attributes), [`slot`] (slot URLs and
//! their signatures, pure), [`service`] (the XMPP side), [`store`] (usage
//! and expiry over the blob store, shared with the web side through
//! [`Uploads`]), [`share`] (`Uploads` as the [`FileShare`] other services
//! store files in, such as the Matrix transport's images).
//!
//! [`FileShare`]: switchboard_service::files::FileShare

pub mod service;
pub mod settings;
pub mod share;
pub mod slot;
pub mod store;

use std::sync::{Arc, OnceLock, RwLock};

use switchboard_spool::store::BlobStore;

pub use service::UploadService;
pub use settings::UploadSettings;

/// What the XMPP side and the web side of one upload service share:
/// settings, the blob store, the signing key (set when the service first
/// runs, from its context) and the public base URL of the web side.
pub struct Uploads {
    /// The service's hostname; its blobs' scope.
    pub jid: String,
    pub settings: UploadSettings,
    pub blobs: Arc<dyn BlobStore>,
    key: OnceLock<[u8; 32]>,
    base_url: RwLock<Option<String>>,
}

impl Uploads {
    pub fn new(jid: &str, settings: UploadSettings, blobs: Arc<dyn BlobStore>) -> Arc<Uploads> {
        let base_url = RwLock::new(settings.url.clone());
        Arc::new(Uploads {
            jid: jid.to_string(),
            settings,
            blobs,
            key: OnceLock::new(),
            base_url,
        })
    }

    /// The key slots are signed with, derived from the server's secret key
    /// for this service alone.
    pub fn set_key(&self, secret: &[u8; 32]) {
        let _ = self.key.set(slot::derive_key(secret, &self.jid));
    }

    pub fn key(&self) -> Option<&[u8; 32]> {
        self.key.get()
    }

    /// Where the web side serves uploads (`https://example.org:5281`),
    /// unless the config named one: set by the composition root once the
    /// web listeners are bound.
    pub fn set_default_base_url(&self, url: String) {
        let mut b = self.base_url.write().unwrap_or_else(|e| e.into_inner());
        if b.is_none() {
            *b = Some(url);
        }
    }

    pub fn base_url(&self) -> Option<String> {
        self.base_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
