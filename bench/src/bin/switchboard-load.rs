//! `switchboard-load`: the load generator. Logs real XMPP clients into a
//! Switchboard server over loopback and prints one summary line per run on
//! standard output (progress and failures go to standard error).
//!
//! ```text
//! switchboard-load idle   --ca HOME/etc/localhost.crt --server-pid PID --sessions 10000 --concurrency 100
//! switchboard-load logins --ca HOME/etc/localhost.crt --server-pid PID --duration 20 --concurrency 32
//! switchboard-load messages --ca HOME/etc/localhost.crt --server-pid PID --users 1000 --duration 20 --window 4
//! switchboard-load messages --ca A/etc/a.crt --server-pid PID --users 1000 \
//!                          --remote-addr 127.0.0.1:5223 --remote-domain b.test \
//!                          --remote-ca B/etc/b.crt --remote-server-pid PID2
//!                         (over federation: senders on one server, receivers on another)
//! switchboard-load fanout --ca HOME/etc/localhost.crt --server-pid PID --user-prefix fan --users 2000 \
//!                         --online 1000 --logins 1000 --contacts 100
//! switchboard-load irc --ca HOME/etc/localhost.crt --server-pid PID --users 1000 --irc-port 6667
//! switchboard-load muc --ca HOME/etc/localhost.crt --server-pid PID --users 1020 --occupants 1000 \
//!                      --service conference.localhost --senders 10 --window 2 --joins 20
//! switchboard-load soak --ca HOME/etc/localhost.crt --server-pid PID --users 200 --clients 200 --minutes 60
//! ```
//!
//! The exit status is 0 when every login succeeded, no session was dropped
//! and every message and presence arrived as it should, 1 otherwise, 2 for
//! bad arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rustls::pki_types::ServerName;
use switchboard_bench::client::Target;
use switchboard_bench::scenario::fanout::{FanoutArgs, Layout};
use switchboard_bench::scenario::irc::IrcArgs;
use switchboard_bench::scenario::messages::{MessagesArgs, Remote};
use switchboard_bench::scenario::muc::MucArgs;
use switchboard_bench::scenario::soak::SoakArgs;
use switchboard_bench::scenario::{self, idle::IdleArgs, logins::LoginsArgs, Env, Outcome};
use switchboard_bench::{procfs, tls};
use switchboard_link::scram::{KeyCache, ScramHash};

