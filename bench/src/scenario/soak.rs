//! `soak`: a long, steady churn, for finding what a server keeps that it
//! should not. `clients` clients each loop until the duration is over:
//! log in (initial presence), fetch the roster, stay a while (`stay`, drawn
//! at random) sending chat messages to random users (online or not, so
//! offline storage and its delivery at the next login take part) and
//! changing presence (away, do-not-disturb, back, with status texts), then
//! log out, half of them with an explicit unavailable presence and half by
//! just closing the stream, and pause before the next login.
//!
//! The server's resident memory and open file descriptors are read from
//! `/proc` before the first login and then once per `interval` (one line
//! each on standard output). When the duration is over every client
//! finishes its session, the server gets `settle` to let go of what it
//! held for them, and the readings make the verdict, `flat` when all
//! three hold:
//!
//! - `fds` is back where it started exactly (a socket or file left open
//!   per session would show at once);
//! - resident memory is within `rss_slack` of its start (what a server
//!   that gave its sessions' memory back still holds: code paged in on
//!   first use, and the allocator's pages pinned by its few live
//!   allocations);
//! - resident memory did not grow under the steady load: the mean of the
//!   last third of the readings (the first two minutes, the ramp-up, left
//!   out) is within [`GROWTH_SLACK`] of the mean of the first third. A
//!   leak of a few hundred bytes per login shows here within the hour,
//!   whatever the allocator does after the clients leave.
//!
//! All the figures are printed either way, with the peak.
//!
//! Every answer the clients wait for is bounded by the step timeout; a
//! failed login, a stream error or a dropped session is counted, and any
//! fails the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Env, Outcome};
use crate::client::{self, Failure, Session};
use crate::failures::Failures;
use crate::procfs;
use crate::xml::{escape, NS_CLIENT};

#[derive(Debug, Clone)]
pub struct SoakArgs {
    /// Clients churning at once (user0 … user{clients-1}).
    pub clients: u64,
    /// How long the churn goes on.
    pub duration: Duration,
    /// Time between readings of the server.
    pub interval: Duration,
    /// After the last client left, how long the server gets before the
    /// final reading.
    pub settle: Duration,
    /// A session lasts between these two.
    pub stay: (Duration, Duration),
    /// Pause between a client's sessions, at most (at random below).
    pub pause: Duration,
    /// Mean time between a client's actions (a message or a presence).
    pub think: Duration,
    /// How far above its start the final resident memory may be, in KiB,
    /// for the verdict "flat".
    pub rss_slack_kib: u64,
}

/// How much the resident memory under load may grow from the first
/// third of the run to the last: 5 %, and at least 2 MiB (a heap's
/// fluctuations between two readings).
const GROWTH_SLACK: (f64, u64) = (0.05, 2048);

/// The growth of the resident memory (KiB) under load: the mean of the
/// last third of `under_load` minus the mean of the first third, the
/// first `warmup` readings left out; `None` with fewer than three left.
fn growth_under_load(under_load: &[u64], warmup: usize) -> Option<(f64, f64)> {
    let rest = under_load.get(warmup..)?;
    let third = rest.len() / 3;
    if third == 0 {
        return None;
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    Some((mean(&rest[..third]), mean(&rest[rest.len() - third..])))
}

/// What the clients did, counted across all of them.
#[derive(Default)]
struct Counts {
    logins: AtomicU64,
    logouts: AtomicU64,
    online: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    presences_sent: AtomicU64,
    presences_received: AtomicU64,
}

impl Counts {
    fn line(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "online={} logins={} logouts={} messages_sent={} messages_received={} presences_sent={} presences_received={}",
            get(&self.online),
            get(&self.logins),
            get(&self.logouts),
            get(&self.messages_sent),
            get(&self.messages_received),
            get(&self.presences_sent),
            get(&self.presences_received),
        )
    }
}

/// A reading of the server.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    rss_kib: u64,
    hwm_kib: u64,
    fds: u64,
    sockets: u64,
    threads: u64,
}

fn read_server(env: &Env) -> Option<Reading> {
    let pid = env.server_pid?.to_string();
    let m = procfs::memory(&pid).ok()?;
    Some(Reading {
        rss_kib: m.rss_kib,
        hwm_kib: m.hwm_kib,
        fds: procfs::open_fds(&pid).ok()?,
        sockets: procfs::open_sockets(&pid).ok()?,
        threads: m.threads,
    })
}

