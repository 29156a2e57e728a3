//! `switchboard-mkusers`: creates the benchmark's accounts
//! (`{prefix}0` … `{prefix}{N-1}` on one host, all with the same password)
//! through the spool crate, exactly as `switchboard user add` does, but in
//! one process and on several threads, so that 10,000 accounts take
//! seconds rather than minutes. Accounts that already exist are kept, so a
//! second run is quick.
//!
//! ```text
//! switchboard-mkusers -H HOME -c HOME/etc/switchboard.xml --users 10000 --password pw
//! switchboard-mkusers -H HOME -c CONFIG --prefix fan --users 2000 --roster-contacts 100 --roster-online 1000
//! ```
//!
//! The spool directory and the SCRAM iteration count come from the config.
//!
//! With `--roster-contacts R` every account also gets a roster (replacing
//! any it had), laid out as the `fanout` scenario expects
//! ([`Layout`]): the first `--roster-online M` accounts and the other
//! N − M are each other's contacts, R per login-side account, all with
//! `subscription='both'` on both sides. The roster is built with the
//! server's own types (`Roster::to_spool`) and stored in the account's spool
//! record as `<roster xmlns='urn:switchboard:spool:1' ver='1'>`, which is
//! far quicker than subscribing 100,000 pairs over XMPP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use switchboard_bench::scenario::fanout::Layout;
use switchboard_core::accounts::{self, AccountError};
use switchboard_core::im::roster::{Item, Roster};
use switchboard_core::im::subscription::{State, Subscription};
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, StoreError};

/// `switchboard_xml::ns::SPOOL`, the namespace of the spool's own elements
/// (spelled out so that this crate needs no direct dependency on the XML
/// crate).

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
    /// Also write a roster of this many contacts per login-side account
    /// (0: leave rosters alone).
    #[arg(long, default_value_t = 0)]
    roster_contacts: u64,
    /// With --roster-contacts: how many of the accounts are the online
    /// side (default: half).
    #[arg(long)]
    roster_online: Option<u64>,
}

/// The roster of account `n`: every contact `both`, added by the user.
fn roster_for(layout: &Layout, n: u64, prefix: &str, host: &str) -> Result<Roster, String> {
    let mut roster = Roster {
        ver: 1,
        ..Default::default()
    };
    for c in layout.contacts_of(n) {
        let jid = format!("{prefix}{c}@{host}");
        let mut item = Item::new(jid.parse().map_err(|e| format!("{jid}: {e}"))?);
        item.state = State {
            sub: Subscription::Both,
            ..Default::default()
        };
        item.user_added = true;
        roster.items.insert(item.jid.clone(), item);
    }
    Ok(roster)
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
    let stores = match FileStores::open(&config.spool.dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the spool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let iterations = config.limits.scram_iterations;
    let layout = if cli.roster_contacts > 0 {
        let online = cli.roster_online.unwrap_or(cli.users / 2);
        match Layout::new(
            online,
            cli.users.saturating_sub(online),
            cli.roster_contacts,
        ) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let rosters = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let created = Arc::new(AtomicU64::new(0));
    let existing = Arc::new(AtomicU64::new(0));
    let threads = cli.threads.clamp(1, 64);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads as usize)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Arc::new(cli);
    let layout = Arc::new(layout);
    // `threads` workers, each creating every `threads`-th account: PBKDF2
    // runs on the blocking pool, so they derive keys side by side.
    let result: Result<(), String> = runtime.block_on(async {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stores, cli, created, existing) = (
                    stores.clone(),
                    cli.clone(),
                    created.clone(),
                    existing.clone(),
                );
                let (layout, rosters) = (layout.clone(), rosters.clone());
                tokio::spawn(async move {
                    for n in (t..cli.users).step_by(threads as usize) {
                        let user = format!("{}{n}", cli.prefix);
                        let made = accounts::create(
                            stores.accounts.as_ref(),
                            &cli.host,
                            &user,
                            cli.password.clone(),
                            iterations,
                        )
                        .await;
                        match made {
                            Ok(()) => created.fetch_add(1, Ordering::Relaxed),
                            Err(AccountError::Store(StoreError::AlreadyExists)) => {
                                existing.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => {
                                return Err(format!("cannot create {user}@{}: {e}", cli.host))
                            }
                        };
                        if let Some(layout) = layout.as_ref() {
                            let roster = roster_for(layout, n, &cli.prefix, &cli.host)?.to_stored();
                            stores
                                .rosters
                                .save(&AccountRef::new(&cli.host, &user), &roster)
                                .await
                                .map_err(|e| {
                                    format!("cannot write the roster of {user}@{}: {e}", cli.host)
                                })?;
                            rosters.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for w in workers {
            w.await
                .unwrap_or_else(|_| Err("a worker panicked".into()))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!(
        "mkusers created={} existing={} rosters={} iterations={iterations} seconds={:.1}",
        created.load(Ordering::Relaxed),
        existing.load(Ordering::Relaxed),
        rosters.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
