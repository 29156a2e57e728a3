//! Account actors: one task per local account that has work, owning that
//! account's roster while it lives. Everything that reads or changes an
//! account's state goes through its actor, so it happens in order: a
//! subscription and the message after it, a vCard set and the get after
//! it. Spool I/O runs on the blocking pool; the router never waits for it.
//!
//! An actor exits after a quiet spell. It first removes itself from the
//! table, then closes its queue and drains it, so work queued just before
//! is still handled and work sent just after finds a closed queue and
//! starts a new actor.
//!
//! The actors get their work from the routing table's IM rows
//! (`routes.rs`) and from administration; they send stanzas on through
//! the router handle they are started with.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use switchboard_jid::Jid;
use switchboard_spool::store::{
    AccountDataStore, AccountRef, AccountStore, OfflineStore, RosterStore, StoreError,
};
use switchboard_xml::{ns, Element};

use super::roster::Roster;
use crate::lifecycle::Guard;
use crate::notices::MotdBoard;
use crate::queue;
use crate::routing::iq::{DataRequest, IqType};
use crate::routing::table::SessionEnd;
use crate::routing::Router;
use crate::settings::{LiveSettings, Settings};
use crate::stanza::{error_reply, iq_result, stanza_type, StanzaError};

/// How long an actor without work keeps its roster cached.
const IDLE: Duration = Duration::from_secs(30);

/// Work for an account.
#[derive(Debug)]
pub enum Work {
    /// A stanza from one of the account's own sessions that needs its
    /// state: broadcast presence, outbound subscriptions, roster and
    /// account-data IQs.
    Own(Element),
    /// A stanza addressed to the account that needs its state: inbound
    /// subscriptions, probes, messages with no available resource, IQs to
    /// the bare JID.
    Inbound(Element),
    /// A session ended: tell contacts, record last activity.
    SessionEnded(SessionEnd),
    /// The host's message of the day changed: show it to the account's
    /// available resources unless the account has seen it.
    Motd,
    /// The account unregistered from the service at this hostname: its
    /// roster items there go (XEP-0100 §4.3), as if the user removed them.
    DropServiceItems(String),
    /// An admin deletes the account (XEP-0133): as the user's own removal,
    /// then the outcome is sent back (`item-not-found` if there is no
    /// such account).
    Remove(tokio::sync::oneshot::Sender<Result<(), StanzaError>>),
    /// Nothing to do but say so: everything queued before is done (see
    /// [`Accounts::flushed`]).
    Flush(tokio::sync::oneshot::Sender<()>),
    /// A feature's work on the account (see `scope.rs`).
    Job(super::scope::Job),
    /// The place of a session the server gave up on: what it leaves
    /// behind is redelivered here, before anything queued after (see
    /// `Router::give_up`).
    TakeBack(crate::sessions::TakeBack),
}

/// What every actor works with besides the router: the stores of the
/// kinds an account has (not the archive or service data, which are
/// others' business), the settings, and the host's message of the day.
pub struct ImContext {
    pub accounts: Arc<dyn AccountStore>,
    pub rosters: Arc<dyn RosterStore>,
    pub offline: Arc<dyn OfflineStore>,
    pub data: Arc<dyn AccountDataStore>,
    pub settings: Arc<LiveSettings>,
    pub motds: Arc<MotdBoard>,
    /// What other modules check inbound work against (see `gates.rs`).
    pub gates: Arc<super::Gates>,
    /// What other modules watch the actors do (see `observers.rs`).
    pub observers: Arc<super::Observers>,
}

/// A piece of work and the guard of the session waiting for it, if any:
/// the guard is dropped when the work is done (delivered, stored or
/// bounced), which lets that session answer its next IQ.
type Item = Box<(Work, Option<Guard>)>;

/// The table of running actors.
pub struct Accounts {
    /// Work is boxed in the queue: a queue keeps a few slots' worth of
    /// buffer after a burst (`queue::KEEP_CAPACITY`), and pointer-sized
    /// slots keep that small for every running actor (`Work` is 128 bytes).
    actors: DashMap<Jid, queue::Sender<Item>>,
    ctx: ImContext,
    /// This table itself, for the actors it starts (they remove
    /// themselves from it when they go idle).
    me: Weak<Accounts>,
}

