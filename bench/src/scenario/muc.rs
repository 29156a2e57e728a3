//! `muc`: group chat fan-out. N users join one room of a XEP-0045
//! service; a few of them send groupchat messages as fast as their
//! window allows; every message is delivered to all N occupants. Reports
//! messages and delivered copies per second, the server's CPU time per
//! delivered copy, delivery latency, whether anything was lost, and the
//! latency of joining the full room.
//!
//! The steps, each bounded by the step timeout:
//!
//! 1. All N occupants (`user0` …) log in without initial presence (a room
//!    needs only the presence sent to it).
//! 2. The first creates the room, `<x xmlns='…muc'/>` in its join; when
//!    the service says the room is new (status 201) it accepts the
//!    default configuration with an empty submitted form (an instant
//!    room, XEP-0045 §10.1.2), as every client does. The others join,
//!    `concurrency` at a time, asking for no history; a join is complete
//!    when the joiner has its own presence (status 110) and the subject.
//!    From then on each occupant's reader task reads everything the room
//!    sends it (other joins' presence included: a client that stops
//!    reading would be cut off).
//! 3. `joins` more users (`user{N}` …) join the full room one after
//!    another and leave again: the join latency into an N-occupant room
//!    (the N presences the joiner gets, its presence to the N occupants,
//!    the subject), and the server's CPU time per join.
//! 4. The first `senders` occupants send `<message type='groupchat'>`,
//!    each with at most `window` messages whose reflection (its own copy,
//!    XEP-0045 §7.4) it has not received yet, for `warmup` + `duration`
//!    seconds; every reader counts the copies it gets and their latency
//!    (the send time is in the body, one clock). Then the senders stop
//!    and the run waits for every copy in flight: `lost` is N × sent −
//!    received.
//!
//! `cpu_us_per_copy` is the server's CPU time in the measured window over
//! the copies delivered in it: the reading and routing of the message
//! shares it with the N writes. Whether the room archives (XEP-0313) is
//! the server's configuration, which `bench/run.sh` sets per run.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{opt, Env, Outcome};
use crate::client::{self, Failure, Session, SessionReader, SessionWriter};
use crate::failures::Failures;
use crate::stats::{ms, Samples};
use crate::xml::{escape, Element, NS_CLIENT};

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";

#[derive(Debug, Clone)]
pub struct MucArgs {
    /// The group chat service (`conference.localhost`).
    pub service: String,
    /// Occupants in the room.
    pub occupants: u64,
    /// Occupants that send.
    pub senders: u64,
    /// Messages a sender may have in flight (sent, reflection not back).
    pub window: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Joins measured into the full room.
    pub joins: u64,
    /// Joins in flight while the room fills.
    pub concurrency: usize,
    pub body_size: usize,
}

/// What the reader tasks share.
struct Shared {
    base: Instant,
    /// Copies of benchmark messages received (any time).
    received: AtomicU64,
    /// Copies received inside the measured window.
    in_window: AtomicU64,
    /// 1 while measuring.
    measuring: AtomicUsize,
    /// Messages that were not what was sent, and error stanzas.
    bad: AtomicU64,
    errors: AtomicU64,
    /// Latency samples (from the first readers only, to bound memory).
    latency: Mutex<Samples>,
    /// One window per sender; its own reflection gives the permit back.
    windows: Vec<Semaphore>,
    /// Sessions the server closed before the end.
    dropped: AtomicU64,
}

/// The body: sender, sequence, send time in µs, padded with `x`.
fn body(sender: u64, seq: u64, t_us: u64, size: usize) -> String {
    let mut b = format!("s={sender} n={seq} t={t_us} ");
    while b.len() < size {
        b.push('x');
    }
    b
}

fn parse_body(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.splitn(4, ' ');
    let s = parts.next()?.strip_prefix("s=")?.parse().ok()?;
    let _n: u64 = parts.next()?.strip_prefix("n=")?.parse().ok()?;
    let t = parts.next()?.strip_prefix("t=")?.parse().ok()?;
    Some((s, t))
}

