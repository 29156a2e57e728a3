//! Reconnection delays: exponential backoff with jitter, so that the many
//! links of one gateway to a server that restarted do not all come back
//! in the same second.
//!
//! A [`Policy`] says how delays grow (from [`Policy::first`], doubled per
//! failure, capped at [`Policy::max`]), how they are spread
//! ([`Jitter`]), and whether attempts run out. A [`Backoff`] applies it
//! to one link. The randomness comes from the operating system
//! ([`OsRandom`], through `getrandom`) unless a test injects its own
//! [`RandomSource`], which makes every delay a pure function of the
//! failures so far and the numbers drawn.

use std::time::Duration;

/// Where jitter comes from: numbers spread evenly over `u64`.
pub trait RandomSource: Send {
    fn next_u64(&mut self) -> u64;

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The operating system's random source. Jitter needs no secrecy, but the
/// OS source is always there, never seeded by hand, and differs between
/// processes started in the same instant (a clock-seeded generator does
/// not).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn next_u64(&mut self) -> u64 {
        // Without a random source there is still a delay, only without
        // its spread: the middle of the range.
        getrandom::u64().unwrap_or(u64::MAX / 2)
    }
}

/// How each delay is spread around its nominal value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Uniformly between `low` and `high` times the nominal delay.
    /// [`Jitter::FULL`] and [`Jitter::EQUAL`] are the usual choices.
    Range(f64, f64),
    /// "Decorrelated" jitter: uniformly between the first delay and three
    /// times the previous one, capped at the maximum. The delays wander
    /// instead of doubling, which spreads a crowd of clients faster.
    Decorrelated,
}

impl Jitter {
    /// Anywhere between nothing and the nominal delay: the widest spread.
    pub const FULL: Jitter = Jitter::Range(0.0, 1.0);
    /// Between half and all of the nominal delay: spread, yet never much
    /// shorter than the policy says.
    pub const EQUAL: Jitter = Jitter::Range(0.5, 1.0);
    /// Exactly the nominal delay.
    pub const NONE: Jitter = Jitter::Range(1.0, 1.0);
}

/// How delays grow and how long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The nominal delay after the first failure.
    pub first: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Failures in a row after which [`Backoff::failed`] gives up; `None`
    /// tries for ever.
    pub attempts: Option<u32>,
    pub jitter: Jitter,
}

/// The delays of one link.
pub struct Backoff {
    policy: Policy,
    failures: u32,
    /// The last delay drawn (decorrelated jitter grows from it).
    previous: Duration,
    random: Box<dyn RandomSource>,
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff")
            .field("policy", &self.policy)
            .field("failures", &self.failures)
            .finish()
    }
}

impl Backoff {
    /// Jitter from the operating system.
    pub fn new(policy: Policy) -> Backoff {
        Backoff::with_random(policy, OsRandom)
    }