fn reading_line(label: &str, r: Option<Reading>) -> String {
    match r {
        Some(r) => format!(
            "{label} rss_mib={:.1} peak_rss_mib={:.1} fds={} sockets={} threads={}",
            r.rss_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0,
            r.fds,
            r.sockets,
            r.threads
        ),
        None => format!("{label} rss_mib=- fds=- (no --server-pid, or /proc unreadable)"),
    }
}

/// A small pseudo-random generator (xorshift64*): the load needs variety,
/// not unpredictability, and each client seeds its own.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A duration between `lo` and `hi`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

const SHOWS: [&str; 4] = ["away", "dnd", "xa", "chat"];

pub async fn run(env: Arc<Env>, args: SoakArgs) -> Outcome {
    let start_reading = read_server(&env);
    println!("{}", reading_line("minute=0", start_reading));
    let counts = Arc::new(Counts::default());
    let failures = Arc::new(Failures::default());
    let start = Instant::now();
    let end = start + args.duration;

    let mut clients = JoinSet::new();
    for i in 0..args.clients {
        let env = env.clone();
        let args = args.clone();
        let counts = counts.clone();
        let failures = failures.clone();
        clients.spawn(async move { client_loop(env, args, i, end, counts, failures).await });
    }

    // One reading per interval while the clients churn.
    let mut peak_rss = start_reading.map_or(0, |r| r.rss_kib);
    let mut under_load: Vec<u64> = Vec::new();
    let mut tick = tokio::time::interval_at(start + args.interval, args.interval);
    let mut n = 0u64;
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                let r = read_server(&env);
                peak_rss = peak_rss.max(r.map_or(0, |r| r.rss_kib));
                under_load.extend(r.map(|r| r.rss_kib));
                let label = format!("minute={:.0}", (n as f64 * args.interval.as_secs_f64() / 60.0).round());
                println!("{} {} failures={}", reading_line(&label, r), counts.line(), failures.total());
            }
            _ = tokio::time::sleep_until(end) => {}
        }
    }
    // Everyone finishes the session in progress and leaves.
    let leave_deadline = Instant::now() + env.target.step_timeout * 3;
    while let Ok(Some(joined)) = tokio::time::timeout_at(leave_deadline, clients.join_next()).await
    {
        if joined.is_err() {
            failures.record(&Failure::new("client", "a client task panicked"));
        }
    }
    let stragglers = clients.len();
    clients.abort_all();
    let left_reading = read_server(&env);
    println!(
        "{} {} (every client has left)",
        reading_line("left", left_reading),
        counts.line()
    );
    tokio::time::sleep(args.settle).await;
    let end_reading = read_server(&env);
    println!(
        "{}",
        reading_line(
            &format!("settled after {}s:", args.settle.as_secs()),
            end_reading
        )
    );
    for line in failures.lines() {
        eprintln!("failure: {line}");
    }

    let ok_run = failures.total() == 0 && stragglers == 0;
    // Two minutes of ramp-up, in readings.
    let warmup = (120.0 / args.interval.as_secs_f64()).ceil() as usize;
    let growth = growth_under_load(&under_load, warmup);
    let (verdict, flat) = match (start_reading, end_reading) {
        (Some(s), Some(e)) => {
            let fds_back = e.fds == s.fds;
            let rss_back = e.rss_kib <= s.rss_kib + args.rss_slack_kib;
            let steady = growth.is_none_or(|(first, last)| {
                last - first <= (first * GROWTH_SLACK.0).max(GROWTH_SLACK.1 as f64)
            });
            let verdict = match (fds_back, steady, rss_back) {
                (true, true, true) => "flat",
                (false, _, _) => "fds-kept",
                (true, false, _) => "rss-growing-under-load",
                (true, true, false) => "rss-kept",
            };
            let growth = match growth {
                Some((first, last)) => format!(
                    "rss_load_first_third_mib={:.1} rss_load_last_third_mib={:.1}",
                    first / 1024.0,
                    last / 1024.0
                ),
                None => "rss_load_growth=- (too short to tell)".into(),
            };
            (
                format!(
                    "verdict={verdict} rss_start_mib={:.1} rss_end_mib={:.1} rss_slack_mib={:.1} rss_peak_mib={:.1} {growth} fds_start={} fds_end={}",
                    s.rss_kib as f64 / 1024.0,
                    e.rss_kib as f64 / 1024.0,
                    args.rss_slack_kib as f64 / 1024.0,
                    peak_rss.max(e.hwm_kib) as f64 / 1024.0,
                    s.fds,
                    e.fds
                ),
                fds_back && rss_back && steady,
            )
        }
        _ => ("verdict=unknown (no readings of the server)".into(), false),
    };
    Outcome {
        line: format!(
            "soak clients={} minutes={:.0} {} failures={} stragglers={} {verdict}",
            args.clients,
            args.duration.as_secs_f64() / 60.0,
            counts.line(),
            failures.total(),
            stragglers,
        ),
        ok: ok_run && flat,
    }
}

