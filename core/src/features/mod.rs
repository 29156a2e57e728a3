//! Features: XMPP extensions built on the core's seams, one file (or
//! folder) each, each with a `register` function that adds its rows to
//! the routing table, its IQ handlers, its stream features and nonza
//! hooks, its inbound gates — whatever it needs — from a [`Setup`]. The
//! server's composition calls [`register`]; adding a feature is adding a
//! file and one line there, never an edit to the router.
//!
//! What a feature may use: the routing table and IQ registry it registers
//! into, the stores (only the kinds it needs), the live settings, and the
//! account actors: their gates, and jobs for work on an account's state in
//! order with the rest of it (`crate::im::scope`). Per-session state goes
//! into the session's `SessionExt` (`crate::sessions`), keyed by the
//! feature's own types. Features may build on each other through the
//! handles `register` passes along (PEP's node rules for bookmarks and
//! avatars, entity capabilities for PEP).

pub mod avatar;
pub mod bookmarks;
pub mod caps;
pub mod contact_addresses;
pub mod nick;
pub mod pep;
#[cfg(test)]
pub(crate) mod test_support;

pub mod push;

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

/// The handles of the features other parts (and tests) may need.
pub struct Handles {
    pub caps: Arc<caps::Caps>,
    pub pep: Arc<pep::Pep>,
}

/// Registers every feature this build has. The order only matters for
/// rows of equal priority; each feature's priority places it among the
/// others (blocking 50, the archive 30, carbons 20, delivery 0). The
/// server's own entity capabilities come last: their hash covers
/// everything the others add to the server's disco#info.
pub fn register(setup: &mut Setup<'_>) -> Handles {
    blocking::register(setup);
    push::register(setup);
    mam::register(setup);
    carbons::register(setup);
    csi::register(setup);
    contact_addresses::register(setup);
    let caps = caps::register(setup);
    let pep = pep::register(setup, &caps);
    bookmarks::register(setup, &pep);
    avatar::register(setup, &pep);
    nick::register(&pep);
    caps::advertise(setup);
    Handles { caps, pep }
}
