//! `switchboard user add|passwd|del|list`: account management straight on
//! the storage backend. The file spool's per-account lock makes this safe
//! while the server runs, and the server reads an account's credentials
//! at each login.

use std::io::{BufRead, IsTerminal};

use switchboard_config::Config;
use switchboard_core::accounts::AccountError;
use switchboard_jid::Jid;
use switchboard_spool::store::{AccountRef, AccountStore, StoreError};

use crate::cli::UserCommand;

/// Runs a user subcommand; `Err` is the message for stderr.
pub async fn run(
    cmd: UserCommand,
    config: &Config,
    store: &dyn AccountStore,
) -> Result<(), String> {
    match cmd {
        UserCommand::Add { jid } => {
            let (host, user) = account(&jid, config)?;
            let password = read_password()?;
            switchboard_core::accounts::create(store, &host, &user, password, config.limits.scram_iterations)
                .await
                .map_err(|e| match e {
                    AccountError::Store(StoreError::AlreadyExists) => {
                        format!("{user}@{host} already exists; use `switchboard user passwd {user}@{host}` to change its password")
                    }
                    e => format!("cannot create {user}@{host}: {e}"),
                })?;
            println!("created {user}@{host}");
        }
        UserCommand::Passwd { jid } => {
            let (host, user) = account(&jid, config)?;
            let password = read_password()?;
            switchboard_core::accounts::set_password(store, &host, &user, password, config.limits.scram_iterations)
                .await
                .map_err(|e| match e {
                    AccountError::Store(StoreError::NotFound) => {
                        format!("{user}@{host} does not exist; create it with `switchboard user add {user}@{host}`")
                    }
                    e => format!("cannot change the password of {user}@{host}: {e}"),
                })?;
            println!("changed the password of {user}@{host}");
        }
        UserCommand::Del { jid } => {
            let (host, user) = account(&jid, config)?;
            match store.delete(&AccountRef::new(&host, &user)).await {
                Ok(true) => println!("deleted {user}@{host}"),
                Ok(false) => return Err(format!("{user}@{host} does not exist")),
                Err(e) => return Err(format!("cannot delete {user}@{host}: {e}")),
            }
        }
        UserCommand::List { host } => {
            let host = switchboard_jid::normalize_domain(&host)
                .map_err(|e| format!("'{host}' is not a domain: {e}"))?;
            check_host(&host, config)?;
            for u in store.list(&host).await.map_err(|e| e.to_string())? {
                println!("{u}@{host}");
            }
        }
    }
    Ok(())
}

fn check_host(host: &str, config: &Config) -> Result<(), String> {
    if config.host(host).is_none() {
        let known: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(format!(
            "{host} is not a host of this server (hosts: {})",
            known.join(", ")
        ));
    }
    Ok(())
}

/// Parses `user@host` into normalized parts of a configured host.
fn account(jid: &str, config: &Config) -> Result<(String, String), String> {
    let j = Jid::parse(jid).map_err(|e| format!("'{jid}' is not a valid address: {e}"))?;
    let Some(user) = j.node() else {
        return Err(format!(
            "'{jid}' names no user: write it as user@{}",
            j.domain()
        ));
    };
    if j.resource().is_some() {
        return Err(format!(
            "'{jid}' has a resource; give the bare address {}",
            j.to_bare()
        ));
    }
    check_host(j.domain(), config)?;
    Ok((j.domain().to_string(), user.to_string()))
}

/// Reads one line from stdin as the password. On a terminal, echo is
/// turned off and the user is prompted (passwords never go on the command
/// line, where `ps` would show them).
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let _echo = if tty {
        eprint!("Password: ");
        Some(EchoOff::new())
    } else {
        None
    };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if tty {
        eprintln!();
    }
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        return Err("the password is empty (give it on standard input)".into());
    }
    Ok(p)
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed termios that
        // tcgetattr fills in; failures leave the terminal untouched.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return EchoOff(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes saved in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}
