//! A small multi-producer, single-consumer queue: the outbox of every
//! session and the work queue of every account actor.
//!
//! tokio's `mpsc` channels allocate a 32-slot block and a cache-padded
//! channel header (about 1 KiB together) the moment they are made. A
//! server holds one outbox per session and one queue per running account
//! actor, nearly all of them empty nearly all the time, so that cost is
//! paid per idle user (see `bench/README.md`, "Where an idle session's
//! memory goes"). This queue is one small allocation until something is
//! queued, and gives its buffer back when it empties out after a burst.
//!
//! The API follows tokio's (`try_send`, `send`, `recv`, `try_recv`,
//! `close`, `same_channel`) so the call sites read the same. What it does
//! not do: a receiver never learns that every sender has gone (the
//! callers do not need it: a session's connection and an account's actor
//! each keep a sender of their own or end by their own decision).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Above this many slots an empty queue frees its buffer; below it, the
/// buffer is kept for the next burst.
const KEEP_CAPACITY: usize = 8;

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// The receiver closed the queue or went away: sends fail.
    closed: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Wakes the one receiver; `notify_one` keeps a permit when the
    /// receiver is not waiting yet, so a wake-up is never lost between its
    /// check of the queue and its wait.
    ready: Notify,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the queue
        // inconsistent (each operation is one push or pop), so a poisoned
        // lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half; cheap to clone.
pub struct Sender<T> {
    inner: Arc<Inner<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// Why `try_send` did not queue the value, which it gives back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` values already.
    Full(T),
    /// The receiver closed the queue or is gone.
    Closed(T),
}

/// `send` on a closed queue; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// A queue that holds at most `capacity` values.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a queue needs room for one value");
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity,
            closed: false,
        }),
        ready: Notify::new(),
    });
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

/// A queue without a bound: for producers whose rate is bounded elsewhere.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    channel(usize::MAX)
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue::Sender")
    }
}

impl<T> Sender<T> {
    /// Queues `value` unless the queue is full or closed; never waits.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(TrySendError::Closed(value));
            }
            if state.items.len() >= state.capacity {
                return Err(TrySendError::Full(value));
            }
            state.items.push_back(value);
        }
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Queues `value` on an unbounded queue (on a bounded one, a full
    /// queue counts as closed).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.try_send(value).map_err(|e| match e {
            TrySendError::Full(v) | TrySendError::Closed(v) => SendError(v),
        })
    }

    /// Whether both senders feed the same queue.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T> Receiver<T> {
    /// The next value, waiting for one. `None` once the queue is closed
    /// and empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(value) => return Some(value),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => self.inner.ready.notified().await,
            }
        }
    }

    /// The next value if there is one.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.inner.lock();
        match state.items.pop_front() {
            Some(value) => {
                if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
                    state.items = VecDeque::new();
                }
                Ok(value)
            }
            None if state.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses further sends; what is queued can still be received.
    pub fn close(&mut self) {
        self.inner.lock().closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.inner.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: a value's destructor may send.
        drop(items);
    }
}

/// Why `try_recv` returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_queue_refuses_when_full_and_keeps_order() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn closing_refuses_sends_but_drains_what_was_queued() {
        let (tx, mut rx) = unbounded_channel();
        tx.send("a").unwrap();
        rx.close();
        assert_eq!(tx.send("b"), Err(SendError("b")));
        assert_eq!(rx.try_recv(), Ok("a"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn a_dropped_receiver_closes_the_queue() {
        let (tx, rx) = channel(4);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(TrySendError::Closed(1)));
    }

    #[test]
    fn same_channel_tells_queues_apart() {
        let (a, _ra) = channel::<u8>(1);
        let (b, _rb) = channel::<u8>(1);
        assert!(a.same_channel(&a.clone()));
        assert!(!a.same_channel(&b));
    }

    #[test]
    fn an_emptied_queue_gives_its_buffer_back() {
        let (tx, mut rx) = unbounded_channel();
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.inner.lock().items.capacity(), 0);
    }

    /// Many producers on other threads, one consumer waiting in `recv`:
    /// every value arrives, each producer's in its order, and no wake-up
    /// is lost (the test would hang, and time out, if one were).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_producers_lose_nothing() {
        const PRODUCERS: usize = 4;
        const EACH: usize = 20_000;
        let (tx, mut rx) = unbounded_channel();
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    tx.send((p, i)).unwrap();
                    if i % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let mut next = [0usize; PRODUCERS];
        let all = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            for _ in 0..PRODUCERS * EACH {
                let (p, i) = rx.recv().await.expect("the queue stays open");
                assert_eq!(i, next[p], "producer {p} out of order");
                next[p] += 1;
            }
        })
        .await;
        assert!(all.is_ok(), "values went missing: {next:?}");
    }
}
