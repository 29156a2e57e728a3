//! Blocking (XEP-0191): a user's list of JIDs nothing may pass between.
//!
//! - **The list** is account data (`<blocklist/>` in the spool namespace),
//!   read and changed with async IQ handlers: `<blocklist/>` get,
//!   `<block/>` and `<unblock/>` sets (an empty `<unblock/>` clears it).
//!   Each change is pushed to every resource of the user that asked for
//!   the list ([`Interested`] in its `SessionExt`).
//! - **Online accounts** keep their list in an [`OnlineCache`], loaded when
//!   a session starts (before it can receive anything) and dropped after
//!   the last one ends, once the account's actor has sent the goodbye
//!   presence (which the list still filters).
//! - **What a blocked JID sends** (`message/…`, `presence/…`, `iq/…` at the
//!   user's bare or full JID) does not reach the user (XEP-0191 §3.3):
//!   messages and IQ requests get `service-unavailable`, as if the user
//!   were offline, and presence, errors and IQ results are dropped. For an
//!   account without a session the same check is an inbound gate in its
//!   actor, so nothing from a blocked JID is stored offline.
//! - **What the user sends to a blocked JID** (`pre-…`) is refused with
//!   `not-acceptable` and `<blocked xmlns='urn:xmpp:blocking:errors'/>`;
//!   presence the server sends on the user's behalf (broadcasts, probes,
//!   probe answers) is dropped. A newly blocked contact allowed to see the
//!   user's presence gets unavailable presence from each available
//!   resource; an unblocked one gets the current presence again.
//!
//! JIDs match as XEP-0016 §2.1 orders them: `user@domain/resource` only
//! itself, `user@domain` any resource, `domain/resource` only itself, and
//! `domain` the domain and every JID at it.

use std::sync::{Arc, RwLock};

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, BoxFuture, RosterStore};
use switchboard_xml::{ns, Element};

use super::online::OnlineCache;
use crate::im::{Accounts, Gate, InboundGate};
use crate::routing::iq::{IqCall, IqKey, IqType, Scope};
use crate::routing::stanza::{Class, Kind, MessageType, Origin, PresenceType, Stanza, StanzaType};
use crate::routing::table::{Event, Flow};
use crate::routing::Router;
use crate::stanza::{error_reply, ErrorType, StanzaError};

/// `urn:xmpp:blocking`.
pub const NS: &str = "urn:xmpp:blocking";
/// `urn:xmpp:blocking:errors`.
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
const MODULE: &str = "blocking";
/// Before everything else a feature does with a stanza.
const PRIORITY: i32 = 50;
/// The account data document holding the list.
const DOC: &str = "blocklist";

/// A user's block list, in the order items were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockList {
    jids: Vec<Jid>,
}

impl BlockList {
    pub fn new(jids: impl IntoIterator<Item = Jid>) -> BlockList {
        let mut list = BlockList::default();
        list.add(jids);
        list
    }

    pub fn jids(&self) -> &[Jid] {
        &self.jids
    }

    pub fn is_empty(&self) -> bool {
        self.jids.is_empty()
    }

    /// Adds JIDs not on the list yet; returns those.
    fn add(&mut self, jids: impl IntoIterator<Item = Jid>) -> Vec<Jid> {
        let mut added = Vec::new();
        for j in jids {
            if !self.jids.contains(&j) {
                self.jids.push(j.clone());
                added.push(j);
            }
        }
        added
    }

    /// Removes JIDs; returns those that were on the list.
    fn remove(&mut self, jids: &[Jid]) -> Vec<Jid> {
        let removed: Vec<Jid> = self
            .jids
            .iter()
            .filter(|j| jids.contains(j))
            .cloned()
            .collect();
        self.jids.retain(|j| !jids.contains(j));
        removed
    }

    /// Whether `jid` is blocked (XEP-0016 §2.1 matching).
    pub fn blocks(&self, jid: &Jid) -> bool {
        self.jids.iter().any(|item| matches(item, jid))
    }

    fn from_doc(doc: &Element) -> BlockList {
        BlockList::new(
            doc.elements()
                .filter(|e| e.name == "item")
                .filter_map(|e| Jid::parse(e.attr("jid")?).ok()),
        )
    }

