//! `fanout`: users with 100-contact rosters logging in while their contacts
//! are online; reports logins per second, presence stanzas delivered per
//! second and the server's CPU time per login, and checks that every
//! client got exactly the presences RFC 6121 says it should.
//!
//! The accounts `{prefix}0` … `{prefix}{M+K-1}` have the rosters that
//! `switchboard-mkusers --roster-contacts R --roster-online M` writes
//! ([`Layout`]): every item is `both`, and the contacts of a *login* user
//! (index ≥ M) are all *online* users (index < M), so each of its logins
//! finds all R contacts online. In order:
//!
//! 1. **key warm-up** (not measured): each login user logs in once
//!    without presence and leaves, so that the load generator's SCRAM key
//!    cache is warm and the measured logins are not limited by the
//!    client's PBKDF2;
//! 2. **online**: the M online users log in with initial presence. Each
//!    waits for its own presence to come back; their probes reach contacts
//!    that are offline, whose servers answer `unavailable` (counted as
//!    `probe_answers`). `online_cpu_ms_per_login` is the server's CPU per
//!    such login (all of whose contacts are offline). Then `--settle` seconds pass (idle account actors
//!    drop their cached rosters after 30 s; a settle of 35 s makes the
//!    measured logins load every roster from the spool again);
//! 3. **logins** (measured): the K login users log in, `concurrency` at a
//!    time, each sending initial presence. For each one the server
//!    broadcasts its presence to its R online contacts and sends R probes,
//!    each answered with the contact's presence: 2R + 1 presence stanzas
//!    (its own comes back too). The phase ends when every login is done
//!    and every expected presence has arrived: each login user has one
//!    available presence from the full JID of each of its contacts, each
//!    online user one from each of its login contacts. `roster_p50_ms`
//!    is the time from the TCP connect until a login user has all of its
//!    contacts' presences;
//! 4. **logouts** (measured): the login users close their streams,
//!    `concurrency` at a time; the phase ends when every online user has
//!    an `unavailable` from the full JID of each of its login contacts;
//! 5. everyone closes.
//!
//! Duplicates (a second presence of the same kind from the same contact)
//! and unexpected presences are counted and make the run fail, as does
//! anything still missing when a phase times out.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{opt, Env, Outcome};
use crate::client::{self, Failure, Session};
use crate::failures::Failures;
use crate::procfs;
use crate::stats::{ms, Samples};
use crate::xml::{Element, NS_CLIENT};

/// Who is whose contact. Users `0..online` are the ones online before the
/// measured logins, `online..online+logins` the ones that log in. Login
/// user `online + j` has the online users `(j + t) mod online` for
/// `t` in `0..contacts`; the relation is symmetric, so online user `i` has
/// every login user `online + j` with `(i - j) mod online < contacts`
/// (exactly `contacts` of them when `logins == online`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub online: u64,
    pub logins: u64,
    pub contacts: u64,
}

impl Layout {
    pub fn new(online: u64, logins: u64, contacts: u64) -> Result<Layout, String> {
        if online == 0 || logins == 0 {
            return Err("the roster layout needs online and login users".into());
        }
        if contacts > online {
            return Err(format!(
                "{contacts} contacts per login user need at least {contacts} online users, not {online}"
            ));
        }
        Ok(Layout {
            online,
            logins,
            contacts,
        })
    }

    pub fn total(&self) -> u64 {
        self.online + self.logins
    }

    pub fn is_online_user(&self, i: u64) -> bool {
        i < self.online
    }

    /// The contacts of user `i`, sorted.
    pub fn contacts_of(&self, i: u64) -> Vec<u64> {
        let (m, k, r) = (self.online, self.logins, self.contacts);
        let mut v = Vec::new();
        if i < m {
            for t in 0..r {
                let mut j = (i + m - t) % m;
                while j < k {
                    v.push(m + j);
                    j += m;
                }
            }
        } else if i < m + k {
            let j = i - m;
            v.extend((0..r).map(|t| (j + t) % m));
        }
        v.sort_unstable();
        v
    }
}

#[derive(Debug, Clone)]
pub struct FanoutArgs {
    pub layout: Layout,
    /// Login users logging in (and out) at once.
    pub concurrency: usize,
    /// Online users logging in at once (not measured).
    pub online_concurrency: usize,
    /// Pause between the online phase and the measured logins.
    pub settle: Duration,
    /// The longest a phase may take.
    pub phase_timeout: Duration,
}

