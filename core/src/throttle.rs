//! A per-address rate limit (sliding window), used to throttle in-band
//! registration so that one host cannot mass-create accounts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    window: Duration,
    max: usize,
    seen: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Throttle {
    pub fn new(max: usize, window: Duration) -> Throttle {
        Throttle {
            window,
            max,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt from `ip` at `now`; `false` when it is over the
    /// limit (and then it is not recorded).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut seen = self.seen.lock().expect("throttle lock");
        // Forget old entries now and then so the table stays bounded by
        // the addresses active within one window.
        if seen.len() > 4096 {
            seen.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        let times = seen.entry(ip).or_default();
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() >= self.max {
            return false;
        }
        times.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_recovers_after_the_window() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(t.allow(a, t0));
        assert!(t.allow(a, t0));
        assert!(!t.allow(a, t0), "third within the window is refused");
        assert!(t.allow(b, t0), "other addresses are unaffected");
        assert!(
            t.allow(a, t0 + Duration::from_secs(61)),
            "allowed again later"
        );
    }
}
