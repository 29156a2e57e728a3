//! A value per account kept in memory while the account has a bound
//! session: a block list, archive preferences. The session-start hook of
//! the feature counts each session in ([`OnlineCache::enter`], which loads
//! the value for the first one), the session-end hook counts it out, and
//! the value goes when the account's last session has ended. Accounts
//! without a session are not cached: what reaches them goes through their
//! actor, where a feature may read the store.
//!
//! Reading ([`OnlineCache::get`]) is a map lookup, cheap enough for the
//! routing path: every method takes any JID of the account (a full JID
//! too) and looks its bare form up without allocating.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use switchboard_jid::Jid;

/// Whether two JIDs belong to the same account (or host): their bare
/// forms are equal, compared without building them.
pub fn same_account(a: &Jid, b: &Jid) -> bool {
    a.node() == b.node() && a.domain() == b.domain()
}

/// The cached value of each account with a session, by bare JID (as
/// text).
pub struct OnlineCache<T> {
    map: DashMap<Box<str>, Slot<T>>,
}

thread_local! {
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Calls `f` with the bare form of `jid` as text, written into a buffer of
/// the thread's: a lookup on the routing path allocates nothing.
fn with_key<R>(jid: &Jid, f: impl FnOnce(&str) -> R) -> R {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        k.clear();
        if let Some(node) = jid.node() {
            k.push_str(node);
            k.push('@');
        }
        k.push_str(jid.domain());
        f(&k)
    })
}

struct Slot<T> {
    sessions: u32,
    value: Arc<T>,
}

impl<T> Default for OnlineCache<T> {
    fn default() -> Self {
        OnlineCache {
            map: DashMap::new(),
        }
    }
}

impl<T: Send + Sync + 'static> OnlineCache<T> {
    /// The account's value, if it has a session (or its last one has
    /// just ended and the value was not evicted yet).
    pub fn get(&self, jid: &Jid) -> Option<Arc<T>> {
        with_key(jid, |k| self.map.get(k).map(|s| s.value.clone()))
    }

    /// Counts a session of `jid`'s account in. The first session loads the
    /// value; later ones find it there. Two first sessions at once may both
    /// load, and the first to finish wins.
    pub async fn enter<F: Future<Output = T>>(&self, jid: &Jid, load: impl FnOnce() -> F) {
        let counted = with_key(jid, |k| match self.map.get_mut(k) {
            Some(mut slot) => {
                slot.sessions += 1;
                true
            }
            None => false,
        });
        if counted {
            return;
        }
        let value = Arc::new(load().await);
        let key: Box<str> = with_key(jid, |k| Box::from(k));
        match self.map.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().sessions += 1,
            Entry::Vacant(e) => {
                e.insert(Slot { sessions: 1, value });
            }
        }
    }

    /// Counts a session of `bare` out: `true` when it was the account's
    /// last. The value stays until [`OnlineCache::evict`].
    pub fn leave(&self, jid: &Jid) -> bool {
        with_key(jid, |k| match self.map.get_mut(k) {
            Some(mut slot) => {
                slot.sessions = slot.sessions.saturating_sub(1);
                slot.sessions == 0
            }
            None => false,
        })
    }

    /// Drops the account's value unless a session has been counted in
    /// again meanwhile.
    pub fn evict(&self, jid: &Jid) {
        with_key(jid, |k| {
            self.map.remove_if(k, |_, s| s.sessions == 0);
        })
    }

    /// Replaces the account's value, if it is cached; whether it was.
    pub fn replace(&self, jid: &Jid, value: T) -> bool {
        let value = Arc::new(value);
        with_key(jid, |k| match self.map.get_mut(k) {
            Some(mut slot) => {
                slot.value = value;
                true
            }
            None => false,
        })
    }

    /// How many accounts are cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[tokio::test]
    async fn the_first_session_loads_and_the_last_one_lets_go() {
        let cache = OnlineCache::<u32>::default();
        let alice = jid("alice@example.org");
        assert!(cache.get(&alice).is_none());
        cache
            .enter(&jid("alice@example.org/desk"), || async { 7 })
            .await;
        cache
            .enter(&alice, || async { panic!("loaded once only") })
            .await;
        assert_eq!(cache.get(&alice).as_deref(), Some(&7));
        assert_eq!(
            cache.get(&jid("alice@example.org/phone")).as_deref(),
            Some(&7),
            "any resource finds its account's value"
        );
        assert!(cache.replace(&alice, 8));
        assert!(!cache.leave(&alice), "one session is left");
        assert_eq!(cache.get(&alice).as_deref(), Some(&8));
        assert!(cache.leave(&alice));
        // A session that comes back before the eviction keeps the value.
        cache
            .enter(&alice, || async { panic!("still cached") })
            .await;
        cache.evict(&alice);
        assert_eq!(cache.get(&alice).as_deref(), Some(&8));
        assert!(cache.leave(&alice));
        cache.evict(&alice);
        assert!(cache.get(&alice).is_none());
        assert!(!cache.replace(&alice, 9), "not cached while offline");
        assert!(cache.is_empty());
    }
}