impl Accounts {
    pub fn new(ctx: ImContext) -> Arc<Accounts> {
        Arc::new_cyclic(|me| Accounts {
            actors: DashMap::new(),
            ctx,
            me: me.clone(),
        })
    }

    pub fn motds(&self) -> &MotdBoard {
        &self.ctx.motds
    }

    /// The inbound gates, for modules to add theirs at start-up.
    pub fn gates(&self) -> &super::Gates {
        &self.ctx.gates
    }

    /// The account observers, for modules to add theirs at start-up.
    pub fn observers(&self) -> &super::Observers {
        &self.ctx.observers
    }

    /// Resolves once the account's actor has done everything queued for
    /// it before this call (a module that must act after, say, the
    /// unavailable presence a session's end has the actor send).
    pub fn flushed(&self, router: &Router, bare: &Jid) -> impl std::future::Future<Output = ()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(router, bare, Work::Flush(tx));
        async move {
            let _ = rx.await;
        }
    }

    /// Queues work for an account, starting its actor if needed. The queue
    /// is unbounded: each item is one stanza already accepted from a
    /// connection whose own outbox and read loop bound the rate.
    pub fn send(&self, router: &Router, bare: &Jid, work: Work) {
        self.send_for(router, bare, work, None)
    }

    /// [`Accounts::send`] for work a session waits for: `ticket` is
    /// dropped once the work is done.
    pub fn send_for(&self, router: &Router, bare: &Jid, work: Work, ticket: Option<Guard>) {
        let Some(mut work) = captured(bare, Box::new((work, ticket))) else {
            return;
        };
        // Bounded: a closed queue means the actor is exiting; the second
        // attempt makes a new one.
        for _ in 0..3 {
            let tx = self
                .actors
                .entry(bare.clone())
                .or_insert_with(|| self.spawn(router, bare.clone()))
                .clone();
            match tx.send(work) {
                Ok(()) => return,
                Err(queue::SendError(w)) => {
                    work = w;
                    self.actors.remove_if(bare, |_, t| t.same_channel(&tx));
                }
            }
        }
        tracing::error!(account = %bare, "could not queue work for an account; dropped");
    }

    /// Queues a feature's job for an account's actor (see `scope.rs`);
    /// `ticket` is dropped once the job is done.
    pub fn run_for(
        &self,
        router: &Router,
        bare: &Jid,
        job: super::scope::Job,
        ticket: Option<Guard>,
    ) {
        self.send_for(router, bare, Work::Job(job), ticket)
    }

    pub fn running(&self) -> usize {
        self.actors.len()
    }

    fn spawn(&self, router: &Router, bare: Jid) -> queue::Sender<Item> {
        let (tx, rx) = queue::unbounded_channel();
        let me = tx.clone();
        let accounts = self
            .me
            .upgrade()
            .expect("the table is alive while it spawns");
        let account = Account::new(router.clone(), accounts, bare);
        tokio::spawn(run(account, rx, me));
        tx
    }
}

/// How long an actor waits at a given-up session's place for what the
/// session leaves. Its connection collects that as soon as it wakes to
/// close (writing the goodbye to a client that does not read is limited to
/// a couple of seconds); past this the actor goes on, and the leavings go
/// on by themselves when they come (late, never lost).
const TAKE_BACK_WAIT: Duration = Duration::from_secs(10);

thread_local! {
    /// While an actor redelivers what a given-up session left (see
    /// [`Account::take_back`]), the work that redelivery queues for the
    /// actor's own account: collected and done at once, instead of behind
    /// what was queued meanwhile. Routing never awaits, so everything it
    /// queues happens on this thread within the call.
    static CAPTURE: std::cell::RefCell<Option<(Jid, Vec<Item>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps `item` if this thread is collecting work for `bare`; gives it
/// back otherwise.
fn captured(bare: &Jid, item: Item) -> Option<Item> {
    CAPTURE.with(|c| match &mut *c.borrow_mut() {
        Some((account, items)) if account == bare => {
            items.push(item);
            None
        }
        _ => Some(item),
    })
}

/// Collects the work `f` queues for `bare` on this thread, and returns it.
fn capture(bare: &Jid, f: impl FnOnce()) -> Vec<Item> {
    /// Stops collecting even if `f` panics, so no later work on this
    /// thread is swallowed.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            CAPTURE.with(|c| c.borrow_mut().take());
        }
    }
    CAPTURE.with(|c| *c.borrow_mut() = Some((bare.clone(), Vec::new())));
    let stop = Stop;
    f();
    let items = CAPTURE.with(|c| c.borrow_mut().take().map(|(_, items)| items));
    drop(stop);
    items.unwrap_or_default()
}