fn status_codes(el: &Element) -> Vec<String> {
    el.child("x", NS_MUC_USER)
        .map(|x| {
            x.children
                .iter()
                .filter(|c| c.name == "status")
                .filter_map(|c| c.attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn failure(step: &'static str, detail: impl Into<String>) -> Failure {
    Failure::new(step, detail)
}

/// Joins `room` as `nick` and reads the join sequence up to the subject;
/// creates the room (instant) when the service says it is new. Returns
/// how long it took.
async fn join(s: &mut Session, room: &str, nick: &str, id: &str) -> Result<Duration, Failure> {
    let t0 = Instant::now();
    let to = escape(&format!("{room}/{nick}"));
    s.send(
        "join",
        format!(
            "<presence to='{to}' id='{id}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>"
        )
        .as_bytes(),
    )
    .await?;
    // Done with the own presence, the subject and, for a new room, the
    // configuration's result (in whichever order they come: a service
    // may send the subject before the room is configured).
    let (mut own, mut subject, mut configuring) = (false, false, false);
    loop {
        if own && subject && !configuring {
            return Ok(t0.elapsed());
        }
        let el = s.element("join").await?;
        if el.name == "presence" && el.attr("type") == Some("error") {
            return Err(failure("join", format!("refused: {}", el.describe())));
        }
        if el.name == "presence" && status_codes(&el).iter().any(|c| c == "110") {
            own = true;
            if status_codes(&el).iter().any(|c| c == "201") {
                configuring = true;
                // A new room: accept the default configuration.
                s.send(
                    "configure",
                    format!(
                        "<iq type='set' id='{id}-cfg' to='{}'><query xmlns='{NS_MUC_OWNER}'>\
                         <x xmlns='jabber:x:data' type='submit'/></query></iq>",
                        escape(room)
                    )
                    .as_bytes(),
                )
                .await?;
            }
            continue;
        }
        if el.name == "iq" && el.attr("id") == Some(&format!("{id}-cfg")) {
            if el.attr("type") != Some("result") {
                return Err(failure("configure", format!("refused: {}", el.describe())));
            }
            configuring = false;
            continue;
        }
        if own && el.name == "message" && el.child("subject", NS_CLIENT).is_some() {
            subject = true;
        }
    }
}

/// Leaves and reads up to the service's answer (own unavailable, 110).
async fn leave(s: &mut Session, room: &str, nick: &str) -> Result<(), Failure> {
    let to = escape(&format!("{room}/{nick}"));
    s.send(
        "leave",
        format!("<presence type='unavailable' to='{to}'/>").as_bytes(),
    )
    .await?;
    loop {
        let el = s.element("leave").await?;
        if el.name == "presence"
            && el.attr("type") == Some("unavailable")
            && status_codes(&el).iter().any(|c| c == "110")
        {
            return Ok(());
        }
    }
}

/// Reads everything the room sends one occupant until the run ends.
async fn reader(
    mut r: SessionReader,
    shared: Arc<Shared>,
    me: u64,
    own_from: String,
    keep_latency: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> SessionReader {
    let mut lat = Samples::default();
    loop {
        let el = tokio::select! {
            e = r.element("read") => e,
            _ = stop.changed() => break,
        };
        let el = match el {
            Ok(e) => e,
            Err(_) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        if el.attr("type") == Some("error") {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if el.name != "message" || el.attr("type") != Some("groupchat") {
            continue;
        }
        let Some(b) = el.child("body", NS_CLIENT) else {
            continue;
        };
        let Some((sender, t_us)) = parse_body(&b.text) else {
            shared.bad.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) == 1 {
            shared.in_window.fetch_add(1, Ordering::Relaxed);
            if keep_latency {
                let now = shared.base.elapsed().as_micros() as u64;
                lat.push(Duration::from_micros(now.saturating_sub(t_us)));
            }
        }
        if sender == me && el.attr("from") == Some(own_from.as_str()) {
            shared.windows[me as usize].add_permits(1);
        }
    }
    shared.latency.lock().expect("not poisoned").extend(lat);
    r
}

pub async fn run(env: Arc<Env>, args: MucArgs) -> Outcome {
    let n = args.occupants;
    let failures = Arc::new(Failures::default());
    let room = format!("bench{n}-{}@{}", std::process::id(), args.service);
    let fail_line = |what: &str| Outcome {
        line: format!("muc occupants={n} error: {what}"),
        ok: false,
    };
    if env.users < n + args.joins {
        return fail_line(&format!(
            "--users {} is fewer than occupants + joins ({})",
            env.users,
            n + args.joins
        ));
    }

    // --- 1. log in ---------------------------------------------------------
    let t_login = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut logins = JoinSet::new();
    for i in 0..n + args.joins {
        let env = env.clone();
        let gate = gate.clone();
        logins.spawn(async move {
            let _p = gate.acquire_owned().await;
            let s =
                client::login_with(&env.target, &env.account(i, format!("r{i}")), false).await?;
            Ok::<(u64, Session), Failure>((i, s))
        });
    }
    let mut sessions: Vec<Option<Session>> = (0..n + args.joins).map(|_| None).collect();
    while let Some(r) = logins.join_next().await {
        match r {
            Ok(Ok((i, s))) => sessions[i as usize] = Some(s),
            Ok(Err(f)) => failures.record(&f),
            Err(e) => failures.record(&failure("login", e.to_string())),
        }
    }
    let login_failed = failures.total();
    eprintln!(
        "muc: {} sessions up in {:.1}s",
        n + args.joins - login_failed,
        t_login.elapsed().as_secs_f64()
    );
    if login_failed > 0 {
        for l in failures.lines() {
            eprintln!("muc: {l}");
        }
        return fail_line(&format!("{login_failed} logins failed"));
    }

    // --- 2. fill the room ----------------------------------------------------
    let shared = Arc::new(Shared {
        base: Instant::now(),
        received: AtomicU64::new(0),
        in_window: AtomicU64::new(0),
        measuring: AtomicUsize::new(0),
        bad: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency: Mutex::new(Samples::default()),
        windows: (0..n).map(|_| Semaphore::new(0)).collect(),
        dropped: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t_fill = Instant::now();
    let mut first = sessions[0].take().expect("logged in");
    if let Err(f) = join(&mut first, &room, "o0", "j0").await {
        return fail_line(&format!("creating the room: {f:?}"));
    }
    let mut writers: Vec<Option<SessionWriter>> = (0..n).map(|_| None).collect();
    let mut readers = JoinSet::new();
    let mut spawn_reader = |i: u64, s: Session, writers: &mut Vec<Option<SessionWriter>>| {
        let (r, w) = s.split();
        writers[i as usize] = Some(w);
        let own = format!("{room}/o{i}");
        readers.spawn(reader(r, shared.clone(), i, own, i < 50, stop_rx.clone()));
    };
    spawn_reader(0, first, &mut writers);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut joins = JoinSet::new();
    for i in 1..n {
        let mut s = sessions[i as usize].take().expect("logged in");
        let gate = gate.clone();
        let room = room.clone();
        joins.spawn(async move {
            let _p = gate.acquire_owned().await;
            join(&mut s, &room, &format!("o{i}"), &format!("j{i}")).await?;
            Ok::<(u64, Session), Failure>((i, s))
        });
    }
    while let Some(r) = joins.join_next().await {
        match r {
            Ok(Ok((i, s))) => spawn_reader(i, s, &mut writers),
            Ok(Err(f)) => failures.record(&f),
            Err(e) => failures.record(&failure("join", e.to_string())),
        }
    }
    let join_failed = failures.total();
    let fill_s = t_fill.elapsed().as_secs_f64();
    eprintln!(
        "muc: {} of {n} occupants in {room} after {fill_s:.1}s",
        n - join_failed
    );
    if join_failed > 0 {
        for l in failures.lines() {
            eprintln!("muc: {l}");
        }
        return fail_line(&format!("{join_failed} joins failed"));
    }

    // --- 3. joins into the full room -----------------------------------------
    let mut join_lat = Samples::default();
    let cpu0 = env.server_cpu();
    let t_joins = Instant::now();
    for j in 0..args.joins {
        let i = n + j;
        let mut s = sessions[i as usize].take().expect("logged in");
        let nick = format!("p{i}");
        match join(&mut s, &room, &nick, &format!("p{i}")).await {
            Ok(d) => join_lat.push(d),
            Err(f) => {
                failures.record(&f);
                continue;
            }
        }
        if let Err(f) = leave(&mut s, &room, &nick).await {
            failures.record(&f);
        }
        sessions[i as usize] = Some(s);
    }
    let joins_s = t_joins.elapsed().as_secs_f64();
    let cpu_per_join = match (cpu0, env.server_cpu()) {
        (Some(a), Some(b)) if args.joins > 0 => Some(format!(
            "{:.2}",
            (b - a).as_secs_f64() * 1e3 / args.joins as f64
        )),
        _ => None,
    };

    // --- 4. messages ---------------------------------------------------------
    let senders = args.senders.min(n).max(1);
    for w in shared.windows.iter().take(senders as usize) {
        w.add_permits(args.window.max(1));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let (run_tx, run_rx) = tokio::sync::watch::channel(true);
    let mut send_tasks = JoinSet::new();
    let to = escape(&room);
    for i in 0..senders {
        let mut w = writers[i as usize].take().expect("joined");
        let shared = shared.clone();
        let sent = sent.clone();
        let sent_in_window = sent_in_window.clone();
        let run_rx = run_rx.clone();
        let to = to.clone();
        let size = args.body_size;
        send_tasks.spawn(async move {
            let mut seq = 0u64;
            while *run_rx.borrow() {
                let Ok(permit) = shared.windows[i as usize].acquire().await else {
                    break;
                };
                permit.forget();
                let t = shared.base.elapsed().as_micros() as u64;
                let b = body(i, seq, t, size);
                let stanza = format!(
                    "<message type='groupchat' to='{to}' id='m{i}-{seq}'><body>{b}</body></message>"
                );
                if w.send("send", stanza.as_bytes()).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                if shared.measuring.load(Ordering::Relaxed) == 1 {
                    sent_in_window.fetch_add(1, Ordering::Relaxed);
                }
                seq += 1;
            }
            (i, w)
        });
    }
    tokio::time::sleep(args.warmup).await;
    let cpu_a = env.server_cpu();
    let copies_a = shared.received.load(Ordering::Relaxed);
    shared.measuring.store(1, Ordering::Relaxed);
    let t_a = Instant::now();
    tokio::time::sleep(args.duration).await;
    shared.measuring.store(0, Ordering::Relaxed);
    let window_s = t_a.elapsed().as_secs_f64();
    let cpu_b = env.server_cpu();
    let copies = shared.in_window.load(Ordering::Relaxed);
    let _ = copies_a;
    let _ = run_tx.send(false);
    // Wake senders waiting for a permit so they see the stop.
    for w in shared.windows.iter().take(senders as usize) {
        w.add_permits(1);
    }
    while send_tasks.join_next().await.is_some() {}
    let total_sent = sent.load(Ordering::Relaxed);
    let expected = total_sent * n;
    // Everything in flight arrives, or the step timeout passes.
    let deadline = Instant::now() + env.target.step_timeout;
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = shared.received.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    while readers.join_next().await.is_some() {}

    let cpu_s = match (cpu_a, cpu_b) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64()),
        _ => None,
    };
    let messages_in_window = sent_in_window.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *shared.latency.lock().expect("not poisoned"));
    let lost = expected.saturating_sub(received);
    let bad = shared.bad.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let ok = lost == 0 && bad == 0 && errors == 0 && failures.total() == 0;
    let line = format!(
        "muc occupants={n} senders={senders} window={} fill_s={fill_s:.1} \
         join_p50_ms={} join_p99_ms={} join_max_ms={} joins={} joins_s={joins_s:.2} cpu_ms_per_join={} \
         msg_rate={:.0} copy_rate={:.0} server_cpu_util_pct={} cpu_us_per_copy={} full_core_copy_rate={} \
         p50_ms={} p99_ms={} max_ms={} total_sent={total_sent} total_copies={received} lost={lost} \
         bad={bad} errors={errors} dropped={dropped} join_failed={}",
        args.window,
        ms(join_lat.percentile(0.5)),
        ms(join_lat.percentile(0.99)),
        ms(join_lat.percentile(1.0)),
        join_lat.len(),
        opt(cpu_per_join),
        messages_in_window as f64 / window_s,
        copies as f64 / window_s,
        opt(cpu_s.map(|c| format!("{:.0}", c * 100.0 / window_s))),
        opt(cpu_s
            .filter(|_| copies > 0)
            .map(|c| format!("{:.2}", c * 1e6 / copies as f64))),
        opt(cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| format!("{:.0}", copies as f64 / c))),
        ms(lat.percentile(0.5)),
        ms(lat.percentile(0.99)),
        ms(lat.percentile(1.0)),
        failures.total(),
    );
    for l in failures.lines() {
        eprintln!("muc: {l}");
    }
    Outcome { line, ok }
}
