//! `messages`: N users online, each sending one-to-one chat messages to the
//! others; reports delivered messages per second, the server's CPU time per
//! message, delivery latency and whether anything was lost.
//!
//! All N users log in (initial presence included) and each waits for its
//! own presence to come back, which proves the server made the session
//! available: from then on a message to the bare JID goes to that session
//! rather than to offline storage. Each session is then split into a
//! reader task and a writer task, so that what a client receives never
//! holds up what it sends.
//!
//! Every writer sends `<message type='chat' to='user{K}@localhost'>` to
//! recipients drawn at random among the other online users, one stanza per
//! write. Sending is closed-loop: a writer has at most `window` messages
//! that its recipients have not reported yet (the recipients hand the
//! permits back), so the server's queues stay bounded and the run measures
//! throughput rather than buffering. With a target rate, each writer also
//! paces itself at `rate / N` messages per second; with rate 0 it sends as
//! soon as its window allows (the maximum throughput). Several rates make a
//! rising-rate run, one summary line per step.
//!
//! The body carries the sender's index, a per-sender sequence number and
//! the send time (µs since the run started, same clock as the receiver's),
//! padded to `body_size` bytes: `s=12 n=345 t=1234567 xxxx…`. Each reader
//! checks the stanza (type `chat`, `to` its own bare JID, `from` exactly
//! the sender's full JID, the body intact) and that messages from one
//! sender arrive in order (RFC 6120 §10.1); the latency is receive time
//! minus send time. When the last step ends the writers stop, the run
//! waits (at most the step timeout) for everything in flight, and `lost`
//! is sent − received.
//!
//! With `stalled` S > 0, the first S users online stop reading when the
//! messages start (their sockets fill up, as a phone's does when it drops
//! off the network without closing): the others keep sending to them, as
//! many as chance picks, without a window (so the senders are never held up
//! by the load generator itself); stalled users send nothing. The run then shows whether the server
//! keeps routing for everyone else at the same rate, and, from the number
//! of files the server has open, whether it disconnected the stalled
//! sessions (`stalled_closed_by_server`: sockets the server closed while
//! the stalled users were not reading). Messages to stalled users are
//! counted apart (`sent_to_stalled`), not as lost.
//!
//! With a `remote` server (the `s2s` run of `bench/run.sh`) the run
//! crosses federation: the N users log in to the first server and N
//! more (the same account names) to the second, which serves another
//! domain and federates with the first. Only the first server's users
//! send, only the second's receive, so every message goes client → server
//! A → the servers' one server-to-server link → server B → client. The
//! CPU figures are both servers' together, and each one's apart
//! (`a_cpu_us_per_msg`, `b_cpu_us_per_msg`).
//!
//! `cpu_us_per_msg` is the server's CPU time in the measured window over
//! the messages delivered in it (each one read, parsed, routed, serialized
//! and written once, TLS both ways); `full_core_rate` is the rate one
//! fully available core would sustain at that cost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::{opt, Env, Outcome};
use crate::client::{self, Failure, Session, SessionReader, SessionWriter};
use crate::failures::Failures;
use crate::procfs;
use crate::stats::{ms, Samples};
use crate::xml::{escape, Element, NS_CLIENT};

/// XEP-0203 delayed delivery: what the server stamps on offline messages.
const NS_DELAY: &str = "urn:xmpp:delay";

#[derive(Debug, Clone)]
pub struct MessagesArgs {
    /// Target rates in messages per second, one step each; 0 is "as fast
    /// as the window allows".
    pub rates: Vec<u64>,
    /// Seconds measured per step (after the warm-up of each step).
    pub duration: Duration,
    pub warmup: Duration,
    /// Messages a sender may have in flight (sent, not yet received).
    pub window: usize,
    /// Bytes in each message body.
    pub body_size: usize,
    /// Logins in flight while the users come online.
    pub concurrency: usize,
    /// Users that stop reading when the messages start.
    pub stalled: u64,
    /// A second server whose users receive what the first one's send.
    pub remote: Option<Remote>,
}

/// The receiving server of a run across federation.
#[derive(Clone)]
pub struct Remote {
    pub target: Arc<crate::client::Target>,
    pub server_pid: Option<u32>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("addr", &self.target.addr)
            .field("domain", &self.target.domain)
            .field("server_pid", &self.server_pid)
            .finish()
    }
}

