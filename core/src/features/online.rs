//! A value per account kept in memory while the account has a bound
//! session: a block list, archive preferences. The session-start hook of
//! the feature counts each session in ([`OnlineCache::enter`], which loads
//! the value for the first one), the session-end hook counts it out, and
//! the value goes when the account's last session has ended. Accounts
//! without a session are not cached: what reaches them goes through their
//! actor, where a feature may read the store.
//!
//! Reading ([`OnlineCache::get`]) is a map lookup, cheap enough for the
//! routing path.

use std::future::Future;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use switchboard_jid::Jid;

/// The cached value of each account with a session, by bare JID.
pub struct OnlineCache<T> {
    map: DashMap<Jid, Slot<T>>,
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
    pub fn get(&self, bare: &Jid) -> Option<Arc<T>> {
        self.map.get(bare).map(|s| s.value.clone())
    }

    /// Counts a session of `bare` in. The first session loads the value;
    /// later ones find it there. Two first sessions at once may both load,
    /// and the first to finish wins.
    pub async fn enter<F: Future<Output = T>>(&self, bare: &Jid, load: impl FnOnce() -> F) {
        if let Some(mut slot) = self.map.get_mut(bare) {
            slot.sessions += 1;
            return;
        }
        let value = Arc::new(load().await);
        match self.map.entry(bare.clone()) {
            Entry::Occupied(mut e) => e.get_mut().sessions += 1,
            Entry::Vacant(e) => {
                e.insert(Slot { sessions: 1, value });
            }
        }
    }

    /// Counts a session of `bare` out: `true` when it was the account's
    /// last. The value stays until [`OnlineCache::evict`].
    pub fn leave(&self, bare: &Jid) -> bool {
        match self.map.get_mut(bare) {
            Some(mut slot) => {
                slot.sessions = slot.sessions.saturating_sub(1);
                slot.sessions == 0
            }
            None => false,
        }
    }

    /// Drops the account's value unless a session has been counted in
    /// again meanwhile.
    pub fn evict(&self, bare: &Jid) {
        self.map.remove_if(bare, |_, s| s.sessions == 0);
    }

    /// Replaces the account's value, if it is cached; whether it was.
    pub fn replace(&self, bare: &Jid, value: T) -> bool {
        match self.map.get_mut(bare) {
            Some(mut slot) => {
                slot.value = Arc::new(value);
                true
            }
            None => false,
        }
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
        cache.enter(&alice, || async { 7 }).await;
        cache
            .enter(&alice, || async { panic!("loaded once only") })
            .await;
        assert_eq!(cache.get(&alice).as_deref(), Some(&7));
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
