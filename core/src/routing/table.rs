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

use std::fmt;

use super::stanza::{Class, Kind, Stanza};
use super::Router;

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

/// What a session left behind when it ended.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    pub jid: switchboard_jid::Jid,
    /// Its last broadcast presence, if it was still available (as the
    /// connection saw the client's stanzas, in order).
    pub presence: Option<std::sync::Arc<switchboard_xml::Element>>,
    /// The status text of an explicit final unavailable presence.
    pub status: Option<String>,
    /// Entities it sent directed available presence to.
    pub directed: Vec<switchboard_jid::Jid>,
}

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
}

impl Default for TableBuilder {
    fn default() -> Self {
        TableBuilder {
            hooks: (0..EVENTS).map(|_| Vec::new()).collect(),
            session_end: Vec::new(),
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

    pub fn build(self) -> Table {
        Table {
            hooks: self.hooks.into_boxed_slice(),
            session_end: self.session_end,
        }
    }
}

/// The frozen table.
pub struct Table {
    hooks: Box<[Vec<Entry>]>,
    session_end: Vec<(&'static str, SessionEndHook)>,
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
        for (module, _) in &self.session_end {
            rows.push(Row {
                event: "session-end".into(),
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
