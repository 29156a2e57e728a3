//! The scenarios of the load generator, one module each: [`idle`] (memory
//! per idle authenticated session), [`logins`] (full logins per second),
//! [`messages`] (chat messages routed per second between online users) and
//! [`fanout`] (logins of users with 100-contact rosters: presence
//! broadcast and probes), [`muc`] (group chat: one room's fan-out of
//! groupchat messages, server CPU per delivered copy, join latency into a
//! full room), [`irc`] (the IRC transport: memory per bridged user,
//! messages relayed per second both ways), and [`soak`] (clients logging
//! in and out, chatting and changing presence for an hour, the server's
//! memory and file descriptors read once a minute).
//! A scenario gets an [`Env`] (where to connect, which accounts, which
//! process to measure) and returns an [`Outcome`] whose summary line the
//! binary prints.

pub mod fanout;
pub mod idle;
pub mod irc;
pub mod logins;
pub mod messages;
pub mod muc;
pub mod soak;

use std::sync::Arc;
use std::time::Duration;

use crate::client::{Account, Target};
use crate::procfs;

/// What every scenario needs.
pub struct Env {
    pub target: Arc<Target>,
    /// Accounts are `{user_prefix}0` … `{user_prefix}{users-1}`.
    pub users: u64,
    pub user_prefix: String,
    pub password: String,
    /// The server process to measure, if known.
    pub server_pid: Option<u32>,
}

impl Env {
    /// The account for the `n`-th connection (users are reused round-robin).
    pub fn account(&self, n: u64, resource: String) -> Account {
        Account {
            user: format!("{}{}", self.user_prefix, n % self.users.max(1)),
            password: self.password.clone(),
            resource,
        }
    }

    pub fn server_memory(&self) -> Option<procfs::Memory> {
        let pid = self.server_pid?;
        match procfs::memory(&pid.to_string()) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }

    pub fn server_cpu(&self) -> Option<Duration> {
        let pid = self.server_pid?;
        match procfs::cpu_time(&pid.to_string()) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }
}

/// The result of a run: one `key=value` summary line, and whether the run
/// went as it should (no failed logins, no dropped sessions).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub line: String,
    pub ok: bool,
}

/// Formats an optional number, `-` when absent.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
