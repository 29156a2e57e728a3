//! A per-address rate limit (sliding window), used to throttle in-band
//! registration so that one host cannot mass-create accounts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` events per address per `window`; `max == 0` means no
/// limit. The limits can change at run time (config reload).
pub struct Throttle {
    inner: Mutex<Inner>,
}

struct Inner {
    window: Duration,
    max: usize,
    seen: HashMap<IpAddr, Vec<Instant>>,
}

impl Throttle {
    pub fn new(max: usize, window: Duration) -> Throttle {
        Throttle {
            inner: Mutex::new(Inner {
                window,
                max,
                seen: HashMap::new(),
            }),
        }
    }

    /// Changes the limit; what was counted so far still counts.
    pub fn reconfigure(&self, max: usize, window: Duration) {
        let mut inner = self.inner.lock().expect("throttle lock");
        inner.max = max;
        inner.window = window;
    }

    /// Records an attempt from `ip` at `now`; `false` when it is over the
    /// limit (and then it is not recorded).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut inner = self.inner.lock().expect("throttle lock");
        if inner.max == 0 {
            return true;
        }
        let (window, max) = (inner.window, inner.max);
        let seen = &mut inner.seen;
        // Forget old entries now and then so the table stays bounded by
        // the addresses active within one window.
        if seen.len() > 4096 {
            seen.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < window));
        }
        let times = seen.entry(ip).or_default();
        times.retain(|t| now.duration_since(*t) < window);
        if times.len() >= max {
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

    #[test]
    fn zero_means_unlimited_and_limits_can_change() {
        let t = Throttle::new(0, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(t.allow(a, t0));
        }
        t.reconfigure(1, Duration::from_secs(60));
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(t.allow(b, t0));
        assert!(!t.allow(b, t0));
    }
}
