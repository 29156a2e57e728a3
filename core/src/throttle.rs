//! A per-address rate limit (sliding window), used to throttle in-band
//! registration so that one host cannot mass-create accounts, with an
//! allow-list of addresses it never applies to (loopback by default, as
//! Prosody's `registration_allowlist`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_config::IpRange;

/// At most `max` events per address per `window`, except from addresses
/// in `exempt`; `max == 0` means no limit. The limits can change at run
/// time (config reload).
pub struct Throttle {
    inner: Mutex<Inner>,
}

struct Inner {
    window: Duration,
    max: usize,
    exempt: Vec<IpRange>,
    seen: HashMap<IpAddr, Vec<Instant>>,
}

impl Throttle {
    pub fn new(max: usize, window: Duration, exempt: Vec<IpRange>) -> Throttle {
        Throttle {
            inner: Mutex::new(Inner {
                window,
                max,
                exempt,
                seen: HashMap::new(),
            }),
        }
    }

    /// Changes the limit and the exempt addresses; what was counted so far
    /// still counts.
    pub fn reconfigure(&self, max: usize, window: Duration, exempt: Vec<IpRange>) {
        let mut inner = self.inner.lock().expect("throttle lock");
        inner.max = max;
        inner.window = window;
        inner.exempt = exempt;
    }

    /// Records an attempt from `ip` at `now`; `false` when it is over the
    /// limit (and then it is not recorded). Attempts from exempt addresses
    /// are always allowed and not counted.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut inner = self.inner.lock().expect("throttle lock");
        if inner.max == 0 || inner.exempt.iter().any(|r| r.contains(ip)) {
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
    use switchboard_config::defaults::REGISTRATION_ALLOWLIST;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn limits_per_address_and_recovers_after_the_window() {
        let t = Throttle::new(2, Duration::from_secs(60), Vec::new());
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
        let t = Throttle::new(0, Duration::from_secs(60), Vec::new());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(t.allow(a, t0));
        }
        t.reconfigure(1, Duration::from_secs(60), Vec::new());
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(t.allow(b, t0));
        assert!(!t.allow(b, t0));
    }

    #[test]
    fn loopback_is_exempt_by_default_and_only_it() {
        let t = Throttle::new(1, Duration::from_secs(60), REGISTRATION_ALLOWLIST.to_vec());
        let t0 = Instant::now();
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..10 {
                assert!(t.allow(ip, t0), "{ip} is exempt");
            }
        }
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.allow(outside, t0));
        assert!(!t.allow(outside, t0), "{outside} is limited");
    }

    #[test]
    fn the_allowlist_can_change_and_exempt_attempts_are_not_counted() {
        let t = Throttle::new(1, Duration::from_secs(60), ranges(&["192.0.2.0/24"]));
        let t0 = Instant::now();
        let office: IpAddr = "192.0.2.7".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(t.allow(office, t0));
        }
        assert!(t.allow(lo, t0));
        assert!(!t.allow(lo, t0), "loopback is limited when not listed");
        // Off the list, the office starts from zero: its exempt attempts
        // were never counted.
        t.reconfigure(1, Duration::from_secs(60), Vec::new());
        assert!(t.allow(office, t0));
        assert!(!t.allow(office, t0));
        t.reconfigure(1, Duration::from_secs(60), ranges(&["127.0.0.0/8"]));
        assert!(t.allow(lo, t0), "listed again, loopback is exempt");
    }
}