/// One client: sessions until `end`.
async fn client_loop(
    env: Arc<Env>,
    args: SoakArgs,
    i: u64,
    end: Instant,
    counts: Arc<Counts>,
    failures: Arc<Failures>,
) {
    let mut rng = Rng::new(i + 1);
    // Spread the first logins over the first pause, not all at once.
    tokio::time::sleep(rng.between(Duration::ZERO, args.pause)).await;
    let mut round = 0u64;
    while Instant::now() < end {
        round += 1;
        let account = env.account(i, format!("soak{round}"));
        match client::login(&env.target, &account).await {
            Ok(session) => {
                counts.logins.fetch_add(1, Ordering::Relaxed);
                counts.online.fetch_add(1, Ordering::Relaxed);
                let stay = rng.between(args.stay.0, args.stay.1);
                let until = (Instant::now() + stay).min(end);
                let r = session_life(&env, &args, session, until, i, &mut rng, &counts).await;
                counts.online.fetch_sub(1, Ordering::Relaxed);
                match r {
                    Ok(()) => {
                        counts.logouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(f) => failures.record(&f),
                }
            }
            Err(f) => failures.record(&f),
        }
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(rng.between(Duration::ZERO, args.pause)).await;
    }
}

/// One session, from after the login to the close.
async fn session_life(
    env: &Env,
    args: &SoakArgs,
    mut session: Session,
    until: Instant,
    me: u64,
    rng: &mut Rng,
    counts: &Counts,
) -> Result<(), Failure> {
    let domain = &env.target.domain;
    let step = env.target.step_timeout;
    session
        .send(
            "roster",
            b"<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await?;
    let mut next_action = Instant::now() + rng.between(Duration::ZERO, args.think * 2);
    let mut sent = 0u64;
    loop {
        tokio::select! {
            el = tokio::time::timeout(step.max(until.saturating_duration_since(Instant::now()) + step), session.element("soak")) => {
                let el = el.map_err(|_| Failure::new("soak", "no stanza and no keepalive for too long"))??;
                if el.ns != NS_CLIENT {
                    continue;
                }
                match el.name.as_str() {
                    "message" => {
                        counts.messages_received.fetch_add(1, Ordering::Relaxed);
                    }
                    "presence" => {
                        counts.presences_received.fetch_add(1, Ordering::Relaxed);
                    }
                    "iq" if el.attr("type") == Some("error") => {
                        return Err(Failure::new("soak", format!("an IQ failed: id {:?}", el.attr("id"))));
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(next_action) => {
                next_action = Instant::now() + rng.between(Duration::ZERO, args.think * 2);
                if rng.below(4) == 0 {
                    let stanza = if rng.below(3) == 0 {
                        "<presence/>".to_string()
                    } else {
                        let show = SHOWS[rng.below(SHOWS.len() as u64) as usize];
                        format!(
                            "<presence><show>{show}</show><status>{}</status></presence>",
                            escape(&format!("soak {me}: {show} since round {sent}"))
                        )
                    };
                    session.send("presence", stanza.as_bytes()).await?;
                    counts.presences_sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    sent += 1;
                    let to = rng.below(env.users.min(args.clients.max(1)));
                    let body = format!("soak message {sent} from user{me} <&> {}", "x".repeat(rng.below(200) as usize));
                    let stanza = format!(
                        "<message type='chat' to='{}{to}@{domain}' id='m{sent}'><body>{}</body></message>",
                        env.user_prefix,
                        escape(&body)
                    );
                    session.send("message", stanza.as_bytes()).await?;
                    counts.messages_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    if rng.below(2) == 0 {
        session
            .send(
                "logout",
                b"<presence type='unavailable'><status>bye</status></presence>",
            )
            .await?;
    }
    session.close(step).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_last_third_with_the_first_after_the_warmup() {
        // Two warm-up readings, then 6: thirds of two.
        let r = [1, 1, 10, 12, 20, 20, 30, 32];
        assert_eq!(growth_under_load(&r, 2), Some((11.0, 31.0)));
        assert_eq!(growth_under_load(&r[..4], 2), None);
        assert_eq!(growth_under_load(&r, 20), None);
    }
}