async fn run(mut account: Account, mut rx: queue::Receiver<Item>, me: queue::Sender<Item>) {
    loop {
        match tokio::time::timeout(IDLE, rx.recv()).await {
            // Boxed: the handlers' futures are large, and an actor spends
            // most of its life waiting here between pieces of work.
            Ok(Some(item)) => Box::pin(account.process(*item, &mut rx)).await,
            Ok(None) => break,
            Err(_) => {
                account
                    .accounts
                    .actors
                    .remove_if(&account.bare, |_, t| t.same_channel(&me));
                rx.close();
                while let Some(item) = rx.recv().await {
                    Box::pin(account.process(*item, &mut rx)).await;
                }
                break;
            }
        }
    }
}

/// Most messages stored offline in one write.
const MAX_BATCH: usize = 256;

/// Whether a piece of work is a message for the account (to deliver or
/// store offline), which can be handled together with the ones after it.
fn is_inbound_message(work: &Work) -> bool {
    matches!(work, Work::Inbound(el) if el.name == "message")
}

impl Account {
    /// Handles one piece of work; a message for the account takes every
    /// message queued right behind it along, so they are stored with one
    /// write (see `offline.rs`). Order is kept: the batch ends at the first
    /// other piece of work, which is handled next.
    async fn process(&mut self, item: (Work, Option<Guard>), rx: &mut queue::Receiver<Item>) {
        let (work, ticket) = item;
        if !is_inbound_message(&work) {
            return self.handle_for(work, ticket).await;
        }
        let Work::Inbound(first) = work else {
            unreachable!("checked above")
        };
        let mut batch = vec![(first, ticket)];
        let mut after = None;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) if is_inbound_message(&next.0) => {
                    let (Work::Inbound(el), ticket) = *next else {
                        unreachable!("checked above")
                    };
                    batch.push((el, ticket));
                }
                Ok(next) => {
                    after = Some(*next);
                    break;
                }
                Err(_) => break,
            }
        }
        self.inbound_messages(batch).await;
        if let Some((work, ticket)) = after {
            self.handle_for(work, ticket).await;
        }
    }
}

/// Why an account's state could not be had.
#[derive(Debug)]
pub enum LoadError {
    NoAccount,
    Store(StoreError),
}

/// One account's actor state.
pub struct Account {
    pub(super) router: Router,
    pub(super) accounts: Arc<Accounts>,
    pub(super) bare: Jid,
    /// The guard of the session waiting for the work in hand, if any;
    /// stanzas this work routes carry it on.
    pub(super) ticket: Option<Guard>,
    pub(super) roster: Option<Roster>,
    /// The offline log's usage as this actor last wrote or read it,
    /// `None` when unknown. Every change to the log goes through this
    /// actor, so it stays right; it lets a message for a full log be
    /// refused without asking the store.
    pub(super) offline_usage: Option<switchboard_spool::store::OfflineUsage>,
    /// The account as the stores name it.
    pub(super) account: AccountRef,
}

impl Account {
    fn new(router: Router, accounts: Arc<Accounts>, bare: Jid) -> Account {
        let account = AccountRef::new(bare.domain(), bare.node().unwrap_or_default());
        Account {
            router,
            accounts,
            account,
            bare,
            ticket: None,
            roster: None,
            offline_usage: None,
        }
    }

    /// The settings current now.
    pub(super) fn settings(&self) -> Arc<Settings> {
        self.accounts.ctx.settings.get()
    }

    pub(super) fn stores(&self) -> &ImContext {
        &self.accounts.ctx
    }

    pub(super) fn host(&self) -> &str {
        self.bare.domain()
    }

    /// Does one piece of work, then lets the waiting session know.
    async fn handle_for(&mut self, work: Work, ticket: Option<Guard>) {
        self.ticket = ticket;
        self.handle(work).await;
        self.ticket = None;
    }

