//! XEP-0357 Push Notifications (v0.4.1): a phone's client registers an
//! app server with `<enable/>`; while none of the account's devices can
//! be reached, each message that matters makes the server publish a
//! notification to that app server, which wakes the phone through its
//! vendor's push network. Where the XEP leaves a choice, this does what
//! Prosody's mod_cloud_notify does, and says so where it matters.
//!
//! Built on the core's seams only:
//!
//! - **IQ handlers** (async, `Scope::Account`) for `<enable/>` and
//!   `<disable/>` to one's own bare JID, storing the account's
//!   registrations in its account data (document `push`, durable).
//! - **`message/bare` and `message/full` at priority 1**, just above
//!   delivery (0): filters above it (blocking, say) have had their say
//!   and may have dropped the message; this hook never consumes it. It
//!   decides on the router's thread whether the message will reach a live
//!   device — a session that is connected, as opposed to one hibernating
//!   under XEP-0198 (`sessions::is_hibernating`), or none (offline
//!   storage) — and then sends the notifications from its cache of the
//!   account's registrations, or reads them on a task first.
//! - **`iq/bare` at priority 20**, above the core's handlers (10): an app
//!   server's answer to a notification comes back to the account's bare
//!   JID. Only answers to ids this module sent (and still waits for) are
//!   consumed; an error of type `cancel` or `auth` disables that
//!   registration.
//! - **`session-hibernates`**: a session whose connection died may have
//!   been sent messages the device never got (written to a socket that
//!   was already dead). If any of those it did not acknowledge matters
//!   and the account has no other connected, available session, one
//!   notification per registration goes out, as Prosody's
//!   mod_cloud_notify does for the smacks queue when hibernation starts.
//! - **`session-end`**: messages taken back from a session that ended or
//!   was given up on are redelivered (`Origin::Redelivery`) one by one;
//!   those that land offline are noted, and one notification per
//!   registration goes out when the session's end is reported, right
//!   after they have all been redelivered.
//!
//! Rate: one notification per message and registration, as Prosody sends
//! one per message it stores offline or queues for a hibernating session
//! (coalescing would need a timer per account, and a phone's client
//! fetches everything when woken anyway). Only redeliveries, which come
//! in bursts when a session ends, are coalesced.
//!
//! Not done: the affiliation-change message of XEP-0357 §8 (remote
//! disabling; errors disable instead).

mod pending;
pub mod protocol;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, StoreError};
use switchboard_xml::Element;
use tokio::time::Instant;

use super::Setup;
use crate::routing::iq::{IqCall, IqKey, IqType, Scope};
use crate::routing::stanza::{Class, Kind, MessageType, Origin, Stanza};
use crate::routing::table::{Event, Flow, SessionRef};
use crate::routing::Router;
use crate::sessions::is_hibernating;
use crate::stanza::StanzaError;
use pending::{Pending, Sent};
use protocol::Registration;
pub use protocol::NS;

const MODULE: &str = "push";

/// Accounts whose registrations are kept in memory before the cache
/// drops those that have none (read again from the store when needed).
const CACHE_LIMIT: usize = 10_000;
/// How long registrations read from the store are trusted before they
/// are read again.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Accounts with redelivered messages waiting for their session's end.
const REDELIVERED_LIMIT: usize = 10_000;

const ENABLE: IqKey = IqKey {
    name: "enable",
    ns: NS,
    kind: IqType::Set,
};
const DISABLE: IqKey = IqKey {
    name: "disable",
    ns: NS,
    kind: IqType::Set,
};

pub fn register(setup: &mut Setup<'_>) {
    let push = Arc::new(Push::new(setup.stores.account_data.clone()));
    setup.iq.feature(Scope::Account, NS);
    let p = push.clone();
    setup.iq.handle_async(ENABLE, Scope::Account, move |call| {
        let p = p.clone();
        Box::pin(async move { p.enable(call).await })
    });
    let p = push.clone();
    setup.iq.handle_async(DISABLE, Scope::Account, move |call| {
        let p = p.clone();
        Box::pin(async move { p.disable(call).await })
    });
    let p = push.clone();
    setup.table.hook_each(
        &[
            Event::at(Kind::Message, Class::Bare),
            Event::at(Kind::Message, Class::Full),
        ],
        1,
        MODULE,
        "a message that matters and will reach no connected session (offline, or every target hibernating) notifies the account's app servers; passed on",
        move |r, s| {
            p.on_message(r, &s);
            Flow::Next(s)
        },
    );
    let p = push.clone();
    setup.table.hook(
        Event::at(Kind::Iq, Class::Bare),
        20,
        MODULE,
        "an app server's answer to a notification ends here; an error of type cancel or auth disables that registration",
        move |_, s| p.on_reply(s),
    );
    let p = push.clone();
    setup
        .table
        .on_session_hibernates(MODULE, move |r, session, unacked| {
            p.on_hibernate(r, session, unacked)
        });
    let p = push;
    setup.table.on_session_end(MODULE, move |r, end| {
        let bare = end.jid.to_bare();
        let noted = p
            .redelivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&bare);
        if noted {
            p.notify(r, bare);
        }
    });
}

