//! The connection driver's side of slowing down password guessing: before
//! an attempt's credentials are looked up or checked, it waits as long as
//! [`crate::auth_delay`] says for the attempt's source address and
//! account, and counts the wait in the metrics.
//!
//! The machine is waiting for the lookup's answer meanwhile (it buffers
//! input and processes nothing), so nothing is reordered. The wait is a
//! timer, not a blocked thread, and it gives way to what would end the
//! connection anyway: the server shutting down, and the pre-authentication
//! deadline (a delay longer than what is left of it ends the connection
//! with `connection-timeout` at the deadline, not later).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::auth_delay::{AccountKey, DelayedBy};
use crate::lifecycle::ShutdownSignal;
use crate::stream::{C2s, StreamError};

use super::connection::C2sContext;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The delay is over: check the credentials.
    Done,
    /// The connection's deadline came first.
    Deadline,
    /// The server is shutting down.
    Shutdown,
}

/// Waits `delay`, unless the deadline or the shutdown signal comes first.
pub(crate) async fn wait(
    delay: Duration,
    deadline: Option<tokio::time::Instant>,
    shutdown: &mut ShutdownSignal,
) -> Waited {
    let at_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        // On a tie the deadline wins: the delay never outlasts it.
        biased;
        _ = shutdown.wait() => Waited::Shutdown,
        _ = at_deadline => Waited::Deadline,
        _ = tokio::time::sleep(delay) => Waited::Done,
    }
}

/// Waits before the credentials of an attempt from `peer` on `account`
/// are checked. Returns `false` when the connection ended meanwhile: the
/// machine has then been closed with the stream error that says why, and
/// the lookup must not be made.
pub(super) async fn before_check(
    ctx: &C2sContext,
    peer: IpAddr,
    machine: &mut C2s,
    account: AccountKey,
) -> bool {
    let policy = ctx.settings.get().auth_delay;
    let Some(delay) = ctx
        .auth_delays
        .delay(&policy, peer, Some(account), Instant::now())
    else {
        return true;
    };
    match delay.by {
        DelayedBy::Address => ctx.router.metrics().auth_delayed_by_address(),
        DelayedBy::Account => ctx.router.metrics().auth_delayed_by_account(),
    }
    tracing::debug!(%peer, wait = ?delay.wait, by = ?delay.by, "authentication attempt delayed after recent failures");
    let deadline = machine.poll_timeout();
    let mut shutdown = ctx.shutdown.clone();
    let tokio_deadline = deadline.map(tokio::time::Instant::from_std);
    match wait(delay.wait, tokio_deadline, &mut shutdown).await {
        Waited::Done => true,
        Waited::Deadline => {
            if let Some(d) = deadline {
                machine.handle_timeout(d);
            }
            false
        }
        Waited::Shutdown => {
            machine.fail(StreamError::new("system-shutdown"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    //! The wait under tokio's paused clock: time moves only when every
    //! task is idle, so these take no real time and are exact.

    use super::*;
    use crate::lifecycle::Shutdown;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_ends_when_it_is_over() {
        let shutdown = Shutdown::new();
        let start = tokio::time::Instant::now();
        let got = wait(secs(4), Some(start + secs(60)), &mut shutdown.signal()).await;
        assert_eq!(got, Waited::Done);
        assert_eq!(start.elapsed(), secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_a_longer_delay_short() {
        let shutdown = Shutdown::new();
        let start = tokio::time::Instant::now();
        let got = wait(secs(30), Some(start + secs(10)), &mut shutdown.signal()).await;
        assert_eq!(got, Waited::Deadline);
        assert_eq!(start.elapsed(), secs(10));
        // A delay ending exactly at the deadline is the deadline.
        let start = tokio::time::Instant::now();
        let got = wait(secs(5), Some(start + secs(5)), &mut shutdown.signal()).await;
        assert_eq!(got, Waited::Deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_wait_at_once() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        let start = tokio::time::Instant::now();
        let waiting = tokio::spawn(async move { wait(secs(30), None, &mut signal).await });
        tokio::time::sleep(secs(3)).await;
        shutdown.trigger();
        assert_eq!(waiting.await.unwrap(), Waited::Shutdown);
        assert_eq!(start.elapsed(), secs(3));
    }
}
