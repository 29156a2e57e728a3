//! The archive writer: one task per host takes the archive's writes off
//! the routing path and makes them durable in batches.
//!
//! A hook that archives a message only queues it ([`Writers::append`],
//! which never waits) with the ticket of the session that sent it; the
//! writer takes everything queued (up to [`MAX_BATCH`]), appends each
//! archive's share with one flush (`ArchiveStore::append_batch`, the
//! archives of different users side by side), and drops the tickets only
//! then, so the sender's next IQ is answered once its message is stored
//! (the way offline messages are). Retractions are applied after the
//! appends queued before them, and a query first waits for what was
//! queued before it ([`Writers::flush`]), so a user always finds what
//! they were sent.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_spool::store::{ArchiveEntry, ArchiveStore};
use tokio::sync::{mpsc, oneshot};

use super::retract;
use crate::lifecycle::Guard;

/// The most operations taken from the queue at once.
pub const MAX_BATCH: usize = 512;

/// What the writer is asked to do.
#[derive(Debug)]
pub enum Op {
    /// Store `entry` in `owner`'s archive; `ticket` goes when it is
    /// durable.
    Append {
        owner: String,
        entry: ArchiveEntry,
        ticket: Option<Guard>,
    },
    /// Replace the message a retraction names with a tombstone.
    Retract {
        owner: String,
        retraction: retract::Retraction,
        ticket: Option<Guard>,
    },
    /// Say when everything queued before is done.
    Flush(oneshot::Sender<()>),
}

/// The queue of each local host's writer.
#[derive(Default)]
pub struct Writers {
    queues: HashMap<String, mpsc::UnboundedSender<Op>>,
}

impl Writers {
    /// A writer for each of `hosts`: the queues, and the tasks to spawn.
    pub fn new(
        hosts: &[String],
        store: &Arc<dyn ArchiveStore>,
    ) -> (
        Writers,
        Vec<impl std::future::Future<Output = ()> + Send + 'static>,
    ) {
        let mut queues = HashMap::new();
        let mut tasks = Vec::new();
        for h in hosts {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.insert(h.clone(), tx);
            tasks.push(run(store.clone(), rx));
        }
        (Writers { queues }, tasks)
    }

    fn send(&self, owner: &Jid, op: Op) {
        match self.queues.get(owner.domain()) {
            Some(q) => {
                if q.send(op).is_err() {
                    tracing::error!(%owner, "the archive writer is gone; a message was not archived");
                }
            }
            None => tracing::error!(%owner, "no archive writer for this host"),
        }
    }

    /// Queues an entry for `owner`'s archive; never waits.
    pub fn append(&self, owner: &Jid, entry: ArchiveEntry, ticket: Option<Guard>) {
        let op = Op::Append {
            owner: owner.to_string(),
            entry,
            ticket,
        };
        self.send(owner, op);
    }

    /// Queues a retraction for `owner`'s archive; never waits.
    pub fn retract(&self, owner: &Jid, retraction: retract::Retraction, ticket: Option<Guard>) {
        let op = Op::Retract {
            owner: owner.to_string(),
            retraction,
            ticket,
        };
        self.send(owner, op);
    }

    /// Resolves once what was queued for `owner`'s host before is done.
    pub async fn flush(&self, owner: &Jid) {
        let (tx, rx) = oneshot::channel();
        self.send(owner, Op::Flush(tx));
        let _ = rx.await;
    }
}

/// A host's writer: batches until its queue closes.
pub async fn run(store: Arc<dyn ArchiveStore>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        process(&store, &mut batch).await;
    }
}

/// Carries out a batch in order: runs of appends are written together,
/// each archive with one flush.
async fn process(store: &Arc<dyn ArchiveStore>, batch: &mut Vec<Op>) {
    let mut appends: Vec<(String, ArchiveEntry, Option<Guard>)> = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Append {
                owner,
                entry,
                ticket,
            } => appends.push((owner, entry, ticket)),
            Op::Retract {
                owner,
                retraction,
                ticket,
            } => {
                write_appends(store, &mut appends).await;
                retract::apply(store.as_ref(), &owner, &retraction).await;
                drop(ticket);
            }
            Op::Flush(done) => {
                write_appends(store, &mut appends).await;
                let _ = done.send(());
            }
        }
    }
    write_appends(store, &mut appends).await;
}

/// Writes queued appends, each archive's in order, all of them with one
/// flush where the store can (`ArchiveStore::append_many`); then lets their
/// senders go on.
async fn write_appends(
    store: &Arc<dyn ArchiveStore>,
    appends: &mut Vec<(String, ArchiveEntry, Option<Guard>)>,
) {
    if appends.is_empty() {
        return;
    }
    let mut batches: Vec<(String, Vec<ArchiveEntry>)> = Vec::new();
    let mut places: HashMap<String, usize> = HashMap::new();
    let mut tickets = Vec::with_capacity(appends.len());
    for (owner, entry, ticket) in appends.drain(..) {
        let i = *places.entry(owner).or_insert_with_key(|owner| {
            batches.push((owner.clone(), Vec::new()));
            batches.len() - 1
        });
        batches[i].1.push(entry);
        tickets.extend(ticket);
    }
    let results = store.append_many(&batches).await;
    for ((owner, entries), result) in batches.iter().zip(results) {
        if let Err(e) = result {
            tracing::error!(%owner, count = entries.len(), "cannot archive messages: {e}");
        }
    }
    drop(tickets);
}

/// Every entry of an archive, oldest first, for tests.
#[cfg(test)]
pub(super) async fn all(store: &dyn ArchiveStore, owner: &str) -> Vec<ArchiveEntry> {
    let q = switchboard_spool::store::ArchiveQuery {
        max: 1000,
        ..Default::default()
    };
    store.query(owner, &q).await.unwrap().unwrap().entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Tracker;
    use switchboard_spool::store::memory::MemoryStores;
    use switchboard_xml::{ns, Element};

    fn entry(n: u64) -> ArchiveEntry {
        ArchiveEntry {
            id: format!("m{n}"),
            timestamp: n,
            with: "bob@x".into(),
            stanza: Element::new("message", ns::CLIENT).with_attr("id", format!("c{n}")),
        }
    }

    #[tokio::test]
    async fn writes_are_ordered_and_tickets_go_when_they_are_durable() {
        let stores = MemoryStores::new();
        let store: Arc<dyn ArchiveStore> = stores.archive.clone();
        let (writers, tasks) = Writers::new(&["x".to_string()], &store);
        for t in tasks {
            tokio::spawn(t);
        }
        let alice = Jid::parse("alice@x").unwrap();
        let carol = Jid::parse("carol@x").unwrap();
        let session = Tracker::default();
        for n in 1..=3 {
            writers.append(&alice, entry(n), Some(session.guard()));
            writers.append(&carol, entry(n + 10), Some(session.guard()));
        }
        assert!(session.live() > 0, "the sender waits for the writes");
        writers.flush(&alice).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), session.drained())
            .await
            .unwrap();
        let ids = |v: Vec<ArchiveEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(
            ids(all(store.as_ref(), "alice@x").await),
            ["m1", "m2", "m3"]
        );
        assert_eq!(
            ids(all(store.as_ref(), "carol@x").await),
            ["m11", "m12", "m13"]
        );
    }
}
