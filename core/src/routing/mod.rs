//! The router: classifies a stanza once and runs it through the routing
//! table, whose hooks deliver it, queue it to an actor, answer it, or pass
//! it on.
//!
//! ```text
//! route_client (a bound client)   route / route_from_service /
//!   │ classify (kind, type, class)  │ route_from_remote (the server itself,
//!   │                               │ services, other servers): classify
//!   ▼                               │
//! pre-<kind>/<class> hooks          │
//!   ▼                               ▼
//! <kind>/<class> hooks at the destination ─► fallback: an error reply
//!                                            for a message or IQ request
//! ```
//!
//! The classes: `host` (a local domain), `bare` and `full` (JIDs on a
//! local domain), `service` (a service hostname), `remote` (anything
//! else), and `broadcast` (presence without `to` from a client). Which
//! hooks exist is written down in `doc/stanza_routing.md`.
//!
//! The router is a cheap handle (`Clone`): every part that routes gets one
//! and nothing else of the server. It never blocks: delivery to a session
//! is a `try_send` into its bounded outbox, to a service a `try_send` into
//! its inbox, and anything slow is queued to an actor by a hook.

pub mod defaults;
pub mod iq;
pub mod requests;
pub mod services;
pub mod stanza;
pub mod table;

use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use crate::lifecycle::{Guard, Tracker};
use crate::metrics::Metrics;
use crate::sessions::{Outbound, SessionEntry, Sessions};
use crate::stanza::{error_reply, iq_result, StanzaError};
use crate::stream::StreamError;
use iq::{IqRequest, Registry, Scope};
use services::ServiceSlots;
use stanza::{Class, IqType, Kind, MessageType, Origin, Stanza, StanzaType};
use table::{Event, SessionEnd, Table};

/// The router handle.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    hosts: Box<[String]>,
    sessions: Sessions,
    services: ServiceSlots,
    table: Table,
    iq: Registry,
    metrics: Arc<Metrics>,
}

