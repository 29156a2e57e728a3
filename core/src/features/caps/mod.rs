//! XEP-0115 Entity Capabilities: what each client session says it
//! supports, learnt from the `<c/>` in its broadcast presence, and the
//! server's own capabilities in its stream features (§6.3).
//!
//! # Clients' capabilities
//!
//! A client's available presence carries `<c hash node ver/>`. The server
//! looks the `ver` up in the shared [`cache`]; if it is not there, it asks
//! the client (a disco#info query for `node#ver`, from the host's JID),
//! and answers the processing method of §5.4 accepts:
//!
//! - the answer's hash matches the `ver`: it is cached for everyone who
//!   advertises that `ver`, and every session waiting for it learns it;
//! - it does not match, or the answer is ill-formed, or the hash function
//!   is one the server does not know, or the `<c/>` has no `hash` (the
//!   legacy form): what the answer lists is believed for that session only
//!   (never cached), and for a `ver` that could have been verified the
//!   next session advertising it is asked in turn. An ill-formed answer is
//!   not believed at all.
//!
//! One query per `ver` is outstanding at a time; a client that does not
//! answer within [`PATIENCE`] no longer holds up the others advertising
//! the same `ver`. The queries outstanding are bounded ([`MAX_PENDING`]).
//!
//! A `<c/>` without `node` or `ver` is ignored (the session advertises
//! nothing); XEP-0115 gives the receiver no error to send for it, and the
//! presence goes on to the user's contacts unchanged.
//!
//! What a session supports is kept on the session (`SessionExt`); other
//! features read it through [`Caps::features`] (PEP sends notifications
//! only to sessions that list `NODE+notify`, XEP-0163 §4.2), and learn of a
//! session that became available with known capabilities through
//! [`Caps::on_available`]: once per initial presence, and again when the
//! `ver` changes.

pub mod cache;
pub mod verify;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::Setup;
use crate::routing::iq::Scope;
use crate::routing::stanza::{Class, IqType, Kind, PresenceType, Stanza};
use crate::routing::table::{Event, Flow};
use crate::routing::Router;
use crate::sessions::SessionEntry;
pub use verify::Features;

/// The entity-capabilities namespace (also the server's disco feature).
pub const NS: &str = "http://jabber.org/protocol/caps";

/// The `node` of the server's own capabilities: a URI naming the
/// software (§4).
pub const SERVER_NODE: &str = "urn:switchboard:caps";

const MODULE: &str = "caps";

/// The most disco#info queries to clients outstanding at once.
pub const MAX_PENDING: usize = 4096;

/// How long the first client asked about a `ver` has to answer before the
/// next one advertising it is asked too.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The shared cache's bounds: entries, and their weight in bytes.
const CACHE_ENTRIES: usize = 2048;
const CACHE_WEIGHT: usize = 4 * 1024 * 1024;

/// Told when a session becomes available with known capabilities.
type Listener = Box<dyn Fn(&Router, &Jid, &Arc<Features>) + Send + Sync>;

/// The capabilities of every session, and the queries that learn them.
pub struct Caps {
    cache: cache::Cache,
    queries: Mutex<Queries>,
    listeners: RwLock<Vec<Listener>>,
}

/// What a `<c/>` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advert {
    /// `None`: the legacy form, without `hash`.
    hash: Option<String>,
    node: String,
    ver: String,
}

impl Advert {
    fn parse(presence: &Element) -> Option<Advert> {
        let c = presence.get_child("c", NS)?;
        let node = c.attr("node").filter(|n| !n.is_empty())?;
        let ver = c.attr("ver").filter(|v| !v.is_empty())?;
        Some(Advert {
            hash: c.attr("hash").map(str::to_owned),
            node: node.to_owned(),
            ver: ver.to_owned(),
        })
    }

    /// The cache key, for a `ver` that can be verified here.
    fn key(&self) -> Option<cache::Key> {
        let hash = self.hash.as_ref().filter(|h| verify::supported(h))?;
        Some((hash.clone(), self.ver.clone()))
    }
}

#[derive(Default)]
struct Queries {
    /// Outstanding queries by IQ id: whom they went to, about what.
    pending: HashMap<String, (Jid, Advert)>,
    /// Per verifiable `ver`: the sessions waiting to learn it, the one
    /// asked first, and when the last question went out.
    waiting: HashMap<cache::Key, (VecDeque<Jid>, Instant)>,
}

/// What this module keeps on a session.
#[derive(Default)]
struct SessionCaps {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Available (since the last initial presence).
    available: bool,
    advert: Option<Advert>,
    /// What the session supports, once known.
    features: Option<Arc<Features>>,
}

