//! Slowing down password guessing: how many authentications failed
//! recently from each source address and on each account, and so how
//! long the next attempt must wait before its credentials are checked.
//!
//! Two counts, two curves (`<auth-delay>` in the config):
//!
//! - **Per source address**, whatever the account: what Prosody's
//!   mod_limit_auth and ejabberd's mod_fail2ban do, and what their admins
//!   expect. After a few free failures (an office behind one NAT address
//!   makes typos) each attempt waits, doubling up to a long maximum. An
//!   IPv6 address counts as its /64: one subscriber gets a whole /64 and
//!   could otherwise take a fresh address per guess.
//! - **Per account**, from every address, growing far more gently (more
//!   free failures, a maximum of seconds, not tens of seconds). Neither
//!   Prosody nor ejabberd lock accounts, and their users count on it: a
//!   user whose account someone is guessing at can still log in. So the
//!   account's delay applies to the owner too, but is capped low enough
//!   that it is a pause, never a lock-out, while a guesser spreading
//!   attempts over many addresses (where the address count never grows)
//!   pays it on every attempt. The other shape the issue suggested, an
//!   account delay only for addresses that failed on that account
//!   recently, would add nothing: such an address has failed in the
//!   address count too, and an address that never failed, one per guess
//!   of a distributed guesser, would never wait.
//!
//! The delay comes before the credentials are checked, for a correct
//! password as much as a wrong one: a guesser that gives up on slow
//! answers learns nothing from the fast ones.
//!
//! Pure and clock-free: `now` is passed in (tests use a simulated clock);
//! the connection driver does the waiting. Bounded: each table holds at
//! most [`MAX_ENTRIES`] keys of a fixed size (an account is kept as a keyed
//! hash, not its name), expired entries are dropped whenever a table is
//! full and at least once per `forget` period, and a table still full of
//! live entries drops its oldest eighth, so an attacker with many
//! addresses or account names costs bounded memory.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_config::{AuthDelayConfig, DelayCurve};

/// Keys one table holds at most: under a megabyte per table.
pub const MAX_ENTRIES: usize = 16_384;

/// What failures from an address are counted against: the IPv4 address,
/// or the /64 an IPv6 address is in (an IPv4-mapped one counts as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6(u64),
}

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.into()),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// An account (host and localpart) as a hash keyed with a secret of this
/// process: a fixed size whatever the name's length, and not predictable,
/// so nobody can choose names that collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(u64);

/// Which count made an attempt wait (the longer delay wins; the address
/// on a tie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayedBy {
    Address,
    Account,
}

/// How long an attempt waits, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub wait: Duration,
    pub by: DelayedBy,
}

/// The delay a curve gives an attempt after `failures` failures: none up
/// to `after`, then `first`, doubled per further failure, at most `max`.
pub fn curve_delay(curve: &DelayCurve, failures: u32) -> Duration {
    if curve.max.is_zero() || failures < curve.after {
        return Duration::ZERO;
    }
    let doublings = (failures - curve.after).min(31);
    curve.first.saturating_mul(1 << doublings).min(curve.max)
}

/// The failure counts of a server, shared by all its client connections.
pub struct AuthDelays {
    inner: Mutex<Inner>,
    hasher: RandomState,
}

struct Inner {
    addresses: Table<AddressKey>,
    accounts: Table<AccountKey>,
    /// When expired entries were last dropped from both tables.
    last_purge: Option<Instant>,
}

impl Default for AuthDelays {
    fn default() -> Self {
        AuthDelays {
            inner: Mutex::new(Inner {
                addresses: Table::default(),
                accounts: Table::default(),
                last_purge: None,
            }),
            hasher: RandomState::new(),
        }
    }
}

impl AuthDelays {
    /// The key failures on `user@host` are counted under.
    pub fn account_key(&self, host: &str, user: &str) -> AccountKey {
        AccountKey(self.hasher.hash_one((host, user)))
    }

