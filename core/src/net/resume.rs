//! Resumable sessions (XEP-0198 §5): the registry behind `<enabled
//! resume='true'/>` and `<resume previd='…'/>`.
//!
//! A session that enabled resumption has a slot here under a random id.
//! While its connection lives the slot is *attached*. When the connection
//! dies without a clean close, the session *hibernates*: its state moves
//! into the slot, it stays in the session table (contacts still see it
//! online, and what is sent to it waits in its outbox), and a timer ends
//! it after the agreed time. A new connection of the same account that
//! resumes takes the state out and carries on; one that resumes while the
//! old connection still seems alive makes that connection hand the state
//! over first (it is usually a dead socket the server has not noticed).
//! When the timer runs out, or the session is given up on meanwhile (its
//! outbox overflowed), the session ends the usual way: everything
//! unacknowledged or queued goes on to offline storage or back to its
//! sender.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use switchboard_jid::Jid;
use tokio::sync::Notify;

use super::session::BoundSession;
use crate::routing::Router;

/// How long a resumption waits for the old connection to hand over.
const HANDOVER: Duration = Duration::from_secs(5);

/// The hibernation marker lives with the session state (`sessions`), where
/// the routing path and features below this layer can read it.
pub use crate::sessions::{is_hibernating, Hibernating};

enum SlotState {
    /// A connection holds the session.
    Attached,
    /// The session hibernates here; `generation` tells a stale timer from
    /// the current one.
    Detached {
        session: Box<BoundSession>,
        generation: u64,
    },
    /// The session ended; the id is dead.
    Gone,
}

/// One resumable session's slot.
pub struct Slot {
    id: String,
    /// The account's bare JID: only it may resume.
    owner: Jid,
    state: Mutex<(SlotState, u64)>,
    /// Asks the attached connection to hand the session over.
    pub(crate) handover: Notify,
    /// Wakes a resumption waiting for the hand-over.
    detached: Notify,
    registry: std::sync::Weak<Resumptions>,
}

impl Slot {
    /// The id clients resume with.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session ended: its id resumes nothing any more.
    pub fn forget(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = SlotState::Gone;
        drop(state);
        // A resumption waiting for a hand-over learns at once that there
        // is nothing to take.
        self.detached.notify_waiters();
        if let Some(r) = self.registry.upgrade() {
            r.slots.remove(&self.id);
        }
    }
}

/// Every resumable session of the server.
pub struct Resumptions {
    slots: DashMap<String, Arc<Slot>>,
    me: std::sync::Weak<Resumptions>,
}

/// Why a resumption failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// No such id, another account's, expired or ended.
    NotFound,
}

impl Resumptions {
    pub fn new() -> Arc<Resumptions> {
        Arc::new_cyclic(|me| Resumptions {
            slots: DashMap::new(),
            me: me.clone(),
        })
    }

    /// A slot for a session of `owner` that enabled resumption.
    pub fn register(&self, owner: Jid) -> Arc<Slot> {
        let id = crate::ids::random_id();
        let slot = Arc::new(Slot {
            id: id.clone(),
            owner,
            state: Mutex::new((SlotState::Attached, 0)),
            handover: Notify::new(),
            detached: Notify::new(),
            registry: self.me.clone(),
        });
        self.slots.insert(id, slot.clone());
        slot
    }

    /// How many sessions hibernate or could (for tests and metrics).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Puts a session into its slot to hibernate for `max`, after which
    /// (or at once, if it is given up on for not reading) it ends:
    /// because its connection died (`connection_lost`: the table's
    /// hibernation hooks hear of it, with what the device may not have
    /// received), or to hand it over to a connection that resumes it.
    pub(crate) fn hibernate(
        &self,
        slot: &Arc<Slot>,
        session: Box<BoundSession>,
        max: Duration,
        router: Router,
        connection_lost: bool,
    ) {
        if session.session.shared.given_up() {
            // Given up on while its connection still held it (the outbox
            // overflowed just before the hand-over): nobody may resume it,
            // and its account waits for what it leaves.
            return session.end(&router);
        }
        session.session.shared.ext.set(Arc::new(Hibernating));
        if connection_lost {
            let unacked: Vec<&switchboard_xml::Element> = session
                .sm
                .as_ref()
                .map(|s| s.sm.unacked().collect())
                .unwrap_or_default();
            router.session_hibernates(&session.session, &unacked);
        }
        let ext_shared = session.session.shared.clone();
        let generation = {
            let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(state.0, SlotState::Gone) {
                drop(state);
                return session.end(&router);
            }
            state.1 += 1;
            state.0 = SlotState::Detached {
                session,
                generation: state.1,
            };
            state.1
        };
        slot.detached.notify_waiters();
        tracing::info!(owner = %slot.owner, seconds = max.as_secs(), "session hibernates");
        let slot = slot.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(max) => {}
                // Given up on for not reading while hibernating: the
                // outbox is full and nobody will read it.
                _ = ext_shared.kill.notified() => {}
            }
            let session = {
                let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
                match &state.0 {
                    SlotState::Detached { generation: g, .. } if *g == generation => {
                        match std::mem::replace(&mut state.0, SlotState::Gone) {
                            SlotState::Detached { session, .. } => Some(session),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            };
            if let Some(session) = session {
                tracing::info!(owner = %slot.owner, "hibernation ended; the session ends");
                session.end(&router);
            }
        });
    }