/// Writer control: the current pacing, or stop.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Control {
    /// `period`: time between two messages of one writer; `None` = as
    /// fast as the window allows.
    Run {
        period: Option<Duration>,
    },
    Stop,
}

/// What every task shares.
struct Shared {
    /// The send-time clock.
    base: Instant,
    /// Bare and full JIDs by user index (full JIDs of users that are up),
    /// and the bare JIDs escaped for a `to` attribute.
    bare: Vec<String>,
    to_attr: Vec<String>,
    full: Vec<String>,
    /// The recipients to choose from: every user up, or (across
    /// federation) those of the second server.
    recipients: Vec<u32>,
    /// By user index: sends (across federation, only the first server's
    /// users do).
    sends: Vec<bool>,
    /// By user index: stopped reading.
    stalled: Vec<bool>,
    /// Messages sent to stalled users (not in `sent`).
    sent_stalled: AtomicU64,
    /// One window per sender; recipients give the permits back.
    windows: Vec<Semaphore>,
    /// The body padding: `body_size` minus the header, in `x`.
    body_size: usize,
    sent: AtomicU64,
    received: AtomicU64,
    /// Messages with a wrong type, `to`, `from` or body.
    bad: AtomicU64,
    /// Messages that arrived before an earlier one of the same sender.
    reordered: AtomicU64,
    /// Error stanzas and anything else unexpected.
    errors: AtomicU64,
    /// Messages stored offline by an earlier run (they carry a XEP-0203
    /// delay) and delivered at login: ignored.
    stale: AtomicU64,
    /// Sessions the server closed before the end.
    dropped: AtomicU64,
    /// 0 outside the measured windows, step + 1 inside one.
    measuring: AtomicUsize,
    failures: Failures,
}

/// The body of a message: header, then padding up to `size` bytes.
fn body(sender: u32, seq: u64, t_us: u64, size: usize) -> String {
    let mut b = format!("s={sender} n={seq} t={t_us} ");
    while b.len() < size {
        b.push('x');
    }
    b
}

/// Parses a body written by [`body`]: (sender, seq, send time in µs).
fn parse_body(text: &str, size: usize) -> Option<(u32, u64, u64)> {
    let mut parts = text.splitn(4, ' ');
    let s = parts.next()?.strip_prefix("s=")?.parse().ok()?;
    let n = parts.next()?.strip_prefix("n=")?.parse().ok()?;
    let t = parts.next()?.strip_prefix("t=")?.parse().ok()?;
    let pad = parts.next().unwrap_or("");
    let ok = pad.bytes().all(|b| b == b'x') && text.len() == size.max(text.len() - pad.len());
    ok.then_some((s, n, t))
}

/// xorshift64*: cheap, deterministic recipient choice per sender.
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
}

