//! A router built exactly as the server builds it (the same routing table,
//! the same account actors) over a file spool in a temporary directory,
//! with sessions that are plain channels, so tests see what every resource
//! would receive without sockets.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, Stores};
use switchboard_xml::{ns, Element};

use switchboard_core::lifecycle::Tracker;
use switchboard_core::queue;
use switchboard_core::routing::table::{SessionEnd, SessionRef};
use switchboard_core::routing::Router;
use switchboard_core::sessions::{Outbound, SessionShared};
use switchboard_core::settings::Settings;

pub const HOST: &str = "localhost";
const WAIT: Duration = Duration::from_secs(10);

pub struct Env {
    _dir: tempfile::TempDir,
    pub router: Router,
    pub stores: Stores,
}

/// A router for `localhost` with these accounts (password `pw`).
pub async fn env(users: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let stores = FileStores::open(dir.path().join("spool")).unwrap();
    for user in users {
        switchboard_core::accounts::create(stores.accounts.as_ref(), HOST, user, "pw".into(), 16)
            .await
            .unwrap();
    }
    let mut settings = Settings::for_hosts(&[HOST]);
    settings.scram_iterations = 16;
    let router = switchboard_core::server::standalone_router(&stores, settings);
    Env {
        _dir: dir,
        router,
        stores,
    }
}

impl Env {
    /// The server started again (a new router, its tables and caches
    /// empty) over `stores`: the same storage, or a wrapper of it.
    pub fn restarted(self, stores: Stores) -> Env {
        let mut settings = Settings::for_hosts(&[HOST]);
        settings.scram_iterations = 16;
        Env {
            router: switchboard_core::server::standalone_router(&stores, settings),
            stores,
            _dir: self._dir,
        }
    }

    /// The bodies of the messages stored offline for `user`, oldest first.
    pub async fn offline_bodies(&self, user: &str) -> Vec<String> {
        self.stores
            .offline
            .list(&AccountRef::new(HOST, user))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.stanza.child_text("body", ns::CLIENT).unwrap_or_default())
            .collect()
    }

    /// The ids of the messages stored offline for `user`, oldest first.
    pub async fn offline_ids(&self, user: &str) -> Vec<String> {
        self.stores
            .offline
            .list(&AccountRef::new(HOST, user))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| m.stanza.attr("id").map(str::to_string))
            .collect()
    }
}

/// A bound session whose outbox the test reads.
pub struct Client {
    pub jid: Jid,
    pub id: u64,
    /// The session's tracker of unfinished work.
    pub pending: Tracker,
    pub rx: queue::Receiver<Outbound>,
    pub shared: Arc<SessionShared>,
    barriers: u32,
}

/// A stanza parsed from text, for exact comparisons.
pub fn xml(text: &str) -> Element {
    switchboard_xml::parse_document(text.as_bytes(), switchboard_xml::Limits::default()).unwrap()
}

impl Env {
    /// Binds `jid` with an optional presence priority.
    pub fn online(&self, jid: &str, priority: Option<i8>) -> Client {
        self.online_with_capacity(jid, priority, switchboard_core::sessions::OUTBOX_CAPACITY)
    }

    pub fn online_with_capacity(&self, jid: &str, priority: Option<i8>, cap: usize) -> Client {
        let jid = Jid::parse(jid).unwrap();
        let (tx, rx) = queue::channel(cap);
        let shared = Arc::new(SessionShared::default());
        let sessions = self.router.sessions();
        let id = sessions.new_id();
        sessions.bind(&jid, id, tx, shared.clone());
        let presence = priority.map(|p| {
            Element::new("presence", ns::CLIENT)
                .with_child(Element::new("priority", ns::CLIENT).with_text(p.to_string()))
        });
        sessions.set_presence(&jid, presence);
        Client {
            jid,
            id,
            pending: Tracker::default(),
            rx,
            shared,
            barriers: 0,
        }
    }

    /// Sends a stanza as `client`'s connection would: `from` stamped, `to`
    /// parsed.
    pub fn send(&self, client: &Client, mut el: Element) {
        el.set_attr("from", client.jid.to_string());
        let to = el.attr("to").map(|t| Jid::parse(t).unwrap());
        self.router
            .route_client(client.id, &client.pending, &client.jid, to, el);
    }