#[derive(Parser)]
#[command(
    name = "switchboard-load",
    about = "Load generator for the Switchboard XMPP server (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Log N sessions in, hold them idle, report the server's memory per session.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Sessions to log in and hold.
        #[arg(long, default_value_t = 10_000)]
        sessions: u64,
        /// Logins in flight at once while ramping up.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to hold all sessions, sampling memory once a second.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// Seconds all logins together may take.
        #[arg(long, default_value_t = 600)]
        ramp_timeout: u64,
    },
    /// Repeat full logins; report logins/s, latency and server CPU per login.
    Logins {
        #[command(flatten)]
        common: Common,
        /// Seconds measured (after the warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Seconds of warm-up, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Clients logging in at once, each in a loop.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Stop after this many logins, whatever the duration.
        #[arg(long, default_value_t = 10_000_000)]
        max_logins: u64,
    },
    /// Log --users users in; they send each other chat messages. Reports
    /// messages delivered per second, server CPU per message, latency, losses.
    Messages {
        #[command(flatten)]
        common: Common,
        /// Target rates in messages/s, comma-separated, one step each
        /// (a rising-rate run); 0 = as fast as the window allows.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        rate: Vec<u64>,
        /// Seconds measured per step (after each step's warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Seconds of warm-up per step, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Messages one sender may have in flight (sent, not yet received).
        #[arg(long, default_value_t = 4)]
        window: usize,
        /// Bytes in each message body.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
        /// Logins in flight while the users come online.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Users that stop reading when the messages start (slow clients).
        #[arg(long, default_value_t = 0)]
        stalled: u64,
        /// A second server, federated with the first: --users users log in
        /// there too (the same account names, its domain) and receive every
        /// message, which the users of the first server send (one way,
        /// over the servers' server-to-server link).
        #[arg(long, requires_all = ["remote_domain", "remote_ca"])]
        remote_addr: Option<SocketAddr>,
        /// The second server's domain.
        #[arg(long)]
        remote_domain: Option<String>,
        /// The certificate the second server presents to clients.
        #[arg(long)]
        remote_ca: Option<PathBuf>,
        /// The second server's process id (its CPU time is counted too).
        #[arg(long)]
        remote_server_pid: Option<u32>,
    },
    /// With --online users online, log --logins users with rosters of their
    /// contacts in and out. Reports logins/s, presences/s, server CPU per login.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Users online before the measured logins ({prefix}0 … {prefix}{online-1}).
        #[arg(long, default_value_t = 1000)]
        online: u64,
        /// Users logging in, measured (the next --logins accounts).
        #[arg(long, default_value_t = 1000)]
        logins: u64,
        /// Roster items of a login user (as given to switchboard-mkusers
        /// --roster-contacts; all online users).
        #[arg(long, default_value_t = 100)]
        contacts: u64,
        /// Login users logging in (and out) at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Online users logging in at once (not measured).
        #[arg(long, default_value_t = 64)]
        online_concurrency: usize,
        /// Seconds between the online users' logins and the measured ones
        /// (35 lets the server's account actors drop their cached rosters).
        #[arg(long, default_value_t = 0)]
        settle: u64,
        /// Seconds a phase may take.
        #[arg(long, default_value_t = 120)]
        phase_timeout: u64,
    },
    /// Bridge --users users into IRC through the transport: each joins 5
    /// channels; reports memory per bridged user and messages relayed per
    /// second both ways. Needs the server's IRC transport and its IRC server.
    /// Group chat fan-out: OCCUPANTS users in one room, SENDERS of them
    /// sending; messages and delivered copies per second, server CPU per
    /// copy, join latency into the full room (needs --users at least
    /// OCCUPANTS + JOINS).
    Muc {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "conference.localhost")]
        service: String,
        #[arg(long, default_value_t = 100)]
        occupants: u64,
        #[arg(long, default_value_t = 10)]
        senders: u64,
        #[arg(long, default_value_t = 2)]
        window: usize,
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        #[arg(long, default_value_t = 20)]
        joins: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 64)]
        body_size: usize,
    },
    Irc {
        #[command(flatten)]
        common: Common,
        /// The IRC server's port on 127.0.0.1 (for the observer client).
        #[arg(long)]
        irc_port: u16,
        /// The transport's hostname.
        #[arg(long, default_value = "irc.localhost")]
        transport: String,
        /// The IRC server as named in room addresses.
        #[arg(long, default_value = "127.0.0.1")]
        irc_server: String,
        /// Users sharing the same 5 channels.
        #[arg(long, default_value_t = 25)]
        group_size: u64,
        /// Groupchat messages each user sends (XMPP → IRC).
        #[arg(long, default_value_t = 5)]
        messages: u64,
        /// Lines the observer sends to each channel (IRC → XMPP).
        #[arg(long, default_value_t = 5)]
        irc_lines: u64,
        /// Logins in flight while the users come online.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// --clients clients log in and out, chat and change presence for
    /// --minutes; the server's memory and open files are read every
    /// minute, and compared at the end, once every client has left, with
    /// their values before the first login.
    Soak {
        #[command(flatten)]
        common: Common,
        /// Clients churning at once (user0 … user{clients-1}).
        #[arg(long, default_value_t = 200)]
        clients: u64,
        /// How long the churn lasts.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Seconds between readings of the server.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Seconds the server gets after the last client left, before the
        /// final reading (it trims its heap within two minutes).
        #[arg(long, default_value_t = 150)]
        settle: u64,
        /// Shortest session, seconds.
        #[arg(long, default_value_t = 20)]
        stay_min: u64,
        /// Longest session, seconds.
        #[arg(long, default_value_t = 180)]
        stay_max: u64,
        /// Longest pause between a client's sessions, seconds.
        #[arg(long, default_value_t = 20)]
        pause: u64,
        /// Mean seconds between a client's messages and presence changes.
        #[arg(long, default_value_t = 5)]
        think: u64,
        /// MiB the resident memory may end above its start for the verdict
        /// "flat" (see bench/README.md, "Soak").
        #[arg(long, default_value_t = 8)]
        rss_slack_mib: u64,
    },
}

