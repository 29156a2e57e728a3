//! Per-occupant message rate (a token bucket) and the limits' error
//! values, so every refusal for a limit reads the same.

use switchboard_service::stanza::{ErrorType, StanzaError};

use crate::settings::Rate;

/// A token bucket: `count` messages at once, refilled at `count` per
/// `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: u64,
}

impl Bucket {
    pub fn full(rate: Option<Rate>, now: u64) -> Bucket {
        Bucket {
            tokens: rate.map_or(0.0, |r| r.count as f64),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Option<Rate>, now: u64) -> bool {
        let Some(rate) = rate else { return true };
        let per_us = rate.per.as_micros().max(1) as f64;
        let elapsed = now.saturating_sub(self.last) as f64;
        self.tokens = (self.tokens + elapsed * rate.count as f64 / per_us).min(rate.count as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sending faster than `message-rate`.
pub fn too_fast(rate: Rate) -> StanzaError {
    StanzaError::new("resource-constraint", ErrorType::Wait).with_text(format!(
        "you are sending messages too fast for this room (at most {} per {} s); wait a moment",
        rate.count,
        rate.per.as_secs()
    ))
}

/// A message bigger than `max-message-bytes`.
pub fn too_big(max: usize) -> StanzaError {
    StanzaError::new("policy-violation", ErrorType::Modify).with_text(format!(
        "the message is longer than this service's limit of {max} bytes"
    ))
}

/// The room is full (§7.2.10).
pub fn room_full(max: usize) -> StanzaError {
    StanzaError::new("service-unavailable", ErrorType::Wait)
        .with_text(format!("the room is full (at most {max} occupants)"))
}

/// Too many rooms owned.
pub fn too_many_rooms(max: usize) -> StanzaError {
    StanzaError::new("policy-violation", ErrorType::Wait).with_text(format!(
        "you already own {max} rooms, the most this service allows"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let rate = Some(Rate {
            count: 3,
            per: Duration::from_secs(3),
        });
        let mut b = Bucket::full(rate, 0);
        assert!(b.take(rate, 0) && b.take(rate, 0) && b.take(rate, 0));
        assert!(!b.take(rate, 0));
        assert!(!b.take(rate, 500_000));
        assert!(b.take(rate, 1_000_000));
        assert!(Bucket::full(None, 0).take(None, 0));
    }
}
