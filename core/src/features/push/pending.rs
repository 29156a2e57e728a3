//! The notifications waiting for their app server's answer, by the id the
//! server gave them: how a reply to an account's bare JID is recognised
//! as one of ours (and which registration it is about). Bounded in size
//! and time: an app server that never answers costs one entry until it
//! expires, and a flood of notifications pushes out the oldest. `now` is
//! passed in, so the map reads no clock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use switchboard_jid::Jid;
use tokio::time::Instant;

/// How long an answer is waited for. App servers answer in well under a
/// second; one that answers later than this is treated as never having
/// answered (its error then changes nothing).
pub const TTL: Duration = Duration::from_secs(120);
/// The most notifications waiting at once; beyond it the oldest is
/// forgotten.
pub const CAPACITY: usize = 4096;

/// What a notification was sent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The account's bare JID (the notification's `from`).
    pub account: Jid,
    /// The push service (its `to`) and the node published to.
    pub service: Jid,
    pub node: String,
}

#[derive(Default)]
pub struct Pending {
    by_id: HashMap<String, (Sent, Instant)>,
    /// Ids in the order they were sent, for expiry and eviction; an id
    /// already answered is skipped when it comes up.
    order: VecDeque<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Remembers a notification sent now under `id`.
    pub fn insert(&mut self, id: String, sent: Sent, now: Instant) {
        self.expire(now);
        // Bounded by what was sent, answered or not, so that answered
        // ids waiting behind an unanswered one cannot pile up either.
        while self.order.len() >= CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.by_id.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, (sent, now + TTL));
    }

    /// Takes the notification a reply answers: the reply's `id` must be
    /// one we sent, from the service we sent it to, to the account that
    /// sent it, and not expired. Anything else is not ours to consume.
    pub fn take(&mut self, id: &str, from: &Jid, to: &Jid, now: Instant) -> Option<Sent> {
        self.expire(now);
        let (sent, _) = self.by_id.get(id)?;
        if sent.service != *from || sent.account != *to {
            return None;
        }
        self.by_id.remove(id).map(|(s, _)| s)
    }

    fn expire(&mut self, now: Instant) {
        while let Some(id) = self.order.front() {
            match self.by_id.get(id) {
                Some((_, expires)) if *expires > now => break,
                Some(_) => {
                    self.by_id.remove(id);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn sent() -> Sent {
        Sent {
            account: jid("alice@localhost"),
            service: jid("push.localhost"),
            node: "n".into(),
        }
    }

    #[test]
    fn only_the_service_it_went_to_answers_for_the_account_that_sent_it() {
        let now = Instant::now();
        let mut p = Pending::default();
        p.insert("a".into(), sent(), now);
        let (alice, push) = (jid("alice@localhost"), jid("push.localhost"));
        assert_eq!(p.take("b", &push, &alice, now), None, "not an id we sent");
        assert_eq!(
            p.take("a", &jid("evil.localhost"), &alice, now),
            None,
            "another service"
        );
        assert_eq!(p.take("a", &push, &jid("bob@localhost"), now), None);
        assert_eq!(p.take("a", &push, &alice, now), Some(sent()));
        assert_eq!(p.take("a", &push, &alice, now), None, "answered once");
        assert!(p.is_empty());
    }

    #[test]
    fn entries_expire_and_the_oldest_go_first_when_full() {
        let start = Instant::now();
        let mut p = Pending::default();
        let (alice, push) = (jid("alice@localhost"), jid("push.localhost"));
        p.insert("old".into(), sent(), start);
        p.insert("new".into(), sent(), start + TTL / 2);
        assert_eq!(p.take("old", &push, &alice, start + TTL), None, "expired");
        assert!(p.take("new", &push, &alice, start + TTL).is_some());

        for i in 0..CAPACITY + 10 {
            p.insert(format!("n{i}"), sent(), start);
        }
        assert_eq!(p.len(), CAPACITY);
        assert_eq!(p.take("n0", &push, &alice, start), None, "evicted");
        assert!(p
            .take(&format!("n{}", CAPACITY + 9), &push, &alice, start)
            .is_some());
    }
}
