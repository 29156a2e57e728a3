//! Outgoing flood control: a token bucket in its GCRA form (one
//! "theoretical arrival time" instead of a token count), pure: the caller
//! passes `now`.
//!
//! A link asks [`TokenBucket::try_take`] before each paced write and,
//! when refused, sleeps until [`TokenBucket::ready_at`]. Nothing is
//! dropped here: what waits, and where, is the caller's business.

use std::time::{Duration, Instant};

/// A burst of lines, then one per interval.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    interval: Duration,
    /// How far ahead of `now` the arrival time may run: (burst − 1) ×
    /// interval.
    tolerance: Duration,
    tat: Instant,
}

impl TokenBucket {
    /// A bucket of `burst` lines refilled one per `interval`, full at
    /// `now`. An interval of zero never refuses.
    pub fn new(burst: u32, interval: Duration, now: Instant) -> TokenBucket {
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

    const BURST: u32 = 5;
    const INTERVAL: Duration = Duration::from_secs(2);

    #[test]
    fn a_burst_then_one_line_per_interval() {
        let start = Instant::now();
        let mut b = TokenBucket::new(BURST, INTERVAL, start);
        for i in 0..BURST {
            assert!(b.try_take(start), "burst line {i}");
        }
        assert!(!b.try_take(start));
        assert_eq!(b.ready_at(start), start + INTERVAL);
        let later = b.ready_at(start);
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn twenty_lines_take_the_burst_plus_fifteen_intervals() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut b = TokenBucket::new(BURST, INTERVAL, now);
        let mut sent = 0;
        while sent < 20 {
            if b.try_take(now) {
                sent += 1;
            } else {
                now = b.ready_at(now);
            }
        }
        assert_eq!(now - t0, INTERVAL * 15);
        // Idle time refills the bucket, but never beyond the burst.
        let now = now + Duration::from_secs(600);
        let n = (0..10).filter(|_| b.try_take(now)).count();
        assert_eq!(n, BURST as usize);
    }

    #[test]
    fn a_zero_interval_never_refuses() {
        let now = Instant::now();
        let mut b = TokenBucket::new(BURST, Duration::ZERO, now);
        assert!((0..10_000).all(|_| b.try_take(now)));
        assert_eq!(b.ready_at(now), now);
    }
}