    async fn handle(&mut self, work: Work) {
        match work {
            Work::Own(el) => self.own(el).await,
            Work::Inbound(el) => self.inbound(el).await,
            Work::SessionEnded(end) => self.session_ended(end).await,
            Work::Motd => self.deliver_motd(None).await,
            Work::DropServiceItems(host) => self.drop_service_items(&host).await,
            Work::Remove(done) => self.remove_by_admin(done).await,
            Work::Flush(done) => {
                let _ = done.send(());
            }
            Work::Job(job) => job.run(self).await,
            Work::TakeBack(take) => Box::pin(self.take_back(take)).await,
        }
    }

    /// A given-up session's place: waits for what it leaves, redelivers
    /// that (to another resource, or offline storage here and now, ahead
    /// of what was queued after the place), then reports the session's
    /// end (its hooks queue the goodbye presence behind the rest).
    async fn take_back(&mut self, take: crate::sessions::TakeBack) {
        let Some(left) = take.wait(TAKE_BACK_WAIT).await else {
            return;
        };
        let router = self.router.clone();
        let stanzas = left.stanzas;
        let work = capture(&self.bare, || router.redeliver(stanzas));
        let mut messages = Vec::new();
        for item in work {
            match *item {
                (Work::Inbound(el), ticket) if el.name == "message" => messages.push((el, ticket)),
                (work, ticket) => {
                    if !messages.is_empty() {
                        self.inbound_messages(std::mem::take(&mut messages)).await;
                    }
                    self.handle_for(work, ticket).await;
                }
            }
        }
        if !messages.is_empty() {
            self.inbound_messages(messages).await;
        }
        self.router.session_ended(left.end);
    }

    async fn own(&mut self, el: Element) {
        match el.name.as_str() {
            "presence" if el.attr("to").is_none() => self.own_presence(el).await,
            "presence" => self.outbound_subscription(el).await,
            "iq" => {
                let Some(payload) = el.first_element() else {
                    return;
                };
                if payload.is("query", super::roster::NS) {
                    self.roster_iq(&el).await;
                } else if payload.is("query", ns::REGISTER)
                    && el.attr("type") == Some("set")
                    && payload.get_child("remove", ns::REGISTER).is_some()
                {
                    self.remove_account(&el).await;
                } else if payload.is("query", ns::REGISTER)
                    && el.attr("type") == Some("set")
                    && super::admin_register::names_another_user(payload, &self.bare)
                {
                    self.admin_register(&el).await;
                } else {
                    self.data_iq(el).await;
                }
            }
            _ => {}
        }
    }

    async fn inbound(&mut self, el: Element) {
        if !self.stores().gates.is_empty() {
            match self.stores().gates.check(&self.account, &el).await {
                super::Gate::Pass => {}
                super::Gate::Drop => return,
                super::Gate::Refuse(err) => return self.bounce(&el, err),
            }
        }
        match (el.name.as_str(), stanza_type(&el)) {
            ("presence", "probe") => self.answer_probe(el).await,
            ("presence", "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
                self.inbound_subscription(el).await
            }
            // Presence queued here to keep its order behind subscription
            // stanzas from the same sender (see the router's `to_bare`).
            ("presence", _) => self.router.deliver_to_available(&self.bare, &el),
            ("message", _) => {
                let ticket = self.ticket.take();
                self.inbound_messages(vec![(el, ticket)]).await
            }
            ("iq", _) => {
                let is_roster = el
                    .first_element()
                    .is_some_and(|p| p.is("query", super::roster::NS));
                if is_roster {
                    // RFC 6121 §2.1.5: nobody else may read or change a roster.
                    self.bounce(&el, StanzaError::forbidden());
                } else {
                    self.data_iq(el).await;
                }
            }
            _ => {}
        }
    }

    /// Loads the roster once per actor life.
    pub(super) async fn roster(&mut self) -> Result<&mut Roster, LoadError> {
        if self.roster.is_none() {
            match self.stores().rosters.load(&self.account).await {
                Ok(Some(stored)) => self.roster = Some(Roster::from_stored(&stored)),
                Ok(None) => return Err(LoadError::NoAccount),
                Err(e) => {
                    tracing::error!(account = %self.bare, "cannot read the roster: {e}");
                    return Err(LoadError::Store(e));
                }
            }
        }
        Ok(self.roster.as_mut().expect("just loaded"))
    }