pub async fn run(env: Arc<Env>, args: MessagesArgs) -> Outcome {
    // Across federation, users n..2n are the second server's.
    let per_server = env.users;
    let n = if args.remote.is_some() {
        per_server * 2
    } else {
        per_server
    };
    let name = if args.remote.is_some() {
        "s2s"
    } else {
        "messages"
    };
    let target_of = |i: u64| match &args.remote {
        Some(r) if i >= per_server => r.target.clone(),
        _ => env.target.clone(),
    };
    let failures = Arc::new(Failures::default());

    // --- Everyone online -------------------------------------------------
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut logins = JoinSet::new();
    for i in 0..n {
        let env = env.clone();
        let gate = gate.clone();
        let target = target_of(i);
        logins.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let account = env.account(i % per_server, format!("m{i}"));
            let mut s = client::login(&target, &account).await?;
            // The server reflects initial presence to the sender once it
            // has made the session available.
            let deadline = Instant::now() + target.step_timeout;
            loop {
                let el = tokio::time::timeout_at(deadline, s.element("available"))
                    .await
                    .map_err(|_| Failure {
                        step: "available",
                        detail: "own presence not reflected".into(),
                    })??;
                if el.is("presence", NS_CLIENT) && el.attr("from") == Some(s.jid.as_str()) {
                    break;
                }
            }
            Ok::<(u64, Session), Failure>((i, s))
        });
    }
    let mut sessions: Vec<Option<Session>> = (0..n).map(|_| None).collect();
    while let Some(r) = logins.join_next().await {
        match r {
            Ok(Ok((i, s))) => sessions[i as usize] = Some(s),
            Ok(Err(f)) => failures.record(&f),
            Err(e) => failures.record(&Failure {
                step: "login",
                detail: e.to_string(),
            }),
        }
    }
    let up: Vec<u32> = (0..n as u32)
        .filter(|i| sessions[*i as usize].is_some())
        .collect();
    let login_failed = n - up.len() as u64;
    eprintln!(
        "{name}: {} of {n} users online in {:.1}s",
        up.len(),
        start.elapsed().as_secs_f64()
    );
    for line in failures.lines() {
        eprintln!("{name}: login failed: {line}");
    }
    let far = |i: u32| args.remote.is_some() && u64::from(i) >= per_server;
    let recipients: Vec<u32> = if args.remote.is_some() {
        up.iter().copied().filter(|&i| far(i)).collect()
    } else {
        up.clone()
    };
    let senders = up.iter().filter(|&&i| !far(i)).count();
    if up.len() < 2 || recipients.is_empty() || senders == 0 {
        return Outcome {
            line: format!(
                "{name} users={n} up={} login_failed={login_failed} (not enough users online)",
                up.len()
            ),
            ok: false,
        };
    }

    // --- Readers and writers ---------------------------------------------
    let shared = Arc::new(Shared {
        base: Instant::now(),
        bare: (0..n)
            .map(|i| {
                let domain = &target_of(i).domain;
                format!("{}{}@{domain}", env.user_prefix, i % per_server)
            })
            .collect(),
        to_attr: (0..n)
            .map(|i| {
                let domain = &target_of(i).domain;
                escape(&format!("{}{}@{domain}", env.user_prefix, i % per_server))
            })
            .collect(),
        full: sessions
            .iter()
            .map(|s| s.as_ref().map(|s| s.jid.clone()).unwrap_or_default())
            .collect(),
        recipients: recipients.clone(),
        sends: (0..n as u32).map(|i| !far(i)).collect(),
        stalled: {
            let mut v = vec![false; n as usize];
            for &i in recipients.iter().take(args.stalled as usize) {
                v[i as usize] = true;
            }
            v
        },
        sent_stalled: AtomicU64::new(0),
        windows: (0..n).map(|_| Semaphore::new(args.window.max(1))).collect(),
        body_size: args.body_size,
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        measuring: AtomicUsize::new(0),
        failures: Failures::default(),
    });
    let steps = args.rates.len().max(1);
    let first = period_for(args.rates.first().copied().unwrap_or(0), senders);
    let (control_tx, control_rx) = watch::channel(Control::Run { period: first });
    let (release_tx, release_rx) = watch::channel(false);
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for &i in &up {
        let session = sessions[i as usize].take().expect("up");
        let jid = session.jid.clone();
        let (r, w) = session.split();
        readers.spawn(reader(shared.clone(), i, r, jid, steps, release_rx.clone()));
        writers.spawn(writer(shared.clone(), i, w, control_rx.clone()));
    }

    let sockets_before = env
        .server_pid
        .and_then(|p| procfs::open_sockets(&p.to_string()).ok());

    // --- Steps -------------------------------------------------------------
    struct StepResult {
        target: u64,
        window_s: f64,
        sent: u64,
        delivered: u64,
        /// The (first) server's CPU time, and the second's.
        a_cpu: Option<f64>,
        b_cpu: Option<f64>,
        client_cpu: Option<f64>,
    }
    impl StepResult {
        /// Both servers' CPU time (the one server's without a second).
        fn server_cpu(&self, remote: bool) -> Option<f64> {
            if remote {
                self.a_cpu.zip(self.b_cpu).map(|(a, b)| a + b)
            } else {
                self.a_cpu
            }
        }
    }
    let mut results = Vec::new();
    for (k, &rate) in args.rates.iter().enumerate() {
        let _ = control_tx.send(Control::Run {
            period: period_for(rate, senders),
        });
        let target = if rate == 0 {
            "max".to_string()
        } else {
            format!("{rate}/s")
        };
        eprintln!(
            "{name}: step {}/{steps}: target {target}, warm-up {:?}",
            k + 1,
            args.warmup
        );
        tokio::time::sleep(args.warmup).await;
        let server0 = env.server_cpu();
        let remote0 = remote_cpu(&args.remote);
        let client0 = procfs::cpu_time("self").ok();
        let sent0 = shared.sent.load(Ordering::Relaxed);
        let recv0 = shared.received.load(Ordering::Relaxed);
        let t0 = Instant::now();
        shared.measuring.store(k + 1, Ordering::Relaxed);
        tokio::time::sleep(args.duration).await;
        shared.measuring.store(0, Ordering::Relaxed);
        let window_s = t0.elapsed().as_secs_f64();
        let server1 = env.server_cpu();
        let remote1 = remote_cpu(&args.remote);
        let client1 = procfs::cpu_time("self").ok();
        let delivered = shared.received.load(Ordering::Relaxed) - recv0;
        let sent = shared.sent.load(Ordering::Relaxed) - sent0;
        eprintln!(
            "{name}: step {}/{steps}: {:.0} delivered/s, {:.0} sent/s",
            k + 1,
            delivered as f64 / window_s,
            sent as f64 / window_s
        );
        results.push(StepResult {
            target: rate,
            window_s,
            sent,
            delivered,
            a_cpu: server0
                .zip(server1)
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
            b_cpu: remote0
                .zip(remote1)
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
            client_cpu: client0
                .zip(client1)
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        });
    }

    let sockets_after = env
        .server_pid
        .and_then(|p| procfs::open_sockets(&p.to_string()).ok());

    // --- Stop, drain, close ------------------------------------------------
    let _ = control_tx.send(Control::Stop);
    let mut halves: HashMap<u32, SessionWriter> = HashMap::new();
    while let Some(r) = writers.join_next().await {
        if let Ok((i, Some(w))) = r {
            halves.insert(i, w);
        }
    }
    let drain_deadline = Instant::now() + env.target.step_timeout;
    while shared.received.load(Ordering::Relaxed) < shared.sent.load(Ordering::Relaxed)
        && Instant::now() < drain_deadline
        && shared.dropped.load(Ordering::Relaxed) == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Anything late (or duplicated) still gets counted for a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = release_tx.send(true);
    let mut latencies: Vec<Samples> = (0..steps).map(|_| Samples::default()).collect();
    let mut closing = JoinSet::new();
    let join_deadline = Instant::now() + env.target.step_timeout;
    while let Ok(Some(r)) = tokio::time::timeout_at(join_deadline, readers.join_next()).await {
        let Ok((i, jid, half, samples)) = r else {
            continue;
        };
        for (k, s) in samples.into_iter().enumerate() {
            latencies[k].extend(s);
        }
        if let (Some(r), Some(w)) = (half, halves.remove(&i)) {
            let session = r.unsplit(w, jid);
            let timeout = env.target.step_timeout;
            let shared = shared.clone();
            closing.spawn(async move {
                if let Err(f) = session.close(timeout).await {
                    if shared.stalled[i as usize] {
                        // Expected: the server gave up on it.
                        eprintln!("{name}: stalled user {i}: {f}");
                    } else {
                        shared.failures.record(&f);
                    }
                }
            });
        }
    }
    readers.abort_all();
    while closing.join_next().await.is_some() {}
    for line in shared.failures.lines() {
        eprintln!("{name}: failed: {line}");
    }

    let sent = shared.sent.load(Ordering::Relaxed);
    let received = shared.received.load(Ordering::Relaxed);
    let lost = sent.saturating_sub(received);
    let bad = shared.bad.load(Ordering::Relaxed);
    let reordered = shared.reordered.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let stale = shared.stale.load(Ordering::Relaxed);
    if stale > 0 {
        eprintln!("{name}: ignored {stale} offline messages left by an earlier run");
    }
    let mut lines = Vec::new();
    for (k, r) in results.iter().enumerate() {
        let lat = &mut latencies[k];
        let server_cpu = r.server_cpu(args.remote.is_some());
        let per = |c: Option<f64>| {
            c.filter(|_| r.delivered > 0)
                .map(|c| format!("{:.1}", 1e6 * c / r.delivered as f64))
        };
        let per_msg = per(server_cpu);
        let mut line = format!(
            "{name} step={}/{steps} target={} users={} window={} body={} rate={:.0}/s delivered={} sent_rate={:.0}/s \
             window_s={:.1} p50_ms={} p90_ms={} p99_ms={} max_ms={} server_cpu_s={} server_cpu_util_pct={} \
             cpu_us_per_msg={} full_core_rate={} client_cpu_util_pct={}",
            k + 1,
            if r.target == 0 { "max".into() } else { format!("{}/s", r.target) },
            up.len(),
            args.window,
            args.body_size,
            r.delivered as f64 / r.window_s,
            r.delivered,
            r.sent as f64 / r.window_s,
            r.window_s,
            ms(lat.percentile(50.0)),
            ms(lat.percentile(90.0)),
            ms(lat.percentile(99.0)),
            ms(lat.percentile(100.0)),
            opt(server_cpu.map(|c| format!("{c:.2}"))),
            opt(server_cpu.map(|c| format!("{:.0}", 100.0 * c / r.window_s))),
            opt(per_msg),
            opt(server_cpu
                .filter(|c| *c > 0.0)
                .map(|c| format!("{:.0}/s", r.delivered as f64 / c))),
            opt(r.client_cpu.map(|c| format!("{:.0}", 100.0 * c / r.window_s))),
        );
        if args.remote.is_some() {
            line.push_str(&format!(
                " a_cpu_us_per_msg={} b_cpu_us_per_msg={}",
                opt(per(r.a_cpu)),
                opt(per(r.b_cpu))
            ));
        }
        if k + 1 == results.len() {
            line.push_str(&format!(
                " total_sent={sent} total_received={received} lost={lost} bad={bad} reordered={reordered} \
                 errors={errors} login_failed={login_failed} dropped={dropped}"
            ));
            if args.stalled > 0 {
                line.push_str(&format!(
                    " stalled={} sent_to_stalled={} server_sockets_before={} server_sockets_after={} stalled_closed_by_server={}",
                    args.stalled,
                    shared.sent_stalled.load(Ordering::Relaxed),
                    opt(sockets_before),
                    opt(sockets_after),
                    opt(sockets_before.zip(sockets_after).map(|(b, a)| b.saturating_sub(a))),
                ));
            }
        }
        lines.push(line);
    }
    let delivered_any = results.iter().any(|r| r.delivered > 0);
    Outcome {
        line: lines.join("\n"),
        ok: delivered_any
            && lost == 0
            && bad == 0
            && reordered == 0
            && errors == 0
            && login_failed == 0
            && dropped == 0,
    }
}

