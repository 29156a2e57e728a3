//! The `switchboard` binary: the composition root. CLI → config → spool →
//! core, plus the process concerns (home directory, pidfile, logging,
//! signals). Nothing here speaks XMPP.

mod admin_cmd;
mod cli;
mod component_cmd;
mod logging;
mod pidfile;
mod send_cmd;
mod services;
mod storage;
mod user_cmd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use switchboard_config::{Config, ConfigError};
use tokio::signal::unix::{signal, SignalKind};

use cli::{Cli, Command};

/// Where the config comes from: `-c`, else `HOME/etc/switchboard.xml`, else
/// the embedded default (which serves `localhost` out of the box).
enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl ConfigSource {
    fn pick(cli: &Cli, home: &Path) -> ConfigSource {
        if let Some(c) = &cli.config {
            return ConfigSource::File(c.clone());
        }
        let default = home.join("etc").join("switchboard.xml");
        if default.exists() {
            ConfigSource::File(default)
        } else {
            ConfigSource::Embedded
        }
    }

    fn load(&self, home: &Path) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(p) => switchboard_config::load(p, home),
            ConfigSource::Embedded => switchboard_config::embedded_default(home),
        }
    }
}

fn home_dir(cli: &Cli) -> PathBuf {
    let home = cli
        .home
        .clone()
        .or_else(|| std::env::var_os("SWITCHBOARD_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    // Absolute, so that paths stay right whatever the working directory.
    std::path::absolute(&home).unwrap_or(home)
}

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and exit 0; a usage error exits
            // with EX_USAGE (sysexits), which `switchboard send` documents.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    // `send` is a client: it needs no home, config or spool.
    let command = cli.command.take();
    if let Some(Command::Send(args)) = command {
        return send_cmd::run(args);
    }
    let home = home_dir(&cli);
    // Commands for the running server need only the home (its socket),
    // not the config: they work even while the file on disk has an error.
    if matches!(
        command,
        Some(
            Command::Announce { .. }
                | Command::Users(_)
                | Command::Kick { .. }
                | Command::Rooms(_)
                | Command::S2s
        )
    ) {
        return admin_cmd::run(command.expect("matched above"), &home);
    }
    let source = ConfigSource::pick(&cli, &home);
    let config = match source.load(&home) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    match command {
        Some(Command::CheckConfig) => {
            if let Err(e) = services::plans(&config, &services::Backends::for_checking()) {
                eprintln!("{e}");
                return ExitCode::from(78); // EX_CONFIG
            }
            println!(
                "{}: OK ({} host{}: {})",
                config.source,
                config.hosts.len(),
                if config.hosts.len() == 1 { "" } else { "s" },
                config
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Some(Command::User(cmd)) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let done = runtime.block_on(async {
                let stores = storage::open(&config).await?.stores();
                user_cmd::run(cmd, &config, stores.accounts.as_ref()).await
            });
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(msg) => {
                    eprintln!("{msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Storage(cmd)) => {
            logging::init(&config.log.level, cli.debug, None);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(storage::run(cmd, &config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(msg) => {
                    eprintln!("switchboard storage: {msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Send(_)) => unreachable!("handled before the config is loaded"),
        Some(Command::Component(args)) => {
            logging::init(&config.log.level, cli.debug, None);
            match component_cmd::run(args, &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard component: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        // The services' settings are checked before anything starts; they
        // are built for real once the spool is open.
        Some(Command::Run) | None => {
            match services::plans(&config, &services::Backends::for_checking()) {
                Ok(_) => run(config, source, home, cli.debug),
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(78) // EX_CONFIG
                }
            }
        }
        Some(
            Command::Announce { .. }
            | Command::Users(_)
            | Command::Kick { .. }
            | Command::Rooms(_)
            | Command::S2s,
        ) => {
            unreachable!("handled before the config is read")
        }
    }
}

fn run(config: Config, source: ConfigSource, home: PathBuf, debug: bool) -> ExitCode {
    for dir in ["etc", "logs", "run", "spool"] {
        if let Err(e) = std::fs::create_dir_all(home.join(dir)) {
            eprintln!("cannot create {}: {e}", home.join(dir).display());
            return ExitCode::FAILURE;
        }
    }
    let log_file = match config
        .log
        .file
        .as_deref()
        .map(logging::LogFile::open)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config.log.level, debug, log_file.as_ref());
    // One malloc arena per core, before the runtime's threads exist
    // (switchboard_core::memory says why).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    switchboard_core::memory::limit_arenas(cores);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(switchboard_core::memory::BLOCKING_THREADS)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, source, home, debug, log_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: Config,
    source: ConfigSource,
    home: PathBuf,
    debug: bool,
    log_file: Option<logging::LogFile>,
) -> Result<(), String> {
    // Signal handlers first: a SIGHUP or SIGTERM that arrives once we are
    // listening must be handled, not take the default action (exit).
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let _pidfile = pidfile::PidFile::create(&config.pidfile)?;
    let backend = storage::open(&config).await?;
    tracing::info!("storing in {}", backend.describe());
    let stores = backend.stores();
    let backends = services::Backends::from_stores(&stores);
    let plans = services::plans(&config, &backends)?;
    let uploads = backends
        .uploads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    tracing::info!(config = %config.source, home = %home.display(), "starting Switchboard {}", env!("CARGO_PKG_VERSION"));
    let config_for_web = config.clone();
    let mut server = switchboard_core::Server::start(config, &home, stores, debug, plans).await?;
    let admin_socket = switchboard_core::admin::socket::AdminSocket::bind(
        &admin_cmd::socket_path(&home),
        server.admin().clone(),
    )
    .await?;

    // The web side (HTTP, HTTPS, metrics) on the core's handles.
    let web = switchboard_web::start(&config_for_web, server.web_handles(), uploads).await?;

    // Machine-readable readiness on stdout, for scripts and tests that
    // listen on port 0.
    {
        let mut out = std::io::stdout().lock();
        let listeners = server
            .listeners()
            .iter()
            .map(|(kind, addr)| (kind.label(), *addr))
            .chain(web.iter().map(|(kind, addr)| (kind.label(), *addr)));
        for (label, addr) in listeners {
            tracing::info!("listening for {label} on {addr}");
            let _ = writeln!(out, "listening {label} {addr}");
        }
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Some(f) = &log_file {
                    if let Err(e) = f.reopen() {
                        eprintln!("{e}");
                    }
                }
                match source.load(&home) {
                    Ok(new) => {
                        let report = server.reload(new);
                        tracing::info!(applied = ?report.applied, "reloaded the config on SIGHUP; nobody was disconnected");
                        for r in report.needs_restart {
                            tracing::warn!("changed in the config but needs a restart to take effect: {r}");
                        }
                    }
                    Err(e) => tracing::error!("SIGHUP: the config has an error, keeping the running one:\n{e}"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    // No admin command may start on a server that is going away.
    drop(admin_socket);
    server.shutdown().await;
    Ok(())
}