/// What every task shares.
struct Shared {
    layout: Layout,
    prefix: String,
    domain: String,
    /// Presence stanzas received by any client.
    presences: AtomicU64,
    /// Other stanzas received.
    others: AtomicU64,
    /// `unavailable` from a contact's bare JID: the answer to a probe of an
    /// offline contact.
    probe_answers: AtomicU64,
    /// Expected available presences not yet seen (both sides).
    missing_available: AtomicI64,
    /// Expected unavailable presences (logouts) not yet seen.
    missing_unavailable: AtomicI64,
    duplicates: AtomicU64,
    unexpected: AtomicU64,
    /// Online users whose own presence came back.
    online_ready: AtomicU64,
    /// Login users done logging in (either way) / logged in / closed.
    logins_done: AtomicU64,
    logins_up: AtomicU64,
    logouts_done: AtomicU64,
    dropped: AtomicU64,
    failures: Failures,
}

impl Shared {
    fn resource(&self, i: u64) -> String {
        format!("f{i}")
    }

    fn full_jid(&self, i: u64) -> String {
        format!("{}{i}@{}/{}", self.prefix, self.domain, self.resource(i))
    }

    /// The user index and whether the JID is full, if `jid` is one of ours.
    fn who(&self, jid: &str) -> Option<(u64, bool)> {
        let rest = jid.strip_prefix(self.prefix.as_str())?;
        let (node, rest) = rest.split_once('@')?;
        let i: u64 = node.parse().ok()?;
        if i >= self.layout.total() {
            return None;
        }
        match rest.split_once('/') {
            None if rest == self.domain => Some((i, false)),
            Some((d, _)) if d == self.domain && jid == self.full_jid(i) => Some((i, true)),
            _ => None,
        }
    }

    fn unexpected(&self, me: u64, el: &Element) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        self.failures.record(&Failure {
            step: "presence",
            detail: format!(
                "{} got an unexpected presence type={:?} from={:?}",
                if self.layout.is_online_user(me) {
                    "an online user"
                } else {
                    "a login user"
                },
                el.attr("type"),
                el.attr("from")
            ),
        });
    }
}

/// Per-session presence bookkeeping.
struct Expect {
    me: u64,
    contacts: HashSet<u64>,
    /// Contacts whose available presence has not come yet.
    available: HashSet<u64>,
    /// Contacts whose unavailable presence has not come yet (online users
    /// only: login users are not there when their contacts would leave).
    unavailable: HashSet<u64>,
    own_seen: bool,
}

impl Expect {
    fn new(layout: &Layout, me: u64) -> Expect {
        let contacts: HashSet<u64> = layout.contacts_of(me).into_iter().collect();
        Expect {
            me,
            unavailable: if layout.is_online_user(me) {
                contacts.clone()
            } else {
                HashSet::new()
            },
            available: contacts.clone(),
            contacts,
            own_seen: false,
        }
    }

