//! The timing of a link to an IRC server, as values: the reconnection
//! backoff and the outgoing token bucket (no I/O; the clock is tokio's,
//! so tests run them under a paused clock).
//!
//! The numbers the connection task uses are here too: how long a server
//! has to welcome us, when we PING a silent server and how long it has to
//! answer.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// How long a server has between the TCP connection (TLS included) and
/// its welcome (001) before the attempt counts as failed.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// After this much silence from the server we send our own PING…
pub const PING_AFTER: Duration = Duration::from_secs(120);

/// …and drop the link if nothing at all arrives within this much more.
pub const PONG_WAIT: Duration = Duration::from_secs(60);

/// Sign-ons (connect, TLS, registration) to one IRC server in progress at
/// once, across all users. Enough that a user rarely waits for another's,
/// few enough that a burst of reconnections stays within what a server's
/// listen backlog and connection throttles take.
pub const SIGNONS: usize = 16;

/// How long a connection that only carries private messages (no room
/// joined) stays up after the last one either way. The user sends no
/// presence to an IRC user's JID, so silence is the only sign the chat is
/// over; a quarter of an hour keeps a slow conversation on one connection
/// (and one nick) without keeping idle links forever.
pub const PRIVATE_IDLE: Duration = Duration::from_secs(15 * 60);

/// Reconnection delays: exponential from [`Backoff::FIRST`], doubled per
/// failed attempt, capped at [`Backoff::MAX`], and with "equal jitter"
/// (each delay is drawn between half and all of its nominal value) so that
/// the many links of one gateway to a server that restarted do not all
/// come back in the same second.
///
/// Attempts are bounded as well as the delay: after [`Backoff::ATTEMPTS`]
/// failures in a row (about 25 minutes of trying) the connection gives up
/// and its users are told, rather than keeping rooms open forever for a
/// server that is gone. A successful registration starts the count again.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(300);
    pub const ATTEMPTS: u32 = 12;

    /// The delay before the next attempt, with `jitter` in `[0, 1)`;
    /// `None` once the attempts are spent.
    pub fn next(&mut self, jitter: f64) -> Option<Duration> {
        if self.failures >= Self::ATTEMPTS {
            return None;
        }
        let nominal = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures += 1;
        let jitter = jitter.clamp(0.0, 1.0);
        Some(nominal.mul_f64(0.5 + 0.5 * jitter))
    }

    /// The link is up again: the next drop starts from the first delay.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in `[0, 1)` that differs between calls and processes: enough
/// for jitter, without a random-number crate (std's hasher keys are
/// randomly seeded).
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Outgoing flood control: a token bucket in its GCRA form (one
/// "theoretical arrival time" instead of a token count).
///
/// The default is the one RFC 1459 §8.10 describes and irssi and HexChat
/// use: a burst of 5 lines, then one line every 2 seconds. Servers differ
/// in what they tolerate (ngircd delays a flooding client's commands,
/// others disconnect it with "Excess Flood"); this rate is below every
/// common default, so a busy room never costs the user the connection.
/// Lines are queued, never dropped.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    interval: Duration,
    /// How far ahead of `now` the arrival time may run: (burst − 1) ×
    /// interval.
    tolerance: Duration,
    tat: Instant,
}

impl TokenBucket {
    pub const BURST: u32 = 5;
    pub const INTERVAL: Duration = Duration::from_secs(2);

    /// The default bucket, full at `now`.
    pub fn new(now: Instant) -> TokenBucket {
        TokenBucket::with(Self::BURST, Self::INTERVAL, now)
    }

    /// A bucket of `burst` lines refilled one per `interval`, full at `now`.
    pub fn with(burst: u32, interval: Duration, now: Instant) -> TokenBucket {
        TokenBucket {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: now,
        }
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let tat = self.tat.max(now);
        if tat > now + self.tolerance {
            return false;
        }
        self.tat = tat + self.interval;
        true
    }

    /// When the next token is there (`now` or later).
    pub fn ready_at(&self, now: Instant) -> Instant {
        self.tat
            .checked_sub(self.tolerance)
            .map_or(now, |t| t.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_bounded() {
        let mut b = Backoff::default();
        let top: Vec<u64> = (0..Backoff::ATTEMPTS)
            .map(|_| b.next(0.999_999).unwrap().as_secs())
            .collect();
        assert_eq!(
            top,
            vec![0, 1, 3, 7, 15, 31, 63, 127, 255, 299, 299, 299],
            "nominal delays, minus rounding"
        );
        assert_eq!(b.next(0.5), None, "attempts are bounded");
        b.reset();
        assert_eq!(b.next(0.0), Some(Duration::from_millis(500)));
        assert_eq!(b.next(0.0), Some(Duration::from_secs(1)));
        for _ in 0..10 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_one_line_per_interval() {
        let start = Instant::now();
        let mut b = TokenBucket::new(start);
        for i in 0..TokenBucket::BURST {
            assert!(b.try_take(Instant::now()), "burst line {i}");
        }
        assert!(!b.try_take(Instant::now()));
        assert_eq!(b.ready_at(Instant::now()), start + TokenBucket::INTERVAL);
        tokio::time::sleep_until(b.ready_at(Instant::now())).await;
        assert!(b.try_take(Instant::now()));
        assert!(!b.try_take(Instant::now()));
        // Twenty lines take the burst plus fifteen intervals, in order.
        let mut b = TokenBucket::new(Instant::now());
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < 20 {
            if b.try_take(Instant::now()) {
                sent += 1;
            } else {
                tokio::time::sleep_until(b.ready_at(Instant::now())).await;
            }
        }
        assert_eq!(Instant::now() - t0, TokenBucket::INTERVAL * 15);
        // Idle time refills the bucket, but never beyond the burst.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let now = Instant::now();
        let n = (0..10).filter(|_| b.try_take(now)).count();
        assert_eq!(n, TokenBucket::BURST as usize);
    }
}
