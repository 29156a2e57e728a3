//! Work a feature runs inside an account's actor: a [`Job`] queued with
//! [`Accounts::run_for`] runs there in order with the account's other work
//! (its presence, roster changes, account-data IQs), and sees the account
//! through an [`AccountScope`]: its roster, its stored documents, its
//! sessions, and a way to send stanzas whose work counts for the session
//! that waits (the job's ticket).
//!
//! This is how a feature keeps state that belongs to an account (PEP nodes,
//! XEP-0163) under the rule "one account, one order" without an actor of
//! its own: a publish and the subscription approval before it are handled
//! in the order they arrived, and a job that reads the roster sees the one
//! the actor keeps, not a copy that may be behind.
//!
//! A job must answer in bounded time (it holds up the account's queue)
//! and must not wait for another account's actor (two jobs waiting for
//! each other would never end); it queues work for other accounts with
//! [`AccountScope::accounts`] instead.

use std::fmt;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, BoxFuture};
use switchboard_xml::Element;

use super::account::{Account, Accounts, LoadError};
use super::roster::Roster;
use crate::lifecycle::Guard;
use crate::routing::Router;
use crate::stanza::StanzaError;

/// Work for an account's actor from a feature.
pub struct Job(Box<dyn for<'a> FnOnce(AccountScope<'a>) -> BoxFuture<'a, ()> + Send>);

impl Job {
    /// A job from a closure that returns its (boxed) future, which may
    /// borrow the scope it is given.
    pub fn new<F>(f: F) -> Job
    where
        F: for<'a> FnOnce(AccountScope<'a>) -> BoxFuture<'a, ()> + Send + 'static,
    {
        Job(Box::new(f))
    }

    pub(super) async fn run(self, account: &mut Account) {
        (self.0)(AccountScope { account }).await
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Job")
    }
}

/// An account as a job sees it, inside the account's actor.
pub struct AccountScope<'a> {
    account: &'a mut Account,
}

impl AccountScope<'_> {
    /// The account's bare JID.
    pub fn bare(&self) -> &Jid {
        &self.account.bare
    }

    /// The account as the stores name it.
    pub fn account(&self) -> &AccountRef {
        &self.account.account
    }

    pub fn router(&self) -> &Router {
        &self.account.router
    }

    /// The account actors, to queue work for other accounts (never to
    /// wait for it).
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.account.accounts
    }

    /// The account's small documents (vCard, private XML, feature data).
    pub fn data(&self) -> &dyn AccountDataStore {
        self.account.stores().data.as_ref()
    }

    /// The guard of the session waiting for this work, if any: hand a
    /// copy to work this job starts elsewhere so the session keeps waiting.
    pub fn ticket(&self) -> Option<Guard> {
        self.account.ticket.as_ref().map(|t| t.tracker().guard())
    }

    /// The roster the actor keeps (loaded once per actor life); `None`
    /// when there is no such account or it cannot be read (logged).
    pub async fn roster(&mut self) -> Option<&Roster> {
        match self.account.roster().await {
            Ok(r) => Some(r),
            Err(LoadError::NoAccount) => None,
            Err(LoadError::Store(_)) => None,
        }
    }

    /// Sends a stanza on through the router; work it starts counts for the
    /// session this job is for.
    pub fn send(&self, el: Element) {
        self.account.send(el);
    }

    /// Answers an IQ addressed to this account (or sent without `to` by
    /// its owner) with a result or an error, from the account's JID.
    pub fn reply(&self, iq: &Element, answer: Result<Option<Element>, StanzaError>) {
        self.account.answer(iq, answer);
    }

    /// Runs the account-data handler registered for this IQ (the vCard,
    /// private XML, …) as the actor would, and returns its answer without
    /// sending it: for a feature that adds to what a handler does (a
    /// vCard photo also published as a PEP avatar). `None` when no handler
    /// takes the IQ.
    pub async fn data_iq(&mut self, iq: &Element) -> Option<Result<Option<Element>, StanzaError>> {
        self.account.run_data_handler(iq).await
    }

    /// Sends the current presence of each of the account's available
    /// resources again, to its subscribers and its own resources, after
    /// `amend` changed it (XEP-0153: a new avatar hash); the session table
    /// keeps the amended presence for probes. Resources whose presence
    /// `amend` leaves as it was are not sent again.
    pub async fn rebroadcast_presence(&mut self, amend: &(dyn Fn(&mut Element) + Sync)) {
        self.account.rebroadcast(amend).await
    }
}