    /// How long an attempt from `ip` (on `account`, when the attempt names
    /// one) must wait before its credentials are checked; `None` when it
    /// need not wait.
    pub fn delay(
        &self,
        policy: &AuthDelayConfig,
        ip: IpAddr,
        account: Option<AccountKey>,
        now: Instant,
    ) -> Option<Delay> {
        let mut inner = self.lock();
        inner.purge_now_and_then(policy.forget, now);
        let by_address = curve_delay(
            &policy.address,
            inner
                .addresses
                .failures(&AddressKey::of(ip), policy.forget, now),
        );
        let by_account = account.map_or(Duration::ZERO, |a| {
            curve_delay(
                &policy.account,
                inner.accounts.failures(&a, policy.forget, now),
            )
        });
        let delay = if by_account > by_address {
            Delay {
                wait: by_account,
                by: DelayedBy::Account,
            }
        } else {
            Delay {
                wait: by_address,
                by: DelayedBy::Address,
            }
        };
        (!delay.wait.is_zero()).then_some(delay)
    }

    /// Records a failed attempt from `ip` (on `account`, when it named
    /// one).
    pub fn failed(
        &self,
        policy: &AuthDelayConfig,
        ip: IpAddr,
        account: Option<AccountKey>,
        now: Instant,
    ) {
        let mut inner = self.lock();
        inner.purge_now_and_then(policy.forget, now);
        inner
            .addresses
            .record(AddressKey::of(ip), policy.forget, now);
        if let Some(a) = account {
            inner.accounts.record(a, policy.forget, now);
        }
    }

    /// Keys held: (addresses, accounts).
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.addresses.entries.len(), inner.accounts.entries.len())
    }

    /// Whether no failure is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a table half
        // updated in a way that matters: counts are only ever bumped.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Drops expired entries once per `forget` period, so that the tables
    /// shrink back after an attack even if they never fill up.
    fn purge_now_and_then(&mut self, forget: Duration, now: Instant) {
        if self
            .last_purge
            .is_some_and(|t| now.saturating_duration_since(t) < forget)
        {
            return;
        }
        self.last_purge = Some(now);
        self.addresses.purge(forget, now);
        self.accounts.purge(forget, now);
    }
}

/// Failures counted for one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// When the last failure was.
    last: Instant,
}

impl Entry {
    fn expired(&self, forget: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= forget
    }
}

struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn failures(&self, key: &K, forget: Duration, now: Instant) -> u32 {
        match self.entries.get(key) {
            Some(e) if !e.expired(forget, now) => e.failures,
            _ => 0,
        }
    }

    fn record(&mut self, key: K, forget: Duration, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.make_room(forget, now);
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if e.expired(forget, now) {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = e.last.max(now);
    }

    /// Drops expired entries, and gives memory back once most are gone.
    fn purge(&mut self, forget: Duration, now: Instant) {
        self.entries.retain(|_, e| !e.expired(forget, now));
        if self.entries.capacity() > 4 * self.entries.len() + 64 {
            self.entries.shrink_to_fit();
        }
    }

    /// The table is full: expired entries go, and if that is not enough,
    /// the eighth least recently failed (their next attempts start from
    /// nothing again, which gives a guesser with that many addresses a few
    /// free failures but never more memory).
    fn make_room(&mut self, forget: Duration, now: Instant) {
        self.purge(forget, now);
        if self.entries.len() < MAX_ENTRIES {
            return;
        }
        let mut lasts: Vec<Instant> = self.entries.values().map(|e| e.last).collect();
        let cut = lasts.len() / 8;
        let (_, threshold, _) = lasts.select_nth_unstable(cut);
        let threshold = *threshold;
        self.entries.retain(|_, e| e.last > threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AuthDelayConfig {
        AuthDelayConfig {
            address: DelayCurve {
                after: 3,
                first: Duration::from_secs(1),
                max: Duration::from_secs(8),
            },
            account: DelayCurve {
                after: 5,
                first: Duration::from_secs(1),
                max: Duration::from_secs(2),
            },
            forget: Duration::from_secs(600),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_curve_is_free_then_doubles_up_to_its_maximum() {
        let c = policy().address;
        let delays: Vec<u64> = (0..9).map(|n| curve_delay(&c, n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 8, 8]);
        assert_eq!(curve_delay(&c, u32::MAX), secs(8));
        let off = DelayCurve {
            max: Duration::ZERO,
            ..c
        };
        assert_eq!(curve_delay(&off, 100), Duration::ZERO);
        let huge = DelayCurve {
            max: Duration::MAX,
            ..c
        };
        assert_eq!(curve_delay(&huge, u32::MAX), secs(1 << 31));
    }

    #[test]
    fn an_address_waits_longer_with_each_failure_and_is_forgiven_later() {
        let d = AuthDelays::default();
        let p = policy();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let waits: Vec<Option<u64>> = (0..6)
            .map(|i| {
                let now = t0 + secs(i);
                let w = d.delay(&p, a, None, now).map(|d| d.wait.as_secs());
                d.failed(&p, a, None, now);
                w
            })
            .collect();
        assert_eq!(waits, [None, None, None, Some(1), Some(2), Some(4)]);
        let by = d.delay(&p, a, None, t0 + secs(6)).unwrap().by;
        assert_eq!(by, DelayedBy::Address);
        // Another address is not held up.
        assert_eq!(d.delay(&p, ip("192.0.2.2"), None, t0 + secs(6)), None);
        // Ten minutes after the last failure the count is gone.
        assert!(d.delay(&p, a, None, t0 + secs(5 + 599)).is_some());
        assert_eq!(d.delay(&p, a, None, t0 + secs(5 + 600)), None);
        // A new failure then starts from one.
        d.failed(&p, a, None, t0 + secs(5 + 600));
        assert_eq!(d.delay(&p, a, None, t0 + secs(5 + 600)), None);
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let d = AuthDelays::default();
        let p = policy();
        let now = Instant::now();
        for i in 0..3 {
            d.failed(&p, ip(&format!("2001:db8:1:2::{i}")), None, now);
        }
        assert!(d.delay(&p, ip("2001:db8:1:2:ffff::1"), None, now).is_some());
        assert_eq!(d.delay(&p, ip("2001:db8:1:3::1"), None, now), None);
        for _ in 0..3 {
            d.failed(&p, ip("::ffff:192.0.2.7"), None, now);
        }
        assert!(d.delay(&p, ip("192.0.2.7"), None, now).is_some());
    }

    #[test]
    fn an_account_under_attack_slows_every_address_a_little_and_locks_none_out() {
        let d = AuthDelays::default();
        let p = policy();
        let t0 = Instant::now();
        let alice = d.account_key("example.org", "alice");
        // Twenty guessers, each failing once: no address count grows.
        for i in 0..20 {
            d.failed(&p, ip(&format!("198.51.100.{i}")), Some(alice), t0);
        }
        // A guesser's next address waits, and so does the owner, but never
        // longer than the account's maximum: a pause, not a lock-out.
        let owner = ip("203.0.113.9");
        let wait = d.delay(&p, owner, Some(alice), t0).unwrap();
        assert_eq!(
            wait,
            Delay {
                wait: secs(2),
                by: DelayedBy::Account
            }
        );
        // Other accounts are not slowed.
        let bob = d.account_key("example.org", "bob");
        assert_eq!(d.delay(&p, owner, Some(bob), t0), None);
        // The same name on another host is another account.
        let other = d.account_key("example.com", "alice");
        assert_ne!(other, alice);
        assert_eq!(d.delay(&p, owner, Some(other), t0), None);
    }

    #[test]
    fn the_longer_delay_wins() {
        let d = AuthDelays::default();
        let p = policy();
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let alice = d.account_key("example.org", "alice");
        for _ in 0..6 {
            d.failed(&p, a, Some(alice), now);
        }
        // Address: 6 failures → 8 s; account: 6 failures → 2 s.
        assert_eq!(
            d.delay(&p, a, Some(alice), now),
            Some(Delay {
                wait: secs(8),
                by: DelayedBy::Address
            })
        );
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_addresses_and_names() {
        let d = AuthDelays::default();
        let p = policy();
        let t0 = Instant::now();
        for i in 0..(3 * MAX_ENTRIES as u32) {
            let now = t0 + Duration::from_millis(u64::from(i));
            let account = d.account_key("example.org", &format!("user{i}"));
            d.failed(&p, IpAddr::from(i.to_be_bytes()), Some(account), now);
            let (addresses, accounts) = d.len();
            assert!(addresses <= MAX_ENTRIES && accounts <= MAX_ENTRIES);
        }
        // The most recent keys are the ones kept.
        let last = 3 * MAX_ENTRIES as u32 - 1;
        let now = t0 + Duration::from_millis(u64::from(last));
        for _ in 0..2 {
            d.failed(&p, IpAddr::from(last.to_be_bytes()), None, now);
        }
        assert!(d
            .delay(&p, IpAddr::from(last.to_be_bytes()), None, now)
            .is_some());
        // Once everything has expired, the next look empties the tables.
        d.delay(&p, ip("192.0.2.1"), None, now + p.forget);
        assert!(d.is_empty(), "{:?}", d.len());
    }
}
