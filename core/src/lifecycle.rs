//! Start and end of things: the shutdown signal every listener and
//! connection watches, and [`Tracker`], a count of live guards that can be
//! waited on until it drops to zero.
//!
//! Two things are tracked that way. Each connection holds a guard of the
//! server's tracker, so shutdown waits exactly as long as the connections
//! take to say goodbye, and not a poll interval longer. And each client
//! session has a tracker of the work its stanzas started (an offline
//! message being stored, a roster being saved): a guard travels with each
//! piece of work, and the session answers its next IQ only once they are
//! all dropped, so an answer means everything sent before it is safe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Raises the shutdown signal.
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// What listeners and connections wait on: it fires once, at shutdown.
#[derive(Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }

    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells everyone watching that the server is stopping.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl ShutdownSignal {
    /// Resolves when shutdown starts (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }

    /// Whether shutdown has started.
    pub fn is_raised(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Counts live guards.
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Default)]
struct TrackerInner {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by one live connection, or one unfinished piece of work.
pub struct Guard {
    inner: Arc<TrackerInner>,
}

impl Tracker {
    /// A new guard.
    pub fn guard(&self) -> Guard {
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        Guard {
            inner: self.inner.clone(),
        }
    }

    /// How many guards are live now (for the metrics gauge: connections).
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Resolves once no guard is live.
    pub async fn drained(&self) {
        loop {
            // Registered before the check, so a guard dropped between the
            // check and the wait still wakes it.
            let idle = self.inner.idle.notified();
            if self.live() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Guard {
    /// The tracker this guard counts in.
    pub fn tracker(&self) -> Tracker {
        Tracker {
            inner: self.inner.clone(),
        }
    }
}

impl Clone for Guard {
    /// Another guard of the same tracker.
    fn clone(&self) -> Guard {
        self.tracker().guard()
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("live", &self.live())
            .finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_the_last_guard() {
        let t = Tracker::default();
        t.drained().await;
        let a = t.guard();
        let b = t.guard();
        assert_eq!(t.live(), 2);
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.drained().await }
        });
        tokio::task::yield_now().await;
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken by the last guard")
            .unwrap();
        assert_eq!(t.live(), 0);
    }

    #[tokio::test]
    async fn the_signal_fires_for_late_watchers_too() {
        let s = Shutdown::new();
        let mut early = s.signal();
        s.trigger();
        let mut late = s.signal();
        early.wait().await;
        late.wait().await;
        assert!(late.is_raised());
    }
}