    /// Ends every hibernating session now (the server is shutting down):
    /// what waits for them goes on as for any ended session.
    pub fn end_all(&self, router: &Router) {
        let slots: Vec<Arc<Slot>> = self.slots.iter().map(|s| s.value().clone()).collect();
        for slot in slots {
            let session = {
                let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
                match std::mem::replace(&mut state.0, SlotState::Gone) {
                    SlotState::Detached { session, .. } => Some(session),
                    // An attached slot is its connection's to end.
                    other => {
                        state.0 = other;
                        None
                    }
                }
            };
            if let Some(session) = session {
                session.end(router);
            }
        }
    }

    /// Takes a hibernating session over for a new connection of `owner`.
    /// If a connection still holds it, that connection is asked to hand it
    /// over, and this waits (bounded) for it to.
    pub(crate) async fn take(
        &self,
        id: &str,
        owner: &Jid,
    ) -> Result<(Arc<Slot>, Box<BoundSession>), ResumeError> {
        let slot = self
            .slots
            .get(id)
            .map(|s| s.clone())
            .ok_or(ResumeError::NotFound)?;
        if slot.owner != *owner {
            return Err(ResumeError::NotFound);
        }
        let deadline = tokio::time::Instant::now() + HANDOVER;
        loop {
            let detached = slot.detached.notified();
            {
                let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
                match &state.0 {
                    SlotState::Gone => return Err(ResumeError::NotFound),
                    // Given up on while hibernating: its timer ends it
                    // (the kill woke it), and nobody resumes it.
                    SlotState::Detached { session, .. } if session.session.shared.given_up() => {
                        return Err(ResumeError::NotFound)
                    }
                    SlotState::Detached { .. } => {
                        if let SlotState::Detached { session, .. } =
                            std::mem::replace(&mut state.0, SlotState::Attached)
                        {
                            session.session.shared.ext.remove::<Hibernating>();
                            return Ok((slot.clone(), session));
                        }
                    }
                    SlotState::Attached => slot.handover.notify_one(),
                }
            }
            if tokio::time::timeout_at(deadline, detached).await.is_err() {
                return Err(ResumeError::NotFound);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The registry under tokio's paused clock: a hibernating session is
    //! taken back in time, ends when its time is up (its unacknowledged
    //! stanza going to offline storage), and is never another account's.

    use super::*;
    use crate::lifecycle::Tracker;
    use crate::net::session::{BoundSession, Resumption, SmState};
    use crate::routing::table::SessionRef;
    use crate::sessions::{SessionShared, OUTBOX_CAPACITY};
    use crate::settings::Settings;
    use switchboard_spool::store::memory::MemoryStores;
    use switchboard_xml::Element;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    /// A bound, resumable session of alice/phone with one stanza written
    /// and not acknowledged.
    fn session(router: &Router, registry: &Resumptions) -> Box<BoundSession> {
        session_with_outbox(router, registry, OUTBOX_CAPACITY)
    }

    fn session_with_outbox(
        router: &Router,
        registry: &Resumptions,
        capacity: usize,
    ) -> Box<BoundSession> {
        let (tx, rx) = crate::queue::channel(capacity);
        let shared = Arc::new(SessionShared::default());
        let full = jid("alice@localhost/phone");
        let id = router.sessions().new_id();
        router
            .sessions()
            .bind(&full, id, tx.clone(), shared.clone());
        let mut b = Box::new(BoundSession::new(
            SessionRef {
                jid: full,
                id,
                tx,
                shared,
                pending: Tracker::default(),
            },
            rx,
        ));
        let mut sm = SmState {
            sm: Default::default(),
            resume: Some(Resumption {
                slot: registry.register(jid("alice@localhost")),
                max: Duration::from_secs(60),
            }),
        };
        sm.sm.sent(
            Element::new("message", "jabber:client")
                .with_attr("from", "bob@localhost/desk")
                .with_attr("to", "alice@localhost/phone")
                .with_attr("type", "chat")
                .with_attr("id", "unacked")
                .with_child(Element::new("body", "jabber:client").with_text("hi")),
        );
        b.sm = Some(Box::new(sm));
        b
    }

    fn slot_of(b: &BoundSession) -> Arc<Slot> {
        b.sm.as_ref().unwrap().resume.as_ref().unwrap().slot.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hibernating_session_is_taken_back_only_by_its_account_and_only_in_time() {
        let stores = MemoryStores::new();
        crate::accounts::create(
            stores.accounts.as_ref(),
            "localhost",
            "alice",
            "pw".into(),
            16,
        )
        .await
        .unwrap();
        let router = crate::server::standalone_router(&stores, Settings::for_hosts(&["localhost"]));
        let registry = Resumptions::new();
        let b = session(&router, &registry);
        let slot = slot_of(&b);
        let id = slot.id().to_string();
        registry.hibernate(&slot, b, Duration::from_secs(60), router.clone(), true);

        assert_eq!(
            registry.take(&id, &jid("bob@localhost")).await.err(),
            Some(ResumeError::NotFound),
            "another account's"
        );
        tokio::time::sleep(Duration::from_secs(59)).await;
        let (slot, b) = registry.take(&id, &jid("alice@localhost")).await.unwrap();
        assert!(!is_hibernating(&b.session.shared.ext));
        assert!(
            router.sessions().get(&b.session.jid).is_some(),
            "still bound"
        );

        // It hibernates again; the first timer (59 s old) must not end it.
        registry.hibernate(&slot, b, Duration::from_secs(60), router.clone(), true);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(registry.len(), 1);
        tokio::time::sleep(Duration::from_secs(31)).await;
        // Its time is up: the session is gone, the id with it, and the
        // stanza the client never acknowledged waits offline.
        assert!(router
            .sessions()
            .get(&jid("alice@localhost/phone"))
            .is_none());
        assert!(registry.is_empty());
        assert_eq!(
            registry.take(&id, &jid("alice@localhost")).await.err(),
            Some(ResumeError::NotFound)
        );
        // The offline store works in the account's actor: wait for it.
        let alice = switchboard_spool::store::AccountRef::new("localhost", "alice");
        let mut offline = Vec::new();
        for _ in 0..100 {
            offline = stores.offline.list(&alice).await.unwrap();
            if !offline.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(offline.len(), 1, "{offline:?}");
        assert_eq!(offline[0].stanza.attr("id"), Some("unacked"));
    }

    /// The table's hibernation hooks hear of a session whose connection
    /// died, marked hibernating already, with what it had not
    /// acknowledged; a hand-over to a resuming connection is no news.
    #[tokio::test(start_paused = true)]
    async fn hibernation_hooks_hear_of_a_lost_connection_not_of_a_hand_over() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut t = crate::routing::table::TableBuilder::default();
        let h = heard.clone();
        t.on_session_hibernates("test", move |_, s, unacked| {
            assert!(is_hibernating(&s.shared.ext), "marked before the hooks run");
            let ids: Vec<String> = unacked
                .iter()
                .map(|e| e.attr("id").unwrap_or_default().to_string())
                .collect();
            h.lock().unwrap().push((s.jid.to_string(), ids));
        });
        let router = Router::new(
            vec!["localhost".into()],
            t.build(),
            Default::default(),
            Arc::default(),
        );
        let registry = Resumptions::new();
        let b = session(&router, &registry);
        let slot = slot_of(&b);
        registry.hibernate(&slot, b, Duration::from_secs(60), router.clone(), false);
        assert!(heard.lock().unwrap().is_empty(), "a hand-over");
        let (slot, b) = registry
            .take(slot.id(), &jid("alice@localhost"))
            .await
            .unwrap();
        registry.hibernate(&slot, b, Duration::from_secs(60), router.clone(), true);
        assert_eq!(
            *heard.lock().unwrap(),
            [(
                "alice@localhost/phone".to_string(),
                vec!["unacked".to_string()]
            )]
        );
    }

    /// A hibernating session whose outbox overflows (nobody reads it) is
    /// given up on: it ends at once, nobody may resume it, and what it
    /// had not had acknowledged, what waited in its outbox, the message
    /// that did not fit and what was sent to the account after reach
    /// offline storage in the order they were sent.
    #[tokio::test(start_paused = true)]
    async fn a_hibernating_session_that_overflows_ends_and_nothing_is_reordered() {
        let stores = MemoryStores::new();
        crate::accounts::create(
            stores.accounts.as_ref(),
            "localhost",
            "alice",
            "pw".into(),
            16,
        )
        .await
        .unwrap();
        let router = crate::server::standalone_router(&stores, Settings::for_hosts(&["localhost"]));
        let registry = Resumptions::new();
        let b = session_with_outbox(&router, &registry, 2);
        let slot = slot_of(&b);
        let id = slot.id().to_string();
        registry.hibernate(&slot, b, Duration::from_secs(600), router.clone(), true);
        for i in 0..5 {
            router.route(
                Element::new("message", "jabber:client")
                    .with_attr("from", "bob@localhost/desk")
                    .with_attr("to", "alice@localhost/phone")
                    .with_attr("type", "chat")
                    .with_attr("id", format!("q{i}"))
                    .with_child(Element::new("body", "jabber:client").with_text("hi")),
            );
        }
        assert!(router
            .sessions()
            .get(&jid("alice@localhost/phone"))
            .is_none());
        assert_eq!(
            registry.take(&id, &jid("alice@localhost")).await.err(),
            Some(ResumeError::NotFound),
            "a session given up on is not resumed"
        );
        let alice = switchboard_spool::store::AccountRef::new("localhost", "alice");
        let mut offline = Vec::new();
        for _ in 0..100 {
            offline = stores.offline.list(&alice).await.unwrap();
            if offline.len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ids: Vec<&str> = offline.iter().filter_map(|m| m.stanza.attr("id")).collect();
        assert_eq!(ids, ["unacked", "q0", "q1", "q2", "q3", "q4"]);
        assert!(registry.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_hibernating_sessions_end_and_their_stanzas_go_offline() {
        let stores = MemoryStores::new();
        crate::accounts::create(
            stores.accounts.as_ref(),
            "localhost",
            "alice",
            "pw".into(),
            16,
        )
        .await
        .unwrap();
        let router = crate::server::standalone_router(&stores, Settings::for_hosts(&["localhost"]));
        let registry = Resumptions::new();
        let b = session(&router, &registry);
        let slot = slot_of(&b);
        registry.hibernate(&slot, b, Duration::from_secs(600), router.clone(), false);
        registry.end_all(&router);
        assert!(registry.is_empty());
        assert!(router
            .sessions()
            .get(&jid("alice@localhost/phone"))
            .is_none());
        let alice = switchboard_spool::store::AccountRef::new("localhost", "alice");
        let mut offline = Vec::new();
        for _ in 0..100 {
            offline = stores.offline.list(&alice).await.unwrap();
            if !offline.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(offline.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumption_waits_for_the_old_connection_to_hand_over() {
        let stores = MemoryStores::new();
        let router = crate::server::standalone_router(&stores, Settings::for_hosts(&["localhost"]));
        let registry = Resumptions::new();
        let b = session(&router, &registry);
        let slot = slot_of(&b);
        let id = slot.id().to_string();
        // The old connection: hands over when asked.
        let old = {
            let slot = slot.clone();
            let registry = registry.clone();
            let router = router.clone();
            tokio::spawn(async move {
                slot.handover.notified().await;
                registry.hibernate(&slot, b, Duration::from_secs(60), router, false);
            })
        };
        let (_, taken) = registry.take(&id, &jid("alice@localhost")).await.unwrap();
        assert_eq!(taken.session.jid, jid("alice@localhost/phone"));
        old.await.unwrap();
        // A connection that never hands over: the resumption gives up.
        let b = session(&router, &registry);
        let slot = slot_of(&b);
        let started = tokio::time::Instant::now();
        assert_eq!(
            registry
                .take(slot.id(), &jid("alice@localhost"))
                .await
                .err(),
            Some(ResumeError::NotFound)
        );
        assert_eq!(started.elapsed(), HANDOVER);
        // One that ends instead: the resumption learns at once.
        let waiting = {
            let registry = registry.clone();
            let id = slot.id().to_string();
            tokio::spawn(async move { registry.take(&id, &jid("alice@localhost")).await })
        };
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        b.end(&router);
        assert_eq!(waiting.await.unwrap().err(), Some(ResumeError::NotFound));
        assert!(started.elapsed() < HANDOVER);
    }
}