/// Options every scenario takes.
#[derive(Args)]
struct Common {
    /// The server's client (STARTTLS) listener. Loopback addresses only.
    #[arg(long, default_value = "127.0.0.1:5222")]
    addr: SocketAddr,
    /// The XMPP domain to log into.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// PEM file of the certificate to trust (the server's HOME/etc/localhost.crt,
    /// or the self-signed certificate run.sh made for Prosody or ejabberd):
    /// the server must present exactly this certificate.
    #[arg(long)]
    ca: PathBuf,
    /// The SCRAM hash to log in with: sha-256, or sha-1 for servers that
    /// offer only SCRAM-SHA-1 (Prosody with hashed storage).
    #[arg(long, default_value = "sha-256", value_parser = ScramHash::parse)]
    scram: ScramHash,
    /// Log in over plain TCP, without STARTTLS (the server must allow it),
    /// to measure what a session costs without TLS.
    #[arg(long)]
    no_tls: bool,
    /// Speak XMPP over WebSocket (RFC 7395) to the server's web listener
    /// at this address (wss://ADDR/xmpp-websocket; ws:// with --no-tls)
    /// instead of TCP to --addr. Loopback addresses only.
    #[arg(long)]
    websocket: Option<SocketAddr>,
    /// Number of accounts: user0 … user{N-1}, used round-robin.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Account name prefix.
    #[arg(long, default_value = "user")]
    user_prefix: String,
    /// The accounts' password.
    #[arg(long, default_value = "pw")]
    password: String,
    /// The server's process id, to read its memory and CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds a login (or a close) may take before it counts as failed.
    #[arg(long, default_value_t = 30)]
    step_timeout: u64,
}