/// The second server's CPU time so far, if there is one to measure.
fn remote_cpu(remote: &Option<Remote>) -> Option<Duration> {
    let pid = remote.as_ref()?.server_pid?;
    match procfs::cpu_time(&pid.to_string()) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

/// Time between two messages of one writer for a total `rate` over
/// `senders` writers; `None` for rate 0 (as fast as the window allows).
fn period_for(rate: u64, senders: usize) -> Option<Duration> {
    (rate > 0).then(|| Duration::from_secs_f64(senders as f64 / rate as f64))
}

/// Sends until told to stop; returns its half for the close.
async fn writer(
    shared: Arc<Shared>,
    me: u32,
    mut w: SessionWriter,
    mut control: watch::Receiver<Control>,
) -> (u32, Option<SessionWriter>) {
    let mut rng = Rng::new(u64::from(me) + 1);
    let mut seq = 0u64;
    let mut pacing: Option<(Duration, tokio::time::Interval)> = None;
    let window = &shared.windows[me as usize];
    if shared.stalled[me as usize] || !shared.sends[me as usize] {
        // A stalled client sends nothing either: the server does not read a
        // connection while a write to it is blocked, so whatever it sent
        // would wait there until the end.
        while *control.borrow_and_update() != Control::Stop {
            if control.changed().await.is_err() {
                break;
            }
        }
        return (me, Some(w));
    }
    loop {
        let ctl = *control.borrow_and_update();
        let period = match ctl {
            Control::Stop => return (me, Some(w)),
            Control::Run { period } => period,
        };
        match period {
            Some(p) => {
                if pacing.as_ref().is_none_or(|(q, _)| *q != p) {
                    // A random phase, so that writers do not tick together.
                    let phase = Duration::from_nanos(rng.next() % (p.as_nanos() as u64).max(1));
                    let mut iv = tokio::time::interval_at(Instant::now() + phase, p);
                    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    pacing = Some((p, iv));
                }
                let (_, iv) = pacing.as_mut().expect("just set");
                tokio::select! {
                    _ = iv.tick() => {}
                    c = control.changed() => if c.is_err() { return (me, Some(w)) } else { continue },
                }
            }
            None => pacing = None,
        }
        let to = loop {
            let k = shared.recipients[(rng.next() % shared.recipients.len() as u64) as usize];
            if k != me {
                break k;
            }
        };
        let stalled = shared.stalled[to as usize];
        if !stalled {
            tokio::select! {
                p = window.acquire() => match p {
                    Ok(p) => p.forget(),
                    Err(_) => return (me, Some(w)),
                },
                c = control.changed() => if c.is_err() { return (me, Some(w)) } else { continue },
            }
        }
        seq += 1;
        let t_us = shared.base.elapsed().as_micros() as u64;
        let stanza = format!(
            "<message type='chat' to='{}'><body>{}</body></message>",
            shared.to_attr[to as usize],
            body(me, seq, t_us, shared.body_size)
        );
        if stalled {
            shared.sent_stalled.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(f) = w.send("send", stanza.as_bytes()).await {
            shared.failures.record(&f);
            return (me, None);
        }
    }
}

/// Receives and checks until released; returns its half and the latency
/// samples of each step's measured window.
async fn reader(
    shared: Arc<Shared>,
    me: u32,
    mut r: SessionReader,
    jid: String,
    steps: usize,
    mut release: watch::Receiver<bool>,
) -> (u32, String, Option<SessionReader>, Vec<Samples>) {
    let mut samples: Vec<Samples> = (0..steps).map(|_| Samples::default()).collect();
    if shared.stalled[me as usize] {
        // Reads nothing more until the end of the run.
        while !*release.borrow_and_update() {
            if release.changed().await.is_err() {
                break;
            }
        }
        return (me, jid, Some(r), samples);
    }
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    let my_bare = shared.bare[me as usize].clone();
    loop {
        if *release.borrow_and_update() {
            return (me, jid, Some(r), samples);
        }
        let el = tokio::select! {
            el = r.element("receive") => el,
            c = release.changed() => {
                if c.is_err() { return (me, jid, Some(r), samples) }
                continue;
            }
        };
        let el = match el {
            Ok(el) => el,
            Err(f) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.failures.record(&f);
                return (me, jid, None, samples);
            }
        };
        let now_us = shared.base.elapsed().as_micros() as u64;
        if !el.is("message", NS_CLIENT) || el.attr("type") != Some("chat") {
            if !el.is("presence", NS_CLIENT) {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared.failures.record(&Failure {
                    step: "receive",
                    detail: format!("unexpected {}", describe(&el)),
                });
            }
            continue;
        }
        if el.child("delay", NS_DELAY).is_some() {
            shared.stale.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let parsed = el
            .child("body", NS_CLIENT)
            .and_then(|b| parse_body(&b.text, shared.body_size));
        let Some((sender, seq, t_us)) = parsed else {
            shared.bad.fetch_add(1, Ordering::Relaxed);
            shared.failures.record(&Failure {
                step: "receive",
                detail: "a message body that is not one the load generator sent".into(),
            });
            continue;
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = shared.windows.get(sender as usize) {
            w.add_permits(1);
        }
        let from_ok = shared
            .full
            .get(sender as usize)
            .is_some_and(|f| !f.is_empty() && el.attr("from") == Some(f.as_str()));
        if !from_ok || el.attr("to") != Some(my_bare.as_str()) {
            shared.bad.fetch_add(1, Ordering::Relaxed);
            shared.failures.record(&Failure {
                step: "receive",
                detail: format!(
                    "message with from={:?} to={:?} (sender {sender}, recipient {me})",
                    el.attr("from"),
                    el.attr("to")
                ),
            });
        }
        let last = last_seq.entry(sender).or_insert(0);
        if seq <= *last {
            shared.reordered.fetch_add(1, Ordering::Relaxed);
        } else {
            *last = seq;
        }
        let step = shared.measuring.load(Ordering::Relaxed);
        if step > 0 {
            samples[step - 1].push(Duration::from_micros(now_us.saturating_sub(t_us)));
        }
    }
}

fn describe(el: &Element) -> String {
    match el.attr("type") {
        Some(t) => format!("<{} type='{t}'>", el.name),
        None => format!("<{}>", el.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips() {
        let b = body(12, 345, 6789, 64);
        assert_eq!(b.len(), 64);
        assert_eq!(parse_body(&b, 64), Some((12, 345, 6789)));
        // A header longer than the size is not padded.
        let b = body(1, 2, 3, 4);
        assert_eq!(parse_body(&b, 4), Some((1, 2, 3)));
        assert_eq!(parse_body("s=1 n=2 t=3 xxy", 15), None);
        assert_eq!(parse_body("s=1 n=2 t=3 xx", 64), None);
        assert_eq!(parse_body("s=1 n=x t=3 ", 12), None);
    }

    #[test]
    fn pacing() {
        assert_eq!(period_for(0, 1000), None);
        assert_eq!(period_for(10_000, 1000), Some(Duration::from_millis(100)));
    }
}