    /// Jitter from `random` (tests pass a fixed sequence).
    pub fn with_random(policy: Policy, random: impl RandomSource + 'static) -> Backoff {
        Backoff {
            policy,
            failures: 0,
            previous: policy.first,
            random: Box::new(random),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Failures since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// One more failure: the delay before the next attempt, or `None` once
    /// the attempts are spent.
    pub fn failed(&mut self) -> Option<Duration> {
        let p = self.policy;
        if p.attempts.is_some_and(|n| self.failures >= n) {
            return None;
        }
        let delay = match p.jitter {
            Jitter::Range(low, high) => {
                let nominal = p
                    .first
                    .saturating_mul(1u32 << self.failures.min(16))
                    .min(p.max);
                let u = self.random.unit();
                nominal.mul_f64((low + (high - low) * u).max(0.0))
            }
            Jitter::Decorrelated => {
                let top = self.previous.saturating_mul(3).min(p.max).max(p.first);
                let span = top - p.first;
                p.first + span.mul_f64(self.random.unit())
            }
        };
        self.failures += 1;
        self.previous = delay;
        Some(delay)
    }

    /// The link works again: the next failure starts from the first delay.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.previous = self.policy.first;
    }
}

/// A fixed sequence of numbers, repeated: for tests of whatever uses a
/// [`Backoff`].
#[derive(Debug, Clone)]
pub struct Sequence {
    values: Vec<u64>,
    next: usize,
}

impl Sequence {
    /// Numbers whose [`RandomSource::unit`] is each of `units` (each in
    /// `[0, 1)`).
    pub fn of_units(units: &[f64]) -> Sequence {
        Sequence {
            values: units
                .iter()
                .map(|u| {
                    ((u.clamp(0.0, 1.0) * (1u64 << 53) as f64) as u64).min((1 << 53) - 1) << 11
                })
                .collect(),
            next: 0,
        }
    }
}

impl RandomSource for Sequence {
    fn next_u64(&mut self) -> u64 {
        let v = self.values.get(self.next).copied().unwrap_or(0);
        self.next = (self.next + 1) % self.values.len().max(1);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter, attempts: Option<u32>) -> Policy {
        Policy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
            attempts,
            jitter,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_attempts_run_out() {
        let mut b = Backoff::with_random(
            policy(Jitter::EQUAL, Some(12)),
            Sequence::of_units(&[0.999_999]),
        );
        let top: Vec<u64> = (0..12).map(|_| b.failed().unwrap().as_secs()).collect();
        assert_eq!(
            top,
            vec![0, 1, 3, 7, 15, 31, 63, 127, 255, 299, 299, 299],
            "nominal delays, minus rounding"
        );
        assert_eq!(b.failures(), 12);
        assert_eq!(b.failed(), None, "attempts are bounded");
        b.reset();
        let mut b2 = Backoff::with_random(*b.policy(), Sequence::of_units(&[0.0]));
        assert_eq!(b2.failed(), Some(Duration::from_millis(500)));
        assert_eq!(b2.failed(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn full_and_equal_jitter_stay_in_their_ranges() {
        let units = [0.0, 0.25, 0.5, 0.75, 0.875];
        let mut full = Backoff::with_random(policy(Jitter::FULL, None), Sequence::of_units(&units));
        let got: Vec<u128> = (0..5).map(|_| full.failed().unwrap().as_millis()).collect();
        // Nominal 1, 2, 4, 8, 16 s times the drawn fraction.
        assert_eq!(got, vec![0, 500, 2000, 6000, 14000]);
        let mut equal =
            Backoff::with_random(policy(Jitter::EQUAL, None), Sequence::of_units(&units));
        let got: Vec<u128> = (0..5)
            .map(|_| equal.failed().unwrap().as_millis())
            .collect();
        assert_eq!(got, vec![500, 1250, 3000, 7000, 15000]);
        let mut none = Backoff::with_random(policy(Jitter::NONE, None), Sequence::of_units(&units));
        let got: Vec<u64> = (0..10).map(|_| none.failed().unwrap().as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay_and_is_capped() {
        let mut b = Backoff::with_random(
            policy(Jitter::Decorrelated, None),
            Sequence::of_units(&[0.999_999]),
        );
        // Always near the top: 3 s, 9 s, 27 s, … up to the cap.
        let got: Vec<u64> = (0..7).map(|_| b.failed().unwrap().as_secs()).collect();
        assert_eq!(got, vec![2, 8, 26, 80, 242, 299, 299]);
        b.reset();
        let mut low = Backoff::with_random(*b.policy(), Sequence::of_units(&[0.0]));
        // Always at the bottom: the first delay, for ever.
        for _ in 0..5 {
            assert_eq!(low.failed(), Some(Duration::from_secs(1)));
        }
    }

    #[test]
    fn the_os_source_spreads_delays() {
        let mut r = OsRandom;
        let draws: Vec<f64> = (0..16).map(|_| r.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)), "{draws:?}");
        // Sixteen equal draws from a working source do not happen.
        assert!(draws.iter().any(|u| *u != draws[0]), "{draws:?}");
        let mut b = Backoff::new(policy(Jitter::EQUAL, None));
        let d = b.failed().unwrap();
        assert!(
            d >= Duration::from_millis(500) && d <= Duration::from_secs(1),
            "{d:?}"
        );
    }
}
