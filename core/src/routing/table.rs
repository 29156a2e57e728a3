//! The routing table: which handlers see a stanza, in which order.
//!
//! A stanza is routed in up to two stages, each keyed by its kind and the
//! class of its addressee (Prosody's `pre-message/bare`, `message/full`, …
//! events are the model):
//!
//! - **pre** (`pre-message/bare`, …): a stanza a local client sent, before
//!   it goes anywhere. The sender's side acts here: its roster for
//!   outbound subscriptions, its own broadcast presence, copies of what it
//!   sends (carbons), its archive.
//! - **at** (`message/bare`, …): the stanza at its destination on this
//!   server, whoever sent it (a client, an account actor, a service). The
//!   addressee's side acts here, ending with delivery.
//!
//! Each event has an ordered list of hooks, highest priority first. A hook
//! gets the stanza by value and either passes it on (amended or not) with
//! [`Flow::Next`] or consumes it with [`Flow::Done`] (delivered, queued to
//! an actor, answered, bounced or dropped on purpose). A stanza no hook
//! consumes reaches the router's fallback: an error reply for messages and
//! IQ requests, silence for presence and for errors and results.
//!
//! The table is built once at start-up from the modules' `register`
//! functions and never changes after; `doc/stanza_routing.md` lists every
//! row, and a test fails when the two disagree.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_spool::store::BoxFuture;
use switchboard_xml::Element;

use super::stanza::{Class, Kind, Stanza};
use super::Router;
use crate::lifecycle::Tracker;
use crate::queue;
use crate::sessions::{Outbound, SessionShared, TakeBack};
use crate::stream::StreamExtensions;

/// Before routing (from a local client) or at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Pre,
    At,
}

/// One event of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    pub stage: Stage,
    pub kind: Kind,
    pub class: Class,
}

impl Event {
    pub const fn pre(kind: Kind, class: Class) -> Event {
        Event {
            stage: Stage::Pre,
            kind,
            class,
        }
    }

    pub const fn at(kind: Kind, class: Class) -> Event {
        Event {
            stage: Stage::At,
            kind,
            class,
        }
    }

    fn index(self) -> usize {
        let stage = match self.stage {
            Stage::Pre => 0,
            Stage::At => 1,
        };
        let kind = match self.kind {
            Kind::Message => 0,
            Kind::Presence => 1,
            Kind::Iq => 2,
        };
        (stage * 3 + kind) * Class::ALL.len() + self.class.index()
    }
}

impl fmt::Display for Event {
    /// `pre-message/bare`, `presence/full`, … as in the routing document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
        };
        let pre = if self.stage == Stage::Pre { "pre-" } else { "" };
        write!(f, "{pre}{kind}/{}", self.class.name())
    }
}

/// What a hook did with the stanza.
// A `Flow` is only ever returned from one hook to the table, never
// stored, so the size difference costs nothing; boxing the stanza would
// cost an allocation per stanza.
#[allow(clippy::large_enum_variant)]
pub enum Flow {
    /// Pass it to the next hook (possibly amended).
    Next(Stanza),
    /// It is taken care of; no later hook sees it.
    Done,
}

/// A hook: runs on the router's thread, so it never blocks (slow work goes
/// to an actor or a task).
pub type Hook = Box<dyn Fn(&Router, Stanza) -> Flow + Send + Sync>;

/// A hook for the end of a session (a closed stream, a dropped socket, a
/// kick): the account's contacts, directed-presence recipients and
/// records need to hear of it.
pub type SessionEndHook = Box<dyn Fn(&Router, SessionEnd) + Send + Sync>;

pub use crate::sessions::SessionEnd;

/// The hook that keeps a given-up session's place (see
/// `Router::give_up`): it gets the session's account and the promise of
/// what the session leaves behind, and must queue that promise where work
/// for the account is done in order (the account's actor), ahead of
/// anything routed to the account after it returns. It runs while the
/// session is being taken out of the table, so it never blocks. One
/// module has it.
pub type GiveUpHook = Box<dyn Fn(&Router, &Jid, TakeBack) + Send + Sync>;