impl Router {
    /// A router for these local domains with a finished table and IQ
    /// registry.
    pub fn new(hosts: Vec<String>, table: Table, iq: Registry, metrics: Arc<Metrics>) -> Router {
        Router {
            inner: Arc::new(Inner {
                hosts: hosts.into_boxed_slice(),
                sessions: Sessions::default(),
                services: ServiceSlots::default(),
                table,
                iq,
                metrics,
            }),
        }
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub fn services(&self) -> &ServiceSlots {
        &self.inner.services
    }

    pub fn iq(&self) -> &Registry {
        &self.inner.iq
    }

    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The local domains.
    pub fn hosts(&self) -> &[String] {
        &self.inner.hosts
    }

    pub fn is_local(&self, domain: &str) -> bool {
        self.inner.hosts.iter().any(|h| h == domain)
    }

    /// The class of a (normalized) addressee.
    pub fn classify(&self, to: &Jid) -> Class {
        if self.is_local(to.domain()) {
            return match (to.node(), to.resource()) {
                (None, _) => Class::Host,
                (Some(_), None) => Class::Bare,
                (Some(_), Some(_)) => Class::Full,
            };
        }
        if self.inner.services.contains(to.domain()) {
            return Class::Service;
        }
        Class::Remote
    }

    /// Routes a stanza from a bound client session: `from` is stamped and
    /// checked by the stream machine and `to` parsed and normalized there,
    /// so the addresses are parsed once per stanza. The sender's side
    /// (`pre-…` hooks) runs first, then the destination's. Work the
    /// stanza starts is counted in `pending`, the session's tracker.
    pub fn route_client(
        &self,
        session: u64,
        pending: &Tracker,
        from: &Jid,
        to: Option<Jid>,
        mut el: Element,
    ) {
        self.inner.metrics.stanza_in(&el);
        let ty = match StanzaType::of(&el) {
            Some(Ok(ty)) => ty,
            Some(Err(e)) => return self.bounce(&el, e),
            None => return,
        };
        let (to, class) = match to {
            Some(to) => {
                let class = self.classify(&to);
                (to, class)
            }
            None if ty.kind() == Kind::Presence => (from.to_bare(), Class::Broadcast),
            // A message or IQ without `to` is for the sender's own
            // account (RFC 6120 §10.3.1, §10.3.3).
            None => {
                let own = from.to_bare();
                el.set_attr("to", own.to_string());
                (own, Class::Bare)
            }
        };
        let stanza = Stanza {
            el,
            ty,
            from: from.clone(),
            to,
            class,
            origin: Origin::Client { session },
            pending: Some(pending.clone()),
        };
        let event = Event::pre(ty.kind(), class);
        if let Some(stanza) = self.inner.table.run(self, event, stanza) {
            self.arrive(stanza);
        }
    }

    /// Routes a stanza the server itself sends (an account actor, a
    /// module, an admin task) toward its `to`: only the destination's
    /// hooks run. A stanza without a valid `from` is a bug and is dropped
    /// with a log line; one without a valid `to` bounces.
    pub fn route(&self, el: Element) {
        self.route_from(el, Origin::Local, None)
    }

    /// [`Router::route`] for work done on a session's behalf (`ticket`
    /// from [`Stanza::ticket`]): what this stanza starts in turn is counted
    /// for the same session.
    pub fn route_for(&self, el: Element, ticket: Option<&Guard>) {
        self.route_from(el, Origin::Local, ticket.map(Guard::tracker))
    }

    /// Routes a stanza again that went through the destination's hooks
    /// once already and comes back from an actor (a message queued for
    /// offline storage whose addressee came online meanwhile): as
    /// [`Origin::Redelivery`], so that hooks which act once per stanza
    /// (archive, carbons) do not act twice. Work it starts is counted for
    /// the session of `ticket`, as with [`Router::route_for`].
    pub fn route_again(&self, el: Element, ticket: Option<&Guard>) {
        self.route_from(el, Origin::Redelivery, ticket.map(Guard::tracker))
    }

    fn route_from(&self, el: Element, origin: Origin, pending: Option<Tracker>) {
        let Some(from) = el.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            tracing::warn!("dropping a stanza without a valid 'from'");
            return;
        };
        let to = match el.attr("to").map(Jid::parse) {
            Some(Ok(to)) => to,
            _ => return self.bounce(&el, StanzaError::jid_malformed()),
        };
        let ty = match StanzaType::of(&el) {
            Some(Ok(ty)) => ty,
            Some(Err(e)) => return self.bounce(&el, e),
            None => return,
        };
        let class = self.classify(&to);
        self.arrive(Stanza {
            el,
            ty,
            from,
            to,
            class,
            origin,
            pending,
        });
    }

