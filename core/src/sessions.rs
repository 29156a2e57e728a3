//! The table of bound client sessions, keyed by bare JID, and the handle
//! through which the router hands a session its outbound stanzas.

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use switchboard_jid::Jid;
use switchboard_xml::Element;
use tokio::sync::{oneshot, Notify};

use crate::queue;

use crate::stream::StreamError;

/// How many stanzas may wait for one session's socket. A client that reads
/// slower than this is disconnected rather than allowed to hold memory or
/// slow its senders down.
pub const OUTBOX_CAPACITY: usize = 1024;

/// What the router can tell a connection.
#[derive(Debug)]
pub enum Outbound {
    /// Boxed so that the channel's preallocated slots stay small: an idle
    /// session's outbox then costs well under a kilobyte.
    Stanza(Box<Element>),
    /// Close the stream with this error (conflict, shutdown, kick); boxed
    /// for the same reason.
    Close(Box<StreamError>),
}

/// What a session shares with its connection and with whoever delivers to
/// it, in one allocation.
#[derive(Default)]
pub struct SessionShared {
    /// Wakes the connection to close it when its outbox overflows (a full
    /// outbox cannot carry the close request itself).
    pub kill: Notify,
    /// Whether the server has given up on the session, and where what it
    /// leaves behind is awaited (see `Router::give_up`). The lock makes
    /// giving up one step: whoever finds the session's outbox full or
    /// closed waits here until the session is out of the table and its
    /// place in its account's queue is taken, and only then sends its own
    /// stanza on, so that stanza lands behind what the session left.
    pub(crate) give_up: Mutex<GiveUp>,
    /// What modules keep about the session.
    pub ext: SessionExt,
}

impl SessionShared {
    /// Whether the server has given up on the session (its outbox
    /// overflowed, or it ended): it takes no more deliveries.
    pub fn given_up(&self) -> bool {
        !matches!(
            *self.give_up.lock().unwrap_or_else(|e| e.into_inner()),
            GiveUp::Live
        )
    }
}

impl std::fmt::Debug for SessionShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionShared")
            .field("given_up", &self.given_up())
            .finish_non_exhaustive()
    }
}

/// Where a session stands with the server.
#[derive(Default)]
pub(crate) enum GiveUp {
    /// It takes deliveries.
    #[default]
    Live,
    /// Given up on: out of the session table, and its account's actor
    /// waits for what it leaves behind at the place it had in the
    /// account's queue when it was given up on.
    Awaited(oneshot::Sender<Left>),
    /// Given up on, and nobody waits (what it leaves goes on as it comes).
    Over,
}

/// What a session that ended left behind when it ended.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    pub jid: Jid,
    /// Its last broadcast presence, if it was still available (as the
    /// connection saw the client's stanzas, in order).
    pub presence: Option<Arc<Element>>,
    /// The status text of an explicit final unavailable presence.
    pub status: Option<String>,
    /// Entities it sent directed available presence to.
    pub directed: Vec<Jid>,
}

/// Everything a session the server gave up on leaves behind: the stanzas
/// it was sent and its client may not have received, in the order the
/// client would have seen them (written and not acknowledged, held by an
/// outbound filter, still in the outbox), and the news of its end.
#[derive(Debug)]
pub struct Left {
    pub stanzas: Vec<Element>,
    pub end: SessionEnd,
}

/// The promise of a session's [`Left`], handed to whoever keeps its place
/// (its account's actor) when the session is given up on; the connection
/// collects and sends it when it ends, moments later.
#[derive(Debug)]
pub struct TakeBack(pub(crate) oneshot::Receiver<Left>);

impl TakeBack {
    /// What the session left, once its connection has collected it;
    /// `None` if that takes longer than `limit` or the connection went
    /// without (it then sends it on by itself, late rather than lost).
    pub async fn wait(self, limit: Duration) -> Option<Left> {
        tokio::time::timeout(limit, self.0).await.ok()?.ok()
    }
}

/// Per-session state that modules keep, one value per type (typed keys,
/// not strings): message carbons being enabled, the client's state
/// (XEP-0352), a stream management counter. Empty, it costs no
/// allocation. Values are read on the routing path, so they are small and
/// shared (`Arc`), and a module that needs a fast flag keeps an atomic in
/// its value.
#[derive(Default)]
pub struct SessionExt {
    items: RwLock<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>,
    /// What the connection passes each outgoing stanza through, if a
    /// module installed something (client state indication holds back
    /// presence while the client is inactive).
    filter: RwLock<Option<Arc<dyn OutboundFilter>>>,
}