/// Adds the capabilities rows and the server's feature; returns the
/// handle other features read capabilities through.
pub fn register(setup: &mut Setup<'_>) -> Arc<Caps> {
    let caps = Arc::new(Caps {
        cache: cache::Cache::new(CACHE_ENTRIES, CACHE_WEIGHT),
        queries: Mutex::default(),
        listeners: RwLock::default(),
    });
    setup.iq.feature(Scope::Server, NS);
    let c = caps.clone();
    setup.table.hook(
        Event::pre(Kind::Presence, Class::Broadcast),
        10,
        MODULE,
        "reads the <c/> of a client's broadcast presence; an unknown ver is asked of the client (XEP-0115 §5.4)",
        move |r, s| {
            c.presence(r, &s);
            Flow::Next(s)
        },
    );
    let c = caps.clone();
    setup.table.hook(
        Event::at(Kind::Iq, Class::Host),
        20,
        MODULE,
        "a client's answer to the server's capabilities query is verified and cached",
        move |r, s| c.answer(r, s),
    );
    let c = caps.clone();
    setup
        .table
        .on_session_end(MODULE, move |r, end| c.ended(r, &end.jid));
    caps
}

/// Advertises the server's own capabilities for each host (§6.3): a
/// `<c/>` stream feature, and disco#info of `node#ver` answered like the
/// host. Called after every other module and feature registered, since the
/// hash covers everything disco#info shows.
pub fn advertise(setup: &mut Setup<'_>) {
    for host in setup.settings.get().host_names() {
        let info = crate::modules::disco::server_info(setup.iq, &host);
        let s = verify::ver_string(&info).expect("the server's own disco#info is well-formed");
        let ver = verify::hash("sha-1", s.as_bytes()).expect("sha-1 is supported");
        setup.iq.host_alias(&host, format!("{SERVER_NODE}#{ver}"));
        setup.table.host_stream_feature(
            &host,
            Element::new("c", NS)
                .with_attr("hash", "sha-1")
                .with_attr("node", SERVER_NODE)
                .with_attr("ver", ver),
        );
    }
}

impl Caps {
    /// What a session supports, once known.
    pub fn features(&self, session: &SessionEntry) -> Option<Arc<Features>> {
        let sc = session.shared.ext.get::<SessionCaps>()?;
        let state = sc.state.lock().unwrap_or_else(|e| e.into_inner());
        state.features.clone()
    }

    /// Whether a session is known to support `var` (`NODE+notify`, say).
    pub fn supports(&self, session: &SessionEntry, var: &str) -> bool {
        self.features(session).is_some_and(|f| f.contains(var))
    }