    fn to_doc(&self) -> Element {
        let mut doc = Element::new(DOC, ns::SPOOL);
        for j in &self.jids {
            doc.append_child(Element::new("item", ns::SPOOL).with_attr("jid", j.to_string()));
        }
        doc
    }
}

/// Whether the list item `item` covers `jid` (XEP-0016 §2.1).
fn matches(item: &Jid, jid: &Jid) -> bool {
    if item.domain() != jid.domain() {
        return false;
    }
    match (item.node(), item.resource()) {
        (Some(node), Some(res)) => jid.node() == Some(node) && jid.resource() == Some(res),
        (Some(node), None) => jid.node() == Some(node),
        (None, Some(res)) => jid.node().is_none() && jid.resource() == Some(res),
        (None, None) => true,
    }
}

/// An online account's list, and the lock that makes changes to it one at
/// a time (two resources blocking at once).
struct Blocking {
    list: RwLock<Arc<BlockList>>,
    change: tokio::sync::Mutex<()>,
}

impl Blocking {
    fn new(list: BlockList) -> Blocking {
        Blocking {
            list: RwLock::new(Arc::new(list)),
            change: tokio::sync::Mutex::new(()),
        }
    }

    fn list(&self) -> Arc<BlockList> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, list: BlockList) {
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }
}

/// Set in a session's `SessionExt` once it has asked for the block list:
/// it gets the pushes.
#[derive(Debug)]
pub struct Interested;

struct Module {
    cache: OnlineCache<Blocking>,
    data: Arc<dyn AccountDataStore>,
    rosters: Arc<dyn RosterStore>,
    accounts: Arc<Accounts>,
}

impl Module {
    /// The list of an account with a session (any JID of it), without
    /// waiting.
    fn cached(&self, jid: &Jid) -> Option<Arc<BlockList>> {
        self.cache.get(jid).map(|b| b.list())
    }

    async fn load(&self, account: &AccountRef) -> BlockList {
        match self.data.get(account, DOC).await {
            Ok(Some(doc)) => BlockList::from_doc(&doc),
            Ok(None) => BlockList::default(),
            Err(e) => {
                tracing::error!(%account, "cannot read the block list: {e}");
                BlockList::default()
            }
        }
    }

    /// The list of any account: the cache's, or the store's.
    async fn list_of(&self, bare: &Jid) -> Arc<BlockList> {
        if let Some(l) = self.cached(bare) {
            return l;
        }
        match account_ref(bare) {
            Some(a) => Arc::new(self.load(&a).await),
            None => Arc::default(),
        }
    }
}

fn account_ref(bare: &Jid) -> Option<AccountRef> {
    Some(AccountRef::new(bare.domain(), bare.node()?))
}

