//! Instant messaging per RFC 6121: rosters, subscriptions, presence and
//! offline messages, handled by per-account actors (`account.rs`), and the
//! delivery of the host's message of the day (`motd.rs`).

pub mod account;
mod admin_register;
mod motd;
mod offline;
mod presence;
mod remove;
pub mod roster;
mod roster_iq;
mod subscribe;
pub mod subscription;

pub use account::{Accounts, Work};
