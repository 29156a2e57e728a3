//! A router built as the server builds it (the core's rows, the IM rows,
//! the built-in modules and every feature) over a file spool in a
//! temporary directory, keeping the features' handles; sessions are plain
//! channels, so a test sees exactly what each resource would receive.

use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, StoredItem, StoredRoster, Stores};
use switchboard_xml::{ns, Element};

use super::pep::config::PUBLISH_OPTIONS;
use super::pep::{NS, NS_EVENT};
use super::{Handles, Setup};
use crate::features::caps::verify;
use crate::im::{Accounts, ImContext};
use crate::lifecycle::Tracker;
use crate::notices::MotdBoard;
use crate::queue;
use crate::routing::iq::Registry;
use crate::routing::table::TableBuilder;
use crate::routing::Router;
use crate::sessions::{Outbound, SessionShared};
use crate::settings::{LiveSettings, Settings};
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};

pub(crate) const HOST: &str = "localhost";
const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) router: Router,
    pub(crate) stores: Stores,
    pub(crate) handles: Handles,
}

/// A router for `localhost` with these accounts (password `pw`).
pub(crate) async fn env(users: &[&str]) -> Env {
    env_with(users, Settings::for_hosts(&[HOST])).await
}

pub(crate) async fn env_with(users: &[&str], mut settings: Settings) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let stores = FileStores::open(dir.path().join("spool")).unwrap();
    for user in users {
        crate::accounts::create(stores.accounts.as_ref(), HOST, user, "pw".into(), 16)
            .await
            .unwrap();
    }
    settings.scram_iterations = 16;
    let hosts = settings.host_names();
    let settings = Arc::new(LiveSettings::new(settings));
    let accounts = Accounts::new(ImContext {
        accounts: stores.accounts.clone(),
        rosters: stores.rosters.clone(),
        offline: stores.offline.clone(),
        data: stores.account_data.clone(),
        settings: settings.clone(),
        motds: Arc::new(MotdBoard::default()),
        gates: Default::default(),
        observers: Default::default(),
    });
    let mut t = TableBuilder::default();
    crate::routing::defaults::register(&mut t);
    crate::im::register(&mut t, &accounts);
    let mut iq = Registry::default();
    crate::modules::register(&mut iq);
    let mut background = Vec::new();
    let handles = super::register(&mut Setup {
        table: &mut t,
        iq: &mut iq,
        stores: &stores,
        settings: &settings,
        accounts: &accounts,
        background: &mut background,
    });
    // The archive's writer and its expiry, as the server runs them.
    for task in background {
        tokio::spawn(task);
    }
    let router = Router::new(hosts, t.build(), iq, Arc::default());
    Env {
        _dir: dir,
        router,
        stores,
        handles,
    }
}

/// A bound session whose outbox the test reads.
pub(crate) struct Session {
    pub(crate) jid: Jid,
    pub(crate) id: u64,
    pub(crate) pending: Tracker,
    pub(crate) rx: queue::Receiver<Outbound>,
    barriers: u32,
}

impl Env {
    /// Makes `a` and `b` contacts with a `both` subscription, as stored
    /// before their actors start.
    pub(crate) async fn befriend(&self, a: &str, b: &str) {
        self.subscribe(a, b, "both").await;
        self.subscribe(b, a, "both").await;
    }

    /// Gives `user` a roster item for `contact` with this subscription
    /// (and groups), as stored before the actor starts.
    pub(crate) async fn subscribe(&self, user: &str, contact: &str, subscription: &str) {
        self.subscribe_in(user, contact, subscription, &[]).await
    }