/// A bound client session as hooks that act on the session itself see
/// it: who it is, its outbox, its shared state, and the tracker of work
/// it waits for.
#[derive(Clone)]
pub struct SessionRef {
    pub jid: Jid,
    pub id: u64,
    pub tx: queue::Sender<Outbound>,
    pub shared: Arc<SessionShared>,
    pub pending: Tracker,
}

impl SessionRef {
    /// Queues an element for the client, behind what is queued already (a
    /// full outbox drops it: the session is being closed for not reading).
    pub fn send(&self, el: Element) {
        let _ = self.tx.try_send(Outbound::Stanza(Box::new(el)));
    }
}

impl fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRef")
            .field("jid", &self.jid)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A hook for a client's nonza: a top-level element after resource
/// binding in a namespace a module registered (XEP-0352's `<active/>`,
/// say). Runs on the connection's task, in order with the client's
/// stanzas; never blocks.
pub type NonzaHook = Box<dyn Fn(&Router, &SessionRef, Element) + Send + Sync>;

/// A hook that runs when a session has bound its resource, before the
/// session enters the session table and before the connection reads
/// anything more from the client: what a module needs ready for the
/// session (a block list loaded, say) is ready before anything is routed
/// to it. Awaited in order.
pub type SessionStartHook =
    Box<dyn Fn(&Router, &SessionRef) -> BoxFuture<'static, ()> + Send + Sync>;

/// A hook for a session that starts to hibernate because its connection
/// died (XEP-0198; not for a hand-over to a resuming connection): it
/// gets the session (already marked `Hibernating`) and what it had been
/// sent and not acknowledged, which may never have reached the device.
/// Runs on the connection's task; never blocks.
pub type HibernateHook = Box<dyn Fn(&Router, &SessionRef, &[&Element]) + Send + Sync>;

struct Entry {
    priority: i32,
    module: &'static str,
    what: &'static str,
    hook: Hook,
}

/// One row of the table, for the routing document and its test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub event: String,
    pub priority: i32,
    pub module: &'static str,
    pub what: &'static str,
}

const EVENTS: usize = 2 * 3 * Class::ALL.len();

