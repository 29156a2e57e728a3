//! The table of bound client sessions, keyed by bare JID, and the handle
//! through which the router hands a session its outbound stanzas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use switchboard_jid::Jid;
use switchboard_xml::Element;
use tokio::sync::Notify;

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
    /// Wakes the connection to close it when its outbox overflows (a full
    /// outbox cannot carry the close request itself).
    pub kill: Arc<Notify>,
    /// The priority of the last available presence without `to`, or `None`
    /// while the session has not sent one (or went unavailable).
    pub priority: Option<i8>,
    /// That presence itself, to answer probes and tell new resources.
    pub presence: Option<Arc<Element>>,
    /// Whether the session asked for the roster (and so gets pushes).
    pub interested: bool,
    /// Set once the outbox has overflowed, so the kill and its log line
    /// happen once.
    pub overflowed: Arc<std::sync::atomic::AtomicBool>,
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
        kill: Arc<Notify>,
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
            kill,
            priority: None,
            presence: None,
            interested: false,
            overflowed: Arc::default(),
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

    /// Removes the session with this id wherever it is (the router gives
    /// up on a session it only has the entry of). A walk over every
    /// account: only for the rare session that stopped reading.
    pub fn unbind_id(&self, id: u64) -> bool {
        let bare = self
            .by_bare
            .iter()
            .find(|e| e.value().iter().any(|s| s.id == id))
            .map(|e| e.key().clone());
        match bare {
            Some(bare) => {
                let jid = bare.clone();
                let (removed, empty) = match self.by_bare.get_mut(&jid) {
                    Some(mut list) => {
                        let before = list.len();
                        list.retain(|s| s.id != id);
                        (list.len() < before, list.is_empty())
                    }
                    None => (false, false),
                };
                if empty {
                    self.by_bare.remove_if(&bare, |_, l| l.is_empty());
                }
                removed
            }
            None => false,
        }
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
