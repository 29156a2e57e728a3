//! `switchboard-mkusers`: creates the benchmark's accounts
//! (`{prefix}0` … `{prefix}{N-1}` on one host, all with the same password)
//! through the spool crate, exactly as `switchboard user add` does, but in
//! one process and on several threads, so that 10,000 accounts take
//! seconds rather than minutes. Accounts that already exist are kept, so a
//! second run is quick.
//!
//! ```text
//! switchboard-mkusers -H HOME -c HOME/etc/switchboard.xml --users 10000 --password pw
//! ```
//!
//! The spool directory and the SCRAM iteration count come from the config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use switchboard_core::accounts::{self, AccountError};
use switchboard_spool::{FileSpool, SpoolError};

#[derive(Parser)]
#[command(
    name = "switchboard-mkusers",
    about = "Create benchmark accounts in a Switchboard spool"
)]
struct Cli {
    /// The server's home directory.
    #[arg(short = 'H', long)]
    home: PathBuf,
    /// The config file (its spool dir and scram-iterations are used).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// The host to create the accounts on.
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    #[arg(long, default_value = "user")]
    prefix: String,
    #[arg(long, default_value = "pw")]
    password: String,
    /// Threads deriving keys and writing files.
    #[arg(long, default_value_t = 2)]
    threads: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = std::path::absolute(&cli.home).unwrap_or(cli.home.clone());
    let config = match switchboard_config::load(&cli.config, &home) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78);
        }
    };
    if config.host(&cli.host).is_none() {
        eprintln!("{} is not a host of {}", cli.host, cli.config.display());
        return ExitCode::FAILURE;
    }
    let spool = match FileSpool::open(&config.spool.dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the spool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let iterations = config.limits.scram_iterations;
    let start = Instant::now();
    let created = AtomicU64::new(0);
    let existing = AtomicU64::new(0);
    let threads = cli.threads.clamp(1, 64);
    let result: Result<(), String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (spool, cli, created, existing) = (&spool, &cli, &created, &existing);
                s.spawn(move || -> Result<(), String> {
                    for n in (t..cli.users).step_by(threads as usize) {
                        let user = format!("{}{n}", cli.prefix);
                        match accounts::create(spool, &cli.host, &user, &cli.password, iterations) {
                            Ok(()) => created.fetch_add(1, Ordering::Relaxed),
                            Err(AccountError::Spool(SpoolError::AlreadyExists)) => {
                                existing.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => {
                                return Err(format!("cannot create {user}@{}: {e}", cli.host))
                            }
                        };
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
    });
    if let Err(e) = result {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!(
        "mkusers created={} existing={} iterations={iterations} seconds={:.1}",
        created.load(Ordering::Relaxed),
        existing.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
