//! Features: XMPP extensions built on the core's seams, one file (or
//! folder) each, each with a `register` function that adds its rows to
//! the routing table, its IQ handlers, its stream features and nonza
//! hooks, its inbound gates — whatever it needs — from a [`Setup`]. The
//! server's composition calls [`register`]; adding a feature is adding a
//! file and one line there, never an edit to the router.
//!
//! What a feature may use: the routing table and IQ registry it registers
//! into, the stores (only the kinds it needs), the live settings, and the
//! account actors' gates. Per-session state goes into the session's
//! `SessionExt` (`crate::sessions`), keyed by the feature's own types.

pub mod push;

use std::sync::Arc;

use switchboard_spool::store::Stores;

use crate::im::Accounts;
use crate::routing::iq::Registry;
use crate::routing::table::TableBuilder;
use crate::settings::LiveSettings;

/// What a feature's `register` gets.
pub struct Setup<'a> {
    pub table: &'a mut TableBuilder,
    pub iq: &'a mut Registry,
    pub stores: &'a Stores,
    pub settings: &'a Arc<LiveSettings>,
    pub accounts: &'a Arc<Accounts>,
}

/// Registers every feature this build has.
pub fn register(setup: &mut Setup<'_>) {
    push::register(setup);
}