impl Common {
    /// A server to log in to, with this run's login settings.
    fn target(
        &self,
        addr: SocketAddr,
        domain: &str,
        ca: &std::path::Path,
    ) -> Result<Target, String> {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address: this tool only loads a server on this machine"
            ));
        }
        let config = tls::client_config(ca)?;
        let server_name = ServerName::try_from(domain.to_string())
            .map_err(|e| format!("'{domain}' is not a server name: {e}"))?;
        Ok(Target {
            addr,
            domain: domain.to_string(),
            server_name,
            tls: tokio_rustls::TlsConnector::from(config),
            keys: Arc::new(KeyCache::default()),
            mechanism: self.scram,
            plain: self.no_tls,
            websocket: self.websocket,
            step_timeout: Duration::from_secs(self.step_timeout.max(1)),
        })
    }

    fn env(&self) -> Result<Env, String> {
        if !self.addr.ip().is_loopback() {
            return Err(format!(
                "{} is not a loopback address: this tool only loads a server on this machine",
                self.addr
            ));
        }
        if let Some(ws) = self.websocket.filter(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "{ws} is not a loopback address: this tool only loads a server on this machine"
            ));
        }
        if self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        Ok(Env {
            target: Arc::new(self.target(self.addr, &self.domain, &self.ca)?),
            users: self.users,
            user_prefix: self.user_prefix.clone(),
            password: self.password.clone(),
            server_pid: self.server_pid,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.scenario {
        Scenario::Idle { common, .. }
        | Scenario::Logins { common, .. }
        | Scenario::Messages { common, .. }
        | Scenario::Fanout { common, .. }
        | Scenario::Muc { common, .. }
        | Scenario::Irc { common, .. }
        | Scenario::Soak { common, .. } => common,
    };
    let env = match common.env() {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            return ExitCode::from(2);
        }
    };
    let nofile = procfs::raise_nofile_limit();
    let sessions = match &cli.scenario {
        Scenario::Idle { sessions, .. } => *sessions,
        Scenario::Logins { concurrency, .. } => *concurrency as u64,
        Scenario::Messages {
            common,
            remote_addr,
            ..
        } => common.users * if remote_addr.is_some() { 2 } else { 1 },
        Scenario::Fanout { online, logins, .. } => online + logins,
        Scenario::Muc { common, .. } => common.users,
        // One XMPP session and one IRC connection per user.
        Scenario::Irc { common, .. } => common.users * 2,
        Scenario::Soak { clients, .. } => *clients,
    };
    if nofile < sessions + 100 {
        eprintln!(
            "warning: open file limit {nofile} is below the {sessions} sessions; raise `ulimit -n`"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Outcome = runtime.block_on(async {
        match cli.scenario {
            Scenario::Idle {
                sessions,
                concurrency,
                hold,
                ramp_timeout,
                ..
            } => {
                let args = IdleArgs {
                    sessions,
                    concurrency,
                    hold: Duration::from_secs(hold),
                    ramp_timeout: Duration::from_secs(ramp_timeout),
                };
                scenario::idle::run(env, args).await
            }
            Scenario::Logins {
                duration,
                warmup,
                concurrency,
                max_logins,
                ..
            } => {
                let args = LoginsArgs {
                    duration: Duration::from_secs(duration.max(1)),
                    warmup: Duration::from_secs(warmup),
                    concurrency,
                    max_logins,
                };
                scenario::logins::run(env, args).await
            }
            Scenario::Messages {
                rate,
                duration,
                warmup,
                window,
                body_size,
                concurrency,
                stalled,
                remote_addr,
                remote_domain,
                remote_ca,
                remote_server_pid,
                common,
            } => {
                let remote = match (remote_addr, remote_domain, remote_ca) {
                    (Some(addr), Some(domain), Some(ca)) => {
                        match common.target(addr, &domain, &ca) {
                            Ok(t) => Some(Remote {
                                target: Arc::new(t),
                                server_pid: remote_server_pid,
                            }),
                            Err(e) => {
                                return Outcome {
                                    line: format!("s2s error: {e}"),
                                    ok: false,
                                }
                            }
                        }
                    }
                    _ => None,
                };
                let args = MessagesArgs {
                    rates: if rate.is_empty() { vec![0] } else { rate },
                    duration: Duration::from_secs(duration.max(1)),
                    warmup: Duration::from_secs(warmup),
                    window: window.max(1),
                    body_size,
                    concurrency,
                    stalled,
                    remote,
                };
                scenario::messages::run(env, args).await
            }
            Scenario::Muc {
                service,
                occupants,
                senders,
                window,
                duration,
                warmup,
                joins,
                concurrency,
                body_size,
                ..
            } => {
                let args = MucArgs {
                    service,
                    occupants: occupants.max(1),
                    senders,
                    window: window.max(1),
                    duration: Duration::from_secs(duration.max(1)),
                    warmup: Duration::from_secs(warmup),
                    joins,
                    concurrency,
                    body_size,
                };
                scenario::muc::run(env, args).await
            }
            Scenario::Fanout {
                online,
                logins,
                contacts,
                concurrency,
                online_concurrency,
                settle,
                phase_timeout,
                ..
            } => {
                let layout = match Layout::new(online, logins, contacts) {
                    Ok(l) => l,
                    Err(e) => {
                        return Outcome {
                            line: format!("fanout error: {e}"),
                            ok: false,
                        }
                    }
                };
                let args = FanoutArgs {
                    layout,
                    concurrency,
                    online_concurrency,
                    settle: Duration::from_secs(settle),
                    phase_timeout: Duration::from_secs(phase_timeout.max(1)),
                };
                scenario::fanout::run(env, args).await
            }
            Scenario::Irc {
                irc_port,
                transport,
                irc_server,
                group_size,
                messages,
                irc_lines,
                concurrency,
                ..
            } => {
                let args = IrcArgs {
                    irc_port,
                    transport,
                    irc_server,
                    group_size,
                    messages_per_user: messages,
                    irc_lines_per_channel: irc_lines,
                    concurrency,
                };
                scenario::irc::run(env, args).await
            }
            Scenario::Soak {
                clients,
                minutes,
                interval,
                settle,
                stay_min,
                stay_max,
                pause,
                think,
                rss_slack_mib,
                ..
            } => {
                let args = SoakArgs {
                    clients,
                    duration: Duration::from_secs(minutes.max(1) * 60),
                    interval: Duration::from_secs(interval.max(1)),
                    settle: Duration::from_secs(settle),
                    stay: (
                        Duration::from_secs(stay_min),
                        Duration::from_secs(stay_max.max(stay_min)),
                    ),
                    pause: Duration::from_secs(pause),
                    think: Duration::from_secs(think.max(1)),
                    rss_slack_kib: rss_slack_mib * 1024,
                };
                scenario::soak::run(env, args).await
            }
        }
    });
    println!("{}", outcome.line);
    if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