pub fn register(setup: &mut super::Setup<'_>) {
    let m = Arc::new(Module {
        cache: OnlineCache::default(),
        data: setup.stores.account_data.clone(),
        rosters: setup.stores.rosters.clone(),
        accounts: setup.accounts.clone(),
    });
    setup.iq.feature(Scope::Server, NS);
    setup.accounts.gates().add(m.clone());

    let t = &mut *setup.table;
    let me = m.clone();
    t.hook_each(
        &[
            Event::pre(Kind::Message, Class::Bare),
            Event::pre(Kind::Message, Class::Full),
            Event::pre(Kind::Message, Class::Service),
            Event::pre(Kind::Message, Class::Remote),
            Event::pre(Kind::Presence, Class::Bare),
            Event::pre(Kind::Presence, Class::Full),
            Event::pre(Kind::Presence, Class::Service),
            Event::pre(Kind::Presence, Class::Remote),
            Event::pre(Kind::Iq, Class::Bare),
            Event::pre(Kind::Iq, Class::Full),
            Event::pre(Kind::Iq, Class::Service),
            Event::pre(Kind::Iq, Class::Remote),
        ],
        PRIORITY,
        MODULE,
        "what the user sends to a JID they block is refused: not-acceptable with <blocked/> (errors and results dropped)",
        move |r, s| {
            let blocked = me.cached(&s.from).is_some_and(|l| l.blocks(&s.to));
            if !blocked {
                return Flow::Next(s);
            }
            let err = StanzaError::new("not-acceptable", ErrorType::Cancel)
                .with_app(Element::new("blocked", NS_ERRORS));
            // The refusal comes from the blocked JID, as the stanza was
            // addressed there (XEP-0191 §3.3, example 8).
            if let Some(mut reply) = error_reply(&s.el, &err) {
                reply.set_attr("from", s.to.to_string());
                r.metrics().stanza_error();
                r.reply(reply);
            }
            Flow::Done
        },
    );
    let me = m.clone();
    t.hook_each(
        &[
            Event::at(Kind::Message, Class::Bare),
            Event::at(Kind::Message, Class::Full),
            Event::at(Kind::Iq, Class::Bare),
            Event::at(Kind::Iq, Class::Full),
        ],
        PRIORITY,
        MODULE,
        "from a JID the addressee blocks: messages and requests get service-unavailable, the rest is dropped",
        move |r, s| {
            let blocked = me.cached(&s.to).is_some_and(|l| l.blocks(&s.from));
            if blocked {
                refuse_inbound(r, &s);
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    let me = m.clone();
    t.hook_each(
        &[
            Event::at(Kind::Presence, Class::Bare),
            Event::at(Kind::Presence, Class::Full),
        ],
        PRIORITY,
        MODULE,
        "dropped when the addressee blocks the sender, or when the server sends it for a user who blocks the addressee",
        move |r, s| {
            if blocks_presence(&me, r, &s) {
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    let me = m.clone();
    t.hook_each(
        &[
            Event::at(Kind::Presence, Class::Service),
            Event::at(Kind::Presence, Class::Remote),
        ],
        PRIORITY,
        MODULE,
        "dropped when the server sends it for a user who blocks the addressee",
        move |r, s| {
            if blocks_presence(&me, r, &s) {
                Flow::Done
            } else {
                Flow::Next(s)
            }
        },
    );
    let me = m.clone();
    t.on_session_start(MODULE, move |_, session| {
        let me = me.clone();
        let bare = session.jid.to_bare();
        Box::pin(async move {
            let Some(account) = account_ref(&bare) else {
                return;
            };
            let loader = me.clone();
            me.cache
                .enter(&bare, || async move {
                    Blocking::new(loader.load(&account).await)
                })
                .await;
        })
    });
    let me = m.clone();
    t.on_session_end(MODULE, move |r, end| {
        let bare = end.jid.to_bare();
        if me.cache.leave(&bare) {
            // The actor sends the session's goodbye presence after this;
            // the list must still filter it.
            let me = me.clone();
            let flushed = me.accounts.flushed(r, &bare);
            tokio::spawn(async move {
                flushed.await;
                me.cache.evict(&bare);
            });
        }
    });

    let me = m.clone();
    setup.iq.handle_async(
        IqKey {
            name: "blocklist",
            ns: NS,
            kind: IqType::Get,
        },
        Scope::Account,
        move |call| {
            let me = me.clone();
            Box::pin(async move { get(&me, call).await })
        },
    );
    for (name, block) in [("block", true), ("unblock", false)] {
        let me = m.clone();
        setup.iq.handle_async(
            IqKey {
                name,
                ns: NS,
                kind: IqType::Set,
            },
            Scope::Account,
            move |call| {
                let me = me.clone();
                Box::pin(async move { change(&me, call, block).await })
            },
        );
    }
}

/// XEP-0191 §3.3: a blocked sender's message or IQ request is answered as
/// if the user were offline; everything else is dropped.
fn refuse_inbound(r: &Router, s: &Stanza) {
    match s.ty {
        StanzaType::Message(MessageType::Error)
        | StanzaType::Iq(IqType::Result | IqType::Error) => {}
        StanzaType::Message(_) | StanzaType::Iq(_) => {
            r.bounce(&s.el, StanzaError::service_unavailable())
        }
        StanzaType::Presence(_) => {}
    }
}

/// Whether presence must not pass: the addressee blocks the sender, or
/// the server sends it on behalf of a local user who blocks the addressee
/// (a client's own presence was checked before routing).
fn blocks_presence(m: &Module, r: &Router, s: &Stanza) -> bool {
    if matches!(s.class, Class::Bare | Class::Full)
        && m.cached(&s.to).is_some_and(|l| l.blocks(&s.from))
    {
        return true;
    }
    !matches!(s.origin, Origin::Client { .. })
        && r.is_local(s.from.domain())
        && m.cached(&s.from).is_some_and(|l| l.blocks(&s.to))
}

impl InboundGate for Module {
    /// What reaches an account's actor from a blocked JID (messages to
    /// store offline, subscription requests, probes, IQs to the bare JID).
    fn check<'a>(&'a self, account: &'a AccountRef, stanza: &'a Element) -> BoxFuture<'a, Gate> {
        Box::pin(async move {
            let Some(from) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
                return Gate::Pass;
            };
            let Ok(bare) = Jid::parse(&account.to_string()) else {
                return Gate::Pass;
            };
            if !self.list_of(&bare).await.blocks(&from) {
                return Gate::Pass;
            }
            let request = match StanzaType::of(stanza) {
                Some(Ok(StanzaType::Message(t))) => t != MessageType::Error,
                Some(Ok(StanzaType::Iq(t))) => t.is_request(),
                _ => false,
            };
            if request {
                Gate::Refuse(StanzaError::service_unavailable())
            } else {
                Gate::Drop
            }
        })
    }
}

/// The owner's account, or `forbidden`: nobody reads or changes another
/// user's block list.
fn owner(call: &IqCall) -> Result<Jid, StanzaError> {
    if call.is_owner() {
        Ok(call.to.to_bare())
    } else {
        Err(StanzaError::forbidden().with_text("a block list is its owner's alone"))
    }
}

fn items_element(name: &str, jids: &[Jid]) -> Element {
    let mut el = Element::new(name, NS);
    for j in jids {
        el.append_child(Element::new("item", NS).with_attr("jid", j.to_string()));
    }
    el
}

async fn get(m: &Module, call: IqCall) -> Result<Option<Element>, StanzaError> {
    let bare = owner(&call)?;
    if let Some(session) = call.router.sessions().get(&call.from) {
        session.shared.ext.set(Arc::new(Interested));
    }
    let list = m.list_of(&bare).await;
    Ok(Some(items_element("blocklist", list.jids())))
}

/// The JIDs of a `<block/>` or `<unblock/>` request.
fn requested(payload: &Element) -> Result<Vec<Jid>, StanzaError> {
    let mut jids = Vec::new();
    for item in payload.elements().filter(|e| e.is("item", NS)) {
        let Some(raw) = item.attr("jid") else {
            return Err(StanzaError::bad_request().with_text("an <item/> without a 'jid'"));
        };
        let jid = Jid::parse(raw).map_err(|e| {
            StanzaError::jid_malformed().with_text(format!("'{raw}' is not a valid address ({e})"))
        })?;
        if !jids.contains(&jid) {
            jids.push(jid);
        }
    }
    Ok(jids)
}

async fn change(m: &Module, call: IqCall, block: bool) -> Result<Option<Element>, StanzaError> {
    let bare = owner(&call)?;
    let account = account_ref(&bare).ok_or_else(StanzaError::service_unavailable)?;
    let jids = requested(call.payload())?;
    if block && jids.is_empty() {
        return Err(StanzaError::bad_request().with_text("<block/> needs at least one <item/>"));
    }
    let cached = m.cache.get(&bare);
    let _one_at_a_time = match &cached {
        Some(b) => Some(b.change.lock().await),
        None => None,
    };
    let mut list = match &cached {
        Some(b) => (*b.list()).clone(),
        None => m.load(&account).await,
    };
    let changed = if block {
        list.add(jids.iter().cloned())
    } else if jids.is_empty() {
        std::mem::take(&mut list.jids)
    } else {
        list.remove(&jids)
    };
    if let Err(e) = m.data.put(&account, list.to_doc()).await {
        return Err(crate::accounts::store_error(&e, "storing a block list"));
    }
    let router = &call.router;
    let subscribers = presence_subscribers(m, &account).await;
    if block {
        // Sent while the old list still lets it through.
        for c in subscribers
            .iter()
            .filter(|c| changed.iter().any(|b| matches(b, c)))
        {
            for s in router.sessions().of_account(&bare) {
                if s.presence.is_some() {
                    let p = Element::new("presence", ns::CLIENT)
                        .with_attr(
                            "type",
                            PresenceType::Unavailable.as_str().unwrap_or_default(),
                        )
                        .with_attr("from", format!("{bare}/{}", s.resource))
                        .with_attr("to", c.to_string());
                    router.route(p);
                }
            }
        }
    }
    if let Some(b) = &cached {
        b.set(list.clone());
    }
    if !block {
        // The new list lets current presence through again.
        for c in subscribers
            .iter()
            .filter(|c| !list.blocks(c) && changed.iter().any(|u| matches(u, c)))
        {
            for s in router.sessions().of_account(&bare) {
                if let Some(p) = &s.presence {
                    let mut p = (**p).clone();
                    p.set_attr("from", format!("{bare}/{}", s.resource));
                    p.set_attr("to", c.to_string());
                    router.route(p);
                }
            }
        }
    }
    // An empty <unblock/> is pushed as it came: everything went.
    let pushed = if !block && jids.is_empty() {
        &[][..]
    } else {
        &jids[..]
    };
    push(
        router,
        &bare,
        &items_element(if block { "block" } else { "unblock" }, pushed),
    );
    Ok(None)
}

/// The contacts allowed to see the user's presence (RFC 6121 `from` or
/// `both`), as stored.
async fn presence_subscribers(m: &Module, account: &AccountRef) -> Vec<Jid> {
    match m.rosters.load(account).await {
        Ok(Some(r)) => r
            .items
            .iter()
            .filter(|i| matches!(i.subscription.as_str(), "from" | "both"))
            .filter_map(|i| Jid::parse(&i.jid).ok())
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::error!(%account, "cannot read the roster: {e}");
            Vec::new()
        }
    }
}

/// Pushes a change to every resource that asked for the list.
fn push(router: &Router, bare: &Jid, payload: &Element) {
    for s in router.sessions().of_account(bare) {
        if !s.shared.ext.has::<Interested>() {
            continue;
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("block-push-{}", crate::ids::random_id()))
            .with_attr("to", format!("{bare}/{}", s.resource))
            .with_child(payload.clone());
        router.deliver(&s, iq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn items_match_as_xep_0016_orders_them() {
        let list = BlockList::new([
            jid("spam@example.org"),
            jid("eve@example.org/phone"),
            jid("bad.example"),
            jid("example.net/bot"),
        ]);
        for yes in [
            "spam@example.org",
            "spam@example.org/any",
            "eve@example.org/phone",
            "bad.example",
            "anyone@bad.example/x",
            "bad.example/r",
            "example.net/bot",
        ] {
            assert!(list.blocks(&jid(yes)), "{yes}");
        }
        for no in [
            "eve@example.org",
            "eve@example.org/desk",
            "ham@example.org",
            "sub.bad.example",
            "someone@example.net/bot",
            "example.net",
        ] {
            assert!(!list.blocks(&jid(no)), "{no}");
        }
    }

    #[test]
    fn the_list_round_trips_through_its_document() {
        let list = BlockList::new([jid("a@x"), jid("x/r"), jid("a@x")]);
        assert_eq!(list.jids().len(), 2, "no duplicates");
        assert_eq!(BlockList::from_doc(&list.to_doc()), list);
        assert_eq!(
            list.to_doc().to_xml_string(),
            "<blocklist xmlns=\"urn:switchboard:spool:1\"><item jid=\"a@x\"/><item jid=\"x/r\"/></blocklist>"
        );
    }

    #[test]
    fn requests_name_valid_jids() {
        let p = Element::new("block", NS)
            .with_child(Element::new("item", NS).with_attr("jid", "a@x"))
            .with_child(Element::new("item", NS).with_attr("jid", "a@x"));
        assert_eq!(requested(&p).unwrap(), vec![jid("a@x")]);
        let bad =
            Element::new("block", NS).with_child(Element::new("item", NS).with_attr("jid", "@x"));
        assert_eq!(requested(&bad).unwrap_err().condition, "jid-malformed");
        let none = Element::new("block", NS).with_child(Element::new("item", NS));
        assert_eq!(requested(&none).unwrap_err().condition, "bad-request");
    }
}