    /// Waits until `account`'s actor has handled everything queued for it
    /// before: its answer to a vCard request comes after whatever that
    /// work sent. What arrives for `client` meanwhile is kept, in order.
    pub async fn settle(&self, client: &mut Client, account: &str) -> Vec<Element> {
        client.barriers += 1;
        let id = format!("barrier-{}", client.barriers);
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.clone())
            .with_attr("to", account)
            .with_child(Element::new("vCard", "vcard-temp"));
        self.send(client, iq);
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, client.rx.recv()).await {
                Ok(Some(Outbound::Stanza(el))) if el.attr("id") == Some(id.as_str()) => {
                    return seen
                }
                Ok(Some(Outbound::Stanza(el))) => seen.push(*el),
                Ok(Some(Outbound::Close(e))) => panic!("{}: closed with {e:?}", client.jid),
                Ok(None) => panic!("{}: outbox closed", client.jid),
                Err(_) => panic!("{}: {account}'s actor did not answer", client.jid),
            }
        }
    }
}

impl Env {
    /// Binds `jid` as the server's connection does: the session-start hooks
    /// run first (a block list, archive preferences are loaded), then the
    /// session enters the session table, with an optional priority.
    pub async fn start(&self, jid: &str, priority: Option<i8>) -> Client {
        let jid = Jid::parse(jid).unwrap();
        let (tx, rx) = queue::channel(switchboard_core::sessions::OUTBOX_CAPACITY);
        let shared = Arc::new(SessionShared::default());
        let id = self.router.sessions().new_id();
        let pending = Tracker::default();
        let session = SessionRef {
            jid: jid.clone(),
            id,
            tx: tx.clone(),
            shared: shared.clone(),
            pending: pending.clone(),
        };
        self.router.session_started(&session).await;
        self.router.sessions().bind(&jid, id, tx, shared.clone());
        let presence = priority.map(|p| {
            Element::new("presence", ns::CLIENT)
                .with_child(Element::new("priority", ns::CLIENT).with_text(p.to_string()))
        });
        self.router.sessions().set_presence(&jid, presence);
        Client {
            jid,
            id,
            pending,
            rx,
            shared,
            barriers: 0,
        }
    }

    /// The session as hooks that act on it see it.
    pub fn session_ref(&self, c: &Client) -> SessionRef {
        let entry = self.router.sessions().get(&c.jid).expect("bound");
        SessionRef {
            jid: c.jid.clone(),
            id: c.id,
            tx: entry.tx,
            shared: c.shared.clone(),
            pending: c.pending.clone(),
        }
    }

    /// Ends a session as the connection does: given up on (out of the
    /// table, its place kept in its account's actor, unless the router
    /// gave up on it already), then what was queued for it handed back,
    /// to go on from that place, and the session-end hooks after it.
    pub fn end(&self, mut c: Client) {
        self.router.give_up(Some(&c.jid), c.id, &c.shared);
        let end = SessionEnd {
            jid: c.jid.clone(),
            presence: None,
            status: None,
            directed: Vec::new(),
        };
        self.router.hand_back(&c.shared, Vec::new(), &mut c.rx, end);
    }

    /// Sends an IQ from `c` and waits for its answer (a result or an
    /// error); returns what arrived before it, and the answer.
    pub async fn iq(
        &self,
        c: &mut Client,
        ty: &str,
        to: Option<&str>,
        payload: Element,
    ) -> (Vec<Element>, Element) {
        c.barriers += 1;
        let id = format!("iq-{}", c.barriers);
        let mut iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", ty)
            .with_attr("id", id.clone())
            .with_child(payload);
        if let Some(to) = to {
            iq.set_attr("to", to);
        }
        self.send(c, iq);
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, c.rx.recv()).await {
                Ok(Some(Outbound::Stanza(el)))
                    if el.name == "iq"
                        && el.attr("id") == Some(id.as_str())
                        && matches!(el.attr("type"), Some("result" | "error")) =>
                {
                    return (seen, *el)
                }
                Ok(Some(Outbound::Stanza(el))) => seen.push(*el),
                Ok(Some(Outbound::Close(e))) => panic!("{}: closed with {e:?}", c.jid),
                Ok(None) => panic!("{}: outbox closed", c.jid),
                Err(_) => panic!("{}: no answer to {id}", c.jid),
            }
        }
    }

    /// Waits until the work `c`'s stanzas started is done (delivered,
    /// stored, archived), as its next IQ would.
    pub async fn done(&self, c: &Client) {
        tokio::time::timeout(WAIT, c.pending.drained())
            .await
            .expect("the work a session started finishes");
    }
}

impl Client {
    /// Everything waiting in the outbox now.
    pub fn inbox(&mut self) -> Vec<Element> {
        let mut v = Vec::new();
        while let Ok(Outbound::Stanza(el)) = self.rx.try_recv() {
            v.push(*el);
        }
        v
    }
}

/// The defined condition of an error stanza.
pub fn error_condition(el: &Element) -> Option<String> {
    let e = el.get_child("error", &el.ns)?;
    e.elements()
        .find(|c| c.ns == ns::STANZAS)
        .map(|c| c.name.clone())
}

pub fn msg(to: &str, kind: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", kind)
        .with_attr("id", "m1")
        .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
}
