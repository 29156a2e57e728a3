//! `irc`: the IRC transport under load. N XMPP users each join 5 IRC
//! channels through the transport (one IRC connection per user); the run
//! measures the server's memory per bridged user and the messages relayed
//! per second both ways.
//!
//! Layout: users are in groups of `group_size`; the users of group g all
//! join the same `channels_per_user` channels `#b{g*5}` … `#b{g*5+4}`, so
//! each channel holds `group_size` bridged users (25 by default, like a
//! small team's channel), plus an observer: a raw IRC client of the load
//! generator's own, joined to every channel before the users come.
//!
//! Phases, each waited for in full (bounded by the step timeout):
//!
//! 1. **Logins.** Every user logs in (initial presence sent); the server's
//!    RSS is sampled: the baseline.
//! 2. **Joins.** Every user sends its 5 MUC join presences and waits for
//!    its 5 self-presences (status 110). After a settle second the RSS is
//!    sampled again: `rss_per_bridged_user_kib` = (joined − baseline) / N,
//!    which covers the user's share of the transport (its IRC connection,
//!    its TLS-less socket buffers, the channel state) and of the MUC
//!    presences the server routed.
//! 3. **XMPP → IRC.** Every user sends `messages_per_user` groupchat
//!    messages to the first channel of its group. The observer counts them
//!    as PRIVMSG lines: `xmpp_to_irc_per_s` is N × M over the time until the
//!    last arrived. Each message is also relayed back by ngircd to the other
//!    bridged users of the channel and reflected to its sender, so every
//!    user must receive exactly `group_size` × M of them: the run checks
//!    that count per user (`xmpp_fanout_ok`).
//! 4. **IRC → XMPP.** The observer sends `irc_lines_per_channel` lines to
//!    every channel; each reaches the channel's `group_size` users through
//!    their own IRC connections: `irc_to_xmpp_per_s` counts XMPP deliveries
//!    per second, and every user must get exactly 5 × K of them.
//!
//! `cpu_us_per_relayed` is the server's CPU time in a phase over the
//! messages it delivered in that phase (IRC lines written and XMPP stanzas
//! written, each counted once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{opt, Env, Outcome};
use crate::client::{self, SessionReader};
use crate::failures::Failures;
use crate::xml::{Element, NS_CLIENT};

const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

#[derive(Debug, Clone)]
pub struct IrcArgs {
    /// The IRC server's port on 127.0.0.1, for the observer.
    pub irc_port: u16,
    /// The transport's hostname (`irc.localhost`).
    pub transport: String,
    /// The IRC server as named in room addresses (`127.0.0.1`).
    pub irc_server: String,
    pub group_size: u64,
    pub messages_per_user: u64,
    pub irc_lines_per_channel: u64,
    pub concurrency: usize,
}

const CHANNELS_PER_USER: u64 = 5;

/// What every user's reader counts.
#[derive(Default)]
struct Counters {
    logged_in: AtomicU64,
    joined: AtomicU64,
    /// Groupchat messages with an `x ` body (sent from XMPP) received.
    x_received: AtomicU64,
    /// Groupchat messages with a `y ` body (sent from IRC) received.
    y_received: AtomicU64,
    /// Users whose counts were exactly right at the end.
    exact: AtomicU64,
}

fn codes(el: &Element) -> impl Iterator<Item = &str> {
    el.children
        .iter()
        .filter(|x| x.is("x", MUC_USER))
        .flat_map(|x| x.children.iter())
        .filter(|s| s.name == "status")
        .filter_map(|s| s.attr("code"))
}