    /// Calls `listener` with a session's full JID and capabilities when it
    /// becomes available with known capabilities (on the router's thread:
    /// it must not block).
    pub fn on_available(
        &self,
        listener: impl Fn(&Router, &Jid, &Arc<Features>) + Send + Sync + 'static,
    ) {
        self.listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(listener));
    }

    /// Verified entries in the shared cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn fire(&self, r: &Router, jid: &Jid, features: &Arc<Features>) {
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        for l in listeners.iter() {
            l(r, jid, features);
        }
    }

    /// A client's broadcast presence.
    fn presence(&self, r: &Router, s: &Stanza) {
        let Some(session) = r.sessions().get(&s.from) else {
            return;
        };
        let sc = match session.shared.ext.get::<SessionCaps>() {
            Some(sc) => sc,
            None => {
                let sc = Arc::new(SessionCaps::default());
                session.shared.ext.set(sc.clone());
                sc
            }
        };
        match s.presence_type() {
            Some(PresenceType::Unavailable) => {
                sc.state.lock().unwrap_or_else(|e| e.into_inner()).available = false;
            }
            Some(PresenceType::Available) => {
                let advert = Advert::parse(&s.el);
                let mut state = sc.state.lock().unwrap_or_else(|e| e.into_inner());
                let initial = !state.available;
                state.available = true;
                if advert == state.advert {
                    // The same capabilities: only an initial presence is
                    // news (XEP-0163 §4.3.3).
                    let known = state.features.clone().filter(|_| initial);
                    drop(state);
                    if let Some(f) = known {
                        self.fire(r, &s.from, &f);
                    }
                    return;
                }
                state.advert = advert.clone();
                state.features = None;
                drop(state);
                let Some(advert) = advert else {
                    return;
                };
                self.learn(r, &s.from, advert);
            }
            _ => {}
        }
    }

    /// Finds out what `advert` means for the session `jid`: from the cache,
    /// or by asking.
    fn learn(&self, r: &Router, jid: &Jid, advert: Advert) {
        let Some(key) = advert.key() else {
            // Nothing to verify: ask this client about itself.
            return self.ask(r, jid, advert);
        };
        if let Some(f) = self.cache.get(&key) {
            return self.resolve(r, jid, &advert, f);
        }
        let ask = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (list, asked) = q
                .waiting
                .entry(key)
                .or_insert_with(|| (VecDeque::new(), now));
            list.push_back(jid.clone());
            // The first asks; a later one asks too when the one asked
            // before it is taking too long.
            let ask = list.len() == 1 || now.duration_since(*asked) > PATIENCE;
            if ask {
                *asked = now;
            }
            ask
        };
        if ask {
            self.ask(r, jid, advert);
        }
    }

    /// Sends a disco#info query for `node#ver` to a client.
    fn ask(&self, r: &Router, jid: &Jid, advert: Advert) {
        let id = format!("caps-{}", crate::ids::random_id());
        let node = format!("{}#{}", advert.node, advert.ver);
        {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            if q.pending.len() >= MAX_PENDING {
                tracing::debug!(%jid, "too many capabilities queries outstanding; not asking");
                return;
            }
            q.pending.insert(id.clone(), (jid.clone(), advert));
        }
        r.route(
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", id)
                .with_attr("from", jid.domain())
                .with_attr("to", jid.to_string())
                .with_child(Element::new("query", ns::DISCO_INFO).with_attr("node", node)),
        );
    }

    /// A result or error addressed to a host: the answer to one of this
    /// module's queries is taken, anything else passed on.
    fn answer(&self, r: &Router, s: Stanza) -> Flow {
        if !matches!(s.iq_type(), Some(IqType::Result | IqType::Error)) {
            return Flow::Next(s);
        }
        let Some(id) = s.el.attr("id").filter(|id| id.starts_with("caps-")) else {
            return Flow::Next(s);
        };
        let (jid, advert) = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            match q.pending.get(id) {
                Some((jid, _)) if *jid == s.from => {}
                // Another entity answering in a session's place is not
                // listened to; the result ends here either way.
                _ => return Flow::Done,
            }
            q.pending.remove(id).expect("just seen")
        };
        let query = match s.iq_type() {
            Some(IqType::Result) => s.el.get_child("query", ns::DISCO_INFO),
            _ => None,
        };
        let Some(key) = advert.key() else {
            if let Some(f) = query.and_then(|q| verify::features(q).ok()) {
                self.resolve(r, &jid, &advert, Arc::new(f));
            }
            return Flow::Done;
        };
        let verified = query.and_then(|q| {
            let s = verify::ver_string(q).ok()?;
            let ok = verify::hash(&key.0, s.as_bytes())? == key.1;
            ok.then(|| verify::features(q).ok()).flatten()
        });
        match verified {
            Some(f) => {
                let f = Arc::new(f);
                self.cache.insert(key.clone(), f.clone());
                let waiting = {
                    let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
                    q.waiting.remove(&key).map(|(l, _)| l).unwrap_or_default()
                };
                if !waiting.contains(&jid) {
                    self.resolve(r, &jid, &advert, f.clone());
                }
                for w in waiting {
                    self.resolve(r, &w, &advert, f.clone());
                }
            }
            None => {
                tracing::debug!(%jid, ver = %advert.ver, "capabilities answer does not verify; used for that session only");
                // §5.4 step 3.9: believed for that session only, and the
                // next one advertising the same ver is asked.
                if let Some(f) = query.and_then(|q| verify::features(q).ok()) {
                    self.resolve(r, &jid, &advert, Arc::new(f));
                }
                self.next(r, &key, &jid, &advert);
            }
        }
        Flow::Done
    }

    /// `jid` is no longer waiting for `key`: the next session that is gets
    /// asked.
    fn next(&self, r: &Router, key: &cache::Key, jid: &Jid, advert: &Advert) {
        let next = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            let next = match q.waiting.get_mut(key) {
                Some((list, asked)) => {
                    list.retain(|j| j != jid);
                    *asked = Instant::now();
                    list.front().cloned()
                }
                None => None,
            };
            if next.is_none() {
                q.waiting.remove(key);
            }
            next
        };
        if let Some(n) = next {
            self.ask(r, &n, advert.clone());
        }
    }

    /// A session learnt what `advert` means, if it still advertises it.
    fn resolve(&self, r: &Router, jid: &Jid, advert: &Advert, features: Arc<Features>) {
        let Some(session) = r.sessions().get(jid) else {
            return;
        };
        let Some(sc) = session.shared.ext.get::<SessionCaps>() else {
            return;
        };
        let fire = {
            let mut state = sc.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.advert.as_ref() != Some(advert) {
                return;
            }
            state.features = Some(features.clone());
            state.available
        };
        if fire {
            self.fire(r, jid, &features);
        }
    }

    /// A session ended: its outstanding queries and waiting places go, and
    /// the next session waiting on the same `ver` is asked instead.
    fn ended(&self, r: &Router, jid: &Jid) {
        let asked: Vec<Advert> = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = q
                .pending
                .iter()
                .filter(|(_, (j, _))| j == jid)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| q.pending.remove(id))
                .map(|(_, a)| a)
                .collect()
        };
        for advert in &asked {
            if let Some(key) = advert.key() {
                self.next(r, &key, jid, advert);
            }
        }
        let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        for (list, _) in q.waiting.values_mut() {
            list.retain(|j| j != jid);
        }
        q.waiting.retain(|_, (list, _)| !list.is_empty());
    }
}

#[cfg(test)]
mod tests;