    pub(crate) async fn subscribe_in(
        &self,
        user: &str,
        contact: &str,
        subscription: &str,
        groups: &[&str],
    ) {
        let account = AccountRef::new(HOST, user);
        let mut roster = self
            .stores
            .rosters
            .load(&account)
            .await
            .unwrap()
            .unwrap_or_else(StoredRoster::default);
        roster
            .items
            .retain(|i| i.jid != format!("{contact}@{HOST}"));
        roster.items.push(StoredItem {
            jid: format!("{contact}@{HOST}"),
            name: None,
            subscription: subscription.into(),
            ask: false,
            approved: false,
            added: true,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        self.stores.rosters.save(&account, &roster).await.unwrap();
    }

    /// Binds `jid` without presence and runs the session-start hooks, as
    /// the connection does.
    pub(crate) async fn bind(&self, jid: &str) -> Session {
        let jid = Jid::parse(jid).unwrap();
        let (tx, rx) = queue::channel(crate::sessions::OUTBOX_CAPACITY);
        let shared = Arc::new(SessionShared::default());
        let sessions = self.router.sessions();
        let id = sessions.new_id();
        sessions.bind(&jid, id, tx.clone(), shared.clone());
        let pending = Tracker::default();
        self.router
            .session_started(&crate::routing::table::SessionRef {
                jid: jid.clone(),
                id,
                tx,
                shared,
                pending: pending.clone(),
            })
            .await;
        Session {
            jid,
            id,
            pending,
            rx,
            barriers: 0,
        }
    }

    /// Sends a stanza as `session`'s connection would: `from` stamped,
    /// `to` parsed.
    pub(crate) fn send(&self, session: &Session, mut el: Element) {
        el.set_attr("from", session.jid.to_string());
        let to = el.attr("to").map(|t| Jid::parse(t).unwrap());
        self.router
            .route_client(session.id, &session.pending, &session.jid, to, el);
    }

    /// Sends an IQ and returns the answer, keeping what arrived before it
    /// (in order) in `before`.
    pub(crate) async fn iq(
        &self,
        session: &mut Session,
        ty: &str,
        to: Option<&str>,
        payload: Element,
    ) -> (Element, Vec<Element>) {
        session.barriers += 1;
        let id = format!("q{}", session.barriers);
        let mut iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", ty)
            .with_attr("id", id.clone())
            .with_child(payload);
        if let Some(to) = to {
            iq.set_attr("to", to);
        }
        self.send(session, iq);
        let mut before = Vec::new();
        loop {
            let el = session.next().await;
            if el.name == "iq"
                && el.attr("id") == Some(id.as_str())
                && matches!(el.attr("type"), Some("result" | "error"))
            {
                return (el, before);
            }
            before.push(el);
        }
    }

    /// Waits until `account`'s actor has handled everything queued for it
    /// before, and returns what reached `session` meanwhile.
    pub(crate) async fn settle(&self, session: &mut Session, account: &str) -> Vec<Element> {
        let (_, before) = self
            .iq(
                session,
                "get",
                Some(account),
                Element::new("vCard", "vcard-temp"),
            )
            .await;
        before
    }

    /// Sends available presence (with `extra` children) and waits for the
    /// actor to have handled it; returns what reached the session
    /// meanwhile, its own presence included.
    pub(crate) async fn available(
        &self,
        session: &mut Session,
        extra: Vec<Element>,
    ) -> Vec<Element> {
        let mut p = Element::new("presence", ns::CLIENT);
        for e in extra {
            p.append_child(e);
        }
        self.send(session, p);
        let own = session.jid.to_bare().to_string();
        self.settle(session, &own).await
    }
}

impl Session {
    /// The next stanza for this session (at most [`WAIT`]).
    pub(crate) async fn next(&mut self) -> Element {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(Outbound::Stanza(el))) => *el,
            Ok(Some(Outbound::Close(e))) => panic!("{}: closed with {e:?}", self.jid),
            Ok(None) => panic!("{}: outbox closed", self.jid),
            Err(_) => panic!("{}: nothing arrived", self.jid),
        }
    }

    /// Everything waiting in the outbox now.
    pub(crate) fn inbox(&mut self) -> Vec<Element> {
        let mut v = Vec::new();
        while let Ok(Outbound::Stanza(el)) = self.rx.try_recv() {
            v.push(*el);
        }
        v
    }
}

