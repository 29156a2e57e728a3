//! Giving freed memory back to the operating system.
//!
//! glibc's malloc keeps what the server frees for reuse: in each arena
//! (by default up to eight per core, one picked per thread), freed chunks
//! stay mapped unless they happen to sit at the very top of the arena's
//! heap. After a crowd of clients leaves, the server's resident memory
//! stays near its peak although almost none of it is in use: in a
//! ten-minute soak with 200 clients, 16 arenas held 16.6 MB of which
//! 0.8 MB was allocated (`bench/README.md`, "Soak"). That is the
//! allocator keeping pages, not the server keeping sessions. Three
//! measures:
//!
//! - **Fewer arenas** ([`limit_arenas`], at start-up): one per core, not
//!   eight. The connection tasks run on one worker thread per core, so
//!   more arenas than that mostly serve the blocking pool's short-lived
//!   spool threads, each leaving a mostly empty arena behind.
//! - **A trim when sessions drop** ([`Trimmer`], run once a minute): when
//!   the number of bound sessions has fallen by an eighth of its peak
//!   since the last trim, `malloc_trim(0)` returns every free page of
//!   every arena, and once more a minute later, for what the sessions'
//!   account actors free when they go idle (after 30 s). A trim takes a
//!   few milliseconds for a heap of tens of megabytes; under a steady
//!   load it does not run at all.
//! - **Fewer threads** ([`BLOCKING_THREADS`], at start-up): tokio's
//!   blocking pool, where the spool's calls run, is capped, since every
//!   thread it adds under load keeps its stack's pages and its malloc
//!   thread cache.
//!
//! The first two are glibc's; built for another C library they do
//! nothing.

use std::time::Duration;

/// The most threads tokio's blocking pool runs at once (its default is
/// 512). Every spool read and write runs there, and under a steady load
/// on a slow disk the pool grew to over 200 threads, each keeping its
/// stack's pages and its malloc thread cache: in a 10-minute soak with
/// 200 clients, malloc counted 9.5 → 23.4 MB in use while heaptrack saw
/// the heap itself peak at 7.5 MB; with malloc's thread caches turned off
/// the count under load followed heaptrack's, and once the threads had
/// exited (after 10 s idle) it was 1.1 MB (`bench/README.md`, "Soak").
/// More threads than this only queue at the disk; a spool call waits for
/// a free thread instead.
pub const BLOCKING_THREADS: usize = 64;

/// How often the trimmer looks at the session count.
pub const TRIM_CHECK: Duration = Duration::from_secs(60);

/// A drop smaller than this many sessions never trims, however small the
/// peak: a handful of clients coming and going is not worth a trim.
const MIN_DROP: usize = 16;

/// Caps malloc's arenas at `n` (at least 1), unless the admin set
/// `MALLOC_ARENA_MAX` in the environment, which glibc reads itself and
/// which then wins. Call before the runtime starts its threads.
pub fn limit_arenas(n: usize) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let n = libc::c_int::try_from(n.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a malloc parameter; M_ARENA_MAX
        // affects arenas created from now on.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = n;
}

/// Returns free memory to the operating system now; `true` if some was.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim may be called at any time from any thread.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Decides, from the session count seen once per [`TRIM_CHECK`], when to
/// trim. Pure: the caller reads the count and calls [`trim`].
#[derive(Debug, Default)]
pub struct Trimmer {
    /// The most sessions seen since the last trim.
    peak: usize,
    /// A trim is owed at the next check (the follow-up of a trim).
    again: bool,
}

impl Trimmer {
    /// One check with `sessions` bound now: whether to trim.
    pub fn check(&mut self, sessions: usize) -> bool {
        self.peak = self.peak.max(sessions);
        let dropped = self.peak - sessions;
        if dropped >= MIN_DROP && dropped >= self.peak / 8 {
            self.peak = sessions;
            self.again = true;
            return true;
        }
        std::mem::take(&mut self.again)
    }
}

/// Runs a [`Trimmer`] over `sessions` (read once per [`TRIM_CHECK`])
/// until `stop` resolves.
pub async fn run_trimmer(
    sessions: impl Fn() -> usize,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut trimmer = Trimmer::default();
    let mut tick = tokio::time::interval(TRIM_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                let n = sessions();
                if trimmer.check(n) {
                    let started = std::time::Instant::now();
                    let released = trim();
                    tracing::debug!(sessions = n, released, took = ?started.elapsed(), "trimmed malloc's free memory");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_load_never_trims() {
        let mut t = Trimmer::default();
        // 200 clients churning: between 170 and 195 online.
        for n in [180, 190, 175, 195, 185, 172, 190] {
            assert!(!t.check(n), "{n}");
        }
    }

    #[test]
    fn a_crowd_leaving_trims_now_and_once_more_a_check_later() {
        let mut t = Trimmer::default();
        assert!(!t.check(200));
        assert!(t.check(0), "everyone left");
        assert!(t.check(0), "the follow-up, for the actors gone idle");
        assert!(!t.check(0), "then nothing more");
        assert!(!t.check(10));
    }

    #[test]
    fn the_drop_is_measured_from_the_peak_since_the_last_trim() {
        let mut t = Trimmer::default();
        assert!(!t.check(1000));
        // 10 %, then 20 % below the peak.
        assert!(!t.check(900));
        assert!(t.check(800));
        assert!(t.check(800), "follow-up");
        // The peak starts again from 800.
        assert!(!t.check(750));
        assert!(t.check(690));
    }

    #[test]
    fn small_servers_need_a_real_drop() {
        let mut t = Trimmer::default();
        assert!(!t.check(12));
        assert!(!t.check(0), "twelve sessions leaving is not worth a trim");
        assert!(!t.check(40));
        assert!(t.check(20));
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_checks_once_a_minute_and_stops_when_told() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let start = tokio::time::Instant::now();
        run_trimmer(
            move || {
                counted.fetch_add(1, Ordering::Relaxed);
                0
            },
            tokio::time::sleep(Duration::from_secs(150)),
        )
        .await;
        // At 0 s, 60 s and 120 s.
        assert_eq!(reads.load(Ordering::Relaxed), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(150));
    }
}
