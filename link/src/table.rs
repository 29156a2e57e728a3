//! The per-user connection table: one link per (user, server), each a
//! task reached through its bounded request queue, and a limit on how
//! many servers one user may be connected to at once.
//!
//! The table never waits: a request goes into a link's queue with
//! `try_send`, so the loop that owns the table (a gateway's service loop)
//! is never held up by one user's busy link. A link whose task ended is
//! recognised by its closed queue; the table forgets it on the next
//! [`ConnectionTable::make_room`] or [`ConnectionTable::ended`].
//!
//! Server names are compared case-insensitively, as DNS names are.

use std::collections::HashMap;

use tokio::sync::mpsc;

/// Why a request did not reach a link.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// The link's queue is full: the link is up but behind.
    Busy(T),
    /// There is no link, or it is ending: the request is handed back, to
    /// open a new one with.
    Absent(T),
}

/// A user is at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached {
    /// Links the user has open.
    pub open: usize,
}

/// Links by (user, server), with requests of type `T`.
#[derive(Debug)]
pub struct ConnectionTable<T> {
    links: HashMap<(String, String), mpsc::Sender<T>>,
    per_user: usize,
}

fn key(user: &str, server: &str) -> (String, String) {
    (user.to_owned(), server.to_ascii_lowercase())
}

impl<T> ConnectionTable<T> {
    /// An empty table allowing `per_user` links per user.
    pub fn new(per_user: usize) -> ConnectionTable<T> {
        ConnectionTable {
            links: HashMap::new(),
            per_user,
        }
    }

    /// Hands `req` to the link of `user` to `server` without waiting.
    pub fn hand(&self, user: &str, server: &str, req: T) -> Result<(), Refused<T>> {
        let Some(tx) = self.links.get(&key(user, server)) else {
            return Err(Refused::Absent(req));
        };
        tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(req) => Refused::Busy(req),
            mpsc::error::TrySendError::Closed(req) => Refused::Absent(req),
        })
    }

    /// Whether `user` may open one more link: links that ended are
    /// forgotten first.
    pub fn make_room(&mut self, user: &str) -> Result<(), LimitReached> {
        self.links.retain(|_, tx| !tx.is_closed());
        let open = self.links.keys().filter(|k| k.0 == user).count();
        if open >= self.per_user {
            return Err(LimitReached { open });
        }
        Ok(())
    }

    /// Records the new link of `user` to `server` (replacing one that
    /// ended).
    pub fn insert(&mut self, user: &str, server: &str, tx: mpsc::Sender<T>) {
        self.links.insert(key(user, server), tx);
    }

    /// The link of `user` to `server` ended: it is forgotten, unless a
    /// newer one (with its queue still open) took its place.
    pub fn ended(&mut self, user: &str, server: &str) {
        let k = key(user, server);
        if self.links.get(&k).is_some_and(|tx| tx.is_closed()) {
            self.links.remove(&k);
        }
    }

    /// Forgets the link of `user` to `server` now. Dropping its sender
    /// closes its queue, which is how a link task learns that it is to
    /// end: it finishes what it was given, then stops.
    pub fn remove(&mut self, user: &str, server: &str) -> Option<mpsc::Sender<T>> {
        self.links.remove(&key(user, server))
    }

    /// Links in the table, ended ones included until forgotten.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_reach_the_users_link_to_that_server() {
        let mut t = ConnectionTable::new(2);
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(t.hand("a@l", "irc.x", 1), Err(Refused::Absent(1)));
        t.make_room("a@l").unwrap();
        t.insert("a@l", "IRC.x", tx);
        t.hand("a@l", "irc.X", 2).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        // Another user, or another server, is another link.
        assert_eq!(t.hand("b@l", "irc.x", 3), Err(Refused::Absent(3)));
        assert_eq!(t.hand("a@l", "irc.y", 4), Err(Refused::Absent(4)));
    }

    #[test]
    fn a_full_queue_is_busy_and_a_closed_one_absent() {
        let mut t = ConnectionTable::new(2);
        let (tx, mut rx) = mpsc::channel(1);
        t.insert("a@l", "s", tx);
        t.hand("a@l", "s", 1).unwrap();
        assert_eq!(t.hand("a@l", "s", 2), Err(Refused::Busy(2)));
        rx.close();
        assert_eq!(t.hand("a@l", "s", 3), Err(Refused::Absent(3)));
    }

    #[test]
    fn each_user_has_a_limit_and_ended_links_free_their_place() {
        let mut t = ConnectionTable::new(2);
        let (tx1, rx1) = mpsc::channel::<u8>(1);
        let (tx2, _rx2) = mpsc::channel::<u8>(1);
        t.insert("a@l", "one", tx1);
        t.insert("a@l", "two", tx2);
        assert_eq!(t.make_room("a@l"), Err(LimitReached { open: 2 }));
        // Other users are not affected.
        assert_eq!(t.make_room("b@l"), Ok(()));
        drop(rx1);
        assert_eq!(t.make_room("a@l"), Ok(()));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_removed_link_sees_its_queue_close() {
        let mut t = ConnectionTable::new(1);
        let (tx, mut rx) = mpsc::channel::<u8>(1);
        t.insert("a@l", "s", tx);
        t.hand("a@l", "s", 1).unwrap();
        assert!(t.remove("a@l", "S").is_some());
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(rx.is_closed());
        assert_eq!(t.make_room("a@l"), Ok(()));
    }

    #[test]
    fn an_ended_link_replaced_by_a_new_one_stays() {
        let mut t = ConnectionTable::new(2);
        let (old, old_rx) = mpsc::channel::<u8>(1);
        t.insert("a@l", "s", old);
        drop(old_rx);
        let (new, _new_rx) = mpsc::channel::<u8>(1);
        t.insert("a@l", "s", new);
        // The old link's end is reported after the new one took its place.
        t.ended("a@l", "s");
        assert_eq!(t.len(), 1);
        t.hand("a@l", "s", 7).unwrap();
        let (gone, gone_rx) = mpsc::channel::<u8>(1);
        t.insert("b@l", "s", gone);
        drop(gone_rx);
        t.ended("b@l", "S");
        assert_eq!(t.len(), 1);
    }
}
