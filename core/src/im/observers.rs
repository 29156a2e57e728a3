//! Account observers: what other modules see of the work an account's actor
//! does, in order with it. Two moments are offered:
//!
//! - **before offline storage**: the messages about to be stored for an
//!   account with no available resource, which an observer may amend (the
//!   message archive stamps the id it stored each one under, XEP-0359, so
//!   the stamp is delivered with the offline message) and for which it may
//!   start work the sender waits for (by cloning the message's guard);
//! - **after a roster change**: the roster as stored, for modules that
//!   keep something derived from it (the archive's "roster" preference).
//!
//! Observers run in the account's actor, so they may wait (for a store);
//! they must answer in bounded time. Inbound gates (`gates.rs`) have
//! already passed the messages an observer sees.

use std::sync::{Arc, RwLock};

use switchboard_jid::Jid;
use switchboard_spool::store::{BoxFuture, StoredRoster};
use switchboard_xml::Element;

use super::roster::Roster;
use crate::lifecycle::Guard;

/// A module watching accounts' actors. Both methods do nothing unless
/// implemented.
pub trait AccountObserver: Send + Sync {
    /// Messages for `account` about to be stored offline, in the order
    /// they came, each with the guard of the session waiting for it.
    /// `roster` is the account's roster when it could be read.
    fn before_offline<'a>(
        &'a self,
        account: &'a Jid,
        roster: Option<&'a Roster>,
        batch: &'a mut [(Element, Option<Guard>)],
    ) -> BoxFuture<'a, ()> {
        let _ = (account, roster, batch);
        Box::pin(async {})
    }

    /// `account`'s roster changed and was stored as `roster`.
    fn roster_saved(&self, account: &Jid, roster: &StoredRoster) {
        let _ = (account, roster);
    }
}

/// The observers every actor tells, added by modules at start-up.
#[derive(Default)]
pub struct Observers {
    list: RwLock<Vec<Arc<dyn AccountObserver>>>,
}

impl Observers {
    pub fn add(&self, observer: Arc<dyn AccountObserver>) {
        self.list
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    fn all(&self) -> Vec<Arc<dyn AccountObserver>> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.list
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Lets every observer see (and amend) a batch bound for offline
    /// storage, one after the other.
    pub async fn before_offline(
        &self,
        account: &Jid,
        roster: Option<&Roster>,
        batch: &mut [(Element, Option<Guard>)],
    ) {
        for o in self.all() {
            o.before_offline(account, roster, batch).await;
        }
    }

    /// Tells every observer of a stored roster change.
    pub fn roster_saved(&self, account: &Jid, roster: &StoredRoster) {
        for o in self.all() {
            o.roster_saved(account, roster);
        }
    }
}