/// Where a message will land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landing {
    /// On at least one connected session.
    Live,
    /// Only on hibernating sessions, or in offline storage.
    Unreachable,
    /// Nowhere: it will be bounced or dropped.
    Nowhere,
}

/// Where the message `s` will land, decided as delivery (`im::routes`)
/// decides it: a bound full JID gets it; an absent resource's normal and
/// chat messages go as to the bare JID, others nowhere; a bare JID's go
/// to the sessions `bare_targets` picks, or offline without any
/// (groupchat to a bare JID bounces).
fn landing(r: &Router, s: &Stanza) -> Landing {
    let live = |e: &crate::sessions::SessionEntry| !is_hibernating(&e.shared.ext);
    let ty = s.message_type();
    // No copy of the address on the common path (a bare JID already).
    let full_to_bare;
    let bare = if s.to.is_bare() {
        &s.to
    } else {
        full_to_bare = s.to.to_bare();
        &full_to_bare
    };
    if s.class == Class::Full {
        let at_resource = r.sessions().with_account(bare, |list| {
            list.iter()
                .find(|e| Some(&*e.resource) == s.to.resource())
                .map(live)
        });
        match (at_resource, ty) {
            (Some(true), _) => return Landing::Live,
            (Some(false), _) => return Landing::Unreachable,
            (None, Some(MessageType::Normal | MessageType::Chat)) => {}
            (None, _) => return Landing::Nowhere,
        }
    } else if ty == Some(MessageType::Groupchat) {
        return Landing::Nowhere;
    }
    r.sessions().with_account(bare, |list| {
        let targets = crate::im::routes::bare_targets(list, false);
        if targets.is_some_and(|mut t| t.any(live)) {
            Landing::Live
        } else {
            Landing::Unreachable
        }
    })
}

/// The module's state: the registrations of the accounts looked at so
/// far, the notifications waiting for an answer, and the accounts with
/// redelivered messages.
struct Push {
    data: Arc<dyn AccountDataStore>,
    cache: Mutex<HashMap<Jid, Arc<AccountPush>>>,
    pending: Mutex<Pending>,
    redelivered: Mutex<HashSet<Jid>>,
}

/// One account's registrations as the cache holds them.
#[derive(Default)]
struct AccountPush {
    /// `None` until read from the store; with when it was read or
    /// written.
    list: RwLock<Option<(Arc<[Registration]>, Instant)>>,
    /// Held while the registrations are read from or written to the
    /// store, so that two changes (two devices enabling at once, an error
    /// disabling one) never write over each other and a slow first read
    /// never overwrites a newer list.
    store: tokio::sync::Mutex<()>,
}

impl AccountPush {
    /// The registrations, unless never read or read too long ago: what
    /// changed behind the server's back (an account deleted and made
    /// again, a spool edited by hand) is seen within [`CACHE_TTL`].
    fn cached(&self) -> Option<Arc<[Registration]>> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        match &*list {
            Some((l, at)) if at.elapsed() < CACHE_TTL => Some(l.clone()),
            _ => None,
        }
    }

    fn set(&self, list: Vec<Registration>) -> Arc<[Registration]> {
        let list: Arc<[Registration]> = list.into();
        *self.list.write().unwrap_or_else(|e| e.into_inner()) =
            Some((list.clone(), Instant::now()));
        list
    }

    fn has_registrations(&self) -> bool {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        list.as_ref().is_some_and(|(l, _)| !l.is_empty())
    }
}

fn account_ref(bare: &Jid) -> AccountRef {
    AccountRef::new(bare.domain(), bare.node().unwrap_or_default())
}

impl Push {
    fn new(data: Arc<dyn AccountDataStore>) -> Push {
        Push {
            data,
            cache: Mutex::default(),
            pending: Mutex::default(),
            redelivered: Mutex::default(),
        }
    }