impl SessionExt {
    /// The session's value of type `T`, if a module set one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .find(|(t, _)| *t == TypeId::of::<T>())
            .and_then(|(_, v)| v.clone().downcast::<T>().ok())
    }

    /// Whether the session has a value of type `T`.
    pub fn has<T: Any + Send + Sync>(&self) -> bool {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items.iter().any(|(t, _)| *t == TypeId::of::<T>())
    }

    /// Sets (or replaces) the session's value of type `T`.
    pub fn set<T: Any + Send + Sync>(&self, value: Arc<T>) {
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        items.retain(|(t, _)| *t != TypeId::of::<T>());
        items.push((TypeId::of::<T>(), value));
    }

    /// Removes the session's value of type `T`; whether there was one.
    pub fn remove<T: Any + Send + Sync>(&self) -> bool {
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        let before = items.len();
        items.retain(|(t, _)| *t != TypeId::of::<T>());
        items.len() < before
    }

    /// The outbound filter, if any.
    pub fn filter(&self) -> Option<Arc<dyn OutboundFilter>> {
        self.filter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs (or with `None` removes) the outbound filter.
    pub fn set_filter(&self, filter: Option<Arc<dyn OutboundFilter>>) {
        *self.filter.write().unwrap_or_else(|e| e.into_inner()) = filter;
    }
}

/// Marks a session as hibernating in its `SessionExt`: its connection
/// is gone and it waits to be resumed (XEP-0198; `net::resume` sets and
/// clears it). It stays bound and what is sent to it waits in its
/// outbox, but no device reads it until it resumes (push notifications
/// ask).
pub struct Hibernating;

/// Whether a session hibernates (its device may not be reachable until it
/// resumes).
pub fn is_hibernating(ext: &SessionExt) -> bool {
    ext.has::<Hibernating>()
}

/// A filter on what a session's connection writes: it may hold stanzas
/// back and let them go later (XEP-0352 client state indication). The
/// connection calls [`OutboundFilter::outgoing`] for each stanza taken
/// from the outbox and writes what it returns, and calls
/// [`OutboundFilter::release`] after a client's nonza (which may have
/// changed the filter's mind) to write what was held. A filter must never
/// lose a stanza: what it holds when the session ends is given back by
/// [`OutboundFilter::drain`], whatever the filter's mind, and the
/// connection sends it on as it does the rest of the outbox.
pub trait OutboundFilter: Send + Sync {
    /// A stanza on its way out: append what to write now to `out` (the
    /// stanza itself, or nothing while holding it, or held ones first).
    fn outgoing(&self, stanza: Element, out: &mut Vec<Element>);
    /// What the filter holds and should go out now, in order (nothing,
    /// while it still wants to hold it).
    fn release(&self, out: &mut Vec<Element>);
    /// Everything the filter holds, in order: the session has ended.
    fn drain(&self, out: &mut Vec<Element>);
}

/// One bound resource.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// Shared, not owned: the router copies entries out of the table for
    /// each message to a bare JID, and a copy should not allocate.
    pub resource: Arc<str>,
    /// Distinguishes a session from a later one that binds the same
    /// resource, so an ending session never removes its replacement.
    pub id: u64,
    pub tx: queue::Sender<Outbound>,
    /// The kill switch, whether it was given up on, and the modules' state.
    pub shared: Arc<SessionShared>,
    /// The priority of the last available presence without `to`, or `None`
    /// while the session has not sent one (or went unavailable).
    pub priority: Option<i8>,
    /// That presence itself, to answer probes and tell new resources.
    pub presence: Option<Arc<Element>>,
    /// Whether the session asked for the roster (and so gets pushes).
    pub interested: bool,
}

/// All bound sessions of the local domains.
#[derive(Default)]
pub struct Sessions {
    by_bare: DashMap<Jid, Vec<SessionEntry>>,
    next_id: AtomicU64,
}

impl Sessions {
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a session. A session already bound to the same full JID is
    /// returned so the caller can close it with `conflict` (RFC 6120
    /// §7.7.2.2: the new session wins, like Prosody's default).
    pub fn bind(
        &self,
        jid: &Jid,
        id: u64,
        tx: queue::Sender<Outbound>,
        shared: Arc<SessionShared>,
    ) -> Option<SessionEntry> {
        let resource: Arc<str> = Arc::from(jid.resource().unwrap_or_default());
        let mut list = self.by_bare.entry(jid.to_bare()).or_default();
        let old = list
            .iter()
            .position(|s| s.resource == resource)
            .map(|i| list.remove(i));
        list.push(SessionEntry {
            resource,
            id,
            tx,
            shared,
            priority: None,
            presence: None,
            interested: false,
        });
        old
    }