/// Reads one user's stanzas until released: counts self-presences and the
/// phases' messages; a presence error is a failure.
async fn read_user(
    mut rd: SessionReader,
    counters: Arc<Counters>,
    failures: Arc<Failures>,
    mut release: watch::Receiver<bool>,
) -> (u64, u64) {
    let (mut joins, mut x, mut y) = (0u64, 0u64, 0u64);
    loop {
        tokio::select! {
            el = rd.element("irc read") => {
                let el = match el {
                    Ok(el) => el,
                    Err(f) => { failures.record(&f); return (x, y); }
                };
                if el.ns != NS_CLIENT {
                    continue;
                }
                if el.name == "presence" {
                    if el.attr("type") == Some("error") {
                        // The condition and text, so that a failed run says why.
                        let why = el
                            .children
                            .iter()
                            .find(|c| c.name == "error")
                            .map(|e| {
                                e.children
                                    .iter()
                                    .map(|c| if c.name == "text" { c.text.clone() } else { c.name.clone() })
                                    .collect::<Vec<_>>()
                                    .join(": ")
                            })
                            .unwrap_or_else(|| el.describe());
                        failures.record(&client::Failure::new("irc join", why));
                    } else if el.attr("type").is_none() && codes(&el).any(|c| c == "110") {
                        joins += 1;
                        if joins == CHANNELS_PER_USER {
                            counters.joined.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else if el.name == "message" && el.attr("type") == Some("groupchat") {
                    let body = el.child("body", NS_CLIENT).map(|b| b.text.as_str()).unwrap_or("");
                    if body.starts_with("x ") {
                        x += 1;
                        counters.x_received.fetch_add(1, Ordering::Relaxed);
                    } else if body.starts_with("y ") {
                        y += 1;
                        counters.y_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = release.changed() => return (x, y),
        }
    }
}

/// The observer: a raw IRC client in every channel. Counts `x ` PRIVMSGs;
/// sends what it is given.
async fn observer(
    port: u16,
    channels: u64,
    ready: mpsc::Sender<()>,
    mut lines: mpsc::Receiver<String>,
    seen: Arc<AtomicU64>,
) -> Result<(), String> {
    let sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("observer: cannot reach the IRC server: {e}"))?;
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(b"NICK obs\r\nUSER obs 0 * :load observer\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut joined = 0u64;
    let mut registered = false;
    let mut line = Vec::new();
    loop {
        tokio::select! {
            n = rd.read_until(b'\n', &mut line) => {
                let n = n.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("observer: the IRC server closed the connection".into());
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                line.clear();
                if let Some(arg) = text.strip_prefix("PING ") {
                    wr.write_all(format!("PONG {arg}\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
                    continue;
                }
                let mut words = text.split(' ');
                let _prefix = words.next();
                match words.next() {
                    Some("001") if !registered => {
                        registered = true;
                        // Joins in batches: one JOIN line holds many channels.
                        let names: Vec<String> = (0..channels).map(|c| format!("#b{c}")).collect();
                        for batch in names.chunks(40) {
                            wr.write_all(format!("JOIN {}\r\n", batch.join(",")).as_bytes())
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    Some("366") => {
                        joined += 1;
                        if joined == channels {
                            let _ = ready.send(()).await;
                        }
                    }
                    Some("PRIVMSG") if text.contains(" :x ") => {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("433" | "432") if !registered => {
                        return Err(format!("observer: the nick obs is refused: {text}"));
                    }
                    _ => {}
                }
            }
            l = lines.recv() => match l {
                Some(l) => wr.write_all(l.as_bytes()).await.map_err(|e| e.to_string())?,
                None => return Ok(()),
            }
        }
    }
}

/// Waits until `counter` reaches `target` or `deadline` passes; returns
/// when it got there.
async fn wait_for(counter: &AtomicU64, target: u64, deadline: Instant) -> Option<Instant> {
    loop {
        if counter.load(Ordering::Relaxed) >= target {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(env: Arc<Env>, args: IrcArgs) -> Outcome {
    let n = env.users;
    let group = args.group_size.max(1);
    let groups = n.div_ceil(group);
    let channels = groups * CHANNELS_PER_USER;
    let m = args.messages_per_user;
    let k = args.irc_lines_per_channel;
    let step = env.target.step_timeout;
    let failures = Arc::new(Failures::default());
    let counters = Arc::new(Counters::default());

    // The observer first, in every channel.
    let (ready_tx, mut ready_rx) = mpsc::channel(1);
    let (obs_tx, obs_rx) = mpsc::channel::<String>(1024);
    let obs_seen = Arc::new(AtomicU64::new(0));
    let obs = tokio::spawn(observer(
        args.irc_port,
        channels,
        ready_tx,
        obs_rx,
        obs_seen.clone(),
    ));
    if tokio::time::timeout(step, ready_rx.recv())
        .await
        .ok()
        .flatten()
        .is_none()
    {
        let why = if obs.is_finished() {
            match obs.await {
                Ok(Err(e)) => e,
                _ => "the observer ended".into(),
            }
        } else {
            format!("the observer did not join {channels} channels within {step:?}")
        };
        return Outcome {
            line: format!("irc users={n} failed=observer: {why}"),
            ok: false,
        };
    }

    // Phase 1: logins.
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let (release_tx, release_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let env = env.clone();
        let (failures, counters, gate) = (failures.clone(), counters.clone(), gate.clone());
        let mut phase = phase_rx.clone();
        let release = release_rx.clone();
        let args = args.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let session = match client::login(&env.target, &env.account(i, "irc".into())).await {
                Ok(s) => s,
                Err(f) => {
                    failures.record(&f);
                    return;
                }
            };
            drop(permit);
            counters.logged_in.fetch_add(1, Ordering::Relaxed);
            let (rd, mut wr) = session.split();
            let reader = tokio::spawn(read_user(rd, counters.clone(), failures.clone(), release));
            let g = i / group;
            let room = |c: u64| format!("#b{c}%{}@{}", args.irc_server, args.transport);
            if phase.wait_for(|p| *p >= 1).await.is_err() {
                return;
            }
            let mut joins = String::new();
            for c in 0..CHANNELS_PER_USER {
                joins.push_str(&format!(
                    "<presence to='{}/u{i}'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
                    room(g * CHANNELS_PER_USER + c)
                ));
            }
            if let Err(f) = wr.send("irc join", joins.as_bytes()).await {
                failures.record(&f);
                return;
            }
            if phase.wait_for(|p| *p >= 2).await.is_err() {
                return;
            }
            for s in 0..m {
                let msg = format!(
                    "<message type='groupchat' to='{}'><body>x u={i} n={s}</body></message>",
                    room(g * CHANNELS_PER_USER)
                );
                if let Err(f) = wr.send("irc say", msg.as_bytes()).await {
                    failures.record(&f);
                    return;
                }
            }
            let (x, y) = reader.await.unwrap_or((0, 0));
            let members = group.min(n - g * group);
            if x == members * m && y == CHANNELS_PER_USER * k {
                counters.exact.fetch_add(1, Ordering::Relaxed);
            } else {
                failures.record(&client::Failure::new(
                    "irc counts",
                    format!(
                        "u{i} got {x} XMPP-sent and {y} IRC-sent messages, expected {} and {}",
                        members * m,
                        CHANNELS_PER_USER * k
                    ),
                ));
            }
            drop(wr);
        });
    }
    let logins_done = wait_for(&counters.logged_in, n, Instant::now() + step * 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = env.server_memory();
    eprintln!(
        "irc: {} of {n} users logged in; server RSS {} KiB",
        counters.logged_in.load(Ordering::Relaxed),
        opt(baseline.map(|m| m.rss_kib))
    );

    // Phase 2: joins.
    let t = Instant::now();
    let _ = phase_tx.send(1);
    let joined_at = if logins_done.is_some() {
        wait_for(&counters.joined, n, Instant::now() + step * 4).await
    } else {
        None
    };
    let join_s = joined_at.map(|at| (at - t).as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bridged = env.server_memory();
    let per_user = match (bridged, baseline) {
        (Some(b), Some(a)) if n > 0 => Some(format!(
            "{:.1}",
            (b.rss_kib as f64 - a.rss_kib as f64) / n as f64
        )),
        _ => None,
    };
    eprintln!(
        "irc: {} of {n} users joined {CHANNELS_PER_USER} channels in {} s; server RSS {} KiB",
        counters.joined.load(Ordering::Relaxed),
        opt(join_s.map(|s| format!("{s:.1}"))),
        opt(bridged.map(|m| m.rss_kib))
    );

    // Phase 3: XMPP → IRC.
    let cpu0 = env.server_cpu();
    let t = Instant::now();
    let _ = phase_tx.send(2);
    let to_irc = n * m;
    let irc_done = if joined_at.is_some() {
        wait_for(&obs_seen, to_irc, Instant::now() + step * 4).await
    } else {
        None
    };
    let x_expected: u64 = (0..groups)
        .map(|g| {
            let members = group.min(n - g * group);
            members * members * m
        })
        .sum();
    let fanout_done = if irc_done.is_some() {
        wait_for(&counters.x_received, x_expected, Instant::now() + step * 4).await
    } else {
        None
    };
    let cpu1 = env.server_cpu();
    let xmpp_to_irc = irc_done.map(|at| to_irc as f64 / (at - t).as_secs_f64().max(1e-9));
    // What the server wrote in phase 3: N × M IRC lines, then every
    // channel member's copy relayed back as XMPP.
    let phase3_out = to_irc + x_expected;
    let cpu3 = match (cpu0, cpu1, fanout_done) {
        (Some(a), Some(b), Some(_)) => Some(format!(
            "{:.1}",
            (b - a).as_micros() as f64 / phase3_out as f64
        )),
        _ => None,
    };
    eprintln!(
        "irc: XMPP→IRC {} of {to_irc} seen on IRC, {} of {x_expected} relayed back to XMPP",
        obs_seen.load(Ordering::Relaxed),
        counters.x_received.load(Ordering::Relaxed)
    );

    // Phase 4: IRC → XMPP.
    let y_expected = n * CHANNELS_PER_USER * k;
    let cpu0 = env.server_cpu();
    let t = Instant::now();
    let mut y_done = None;
    if fanout_done.is_some() {
        'send: for s in 0..k {
            for c in 0..channels {
                if obs_tx
                    .send(format!("PRIVMSG #b{c} :y c={c} n={s}\r\n"))
                    .await
                    .is_err()
                {
                    break 'send;
                }
            }
        }
        y_done = wait_for(&counters.y_received, y_expected, Instant::now() + step * 4).await;
    }
    let cpu1 = env.server_cpu();
    let irc_to_xmpp = y_done.map(|at| y_expected as f64 / (at - t).as_secs_f64().max(1e-9));
    let cpu4 = match (cpu0, cpu1, y_done) {
        (Some(a), Some(b), Some(_)) => Some(format!(
            "{:.1}",
            (b - a).as_micros() as f64 / y_expected as f64
        )),
        _ => None,
    };

    // Settle, so that duplicates would show, then release every user.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = release_tx.send(true);
    let end = Instant::now() + step;
    while let Ok(Some(_)) = tokio::time::timeout_at(end, tasks.join_next()).await {}
    tasks.abort_all();
    drop(obs_tx);
    obs.abort();
    for line in failures.lines() {
        eprintln!("irc: failed: {line}");
    }
    let exact = counters.exact.load(Ordering::Relaxed);
    let line = format!(
        "irc users={n} channels={channels} group_size={group} logged_in={} joined={} join_s={} \
         baseline_rss_kib={} bridged_rss_kib={} rss_per_bridged_user_kib={per} \
         xmpp_to_irc_msgs={to_irc} xmpp_to_irc_per_s={} xmpp_fanout={}/{x_expected} phase3_cpu_us_per_relayed={cpu3} \
         irc_to_xmpp_msgs={y_expected} irc_to_xmpp_per_s={} irc_to_xmpp_got={} phase4_cpu_us_per_relayed={cpu4} \
         users_with_exact_counts={exact} failures={}",
        counters.logged_in.load(Ordering::Relaxed),
        counters.joined.load(Ordering::Relaxed),
        opt(join_s.map(|s| format!("{s:.1}"))),
        opt(baseline.map(|m| m.rss_kib)),
        opt(bridged.map(|m| m.rss_kib)),
        opt(xmpp_to_irc.map(|r| format!("{r:.0}"))),
        counters.x_received.load(Ordering::Relaxed),
        opt(irc_to_xmpp.map(|r| format!("{r:.0}"))),
        counters.y_received.load(Ordering::Relaxed),
        failures.total(),
        per = opt(per_user),
        cpu3 = opt(cpu3),
        cpu4 = opt(cpu4),
    );
    Outcome {
        ok: exact == n && failures.total() == 0,
        line,
    }
}
