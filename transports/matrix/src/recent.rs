//! A map that keeps only its most recent entries: event ids already
//! delivered, the event ids of messages the user sent, reactions. A
//! session's memory stays bounded however long it runs; what falls out
//! is old enough that nobody refers to it any more (and when someone
//! does, the answer is an error, never a wrong guess).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub struct Recent<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    pub fn new(cap: usize) -> Recent<K, V> {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Inserts (or replaces) `k`; the oldest entry goes when full.
    pub fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k)
    }

    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Removes `k` (its place in the order is reclaimed lazily).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        if let Some(i) = self.order.iter().position(|o| o == k) {
            self.order.remove(i);
        }
        Some(v)
    }

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

    #[test]
    fn the_oldest_entries_go_first() {
        let mut r = Recent::new(2);
        r.insert("a", 1);
        r.insert("b", 2);
        r.insert("a", 3); // a replacement keeps its place
        r.insert("c", 4);
        assert!(!r.contains(&"a"));
        assert_eq!(r.get(&"b"), Some(&2));
        assert_eq!(r.remove(&"b"), Some(2));
        r.insert("d", 5);
        assert_eq!(r.len(), 2);
    }
}
