//! Instant messaging per RFC 6121: rosters, subscriptions, presence and
//! offline messages, handled by per-account actors (`account.rs`).

pub mod account;
mod admin_register;
mod offline;
mod presence;
mod remove;
pub mod roster;
mod roster_iq;
mod subscribe;
pub mod subscription;

pub use account::{Accounts, Work};
