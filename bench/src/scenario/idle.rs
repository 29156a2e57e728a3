//! `idle`: log N sessions in (at most C logins in flight), hold them all
//! idle, and measure the server's resident memory per session.
//!
//! Each session is its own task: it logs in (STARTTLS, SCRAM-SHA-256,
//! bind, initial presence), then reads and ignores whatever arrives until
//! the run releases it, then closes its stream. Once every login has ended
//! the run samples the server's `VmRSS` once a second for the hold time and
//! reports the last sample against the baseline taken before the first
//! connection:
//!
//! `rss_per_session_kib = (rss_total_kib - baseline_rss_kib) / up`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::{opt, Env, Outcome};
use crate::client;
use crate::failures::Failures;
use crate::procfs;

#[derive(Debug, Clone)]
pub struct IdleArgs {
    pub sessions: u64,
    pub concurrency: usize,
    /// How long to hold all sessions (sampling memory once a second).
    pub hold: Duration,
    /// The longest the logins of all sessions may take.
    pub ramp_timeout: Duration,
}

#[derive(Default)]
struct Counters {
    up: AtomicU64,
    dropped: AtomicU64,
    close_failed: AtomicU64,
}

pub async fn run(env: Arc<Env>, args: IdleArgs) -> Outcome {
    let baseline = env.server_memory();
    let client_baseline = procfs::memory("self").ok();
    let failures = Arc::new(Failures::default());
    let counters = Arc::new(Counters::default());
    let (release_tx, release_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.sessions {
        let env = env.clone();
        let failures = failures.clone();
        let counters = counters.clone();
        let gate = gate.clone();
        let done = done_tx.clone();
        let mut release = release_rx.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let account = env.account(i, format!("idle{i}"));
            let result = client::login(&env.target, &account).await;
            drop(permit);
            let mut session = match result {
                Ok(s) => {
                    counters.up.fetch_add(1, Ordering::Relaxed);
                    let _ = done.send(());
                    s
                }
                Err(f) => {
                    failures.record(&f);
                    let _ = done.send(());
                    return;
                }
            };
            drop(done);
            if let Err(f) = session.hold(&mut release).await {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                failures.record(&f);
                return;
            }
            if let Err(f) = session.close(env.target.step_timeout).await {
                counters.close_failed.fetch_add(1, Ordering::Relaxed);
                failures.record(&f);
            }
        });
    }
    drop(done_tx);

    // Ramp: wait for every login to end, one way or the other.
    let ramp_deadline = tokio::time::Instant::now() + args.ramp_timeout;
    let step = (args.sessions / 10).max(1);
    let mut finished = 0u64;
    while finished < args.sessions {
        match tokio::time::timeout_at(ramp_deadline, done_rx.recv()).await {
            Ok(Some(())) => {
                finished += 1;
                if finished % step == 0 {
                    eprintln!(
                        "idle: {finished}/{} logins done ({} up, {} failed) after {:.1}s",
                        args.sessions,
                        counters.up.load(Ordering::Relaxed),
                        failures.total(),
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(None) => break,
            Err(_) => {
                eprintln!(
                    "idle: the logins did not all end within {:?}",
                    args.ramp_timeout
                );
                break;
            }
        }
    }
    let ramp = start.elapsed();
    let up = counters.up.load(Ordering::Relaxed);
    eprintln!(
        "idle: all logins done: {up} of {} sessions up in {:.1}s; holding {:?}",
        args.sessions,
        ramp.as_secs_f64(),
        args.hold
    );

    // Hold: sample the server's memory once a second.
    let mut sample = None;
    let seconds = args.hold.as_secs().max(1);
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(m) = env.server_memory() {
            sample = Some(m);
        }
    }
    let client_now = procfs::memory("self").ok();
    let dropped = counters.dropped.load(Ordering::Relaxed);
    if let Some(m) = sample {
        eprintln!(
            "idle: server VmRSS {} KiB (peak {} KiB, {} threads) with {up} sessions",
            m.rss_kib, m.hwm_kib, m.threads
        );
    }

    // Release: every session closes its stream.
    let _ = release_tx.send(true);
    let close_deadline =
        tokio::time::Instant::now() + env.target.step_timeout + Duration::from_secs(10);
    while let Ok(Some(_)) = tokio::time::timeout_at(close_deadline, tasks.join_next()).await {}
    if !tasks.is_empty() {
        eprintln!(
            "idle: {} sessions did not end in time; aborting them",
            tasks.len()
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let close_failed = counters.close_failed.load(Ordering::Relaxed);
    for line in failures.lines() {
        eprintln!("idle: failed: {line}");
    }

    let per_session = |now: u64, base: u64| {
        if up == 0 {
            None
        } else {
            Some(format!("{:.2}", (now as f64 - base as f64) / up as f64))
        }
    };
    let server_per = match (sample, baseline) {
        (Some(s), Some(b)) => per_session(s.rss_kib, b.rss_kib),
        _ => None,
    };
    let client_per = match (client_now, client_baseline) {
        (Some(s), Some(b)) => per_session(s.rss_kib, b.rss_kib),
        _ => None,
    };
    let failed = args.sessions - up;
    let line = format!(
        "idle sessions={} up={up} failed={failed} dropped={dropped} close_failed={close_failed} concurrency={} \
         ramp_s={:.1} ramp_logins_per_s={:.0} baseline_rss_kib={} rss_total_kib={} rss_per_session_kib={} \
         server_peak_rss_kib={} server_threads={} client_rss_per_session_kib={}",
        args.sessions,
        args.concurrency,
        ramp.as_secs_f64(),
        up as f64 / ramp.as_secs_f64().max(1e-9),
        opt(baseline.map(|m| m.rss_kib)),
        opt(sample.map(|m| m.rss_kib)),
        opt(server_per),
        opt(sample.map(|m| m.hwm_kib)),
        opt(sample.map(|m| m.threads)),
        opt(client_per),
    );
    Outcome {
        line,
        ok: up == args.sessions && dropped == 0 && close_failed == 0,
    }
}
