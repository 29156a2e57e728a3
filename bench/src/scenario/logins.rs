//! `logins`: C clients each repeat full logins (connect, STARTTLS, TLS
//! handshake without resumption, SCRAM-SHA-256, bind, initial presence,
//! close) for the duration; reports the rate, the latency and the server's
//! CPU time per login.
//!
//! A warm-up comes first (not counted) so that the client's key cache
//! holds every user's salted password and the server's caches are warm.
//! Counted are the logins that end inside the measured window; the
//! server's CPU time is read from `/proc` at the window's two ends, so
//! `cpu_ms_per_login` stays meaningful even when the load generator, not
//! the server, is the bottleneck (see `server_cpu_util`).
//!
//! Latency is from the TCP connect to the bind result (what a user waits
//! for); the rate counts whole cycles including the close.
//! `full_core_rate` is logins divided by server CPU seconds: the rate one
//! fully available core would sustain, which is the figure to compare when
//! other work shares the machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{opt, Env, Outcome};
use crate::client::{self, Failure};
use crate::failures::Failures;
use crate::procfs;
use crate::stats::{ms, Samples};

#[derive(Debug, Clone)]
pub struct LoginsArgs {
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: usize,
    /// A cap on logins started, whatever the duration.
    pub max_logins: u64,
}

#[derive(Default)]
struct WorkerResult {
    latencies: Samples,
    failed_in_window: u64,
}

pub async fn run(env: Arc<Env>, args: LoginsArgs) -> Outcome {
    let start = Instant::now();
    let warm_end = start + args.warmup;
    let end = warm_end + args.duration;
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Failures::default());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let env = env.clone();
        let next = next.clone();
        let failures = failures.clone();
        let max = args.max_logins;
        workers.spawn(async move {
            let mut r = WorkerResult::default();
            loop {
                if Instant::now() >= end {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let account = env.account(i, format!("login{i}"));
                let t0 = Instant::now();
                let cycle = async {
                    let session = client::login(&env.target, &account).await?;
                    let latency = t0.elapsed();
                    session.close(env.target.step_timeout).await?;
                    Ok::<Duration, Failure>(latency)
                }
                .await;
                let t1 = Instant::now();
                let in_window = t1 >= warm_end && t1 <= end;
                match cycle {
                    Ok(latency) if in_window => r.latencies.push(latency),
                    Ok(_) => {}
                    Err(f) => {
                        failures.record(&f);
                        if in_window {
                            r.failed_in_window += 1;
                        }
                        // No hot loop against a server that refuses at once.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            r
        });
    }

    tokio::time::sleep_until(warm_end).await;
    let server0 = env.server_cpu();
    let client0 = procfs::cpu_time("self").ok();
    let t0 = Instant::now();
    eprintln!(
        "logins: warm-up done ({} logins started); measuring for {:?}",
        next.load(Ordering::Relaxed),
        args.duration
    );
    tokio::time::sleep_until(end).await;
    let server1 = env.server_cpu();
    let client1 = procfs::cpu_time("self").ok();
    let window = t0.elapsed().as_secs_f64();

    let mut latencies = Samples::default();
    let mut failed = 0;
    let join_deadline = Instant::now() + env.target.step_timeout * 2 + Duration::from_secs(5);
    while let Ok(Some(r)) = tokio::time::timeout_at(join_deadline, workers.join_next()).await {
        if let Ok(r) = r {
            latencies.extend(r.latencies);
            failed += r.failed_in_window;
        }
    }
    if !workers.is_empty() {
        eprintln!(
            "logins: {} clients did not stop in time; aborting them",
            workers.len()
        );
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    for line in failures.lines() {
        eprintln!("logins: failed: {line}");
    }

    let logins = latencies.len() as u64;
    let server_cpu = match (server0, server1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let client_cpu = match (client0, client1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let line = format!(
        "logins rate={:.0}/s logins={logins} failed={failed} concurrency={} window_s={window:.1} \
         p50_ms={} p90_ms={} p99_ms={} max_ms={} server_cpu_s={} server_cpu_util_pct={} cpu_ms_per_login={} \
         full_core_rate={} client_cpu_util_pct={}",
        logins as f64 / window.max(1e-9),
        args.concurrency,
        ms(latencies.percentile(50.0)),
        ms(latencies.percentile(90.0)),
        ms(latencies.percentile(99.0)),
        ms(latencies.percentile(100.0)),
        opt(server_cpu.map(|c| format!("{c:.2}"))),
        opt(server_cpu.map(|c| format!("{:.0}", 100.0 * c / window))),
        opt(server_cpu.filter(|_| logins > 0).map(|c| format!("{:.3}", 1000.0 * c / logins as f64))),
        opt(server_cpu.filter(|c| *c > 0.0).map(|c| format!("{:.0}/s", logins as f64 / c))),
        opt(client_cpu.map(|c| format!("{:.0}", 100.0 * c / window))),
    );
    Outcome {
        line,
        ok: failed == 0 && logins > 0,
    }
}