    /// Whether the account exists (it may have been deleted meanwhile).
    pub(super) async fn exists(&self) -> Result<bool, StoreError> {
        self.stores().accounts.exists(&self.account).await
    }

    /// Persists the cached roster (bumping its version), durably.
    pub(super) async fn save_roster(&mut self) -> Result<(), StoreError> {
        let Some(roster) = self.roster.as_mut() else {
            return Ok(());
        };
        roster.ver += 1;
        let stored = roster.to_stored();
        let r = self.accounts.ctx.rosters.save(&self.account, &stored).await;
        match &r {
            Ok(()) => self
                .accounts
                .ctx
                .observers
                .roster_saved(&self.bare, &stored),
            Err(e) => {
                tracing::error!(account = %self.bare, "cannot save the roster: {e}");
                // The cache may now be ahead of the disk: reload next time.
                self.roster = None;
            }
        }
        r
    }

    /// Sends a stanza on through the router (to a contact, a session, …);
    /// work it starts counts for the session this work is for.
    pub(super) fn send(&self, el: Element) {
        self.router.route_for(el, self.ticket.as_ref());
    }

    pub(super) fn bounce(&self, stanza: &Element, err: StanzaError) {
        if let Some(mut reply) = error_reply(stanza, &err) {
            self.router.metrics().stanza_error();
            // A request without `to` was addressed to the user's own
            // account: the error comes from it (RFC 6120 §10.3.3).
            if reply.attr("from").is_none() {
                reply.set_attr("from", self.bare.to_string());
            }
            self.send(reply);
        }
    }

    /// Account-data IQs (vCard, private XML, last activity, password
    /// change): the registered handler runs here, in order, with the spool.
    async fn data_iq(&mut self, iq: Element) {
        match self.run_data_handler(&iq).await {
            Some(answer) => self.answer(&iq, answer),
            None => self.bounce(&iq, StanzaError::service_unavailable()),
        }
    }

    /// Runs the account-data handler for an IQ request and returns its
    /// answer (`bad-request` for a request without payload); `None` when
    /// no handler takes it, or for what is no request.
    pub(super) async fn run_data_handler(
        &mut self,
        iq: &Element,
    ) -> Option<Result<Option<Element>, StanzaError>> {
        let kind = match iq.attr("type") {
            Some("get") => IqType::Get,
            Some("set") => IqType::Set,
            _ => return None,
        };
        let Some(payload) = iq.first_element() else {
            return Some(Err(StanzaError::bad_request()));
        };
        let handler = self.router.iq().lookup_data(payload, kind)?;
        let from = iq.attr("from").and_then(|f| Jid::parse(f).ok())?;
        let is_owner = from.to_bare() == self.bare;
        let may_see_presence = is_owner
            || match self.roster().await {
                Ok(r) => r.state(&from.to_bare()).sub.has_from(),
                Err(_) => false,
            };
        let online = self
            .router
            .sessions()
            .of_account(&self.bare)
            .iter()
            .any(|s| s.priority.is_some());
        let iterations = self.settings().scram_iterations;
        Some(
            handler(DataRequest {
                iq,
                payload,
                from: &from,
                account: &self.bare,
                is_owner,
                may_see_presence,
                online,
                data: self.accounts.ctx.data.as_ref(),
                accounts: self.accounts.ctx.accounts.as_ref(),
                scram_iterations: iterations,
            })
            .await,
        )
    }

    /// Sends the answer to an IQ request addressed to this account: the
    /// result comes from the account addressed (or, for an IQ without
    /// `to`, from the user's own bare JID).
    pub(super) fn answer(&self, iq: &Element, answer: Result<Option<Element>, StanzaError>) {
        match answer {
            Ok(payload) => {
                let mut reply = iq_result(iq, payload);
                reply.set_attr(
                    "from",
                    iq.attr("to")
                        .map(str::to_string)
                        .unwrap_or_else(|| self.bare.to_string()),
                );
                self.send(reply);
            }
            Err(e) => self.bounce(iq, e),
        }
    }
}

/// The size of an actor's task future, for the footprint test in
/// `net::connection`.
#[cfg(test)]
pub(crate) fn actor_future_size() -> usize {
    fn size<A, B, C, F>(_f: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    size(run)
}