/// The table under construction: modules add their hooks, then
/// [`TableBuilder::build`] freezes it.
pub struct TableBuilder {
    hooks: Vec<Vec<Entry>>,
    session_end: Vec<(&'static str, SessionEndHook)>,
    session_start: Vec<(&'static str, SessionStartHook)>,
    session_hibernates: Vec<(&'static str, HibernateHook)>,
    session_given_up: Option<(&'static str, GiveUpHook)>,
    nonzas: HashMap<&'static str, (&'static str, NonzaHook)>,
    features: Vec<Element>,
    host_features: Vec<(String, Element)>,
    bind2_inline: Vec<&'static str>,
}

impl Default for TableBuilder {
    fn default() -> Self {
        TableBuilder {
            hooks: (0..EVENTS).map(|_| Vec::new()).collect(),
            session_end: Vec::new(),
            session_start: Vec::new(),
            session_hibernates: Vec::new(),
            session_given_up: None,
            nonzas: HashMap::new(),
            features: Vec::new(),
            host_features: Vec::new(),
            bind2_inline: Vec::new(),
        }
    }
}

impl TableBuilder {
    /// Adds a hook to `event`. Higher priorities run first; hooks of equal
    /// priority run in the order they were added. `module` and `what` name
    /// the row in the routing document.
    pub fn hook(
        &mut self,
        event: Event,
        priority: i32,
        module: &'static str,
        what: &'static str,
        hook: impl Fn(&Router, Stanza) -> Flow + Send + Sync + 'static,
    ) {
        let list = &mut self.hooks[event.index()];
        let at = list
            .iter()
            .position(|e| e.priority < priority)
            .unwrap_or(list.len());
        list.insert(
            at,
            Entry {
                priority,
                module,
                what,
                hook: Box::new(hook),
            },
        );
    }

    /// The same hook on several events.
    pub fn hook_each<F>(
        &mut self,
        events: &[Event],
        priority: i32,
        module: &'static str,
        what: &'static str,
        hook: F,
    ) where
        F: Fn(&Router, Stanza) -> Flow + Send + Sync + Clone + 'static,
    {
        for e in events {
            self.hook(*e, priority, module, what, hook.clone());
        }
    }

    /// Adds a hook for the end of every session.
    pub fn on_session_end(
        &mut self,
        module: &'static str,
        hook: impl Fn(&Router, SessionEnd) + Send + Sync + 'static,
    ) {
        self.session_end.push((module, Box::new(hook)));
    }

    /// Adds a hook for the start of every session (after binding).
    pub fn on_session_start(
        &mut self,
        module: &'static str,
        hook: impl Fn(&Router, &SessionRef) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        self.session_start.push((module, Box::new(hook)));
    }

    /// Adds a hook for every session that starts to hibernate because its
    /// connection died.
    pub fn on_session_hibernates(
        &mut self,
        module: &'static str,
        hook: impl Fn(&Router, &SessionRef, &[&Element]) + Send + Sync + 'static,
    ) {
        self.session_hibernates.push((module, Box::new(hook)));
    }

    /// Keeps the place of every session given up on in its account's
    /// work (see [`GiveUpHook`]). One module.
    pub fn on_session_given_up(
        &mut self,
        module: &'static str,
        hook: impl Fn(&Router, &Jid, TakeBack) + Send + Sync + 'static,
    ) {
        let old = self.session_given_up.replace((module, Box::new(hook)));
        assert!(
            old.is_none(),
            "two modules keep the place of sessions given up on"
        );
    }

    /// Takes the client's nonzas in `namespace` after binding. One module
    /// per namespace.
    pub fn on_nonza(
        &mut self,
        namespace: &'static str,
        module: &'static str,
        hook: impl Fn(&Router, &SessionRef, Element) + Send + Sync + 'static,
    ) {
        let old = self.nonzas.insert(namespace, (module, Box::new(hook)));
        assert!(old.is_none(), "two modules take the nonzas of {namespace}");
    }

    /// Offers a stream feature to authenticated clients, beside `<bind/>`.
    pub fn stream_feature(&mut self, feature: Element) {
        self.features.push(feature);
    }

    /// Offers a stream feature to authenticated clients of one host only
    /// (the host's entity capabilities, XEP-0115 §6.3, differ per host).
    pub fn host_stream_feature(&mut self, host: &str, feature: Element) {
        self.host_features.push((host.to_owned(), feature));
    }

    /// Lets clients enable the feature of `namespace` inline in a Bind 2
    /// request (XEP-0386): its element there is handed to the module's
    /// nonza hook for that namespace right after binding (so the module
    /// must take that namespace's nonzas too).
    pub fn bind2_inline(&mut self, namespace: &'static str) {
        self.bind2_inline.push(namespace);
    }

    pub fn build(self) -> Table {
        for ns in &self.bind2_inline {
            assert!(
                self.nonzas.contains_key(ns),
                "{ns} is enabled inline in Bind 2 but no module takes its nonzas"
            );
        }
        let mut namespaces: Vec<&'static str> = self.nonzas.keys().copied().collect();
        namespaces.sort_unstable();
        Table {
            hooks: self.hooks.into_boxed_slice(),
            session_end: self.session_end,
            session_start: self.session_start,
            session_hibernates: self.session_hibernates,
            session_given_up: self.session_given_up,
            nonzas: self.nonzas,
            extensions: Arc::new(StreamExtensions {
                features: self.features,
                host_features: self.host_features,
                nonza_namespaces: namespaces,
                bind2_inline: self.bind2_inline,
            }),
        }
    }
}

/// The frozen table.
pub struct Table {
    hooks: Box<[Vec<Entry>]>,
    session_end: Vec<(&'static str, SessionEndHook)>,
    session_start: Vec<(&'static str, SessionStartHook)>,
    session_hibernates: Vec<(&'static str, HibernateHook)>,
    session_given_up: Option<(&'static str, GiveUpHook)>,
    nonzas: HashMap<&'static str, (&'static str, NonzaHook)>,
    extensions: Arc<StreamExtensions>,
}

impl Table {
    /// Runs `event`'s hooks in order; the stanza if none consumed it.
    pub(crate) fn run(&self, router: &Router, event: Event, stanza: Stanza) -> Option<Stanza> {
        let mut stanza = stanza;
        for e in &self.hooks[event.index()] {
            match (e.hook)(router, stanza) {
                Flow::Next(s) => stanza = s,
                Flow::Done => return None,
            }
        }
        Some(stanza)
    }

    pub(crate) fn session_ended(&self, router: &Router, end: SessionEnd) {
        for (_, hook) in &self.session_end {
            hook(router, end.clone());
        }
    }

    pub(crate) async fn session_started(&self, router: &Router, session: &SessionRef) {
        for (_, hook) in &self.session_start {
            hook(router, session).await;
        }
    }

    pub(crate) fn session_hibernates(
        &self,
        router: &Router,
        session: &SessionRef,
        unacked: &[&Element],
    ) {
        for (_, hook) in &self.session_hibernates {
            hook(router, session, unacked);
        }
    }

    /// Hands the promise of a given-up session's leavings to the module
    /// that keeps its place; `false` when no module does.
    pub(crate) fn session_given_up(&self, router: &Router, account: &Jid, take: TakeBack) -> bool {
        match &self.session_given_up {
            Some((_, hook)) => {
                hook(router, account, take);
                true
            }
            None => false,
        }
    }

    /// Runs the hook of the nonza's namespace; `false` when none takes it.
    pub(crate) fn nonza(&self, router: &Router, session: &SessionRef, el: Element) -> bool {
        match self.nonzas.get(el.ns.as_str()) {
            Some((_, hook)) => {
                hook(router, session, el);
                true
            }
            None => false,
        }
    }

    /// The stream features and nonza namespaces modules add.
    pub fn extensions(&self) -> &Arc<StreamExtensions> {
        &self.extensions
    }

    /// Every row, for the routing document's test: events in the table's
    /// order, hooks in the order they run.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for stage in [Stage::Pre, Stage::At] {
            for kind in [Kind::Message, Kind::Presence, Kind::Iq] {
                for class in Class::ALL {
                    let event = Event { stage, kind, class };
                    for e in &self.hooks[event.index()] {
                        rows.push(Row {
                            event: event.to_string(),
                            priority: e.priority,
                            module: e.module,
                            what: e.what,
                        });
                    }
                }
            }
        }
        for (module, _) in &self.session_start {
            rows.push(Row {
                event: "session-start".into(),
                priority: 0,
                module,
                what: "",
            });
        }
        for (module, _) in &self.session_hibernates {
            rows.push(Row {
                event: "session-hibernates".into(),
                priority: 0,
                module,
                what: "",
            });
        }
        if let Some((module, _)) = &self.session_given_up {
            rows.push(Row {
                event: "session-given-up".into(),
                priority: 0,
                module,
                what: "",
            });
        }
        for (module, _) in &self.session_end {
            rows.push(Row {
                event: "session-end".into(),
                priority: 0,
                module,
                what: "",
            });
        }
        let mut nonzas: Vec<_> = self.nonzas.iter().collect();
        nonzas.sort_by_key(|(ns, _)| **ns);
        for (ns, (module, _)) in nonzas {
            rows.push(Row {
                event: format!("nonza {ns}"),
                priority: 0,
                module,
                what: "",
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_match_prosodys_style() {
        assert_eq!(
            Event::pre(Kind::Message, Class::Bare).to_string(),
            "pre-message/bare"
        );
        assert_eq!(
            Event::at(Kind::Presence, Class::Broadcast).to_string(),
            "presence/broadcast"
        );
        let mut seen = std::collections::HashSet::new();
        for stage in [Stage::Pre, Stage::At] {
            for kind in [Kind::Message, Kind::Presence, Kind::Iq] {
                for class in Class::ALL {
                    assert!(seen.insert(Event { stage, kind, class }.index()));
                }
            }
        }
        assert_eq!(seen.len(), EVENTS);
        assert!(seen.iter().all(|i| *i < EVENTS));
    }

    #[test]
    fn hooks_run_by_priority_then_in_the_order_added() {
        let mut b = TableBuilder::default();
        let e = Event::at(Kind::Message, Class::Full);
        b.hook(e, 0, "a", "low", |_, s| Flow::Next(s));
        b.hook(e, 10, "b", "high", |_, s| Flow::Next(s));
        b.hook(e, 0, "c", "low too", |_, s| Flow::Next(s));
        b.hook(e, 5, "d", "middle", |_, s| Flow::Next(s));
        let order: Vec<_> = b.build().rows().into_iter().map(|r| r.module).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
    }
}