    /// Routes a stanza a service sent. Its `from` must be the service's
    /// hostname or a JID at it: a service cannot speak for anyone else.
    /// Returns the problem for the caller to report (an external component
    /// gets a stream error; an in-process service a log line).
    pub fn route_from_service(&self, host: &str, el: Element) -> Result<(), &'static str> {
        self.inner.metrics.stanza_in(&el);
        let from_ok = el
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .is_some_and(|f| f.domain() == host);
        if !from_ok {
            return Err("invalid-from");
        }
        if el.attr("to").is_none() {
            return Err("improper-addressing");
        }
        let Some(el) = self.inner.services.take_answer(el) else {
            return Ok(());
        };
        self.route_from(el, Origin::Service(Arc::from(host)), None);
        Ok(())
    }

    /// Routes a stanza another server sent over a link authenticated for
    /// `domain`: its `from` must be at that domain, and its `to` at one of
    /// ours (a host or a service): this server relays nothing between
    /// other servers. Returns the problem as a stream error condition for
    /// the link (the stream machine checks the same rules first).
    pub fn route_from_remote(&self, domain: &str, el: Element) -> Result<(), &'static str> {
        self.inner.metrics.stanza_in(&el);
        let from_ok = el
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .is_some_and(|f| f.domain() == domain);
        if !from_ok {
            return Err("invalid-from");
        }
        match el.attr("to").map(Jid::parse) {
            Some(Ok(to)) if self.classify(&to) != Class::Remote => {}
            Some(Ok(_)) => return Err("host-unknown"),
            _ => return Err("improper-addressing"),
        }
        self.route_from(el, Origin::Remote(Arc::from(domain)), None);
        Ok(())
    }

    /// The destination's hooks, then the fallback.
    fn arrive(&self, stanza: Stanza) {
        let event = Event::at(stanza.kind(), stanza.class);
        if let Some(stanza) = self.inner.table.run(self, event, stanza) {
            self.unclaimed(stanza);
        }
    }

    /// No hook took the stanza: messages and IQ requests get
    /// `service-unavailable` (RFC 6120 §8.3.3.19 lets a server say so for
    /// anything it does not handle); presence is dropped.
    fn unclaimed(&self, stanza: Stanza) {
        if stanza.kind() != Kind::Presence {
            self.bounce(&stanza.el, StanzaError::service_unavailable());
        }
    }

    /// Answers an IQ from the registry's sync handlers, as `to` (a local
    /// domain for `Scope::Server`, a bare JID for `Scope::Account`).
    /// Results and errors addressed there end here.
    pub fn answer_iq(&self, stanza: &Stanza, scope: Scope) {
        let kind = match stanza.iq_type() {
            Some(k @ (IqType::Get | IqType::Set)) => k,
            _ => return,
        };
        let iq = &stanza.el;
        let Some(payload) = iq.first_element() else {
            return self.bounce(iq, StanzaError::bad_request());
        };
        let to = match scope {
            Scope::Server => Jid::from_parts(None, stanza.to.domain(), None)
                .expect("a classified domain is valid"),
            Scope::Account => stanza.to.to_bare(),
        };
        if let Some(handler) = self.inner.iq.lookup_async(payload, kind, scope) {
            return self.answer_later(stanza, handler, to);
        }
        let Some(handler) = self.inner.iq.lookup(payload, kind, scope) else {
            return self.bounce(iq, StanzaError::service_unavailable());
        };
        let services = self.inner.services.infos();
        let req = IqRequest {
            iq,
            payload,
            from: &stanza.from,
            to: &to,
            registry: &self.inner.iq,
            services: &services,
        };
        match handler(&req) {
            Ok(result) => {
                let mut reply = iq_result(iq, result);
                reply.set_attr("from", to.to_string());
                self.reply(reply);
            }
            Err(err) => self.bounce(iq, err),
        }
    }

    /// Runs an async IQ handler on a task of its own; the sender's session
    /// waits for it (the stanza's ticket is held until the reply is
    /// queued).
    fn answer_later(&self, stanza: &Stanza, handler: iq::AsyncIqHandler, to: Jid) {
        let ticket = stanza.ticket();
        let call = iq::IqCall {
            iq: stanza.el.clone(),
            from: stanza.from.clone(),
            to: to.clone(),
            router: self.clone(),
        };
        let router = self.clone();
        tokio::spawn(async move {
            let iq = call.iq.clone();
            match handler(call).await {
                Ok(result) => {
                    let mut reply = iq_result(&iq, result);
                    reply.set_attr("from", to.to_string());
                    router.reply(reply);
                }
                Err(err) => router.bounce(&iq, err),
            }
            drop(ticket);
        });
    }

    /// Sends an error reply back to the sender of `stanza` (never in reply
    /// to an error or a result).
    pub fn bounce(&self, stanza: &Element, err: StanzaError) {
        if let Some(reply) = error_reply(stanza, &err) {
            self.inner.metrics.stanza_error();
            self.reply(reply);
        }
    }

    /// Delivers a server-generated reply to a local full JID, to the
    /// service that sent the original, or, for a sender on another
    /// server, through the remote rows of the table (federation).
    pub fn reply(&self, reply: Element) {
        let Some(to) = reply.attr("to").and_then(|t| Jid::parse(t).ok()) else {
            return;
        };
        if let Some(s) = self.inner.sessions.get(&to) {
            return self.deliver(&s, reply);
        }
        if self.inner.services.contains(to.domain()) {
            return self.to_service(to.domain(), reply);
        }
        if !self.is_local(to.domain()) {
            self.route_from(reply, Origin::Local, None);
        }
    }

    /// Hands a stanza to a service's inbox without waiting; the sender
    /// gets an error when the service is unknown, down or too far behind.
    pub fn to_service(&self, host: &str, stanza: Element) {
        // The kind is noted before the stanza moves into the inbox; it is
        // counted only once the inbox has taken it.
        let kind = crate::metrics::kind_index(&stanza.name);
        match self.inner.services.send(host, stanza) {
            Ok(()) => self.inner.metrics.stanza_out_kind(kind),
            Err(refused) => {
                let (stanza, err) = refused.into_bounce(host);
                self.bounce(&stanza, err);
            }
        }
    }

    /// Hands a stanza to a session without waiting. A session that cannot
    /// keep up is given up on (see [`Router::give_up`]): taken out of the
    /// session table at once (so what comes next for the account goes to
    /// its other resources or to offline storage, behind what the session
    /// leaves), told to close, and the stanza that did not fit goes on as
    /// if the resource were absent. One slow reader never stalls the
    /// router, and nothing sent to it is lost or overtaken.
    pub fn deliver(&self, s: &SessionEntry, stanza: Element) {
        let out = match s.tx.try_send(Outbound::Stanza(Box::new(stanza))) {
            Ok(()) => return,
            Err(crate::queue::TrySendError::Full(out)) => {
                if self.give_up(None, s.id, &s.shared) {
                    tracing::warn!(resource = %s.resource, "outbox full: disconnecting a session that does not read");
                    s.shared.kill.notify_one();
                }
                out
            }
            // The connection is gone without saying so (it would have
            // given up on the session itself): make sure nothing is
            // handed to it again.
            Err(crate::queue::TrySendError::Closed(out)) => {
                self.give_up(None, s.id, &s.shared);
                out
            }
        };
        // Only now, with the session's place in its account's queue
        // taken, may this stanza go on: it is newer than everything the
        // session leaves behind.
        if let Outbound::Stanza(stanza) = out {
            self.undeliverable(*stanza);
        }
    }

    /// Gives up on a session (its outbox overflowed, or it ends): in one
    /// step it takes no more deliveries, leaves the session table, and its
    /// account's actor keeps its place (the table's `session-given-up`
    /// hook) for what it leaves behind, which its connection collects
    /// when it ends ([`Router::hand_back`]). So what it was sent and never
    /// wrote or had acknowledged is redelivered or stored ahead of
    /// anything sent to the account after this, and offline storage keeps
    /// the order the account was sent its messages in. `jid` is the
    /// session's JID if the caller knows it. Only the first call for a
    /// session does anything; it returns whether this was it.
    pub fn give_up(
        &self,
        jid: Option<&Jid>,
        id: u64,
        shared: &crate::sessions::SessionShared,
    ) -> bool {
        use crate::sessions::GiveUp;
        // Held throughout, so a concurrent sender who finds the outbox
        // full or closed sends its stanza on only after the place is kept.
        let mut state = shared.give_up.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, GiveUp::Live) {
            return false;
        }
        *state = GiveUp::Over;
        let account = match jid {
            Some(jid) => Some(jid.to_bare()),
            None => self.inner.sessions.account_of(id),
        };
        if let Some(account) = account {
            // The place first, then out of the table: a message routed
            // once the session is gone queues behind the place.
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self
                .inner
                .table
                .session_given_up(self, &account, crate::sessions::TakeBack(rx))
            {
                *state = GiveUp::Awaited(tx);
            }
            self.inner.sessions.unbind(&account, id);
        }
        true
    }

    /// A session that ended hands back what it leaves: `unwritten` (what
    /// was written and not acknowledged, or held by its outbound filter,
    /// in the order the client would have seen it), then everything still
    /// in its `outbox`, and the news of its `end`. It goes to the place
    /// [`Router::give_up`] kept, which must have been called; with no
    /// place kept (or nobody waiting there any more) it goes on now.
    pub fn hand_back(
        &self,
        shared: &crate::sessions::SessionShared,
        mut unwritten: Vec<Element>,
        outbox: &mut crate::queue::Receiver<Outbound>,
        end: SessionEnd,
    ) {
        use crate::sessions::{GiveUp, Left};
        outbox.close();
        while let Ok(out) = outbox.try_recv() {
            if let Outbound::Stanza(stanza) = out {
                unwritten.push(*stanza);
            }
        }
        let left = Left {
            stanzas: unwritten,
            end,
        };
        let state = std::mem::replace(
            &mut *shared.give_up.lock().unwrap_or_else(|e| e.into_inner()),
            GiveUp::Over,
        );
        let left = match state {
            GiveUp::Awaited(place) => match place.send(left) {
                Ok(()) => return,
                Err(left) => left,
            },
            GiveUp::Live | GiveUp::Over => left,
        };
        self.redeliver(left.stanzas);
        self.session_ended(left.end);
    }

    /// What a session left behind goes on, in order, as if its resource
    /// were absent (see [`Router::undeliverable`]).
    pub fn redeliver(&self, stanzas: Vec<Element>) {
        for el in stanzas {
            self.undeliverable(el);
        }
    }

    /// Everything still queued for a session that ended (already out of
    /// the session table, with no place kept by [`Router::give_up`]) goes
    /// on as if its resource were absent.
    pub fn take_back(&self, outbox: &mut crate::queue::Receiver<Outbound>) {
        while let Ok(out) = outbox.try_recv() {
            if let Outbound::Stanza(stanza) = out {
                self.undeliverable(*stanza);
            }
        }
    }

    /// A stanza that reached a session which is gone or given up on:
    /// normal and chat messages go on as for an absent resource (another
    /// resource, or offline storage: RFC 6121 §8.5.3.2.1), an IQ request
    /// is answered with `service-unavailable` so its sender does not wait
    /// for ever, and the rest is dropped as it would be for an absent
    /// resource (headlines, presence, errors, results).
    pub fn undeliverable(&self, el: Element) {
        match StanzaType::of(&el) {
            Some(Ok(StanzaType::Message(MessageType::Normal | MessageType::Chat))) => {
                self.route_from(el, Origin::Redelivery, None)
            }
            Some(Ok(StanzaType::Iq(IqType::Get | IqType::Set))) => {
                self.bounce(&el, StanzaError::service_unavailable())
            }
            _ => {}
        }
    }

    /// Delivers a copy to every available resource of an account.
    pub fn deliver_to_available(&self, bare: &Jid, stanza: &Element) {
        for s in self.inner.sessions.of_account(bare) {
            if s.priority.is_some() {
                self.deliver(&s, stanza.clone());
            }
        }
    }

    /// Runs the table's session-start hooks for a session that just bound
    /// its resource, before it enters the session table.
    pub async fn session_started(&self, session: &table::SessionRef) {
        self.inner.table.session_started(self, session).await;
    }

    /// A client's nonza after binding, to the module that registered its
    /// namespace; `false` when none did.
    pub fn nonza(&self, session: &table::SessionRef, el: Element) -> bool {
        self.inner.table.nonza(self, session, el)
    }

    /// Runs the table's hibernation hooks for a session whose connection
    /// died and which now hibernates (XEP-0198), with what it had been
    /// sent and not acknowledged.
    pub fn session_hibernates(&self, session: &table::SessionRef, unacked: &[&Element]) {
        self.inner.table.session_hibernates(self, session, unacked);
    }

    /// Tells the table's session-end hooks that a session is gone.
    pub fn session_ended(&self, end: SessionEnd) {
        self.inner.table.session_ended(self, end);
    }

    /// Closes every session with a stream error (shutdown).
    pub fn close_all(&self, err: &StreamError) {
        for s in self.inner.sessions.all() {
            let _ = s.tx.try_send(Outbound::Close(Box::new(err.clone())));
        }
    }
}