    /// The cache entry of an account, made if there is none. A full cache
    /// first drops the entries nobody holds that have no registrations
    /// (accounts that had a message while offline, or do not exist).
    fn entry(&self, bare: &Jid) -> Arc<AccountPush> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = cache.get(bare) {
            return e.clone();
        }
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, e| Arc::strong_count(e) > 1 || e.has_registrations());
        }
        cache.entry(bare.clone()).or_default().clone()
    }

    /// The account's registrations; the caller holds `entry.store`.
    async fn load(
        &self,
        bare: &Jid,
        entry: &AccountPush,
    ) -> Result<Arc<[Registration]>, StoreError> {
        if let Some(list) = entry.cached() {
            return Ok(list);
        }
        let doc = self
            .data
            .get(&account_ref(bare), protocol::DOCUMENT)
            .await?;
        Ok(entry.set(doc.map(|d| protocol::from_document(&d)).unwrap_or_default()))
    }

    /// Changes an account's registrations with `f` (which returns `None`
    /// for no change) and stores the result before the cache shows it;
    /// whether anything changed.
    async fn change(
        &self,
        bare: &Jid,
        f: impl FnOnce(&[Registration]) -> Option<Vec<Registration>>,
    ) -> Result<bool, StoreError> {
        let entry = self.entry(bare);
        let _turn = entry.store.lock().await;
        let list = self.load(bare, &entry).await?;
        let Some(new) = f(&list) else {
            return Ok(false);
        };
        let account = account_ref(bare);
        match protocol::to_document(&new) {
            Some(doc) => self.data.put(&account, doc).await?,
            None => self.data.remove(&account, protocol::DOCUMENT).await?,
        }
        entry.set(new);
        Ok(true)
    }

    async fn enable(&self, call: IqCall) -> Result<Option<Element>, StanzaError> {
        // Only the account itself; to anyone else there is nothing here,
        // as in Prosody, which answers only its users' own requests.
        if !call.is_owner() {
            return Err(StanzaError::service_unavailable());
        }
        let reg = protocol::parse_enable(call.payload())?;
        let account = call.to.to_bare();
        if reg.jid.to_bare() == account {
            // As Prosody: notifications to oneself would loop.
            return Err(StanzaError::bad_request()
                .with_text("the push service must be another address than your own"));
        }
        if call.router.classify(&reg.jid) == Class::Remote {
            // Nothing could ever be published there: this server reaches
            // only its own hosts and its configured services (no
            // federation), and every stanza to another domain bounces
            // with remote-server-not-found (the `*/remote` rows). The
            // enable fails with the condition the first notification
            // would have met; RFC 6120 §8.3.3.16 defines it for "a remote
            // server or service specified as part or all of the JID"
            // that cannot be reached, which is the case. (`item-not-found`
            // would speak of a node at a service that exists.)
            return Err(StanzaError::remote_server_not_found().with_text(format!(
                "{} is not a service of this server, and this server does not reach other servers",
                reg.jid.domain()
            )));
        }
        let service = reg.jid.clone();
        let changed = self
            .change(&account, |list| protocol::enabled(list, reg))
            .await
            .map_err(|e| store_failure(&e, &account))?;
        if changed {
            tracing::info!(%account, %service, "push notifications enabled");
        }
        Ok(None)
    }

    async fn disable(&self, call: IqCall) -> Result<Option<Element>, StanzaError> {
        if !call.is_owner() {
            return Err(StanzaError::service_unavailable());
        }
        let (service, node) = protocol::parse_disable(call.payload())?;
        let account = call.to.to_bare();
        // Disabling what is not enabled succeeds, as in Prosody: the
        // client's wish (no notifications there) holds either way.
        let changed = self
            .change(&account, |list| {
                protocol::disabled(list, &service, node.as_deref())
            })
            .await
            .map_err(|e| store_failure(&e, &account))?;
        if changed {
            tracing::info!(%account, %service, "push notifications disabled");
        }
        Ok(None)
    }

    /// The `message/*` hook: notify if the message matters and will reach
    /// no live device.
    fn on_message(self: &Arc<Self>, r: &Router, s: &Stanza) {
        let Some(ty) = s.message_type() else {
            return;
        };
        if !protocol::matters(&s.el, ty) || landing(r, s) != Landing::Unreachable {
            return;
        }
        let account = s.to.to_bare();
        if s.origin == Origin::Redelivery {
            // Part of what a session left behind: one notification when
            // its end is reported, not one per message. (A message that
            // was queued for a hibernating session has notified once
            // already; if the hibernation runs out it notifies again
            // here, the device having not come back.)
            let mut noted = self.redelivered.lock().unwrap_or_else(|e| e.into_inner());
            if noted.len() < REDELIVERED_LIMIT {
                noted.insert(account);
            }
            return;
        }
        self.notify(r, account);
    }

    /// The `session-hibernates` hook: notify once if the device may have
    /// missed a message that matters and no other device of the account
    /// is there to read it.
    fn on_hibernate(self: &Arc<Self>, r: &Router, session: &SessionRef, unacked: &[&Element]) {
        let missed = unacked.iter().any(|el| {
            el.name == "message" && protocol::matters(el, MessageType::parse(el.attr("type")))
        });
        if !missed {
            return;
        }
        let account = session.jid.to_bare();
        let elsewhere = r.sessions().with_account(&account, |list| {
            list.iter()
                .any(|e| e.priority.is_some() && !is_hibernating(&e.shared.ext))
        });
        if !elsewhere {
            self.notify(r, account);
        }
    }

    /// Sends a notification to each of the account's registrations: at
    /// once from the cache, or from a task once they have been read.
    fn notify(self: &Arc<Self>, r: &Router, account: Jid) {
        let entry = self.entry(&account);
        if let Some(list) = entry.cached() {
            return self.send(r, &account, &list);
        }
        let this = self.clone();
        let r = r.clone();
        tokio::spawn(async move {
            let loaded = {
                let _turn = entry.store.lock().await;
                this.load(&account, &entry).await
            };
            match loaded {
                Ok(list) => this.send(&r, &account, &list),
                Err(e) => {
                    tracing::warn!(%account, "push registrations could not be read: {e}")
                }
            }
        });
    }

    fn send(&self, r: &Router, account: &Jid, list: &[Registration]) {
        for reg in list {
            if r.classify(&reg.jid) == Class::Remote {
                // A service removed from the config since it was enabled.
                tracing::debug!(%account, service = %reg.jid, "push service out of reach; not notified");
                continue;
            }
            let id = crate::ids::random_id();
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id.clone(),
                    Sent {
                        account: account.clone(),
                        service: reg.jid.clone(),
                        node: reg.node.clone(),
                    },
                    Instant::now(),
                );
            tracing::debug!(%account, service = %reg.jid, "push notification sent");
            r.route(protocol::notification(account, reg, &id));
        }
    }

    /// The `iq/bare` hook: consumes the answers to our notifications.
    fn on_reply(self: &Arc<Self>, s: Stanza) -> Flow {
        let error = match s.iq_type() {
            Some(IqType::Result) => false,
            Some(IqType::Error) => true,
            _ => return Flow::Next(s),
        };
        let sent = match s.el.attr("id") {
            Some(id) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.is_empty() {
                    None
                } else {
                    pending.take(id, &s.from, &s.to, Instant::now())
                }
            }
            None => None,
        };
        let Some(sent) = sent else {
            return Flow::Next(s);
        };
        if error && protocol::disables(&s.el) {
            self.drop_registration(sent);
        }
        Flow::Done
    }

    /// Disables a registration its app server refused: out of the cache
    /// at once (the next message does not notify it), out of the store on
    /// a task.
    fn drop_registration(self: &Arc<Self>, sent: Sent) {
        let Sent {
            account,
            service,
            node,
        } = sent;
        let entry = self.entry(&account);
        if let Some(list) = entry.cached() {
            if let Some(new) = protocol::disabled(&list, &service, Some(&node)) {
                entry.set(new);
            }
        }
        tracing::info!(%account, %service, "push registration disabled: the app server refused a notification");
        let this = self.clone();
        tokio::spawn(async move {
            // Read afresh, since the cache already has it removed, and
            // written under the account's turn like any change.
            let _turn = entry.store.lock().await;
            let r = account_ref(&account);
            let stored = match this.data.get(&r, protocol::DOCUMENT).await {
                Ok(doc) => doc.map(|d| protocol::from_document(&d)).unwrap_or_default(),
                Err(e) => {
                    return tracing::warn!(%account, "push registrations could not be read: {e}")
                }
            };
            let Some(new) = protocol::disabled(&stored, &service, Some(&node)) else {
                return;
            };
            let written = match protocol::to_document(&new) {
                Some(doc) => this.data.put(&r, doc).await,
                None => this.data.remove(&r, protocol::DOCUMENT).await,
            };
            match written {
                Ok(()) => {
                    entry.set(new);
                }
                Err(e) => {
                    tracing::warn!(%account, "a disabled push registration could not be removed from storage: {e}")
                }
            }
        });
    }
}

/// A store failure as the client hears it; a vanished account is
/// `service-unavailable`, like one that never existed.
fn store_failure(e: &StoreError, account: &Jid) -> StanzaError {
    match e {
        StoreError::NotFound => StanzaError::service_unavailable(),
        _ => crate::accounts::store_error(e, &format!("the push registrations of {account}")),
    }
}

#[cfg(test)]
mod tests;
