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

use std::sync::Arc;

use switchboard_spool::store::{BoxFuture, Stores};

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
    /// Work a feature runs in the background for as long as the server
    /// runs (an archive's writer, its expiry): the server spawns each
    /// future once the routing table is built.
    pub background: &'a mut Vec<BoxFuture<'static, ()>>,
}

impl Setup<'_> {
    /// Adds background work (see [`Setup::background`]).
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.background.push(Box::pin(task));
    }
}

pub mod blocking;
pub mod carbons;
pub mod csi;
pub mod forward;
pub mod hints;
pub mod mam;
pub mod online;
pub mod stanza_id;

/// Registers every feature this build has. The order only matters for
/// rows of equal priority; each feature's priority places it among the
/// others (blocking 50, the archive 30, carbons 20, delivery 0).
pub fn register(setup: &mut Setup<'_>) {
    blocking::register(setup);
    mam::register(setup);
    carbons::register(setup);
    csi::register(setup);
}
