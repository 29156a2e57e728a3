//! The capabilities cache shared by every session of the server: verified
//! `ver` strings (XEP-0115 §5.4 step 3.8) and the features they stand
//! for. Only answers whose hash matched go in, so one user's claim can
//! never decide what another user's `ver` means.
//!
//! Bounded by entries and by weight; the oldest entry goes first (clients
//! of one version share one entry, so a few hundred cover a deployment,
//! and an entry pushed out is asked again the next time it is seen).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::verify::Features;

/// A verification string and the hash function it was made with.
pub type Key = (String, String);

pub struct Cache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_weight: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Arc<Features>>,
    order: VecDeque<Key>,
    weight: usize,
}

impl Cache {
    pub fn new(max_entries: usize, max_weight: usize) -> Cache {
        Cache {
            inner: Mutex::default(),
            max_entries,
            max_weight,
        }
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Features>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.get(key).cloned()
    }

    /// Keeps a verified entry, pushing the oldest out while over a bound.
    pub fn insert(&self, key: Key, features: Arc<Features>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.map.contains_key(&key) {
            return;
        }
        inner.weight += features.weight();
        inner.order.push_back(key.clone());
        inner.map.insert(key, features);
        while inner.map.len() > self.max_entries || inner.weight > self.max_weight {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(f) = inner.map.remove(&old) {
                inner.weight -= f.weight();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Key {
        ("sha-1".into(), v.into())
    }

    #[test]
    fn the_oldest_entry_goes_first_when_full() {
        let c = Cache::new(2, usize::MAX);
        c.insert(key("a"), Arc::new(Features::of(&["urn:a"])));
        c.insert(key("b"), Arc::new(Features::of(&["urn:b"])));
        c.insert(key("c"), Arc::new(Features::of(&["urn:c"])));
        assert_eq!(c.len(), 2);
        assert!(c.get(&key("a")).is_none());
        assert!(c.get(&key("c")).unwrap().contains("urn:c"));
    }

    #[test]
    fn weight_bounds_the_cache_too() {
        let big = Features::of(&[
            "urn:aaaaaaaaaaaaaaaaaaaaaaaa",
            "urn:bbbbbbbbbbbbbbbbbbbbbbbbbbb",
        ]);
        let c = Cache::new(100, big.weight() * 2);
        for v in ["a", "b", "c"] {
            c.insert(key(v), Arc::new(big.clone()));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&key("a")).is_none());
    }
}
