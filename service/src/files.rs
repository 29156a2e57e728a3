//! Files a service hands to XMPP users as links: the seam between a
//! service that has a file to share (the Matrix transport, with an image
//! from Matrix) and the server's HTTP upload service, which stores it and
//! serves it like any XEP-0363 upload. The upload crate implements
//! [`FileShare`]; the composition root hands it to the services that
//! want one, so neither crate depends on the other.

use std::future::Future;
use std::pin::Pin;

/// A future a [`FileShare`] returns.
pub type FileFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A file read back from a [`FileShare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFile {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Where a service stores files for XMPP users, and reads its own back.
pub trait FileShare: Send + Sync {
    /// The largest file it takes (bytes).
    fn max_size(&self) -> u64;

    /// Stores `data` as a file of `owner` (a bare JID, whose quota it
    /// counts against) and answers its public GET URL, or why not, in a
    /// sentence.
    fn store<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        content_type: &'a str,
        data: Vec<u8>,
    ) -> FileFuture<'a, Result<String, String>>;

    /// When `url` is one of its files' GET URLs: the file (`Err` when it
    /// is gone, larger than `limit` bytes, or cannot be read). `None`
    /// when the URL is not one of its own.
    fn open<'a>(
        &'a self,
        url: &'a str,
        limit: u64,
    ) -> FileFuture<'a, Option<Result<SharedFile, String>>>;
}
