//! Instant messaging per RFC 6121: rosters, subscriptions, presence and
//! offline messages, handled by per-account actors (`account.rs`) that the
//! routing table's IM rows (`routes.rs`) feed, and the delivery of the
//! host's message of the day (`motd.rs`). Other modules check what reaches
//! an actor through gates (`gates.rs`), watch what it does through
//! observers (`observers.rs`) and queue work of their own to the actors as
//! jobs (`scope.rs`).

pub mod account;
mod admin_register;
pub mod gates;
mod motd;
pub mod observers;
mod offline;
mod presence;
mod remove;
pub mod roster;
mod roster_iq;
pub mod routes;
pub mod scope;
mod subscribe;
pub mod subscription;
mod unregister;

use std::sync::Arc;

pub use account::{Accounts, ImContext, Work};
pub use gates::{Gate, Gates, InboundGate};
pub use observers::{AccountObserver, Observers};
pub use scope::{AccountScope, Job};

use crate::routing::table::TableBuilder;

/// Adds the IM rows to the routing table.
pub fn register(t: &mut TableBuilder, accounts: &Arc<Accounts>) {
    routes::register(t, accounts);
    unregister::register(t, accounts);
}