    /// Books one stanza; returns true when it was the last contact's
    /// available presence.
    fn receive(&mut self, shared: &Shared, el: &Element) -> bool {
        if !el.is("presence", NS_CLIENT) {
            shared.others.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        shared.presences.fetch_add(1, Ordering::Relaxed);
        let kind = el.attr("type").unwrap_or("available");
        let Some((from, full)) = el.attr("from").and_then(|f| shared.who(f)) else {
            shared.unexpected(self.me, el);
            return false;
        };
        let is_contact = self.contacts.contains(&from);
        match (kind, full) {
            ("available", true) if from == self.me => {
                if self.own_seen {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.own_seen = true;
                    if shared.layout.is_online_user(self.me) {
                        shared.online_ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ("available", true) if is_contact => {
                if self.available.remove(&from) {
                    shared.missing_available.fetch_sub(1, Ordering::Relaxed);
                    return self.available.is_empty();
                }
                shared.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            ("unavailable", true) if is_contact && shared.layout.is_online_user(self.me) => {
                if !self.available.contains(&from) && self.unavailable.remove(&from) {
                    shared.missing_unavailable.fetch_sub(1, Ordering::Relaxed);
                } else if self.available.contains(&from) {
                    shared.unexpected(self.me, el);
                } else {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A probe of an offline contact answered by its server.
            ("unavailable", false) if is_contact => {
                shared.probe_answers.fetch_add(1, Ordering::Relaxed);
            }
            _ => shared.unexpected(self.me, el),
        }
        false
    }
}

/// Reads and books presences until released; `on_complete` runs when the
/// last contact's available presence arrives.
async fn read_until_release(
    shared: &Shared,
    session: &mut Session,
    expect: &mut Expect,
    release: &mut watch::Receiver<bool>,
    mut on_complete: impl FnMut(),
) -> Result<(), Failure> {
    loop {
        if *release.borrow_and_update() {
            return Ok(());
        }
        tokio::select! {
            el = session.element("presence") => {
                if expect.receive(shared, &el?) {
                    on_complete();
                }
            }
            c = release.changed() => if c.is_err() { return Ok(()) },
        }
    }
}

pub async fn run(env: Arc<Env>, args: FanoutArgs) -> Outcome {
    let layout = args.layout;
    let (m, k) = (layout.online, layout.logins);
    if env.users < layout.total() {
        return Outcome {
            line: format!(
                "fanout error: {} online + {} login users need --users {} or more",
                m,
                k,
                layout.total()
            ),
            ok: false,
        };
    }
    let contact_pairs: i64 = (m..m + k).map(|i| layout.contacts_of(i).len() as i64).sum();
    let shared = Arc::new(Shared {
        layout,
        prefix: env.user_prefix.clone(),
        domain: env.target.domain.clone(),
        presences: AtomicU64::new(0),
        others: AtomicU64::new(0),
        probe_answers: AtomicU64::new(0),
        missing_available: AtomicI64::new(2 * contact_pairs),
        missing_unavailable: AtomicI64::new(contact_pairs),
        duplicates: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        online_ready: AtomicU64::new(0),
        logins_done: AtomicU64::new(0),
        logins_up: AtomicU64::new(0),
        logouts_done: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        failures: Failures::default(),
    });
    let start = Instant::now();

    // --- 1. Key warm-up ---------------------------------------------------
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut warm = JoinSet::new();
    for i in m..m + k {
        let (env, gate, shared) = (env.clone(), gate.clone(), shared.clone());
        warm.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let account = env.account(i, format!("warm{i}"));
            let r = match client::login_with(&env.target, &account, false).await {
                Ok(s) => s.close(env.target.step_timeout).await,
                Err(f) => Err(f),
            };
            if let Err(f) = r {
                shared.failures.record(&f);
            }
        });
    }
    while warm.join_next().await.is_some() {}
    eprintln!(
        "fanout: key warm-up: {k} login users in and out in {:.1}s",
        start.elapsed().as_secs_f64()
    );

    // --- 2. Online users ---------------------------------------------------
    let (release_online_tx, release_online) = watch::channel(false);
    let (release_logins_tx, release_logins) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let online_gate = Arc::new(Semaphore::new(args.online_concurrency.max(1)));
    let close_gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let t_online = Instant::now();
    let online_cpu0 = env.server_cpu();
    for i in 0..m {
        let (env, shared, gate) = (env.clone(), shared.clone(), online_gate.clone());
        let mut release = release_online.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let mut session = match login_checked(&env, &shared, i).await {
                Ok(s) => s,
                Err(f) => {
                    shared.failures.record(&f);
                    return None;
                }
            };
            drop(permit);
            let mut expect = Expect::new(&shared.layout, i);
            if let Err(f) =
                read_until_release(&shared, &mut session, &mut expect, &mut release, || {}).await
            {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.failures.record(&f);
                return None;
            }
            if let Err(f) = session.close(env.target.step_timeout).await {
                shared.failures.record(&f);
            }
            None::<(Option<Duration>, Option<Duration>)>
        });
    }
    let deadline = Instant::now() + args.phase_timeout;
    while shared.online_ready.load(Ordering::Relaxed) < m && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let online_up = shared.online_ready.load(Ordering::Relaxed);
    // Let the probe answers finish: until nothing arrived for 300 ms.
    quiesce(&shared, Duration::from_millis(300), Duration::from_secs(10)).await;
    let online_cpu1 = env.server_cpu();
    eprintln!(
        "fanout: {online_up} of {m} online users up in {:.1}s ({} probe answers); settling {:?}",
        t_online.elapsed().as_secs_f64(),
        shared.probe_answers.load(Ordering::Relaxed),
        args.settle
    );
    tokio::time::sleep(args.settle).await;

    // --- 3. Measured logins ---------------------------------------------------
    let presences0 = shared.presences.load(Ordering::Relaxed);
    let server0 = env.server_cpu();
    let client0 = procfs::cpu_time("self").ok();
    let t0 = Instant::now();
    for i in m..m + k {
        let (env, shared, gate) = (env.clone(), shared.clone(), gate.clone());
        let close_gate = close_gate.clone();
        let mut release = release_logins.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let t_connect = Instant::now();
            let result = login_checked(&env, &shared, i).await;
            let login_latency = t_connect.elapsed();
            drop(permit);
            shared.logins_done.fetch_add(1, Ordering::Relaxed);
            let mut session = match result {
                Ok(s) => s,
                Err(f) => {
                    shared.failures.record(&f);
                    // Nobody will see this user, nor it anybody.
                    let n = shared.layout.contacts_of(i).len() as i64;
                    shared.missing_available.fetch_sub(2 * n, Ordering::Relaxed);
                    shared.missing_unavailable.fetch_sub(n, Ordering::Relaxed);
                    return None;
                }
            };
            shared.logins_up.fetch_add(1, Ordering::Relaxed);
            let mut expect = Expect::new(&shared.layout, i);
            let mut complete = None;
            let read = read_until_release(&shared, &mut session, &mut expect, &mut release, || {
                complete = Some(t_connect.elapsed())
            })
            .await;
            if let Err(f) = read {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.failures.record(&f);
                shared.logouts_done.fetch_add(1, Ordering::Relaxed);
                return Some((Some(login_latency), complete));
            }
            let _permit = close_gate.acquire_owned().await;
            if let Err(f) = session.close(env.target.step_timeout).await {
                shared.failures.record(&f);
            }
            shared.logouts_done.fetch_add(1, Ordering::Relaxed);
            Some((Some(login_latency), complete))
        });
    }
    let deadline = Instant::now() + args.phase_timeout;
    while (shared.logins_done.load(Ordering::Relaxed) < k
        || shared.missing_available.load(Ordering::Relaxed) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let login_window = t0.elapsed().as_secs_f64();
    let server1 = env.server_cpu();
    let client1 = procfs::cpu_time("self").ok();
    let login_presences = shared.presences.load(Ordering::Relaxed) - presences0;
    let up = shared.logins_up.load(Ordering::Relaxed);
    let missing_available = shared.missing_available.load(Ordering::Relaxed).max(0);
    eprintln!(
        "fanout: {up} of {k} login users up in {login_window:.2}s, {login_presences} presences, {missing_available} missing"
    );
    quiesce(&shared, Duration::from_millis(200), Duration::from_secs(5)).await;

    // --- 4. Measured logouts ---------------------------------------------------
    let presences2 = shared.presences.load(Ordering::Relaxed);
    let server2 = env.server_cpu();
    let t2 = Instant::now();
    let _ = release_logins_tx.send(true);
    let deadline = Instant::now() + args.phase_timeout;
    while (shared.logouts_done.load(Ordering::Relaxed) < up
        || shared.missing_unavailable.load(Ordering::Relaxed) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let logout_window = t2.elapsed().as_secs_f64();
    let server3 = env.server_cpu();
    let logout_presences = shared.presences.load(Ordering::Relaxed) - presences2;
    let missing_unavailable = shared.missing_unavailable.load(Ordering::Relaxed).max(0);
    quiesce(&shared, Duration::from_millis(200), Duration::from_secs(5)).await;

    // --- 5. Everyone leaves ---------------------------------------------------
    let _ = release_online_tx.send(true);
    let mut login_lat = Samples::default();
    let mut roster_lat = Samples::default();
    let join_deadline = Instant::now() + env.target.step_timeout * 2;
    while let Ok(Some(r)) = tokio::time::timeout_at(join_deadline, tasks.join_next()).await {
        if let Ok(Some((l, c))) = r {
            if let Some(l) = l {
                login_lat.push(l);
            }
            if let Some(c) = c {
                roster_lat.push(c);
            }
        }
    }
    if !tasks.is_empty() {
        eprintln!("fanout: {} sessions did not end in time", tasks.len());
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    for line in shared.failures.lines() {
        eprintln!("fanout: failed: {line}");
    }

    let cpu = |a: Option<Duration>, b: Option<Duration>| {
        a.zip(b).map(|(a, b)| b.saturating_sub(a).as_secs_f64())
    };
    let online_cpu = cpu(online_cpu0, online_cpu1);
    let login_cpu = cpu(server0, server1);
    let logout_cpu = cpu(server2, server3);
    let client_cpu = cpu(client0, client1);
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let unexpected = shared.unexpected.load(Ordering::Relaxed);
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let failed = k - up;
    let per = |c: Option<f64>, n: u64, scale: f64, digits: usize| {
        c.filter(|_| n > 0)
            .map(|c| format!("{:.*}", digits, scale * c / n as f64))
    };
    let line = format!(
        "fanout online={m} logins={k} contacts={} concurrency={} online_up={online_up} up={up} failed={failed} \
         login_rate={:.0}/s presence_rate={:.0}/s presences={login_presences} window_s={login_window:.2} \
         server_cpu_s={} server_cpu_util_pct={} cpu_ms_per_login={} cpu_us_per_presence={} full_core_rate={} \
         login_p50_ms={} login_p99_ms={} roster_p50_ms={} roster_p99_ms={} roster_max_ms={} \
         logout_rate={:.0}/s unavailable={logout_presences} logout_window_s={logout_window:.2} cpu_ms_per_logout={} \
         missing={missing_available} missing_unavailable={missing_unavailable} duplicates={duplicates} \
         unexpected={unexpected} probe_answers={} online_cpu_ms_per_login={} dropped={dropped} client_cpu_util_pct={}",
        layout.contacts,
        args.concurrency,
        up as f64 / login_window.max(1e-9),
        login_presences as f64 / login_window.max(1e-9),
        opt(login_cpu.map(|c| format!("{c:.2}"))),
        opt(login_cpu.map(|c| format!("{:.0}", 100.0 * c / login_window.max(1e-9)))),
        opt(per(login_cpu, up, 1e3, 3)),
        opt(per(login_cpu, login_presences, 1e6, 1)),
        opt(login_cpu.filter(|c| *c > 0.0).map(|c| format!("{:.0}/s", up as f64 / c))),
        ms(login_lat.percentile(50.0)),
        ms(login_lat.percentile(99.0)),
        ms(roster_lat.percentile(50.0)),
        ms(roster_lat.percentile(99.0)),
        ms(roster_lat.percentile(100.0)),
        up as f64 / logout_window.max(1e-9),
        opt(per(logout_cpu, up, 1e3, 3)),
        shared.probe_answers.load(Ordering::Relaxed),
        opt(per(online_cpu, online_up, 1e3, 3)),
        opt(client_cpu.map(|c| format!("{:.0}", 100.0 * c / login_window.max(1e-9)))),
    );
    Outcome {
        line,
        ok: online_up == m
            && failed == 0
            && missing_available == 0
            && missing_unavailable == 0
            && duplicates == 0
            && unexpected == 0
            && dropped == 0,
    }
}

/// Logs user `i` in with initial presence and checks the bound JID is the
/// one asked for (the presence checks compare full JIDs).
async fn login_checked(env: &Env, shared: &Shared, i: u64) -> Result<Session, Failure> {
    let account = env.account(i, shared.resource(i));
    let session = client::login(&env.target, &account).await?;
    if session.jid != shared.full_jid(i) {
        return Err(Failure {
            step: "bind",
            detail: format!("bound {}, asked for {}", session.jid, shared.full_jid(i)),
        });
    }
    Ok(session)
}

/// Waits until no presence has arrived for `quiet` (at most `limit`).
async fn quiesce(shared: &Shared, quiet: Duration, limit: Duration) {
    let end = Instant::now() + limit;
    let mut last = shared.presences.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.presences.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_symmetric_with_exact_sizes() {
        for (m, k, r) in [(10, 10, 3), (10, 25, 4), (7, 3, 7), (1000, 1000, 100)] {
            let l = Layout::new(m, k, r).unwrap();
            for i in 0..l.total() {
                let c = l.contacts_of(i);
                let mut d = c.clone();
                d.dedup();
                assert_eq!(c, d, "duplicate contacts of {i}");
                assert!(!c.contains(&i));
                for j in &c {
                    assert!(l.contacts_of(*j).contains(&i), "{i} → {j} not mutual");
                    assert_ne!(l.is_online_user(i), l.is_online_user(*j));
                }
                if i >= m {
                    assert_eq!(c.len() as u64, r);
                }
                if k == m {
                    assert_eq!(c.len() as u64, r);
                }
            }
        }
        assert!(Layout::new(10, 10, 11).is_err());
    }
}
