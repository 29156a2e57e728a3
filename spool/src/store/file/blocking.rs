//! The one way file I/O leaves the async threads: [`run`] moves a closure
//! to tokio's blocking pool, and a panic in it becomes
//! [`StoreError::Unavailable`] (logged with its message) instead of tearing
//! down the caller. Nothing is left half-written by such a panic: locks are
//! released as the stack unwinds, and every write is an atomic replace or
//! a log append that the next writer checks.

use std::sync::Arc;

use super::Inner;
use crate::store::{BoxFuture, StoreError, StoreResult};

/// Runs `f` with the backend's state on the blocking pool.
pub(super) fn run<'a, T: Send + 'static>(
    inner: &Arc<Inner>,
    what: &'static str,
    f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
) -> BoxFuture<'a, StoreResult<T>> {
    let inner = inner.clone();
    Box::pin(async move {
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                tracing::error!(operation = what, "a storage task panicked: {message}");
                Err(StoreError::Unavailable(format!(
                    "{what}: a storage task panicked: {message}"
                )))
            }
            // The runtime is shutting down.
            Err(_) => Err(StoreError::Unavailable(format!("{what}: cancelled"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::FileStores;

    #[tokio::test]
    async fn a_panicking_task_is_unavailable_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileStores::open_backend(dir.path()).unwrap();
        let r: StoreResult<()> = run(&files.inner, "testing", |_| panic!("boom")).await;
        match r {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("boom"), "{m}"),
            other => panic!("{other:?}"),
        }
        let r = run(&files.inner, "testing", |_| Ok(7)).await;
        assert_eq!(r, Ok(7));
    }
}
