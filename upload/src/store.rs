//! The upload service's files in the blob store: how much a user keeps
//! (for the quota, checked when a slot is given and again when the file
//! arrives), and removing what has expired.

use switchboard_spool::store::{BlobStore, StoreResult};

/// Bytes `owner` keeps in `scope`.
pub async fn usage(blobs: &dyn BlobStore, scope: &str, owner: &str) -> StoreResult<u64> {
    Ok(blobs
        .list(scope)
        .await?
        .iter()
        .filter(|(_, m)| m.owner == owner)
        .map(|(_, m)| m.size)
        .sum())
}

/// Removes every file of `scope` expired at `now`; returns how many.
pub async fn remove_expired(blobs: &dyn BlobStore, scope: &str, now: u64) -> StoreResult<usize> {
    let mut removed = 0;
    for (id, meta) in blobs.list(scope).await? {
        if meta.expires.is_some_and(|e| e <= now) && blobs.remove(scope, &id).await? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