/// The defined condition of an error stanza, and its application-specific
/// condition if any.
pub(crate) fn error_of(el: &Element) -> (String, Option<String>) {
    let e = el.get_child("error", &el.ns).expect("an error");
    let defined = e
        .elements()
        .find(|c| c.ns == ns::STANZAS && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let app = e
        .elements()
        .find(|c| c.ns != ns::STANZAS)
        .map(|c| c.name.clone());
    (defined, app)
}

// ---------------------------------------------------------------------
// PEP requests and notifications.

pub(crate) fn pubsub(child: Element) -> Element {
    Element::new("pubsub", NS).with_child(child)
}

pub(crate) fn publish(node: &str, id: Option<&str>, payload: Element) -> Element {
    let mut item = Element::new("item", NS).with_child(payload);
    if let Some(id) = id {
        item.set_attr("id", id);
    }
    pubsub(
        Element::new("publish", NS)
            .with_attr("node", node)
            .with_child(item),
    )
}

pub(crate) fn with_options(mut request: Element, fields: &[(&str, &str)]) -> Element {
    let mut form = Form::new(FormKind::Submit).with_field(Field::form_type(PUBLISH_OPTIONS));
    for (var, value) in fields {
        form = form.with_field(Field::new(*var, FieldKind::TextSingle).with_value(*value));
    }
    request.append_child(Element::new("publish-options", NS).with_child(form.to_element()));
    request
}

pub(crate) fn items(node: &str) -> Element {
    pubsub(Element::new("items", NS).with_attr("node", node))
}

/// A session that is available and whose capabilities say it wants
/// notifications of `nodes`.
pub(crate) async fn notified(e: &Env, jid: &str, nodes: &[&str]) -> Session {
    let mut s = e.bind(jid).await;
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "client")
            .with_attr("type", "pc"),
    );
    for n in nodes {
        q.append_child(
            Element::new("feature", ns::DISCO_INFO).with_attr("var", format!("{n}+notify")),
        );
    }
    let ver = verify::hash("sha-1", verify::ver_string(&q).unwrap().as_bytes()).unwrap();
    let c = Element::new("c", crate::features::caps::NS)
        .with_attr("hash", "sha-1")
        .with_attr("node", "urn:test")
        .with_attr("ver", ver);
    let got = e.available(&mut s, vec![c]).await;
    if let Some(query) = got.iter().find(|el| el.name == "iq") {
        e.send(
            &s,
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "result")
                .with_attr("id", query.attr("id").unwrap())
                .with_attr("to", "localhost")
                .with_child(q),
        );
    }
    let own = s.jid.to_bare().to_string();
    e.settle(&mut s, &own).await;
    s.inbox();
    s
}

/// The events among `got`: (node, item ids or `retract:ID`/`delete`/`purge`).
pub(crate) fn events(got: &[Element]) -> Vec<(String, Vec<String>)> {
    got.iter()
        .filter(|m| m.name == "message" && m.attr("type") == Some("headline"))
        .filter_map(|m| m.get_child("event", NS_EVENT))
        .map(|ev| {
            let el = ev.first_element().unwrap();
            let node = el.attr("node").unwrap().to_owned();
            let what = match el.name.as_str() {
                "items" => el
                    .elements()
                    .map(|i| match i.name.as_str() {
                        "retract" => format!("retract:{}", i.attr("id").unwrap()),
                        _ => i.attr("id").unwrap().to_owned(),
                    })
                    .collect(),
                other => vec![other.to_owned()],
            };
            (node, what)
        })
        .collect()
}

/// `<c/>` of a client wanting notifications of `nodes`.
pub(crate) fn caps_of(nodes: &[&str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "client")
            .with_attr("type", "pc"),
    );
    for n in nodes {
        q.append_child(
            Element::new("feature", ns::DISCO_INFO).with_attr("var", format!("{n}+notify")),
        );
    }
    let ver = verify::hash("sha-1", verify::ver_string(&q).unwrap().as_bytes()).unwrap();
    Element::new("c", crate::features::caps::NS)
        .with_attr("hash", "sha-1")
        .with_attr("node", "urn:test")
        .with_attr("ver", ver)
}

/// Sends initial presence with the caps of `nodes`, answering the query
/// if one comes; returns everything else that arrived.
pub(crate) async fn notified_presence(e: &Env, s: &mut Session, nodes: &[&str]) -> Vec<Element> {
    let got = e.available(s, vec![caps_of(nodes)]).await;
    let (queries, rest): (Vec<Element>, Vec<Element>) =
        got.into_iter().partition(|el| el.name == "iq");
    let mut rest = rest;
    for query in queries {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "client")
                .with_attr("type", "pc"),
        );
        for n in nodes {
            q.append_child(
                Element::new("feature", ns::DISCO_INFO).with_attr("var", format!("{n}+notify")),
            );
        }
        e.send(
            s,
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "result")
                .with_attr("id", query.attr("id").unwrap())
                .with_attr("to", "localhost")
                .with_child(q),
        );
        let own = s.jid.to_bare().to_string();
        rest.extend(e.settle(s, &own).await);
    }
    rest
}