    /// Removes a session if it is still the one registered under `jid`,
    /// returning its entry.
    pub fn unbind(&self, jid: &Jid, id: u64) -> Option<SessionEntry> {
        let bare = jid.to_bare();
        let (removed, empty) = match self.by_bare.get_mut(&bare) {
            Some(mut list) => {
                let removed = list.iter().position(|s| s.id == id).map(|i| list.remove(i));
                (removed, list.is_empty())
            }
            None => (None, false),
        };
        if empty {
            self.by_bare.remove_if(&bare, |_, l| l.is_empty());
        }
        removed
    }

    /// The account of the session with this id, if it is in the table
    /// (the router gives up on a session it only has the entry of). A walk
    /// over every account: only for the rare session that stopped reading.
    pub fn account_of(&self, id: u64) -> Option<Jid> {
        self.by_bare
            .iter()
            .find(|e| e.value().iter().any(|s| s.id == id))
            .map(|e| e.key().clone())
    }

    /// Records a session's broadcast presence (`None`: unavailable); the
    /// priority is read from it (RFC 6121 §4.7.2.3, default 0).
    pub fn set_presence(&self, jid: &Jid, presence: Option<Element>) {
        let priority = presence.as_ref().map(|p| {
            p.child_text("priority", &p.ns)
                .and_then(|v| v.trim().parse::<i8>().ok())
                .unwrap_or(0)
        });
        if let Some(mut list) = self.by_bare.get_mut(&jid.to_bare()) {
            if let Some(s) = list
                .iter_mut()
                .find(|s| Some(&*s.resource) == jid.resource())
            {
                s.priority = priority;
                s.presence = presence.map(Arc::new);
            }
        }
    }

    /// Marks a session as having requested the roster.
    pub fn set_interested(&self, jid: &Jid) {
        if let Some(mut list) = self.by_bare.get_mut(&jid.to_bare()) {
            if let Some(s) = list
                .iter_mut()
                .find(|s| Some(&*s.resource) == jid.resource())
            {
                s.interested = true;
            }
        }
    }

    /// The session bound to a full JID.
    pub fn get(&self, jid: &Jid) -> Option<SessionEntry> {
        let list = self.by_bare.get(&jid.to_bare())?;
        list.iter()
            .find(|s| Some(&*s.resource) == jid.resource())
            .cloned()
    }

    /// Looks at an account's sessions in place (an empty slice without
    /// any), without copying them: for checks on the routing path that
    /// only read. `f` runs under the table's shard lock, so it must not
    /// touch the session table itself.
    pub fn with_account<R>(&self, bare: &Jid, f: impl FnOnce(&[SessionEntry]) -> R) -> R {
        match self.by_bare.get(bare) {
            Some(list) => f(&list),
            None => f(&[]),
        }
    }

    /// Every session of an account.
    pub fn of_account(&self, bare: &Jid) -> Vec<SessionEntry> {
        self.by_bare
            .get(bare)
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Every session of a host, with its full JID (for announcements and
    /// the admin's list of who is online). An account's sessions come one
    /// after the other.
    pub fn of_host(&self, host: &str) -> Vec<(Jid, SessionEntry)> {
        self.by_bare
            .iter()
            .filter(|e| e.key().domain() == host)
            .flat_map(|e| {
                let bare = e.key().clone();
                e.value()
                    .iter()
                    .filter_map(|s| Some((bare.with_resource(&s.resource).ok()?, s.clone())))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every session, for shutdown and announcements.
    pub fn all(&self) -> Vec<SessionEntry> {
        self.by_bare
            .iter()
            .flat_map(|e| e.value().clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.by_bare.iter().map(|e| e.value().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Carbons;
    struct Counter(std::sync::atomic::AtomicU32);

    #[test]
    fn extensions_are_kept_by_type() {
        let ext = SessionExt::default();
        assert!(!ext.has::<Carbons>());
        ext.set(Arc::new(Carbons));
        ext.set(Arc::new(Counter(7.into())));
        assert!(ext.has::<Carbons>());
        assert_eq!(
            ext.get::<Counter>()
                .unwrap()
                .0
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        ext.set(Arc::new(Counter(8.into())));
        assert_eq!(
            ext.get::<Counter>()
                .unwrap()
                .0
                .load(std::sync::atomic::Ordering::Relaxed),
            8,
            "replaced, not added"
        );
        assert!(ext.remove::<Carbons>());
        assert!(!ext.remove::<Carbons>());
        assert!(!ext.has::<Carbons>());
        assert!(ext.has::<Counter>());
    }
}
