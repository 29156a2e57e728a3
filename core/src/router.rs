//! The router: classifies a stanza's `to` once and hands it to a session, a
//! built-in module, a service's inbox, or back to the sender as an error.
//!
//! ```text
//! to = local domain        → the server itself (built-in modules)
//! to = user@local domain   → bare: server on the account's behalf / best resource
//! to = user@local/resource → that session, or the bare rules (RFC 6121 §8.5.3.2)
//! to = service hostname    → that service's inbox
//! anything else            → remote-server-not-found (until federation)
//! ```
//!
//! Routing never blocks: delivery to a session is a `try_send` into its
//! bounded outbox, and a session whose outbox is full is disconnected.

use std::sync::{Arc, OnceLock, RwLock, Weak};

use dashmap::DashMap;
use switchboard_jid::Jid;
use switchboard_xml::Element;
use tokio::sync::mpsc;

use crate::im::{Accounts, Work};
use crate::modules::{IqRequest, IqType, Registry, Scope, ServiceInfo};
use crate::server::Shared;
use crate::sessions::{Outbound, SessionEntry, Sessions};
use crate::stanza::{error_reply, iq_result, stanza_type, Kind, StanzaError};
use crate::stream::StreamError;

/// What the router knows about a hostname-addressed service.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    pub info: ServiceInfo,
    /// The running service's inbox; `None` while it is down (restarting
    /// after a crash, or an external component that is not connected).
    pub inbox: Option<mpsc::Sender<Element>>,
}

/// The error for a stanza to a declared service that is not running.
fn service_down(host: &str) -> StanzaError {
    StanzaError::new("remote-server-timeout", crate::stanza::ErrorType::Wait).with_text(format!(
        "{host} is not available right now; try again later"
    ))
}

/// Where a `to` address points, decided once per stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local domain itself.
    Server(Jid),
    /// An account's bare JID on a local domain.
    Bare(Jid),
    /// A full JID on a local domain.
    Full(Jid),
    /// A service hostname (or any JID at it).
    Service(String),
    /// Anything else.
    Remote(String),
}

pub struct Router {
    hosts: RwLock<Vec<String>>,
    pub sessions: Sessions,
    services: DashMap<String, ServiceHandle>,
    registry: Registry,
    /// Account actors (rosters, subscriptions, offline storage).
    pub accounts: Accounts,
    /// Unregistrations (`jabber:iq:register` `<remove/>`) sent to services
    /// and not answered yet: (user's full JID, IQ id) → service host. When
    /// the service confirms, the user's roster items at it are dropped.
    unregistering: DashMap<(String, String), String>,
    /// The server state the actors run against, set once at start-up. A
    /// router without it (unit tests) handles only what needs no account
    /// state and refuses the rest with `service-unavailable`.
    shared: OnceLock<Weak<Shared>>,
    /// The server's counters, bumped as stanzas pass.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Router {
    pub fn new(hosts: Vec<String>, registry: Registry) -> Router {
        Router {
            hosts: RwLock::new(hosts),
            sessions: Sessions::default(),
            services: DashMap::new(),
            registry,
            accounts: Accounts::default(),
            unregistering: DashMap::new(),
            shared: OnceLock::new(),
            metrics: Arc::default(),
        }
    }

    /// Connects the router to the server state, so account work can run.
    pub fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Queues work for an account's actor; `false` when there are no
    /// actors (a router used alone in tests).
    fn to_account(&self, bare: &Jid, work: Work) -> bool {
        match self.shared.get().and_then(Weak::upgrade) {
            Some(shared) => {
                self.accounts.send(&shared, bare, work);
                true
            }
            None => false,
        }
    }

    pub fn is_local(&self, domain: &str) -> bool {
        self.hosts
            .read()
            .expect("hosts lock")
            .iter()
            .any(|h| h == domain)
    }

    /// Adds a service to the hostname registry.
    pub fn add_service(&self, host: String, handle: ServiceHandle) {
        self.services.insert(host, handle);
    }

    pub fn remove_service(&self, host: &str) {
        self.services.remove(host);
    }

    /// Marks a declared service up (with its new inbox) or down.
    pub fn set_service_inbox(&self, host: &str, inbox: Option<mpsc::Sender<Element>>) {
        if let Some(mut h) = self.services.get_mut(host) {
            h.inbox = inbox;
        }
    }

    /// Claims a declared service's slot for a new instance: `false` when a
    /// live instance holds it (a second external component for the same
    /// hostname).
    pub fn claim_service(&self, host: &str, inbox: mpsc::Sender<Element>) -> bool {
        match self.services.get_mut(host) {
            Some(mut h) => {
                if h.inbox.as_ref().is_some_and(|i| !i.is_closed()) {
                    return false;
                }
                h.inbox = Some(inbox);
                true
            }
            None => false,
        }
    }

    /// Releases a slot claimed with [`Router::claim_service`], unless a
    /// newer instance holds it already.
    pub fn release_service(&self, host: &str, inbox: &mpsc::Sender<Element>) {
        if let Some(mut h) = self.services.get_mut(host) {
            if h.inbox.as_ref().is_some_and(|i| i.same_channel(inbox)) {
                h.inbox = None;
            }
        }
    }

    /// Routes a stanza a service sent. Its `from` must be the service's
    /// hostname or a JID at it: a service cannot speak for anyone else.
    /// Returns the problem for the caller to report (an external component
    /// gets a stream error; an in-process service a log line).
    pub fn route_from_service(&self, host: &str, stanza: Element) -> Result<(), &'static str> {
        self.metrics.stanza_in(&stanza);
        let from_ok = stanza
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .is_some_and(|f| f.domain() == host);
        if !from_ok {
            return Err("invalid-from");
        }
        if stanza.attr("to").is_none() {
            return Err("improper-addressing");
        }
        let confirmed = self.unregistration_confirmed(host, &stanza);
        self.route_inbound(stanza);
        if let Some(user) = confirmed {
            self.to_account(&user, Work::DropServiceItems(host.to_string()));
        }
        Ok(())
    }

    /// Remembers an unregistration on its way to a service.
    fn note_unregistration(&self, from: &Jid, to: &Jid, iq: &Element) {
        let is_remove = iq.attr("type") == Some("set")
            && iq
                .first_element()
                .is_some_and(|q| q.is("query", switchboard_xml::ns::REGISTER))
            && iq
                .first_element()
                .and_then(|q| q.get_child("remove", switchboard_xml::ns::REGISTER))
                .is_some();
        if !is_remove || to.node().is_some() || !self.services.contains_key(to.domain()) {
            return;
        }
        // Bounded: a service that never answers must not grow this forever.
        if self.unregistering.len() >= 10_000 {
            self.unregistering.clear();
        }
        let id = iq.attr("id").unwrap_or_default().to_string();
        self.unregistering
            .insert((from.to_string(), id), to.domain().to_string());
    }

    /// The user whose unregistration this service's reply confirms.
    fn unregistration_confirmed(&self, host: &str, reply: &Element) -> Option<Jid> {
        if reply.name != "iq" || !matches!(reply.attr("type"), Some("result") | Some("error")) {
            return None;
        }
        let key = (
            reply.attr("to")?.to_string(),
            reply.attr("id").unwrap_or_default().to_string(),
        );
        let (_, service) = self.unregistering.remove(&key)?;
        (service == host && reply.attr("type") == Some("result"))
            .then(|| Jid::parse(&key.0).ok().map(|j| j.to_bare()))
            .flatten()
    }

    /// Each service slot's state and queue, read now for a scrape. The
    /// depth is what the inbox holds: its bound minus its free room.
    pub fn service_gauges(&self) -> Vec<crate::metrics::ServiceGauge> {
        let mut v: Vec<crate::metrics::ServiceGauge> = self
            .services
            .iter()
            .map(|s| {
                let live = s.inbox.as_ref().filter(|i| !i.is_closed());
                crate::metrics::ServiceGauge {
                    host: s.key().clone(),
                    up: live.is_some(),
                    queue_depth: live.map_or(0, |i| (i.max_capacity() - i.capacity()) as u64),
                }
            })
            .collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    pub fn services(&self) -> Vec<ServiceInfo> {
        let mut v: Vec<ServiceInfo> = self.services.iter().map(|s| s.info.clone()).collect();
        v.sort_by(|a, b| a.jid.cmp(&b.jid));
        v
    }

    /// Classifies a (normalized) destination address.
    pub fn classify(&self, to: Jid) -> Destination {
        let domain = to.domain();
        if self.is_local(domain) {
            return match (to.node(), to.resource()) {
                (None, _) => Destination::Server(
                    Jid::from_parts(None, domain, None).expect("a local domain is valid"),
                ),
                (Some(_), None) => Destination::Bare(to),
                (Some(_), Some(_)) => Destination::Full(to),
            };
        }
        if self.services.contains_key(domain) {
            return Destination::Service(domain.to_string());
        }
        Destination::Remote(domain.to_string())
    }

    /// Routes a stanza from a local client (`from` already stamped and
    /// checked by the stream machine, `to` normalized if present). What
    /// needs the sender's own account state goes to its actor first.
    pub fn route(&self, stanza: Element) {
        let Some(from) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            self.metrics.stanza_in(&stanza);
            tracing::warn!("dropping a stanza without a valid 'from'");
            return;
        };
        let to = match stanza.attr("to") {
            Some(t) => match Jid::parse(t) {
                Ok(t) => Some(t),
                Err(_) => {
                    self.metrics.stanza_in(&stanza);
                    return self.bounce(&stanza, StanzaError::jid_malformed());
                }
            },
            None => None,
        };
        self.route_client(&from, to, stanza)
    }

    /// [`Router::route`] for the connection driver, which knows the
    /// session's JID (`from`, already stamped on the stanza) and gets `to`
    /// parsed and normalized from the stream machine: the addresses are
    /// parsed once per stanza.
    pub fn route_client(&self, from: &Jid, to: Option<Jid>, stanza: Element) {
        self.metrics.stanza_in(&stanza);
        match stanza.name.as_str() {
            "presence" => match (stanza_type(&stanza), &to) {
                // Broadcast presence: the roster decides who sees it.
                (_, None) => {
                    if !self.to_account(&from.to_bare(), Work::Own(stanza.clone())) {
                        self.own_presence_without_roster(from, &stanza);
                    }
                }
                ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed", Some(_)) => {
                    if !self.to_account(&from.to_bare(), Work::Own(stanza.clone())) {
                        self.route_inbound(stanza);
                    }
                }
                // Clients do not probe (RFC 6121 §4.3); the server does.
                ("probe", Some(_)) => {}
                _ => self.route_inbound_parsed(from, to, stanza),
            },
            "iq" => {
                let own = from.to_bare();
                let to_own_account = to.as_ref().is_none_or(|t| *t == own);
                let to_server_register = to
                    .as_ref()
                    .is_some_and(|t| t.node().is_none() && self.is_local(t.domain()))
                    && stanza
                        .first_element()
                        .is_some_and(|p| p.ns == switchboard_xml::ns::REGISTER);
                let needs_account = stanza.first_element().is_some_and(|p| {
                    p.is("query", crate::im::roster::NS)
                        || matches!(stanza.attr("type"), Some("get") | Some("set"))
                            && self
                                .registry
                                .lookup_data(
                                    p,
                                    if stanza.attr("type") == Some("get") {
                                        IqType::Get
                                    } else {
                                        IqType::Set
                                    },
                                )
                                .is_some()
                });
                if (to_own_account || to_server_register)
                    && needs_account
                    && self.to_account(&own, Work::Own(stanza.clone()))
                {
                    return;
                }
                let mut stanza = stanza;
                if to.is_none() {
                    stanza.set_attr("to", own.to_string());
                    // Answers to an IQ without `to` come from the account.
                    return self.route_inbound_iq_to_own(from, stanza);
                }
                if let Some(to) = &to {
                    self.note_unregistration(from, to, &stanza);
                }
                self.route_inbound_parsed(from, to, stanza)
            }
            _ => {
                let mut stanza = stanza;
                let to = match to {
                    Some(to) => to,
                    None => {
                        let own = from.to_bare();
                        stanza.set_attr("to", own.to_string());
                        own
                    }
                };
                self.route_inbound_parsed(from, Some(to), stanza)
            }
        }
    }

    /// An IQ without `to` handled by the sync modules (ping, disco) on the
    /// account's behalf; the reply carries no `from` (RFC 6120 §10.3.3).
    fn route_inbound_iq_to_own(&self, from: &Jid, stanza: Element) {
        self.handle_iq(from, &from.to_bare(), Scope::Account, stanza);
    }

    /// Delivers a stanza toward its `to`: used for everything after the
    /// sender's side is done (and by the actors themselves).
    pub fn route_inbound(&self, stanza: Element) {
        let Some(from) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            tracing::warn!("dropping a stanza without a valid 'from'");
            return;
        };
        let to = stanza.attr("to").and_then(|t| Jid::parse(t).ok());
        self.route_inbound_parsed(&from, to, stanza)
    }

    /// [`Router::route_inbound`] for a caller that has already parsed the
    /// stanza's `from` and `to` (`None`: missing or malformed): parsing an
    /// address costs more than the rest of routing a message.
    fn route_inbound_parsed(&self, from: &Jid, to: Option<Jid>, stanza: Element) {
        let Some(to) = to else {
            return self.bounce(&stanza, StanzaError::jid_malformed());
        };
        match self.classify(to) {
            Destination::Server(host) => self.to_server(from, &host, stanza),
            Destination::Bare(bare) => self.to_bare(from, &bare, stanza),
            Destination::Full(full) => self.to_full(&full, stanza),
            Destination::Service(host) => self.to_service(&host, stanza),
            Destination::Remote(_) => self.bounce(&stanza, StanzaError::remote_server_not_found()),
        }
    }

    /// Without account actors (unit tests), presence without `to` only
    /// decides which resources get bare-JID messages.
    fn own_presence_without_roster(&self, from: &Jid, stanza: &Element) {
        match stanza_type(stanza) {
            "available" => self.sessions.set_presence(from, Some(stanza.clone())),
            "unavailable" => self.sessions.set_presence(from, None),
            _ => {}
        }
    }

    fn to_server(&self, from: &Jid, host: &Jid, stanza: Element) {
        match Kind::of(&stanza) {
            // XEP-0133 commands wait for the spool or for account actors:
            // they go to their own task, which replies when done.
            Some(Kind::Iq)
                if matches!(stanza.attr("type"), Some("get") | Some("set"))
                    && crate::admin::commands::is_command_iq(&stanza) =>
            {
                match self.shared.get().and_then(Weak::upgrade) {
                    Some(shared) => {
                        if let Err(refused) = shared.admin.queue_command(stanza) {
                            let (iq, err) = *refused;
                            self.bounce(&iq, err);
                        }
                    }
                    None => self.bounce(&stanza, StanzaError::service_unavailable()),
                }
            }
            Some(Kind::Iq) => self.handle_iq(from, host, Scope::Server, stanza),
            // Presence to the server has no meaning yet; it is dropped as
            // RFC 6121 §4.3 allows for presence the server cannot handle.
            Some(Kind::Presence) => {}
            // Announcements (HOST/announce/…) and messages for the admins.
            Some(Kind::Message) => match self.shared.get().and_then(Weak::upgrade) {
                Some(shared) => {
                    crate::admin::server_jid::message_to_server(&shared, from, host, stanza)
                }
                None => self.bounce(&stanza, StanzaError::service_unavailable()),
            },
            None => self.bounce(&stanza, StanzaError::service_unavailable()),
        }
    }

    fn to_bare(&self, from: &Jid, bare: &Jid, stanza: Element) {
        match Kind::of(&stanza) {
            Some(Kind::Iq) => {
                let sync = stanza.first_element().is_some_and(|p| {
                    let kind = if stanza.attr("type") == Some("set") {
                        IqType::Set
                    } else {
                        IqType::Get
                    };
                    self.registry.lookup(p, kind, Scope::Account).is_some()
                });
                if sync || !matches!(stanza.attr("type"), Some("get") | Some("set")) {
                    return self.handle_iq(from, bare, Scope::Account, stanza);
                }
                if !self.to_account(bare, Work::Inbound(stanza.clone())) {
                    self.bounce(&stanza, StanzaError::service_unavailable());
                }
            }
            Some(Kind::Message) => self.message_to_bare(bare, stanza),
            Some(Kind::Presence) => match stanza_type(&stanza) {
                "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed" | "probe" => {
                    if !self.to_account(bare, Work::Inbound(stanza.clone()))
                        && stanza_type(&stanza) != "probe"
                    {
                        self.deliver_to_available(bare, &stanza);
                    }
                }
                // Presence from a service or component queues behind the
                // subscription stanzas it sent before, which the account's
                // actor handles (RFC 6120 §10.1: in order between two
                // entities): a component's `subscribed` and then its
                // available presence must arrive in that order. Local
                // users' presence takes the direct path below; their own
                // actor already orders what they send.
                _ if !self.is_local(from.domain()) => {
                    if !self.to_account(bare, Work::Inbound(stanza.clone())) {
                        self.deliver_to_available(bare, &stanza);
                    }
                }
                // Available, unavailable and error presence go to every
                // available resource (RFC 6121 §4.2.3, §4.5.3).
                _ => self.deliver_to_available(bare, &stanza),
            },
            None => {}
        }
    }

    pub(crate) fn deliver_to_available(&self, bare: &Jid, stanza: &Element) {
        for s in self.sessions.of_account(bare) {
            if s.priority.is_some() {
                self.deliver(&s, stanza.clone());
            }
        }
    }

    fn to_full(&self, full: &Jid, stanza: Element) {
        if let Some(s) = self.sessions.get(full) {
            return self.deliver(&s, stanza);
        }
        match Kind::of(&stanza) {
            // RFC 6121 §8.5.3.2.1: normal and chat messages to an absent
            // resource are treated as sent to the bare JID.
            Some(Kind::Message) if matches!(stanza_type(&stanza), "normal" | "chat") => {
                self.message_to_bare(&full.to_bare(), stanza)
            }
            // Subscription stanzas and probes to a full JID are handled as
            // if sent to the bare JID (RFC 6121 §3.1.3, §4.3); other
            // presence to an absent resource, and headlines (§8.5.3.2.1),
            // are dropped without an error.
            Some(Kind::Presence) => {
                if matches!(
                    stanza_type(&stanza),
                    "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed" | "probe"
                ) {
                    let mut s = stanza;
                    s.set_attr("to", full.to_bare().to_string());
                    self.to_bare(&full.to_bare(), &full.to_bare(), s);
                }
            }
            Some(Kind::Message) if stanza_type(&stanza) == "headline" => {}
            _ => self.bounce(&stanza, StanzaError::service_unavailable()),
        }
    }

    /// Hands a stanza to a service's inbox without waiting: a service that
    /// is down or too far behind costs its senders an error, never the
    /// router a stall.
    fn to_service(&self, host: &str, stanza: Element) {
        let Some(inbox) = self.services.get(host).map(|s| s.inbox.clone()) else {
            return self.bounce(&stanza, StanzaError::remote_server_not_found());
        };
        let Some(inbox) = inbox else {
            return self.bounce(&stanza, service_down(host));
        };
        // The kind is noted before the stanza moves into the inbox; it is
        // counted only once the inbox has taken it.
        let kind = crate::metrics::kind_index(&stanza.name);
        match inbox.try_send(stanza) {
            Ok(()) => self.metrics.stanza_out_kind(kind),
            Err(mpsc::error::TrySendError::Closed(stanza)) => {
                self.bounce(&stanza, service_down(host))
            }
            Err(mpsc::error::TrySendError::Full(stanza)) => self.bounce(
                &stanza,
                StanzaError::new("resource-constraint", crate::stanza::ErrorType::Wait)
                    .with_text(format!("{host} is busy; try again later")),
            ),
        }
    }

    /// RFC 6121 §8.5.2: a message to a bare JID goes to the available
    /// resources with the highest non-negative priority; with none, it is
    /// stored offline by the account's actor.
    fn message_to_bare(&self, bare: &Jid, stanza: Element) {
        let headline = match stanza_type(&stanza) {
            "headline" => true,
            "error" => return,
            "groupchat" => return self.bounce(&stanza, StanzaError::service_unavailable()),
            _ => false,
        };
        let sessions = self.sessions.of_account(bare);
        let best = sessions
            .iter()
            .filter_map(|s| s.priority)
            .filter(|p| *p >= 0)
            .max();
        let Some(best) = best else {
            // No available resource: the account's actor stores it offline
            // (or refuses it if there is no such account).
            if !self.to_account(bare, Work::Inbound(stanza.clone())) {
                self.bounce(&stanza, StanzaError::service_unavailable());
            }
            return;
        };
        let mut targets = sessions.iter().filter(|s| match s.priority {
            Some(p) if headline => p >= 0,
            Some(p) => p == best,
            None => false,
        });
        // Every target but the last gets a copy; the last gets the stanza.
        let mut next = targets.next();
        while let Some(s) = next {
            next = targets.next();
            match next {
                Some(_) => self.deliver(s, stanza.clone()),
                None => return self.deliver(s, stanza),
            }
        }
    }

    fn handle_iq(&self, from: &Jid, to: &Jid, scope: Scope, iq: Element) {
        let kind = match iq.attr("type") {
            Some("get") => IqType::Get,
            Some("set") => IqType::Set,
            // Results and errors addressed to the server are consumed.
            _ => return,
        };
        let Some(payload) = iq.first_element() else {
            return self.bounce(&iq, StanzaError::bad_request());
        };
        let Some(handler) = self.registry.lookup(payload, kind, scope) else {
            return self.bounce(&iq, StanzaError::service_unavailable());
        };
        let services = self.services();
        let req = IqRequest {
            iq: &iq,
            payload,
            from,
            to,
            registry: &self.registry,
            services: &services,
        };
        match handler(&req) {
            Ok(result) => {
                let mut reply = iq_result(&iq, result);
                reply.set_attr("from", to.to_string());
                self.route_reply(reply);
            }
            Err(err) => self.bounce(&iq, err),
        }
    }

    /// Sends an error reply back to the sender of `stanza` (never in reply
    /// to an error or a result).
    pub fn bounce(&self, stanza: &Element, err: StanzaError) {
        if let Some(reply) = error_reply(stanza, &err) {
            self.metrics.stanza_error();
            self.route_reply(reply);
        }
    }

    /// Delivers a server-generated reply to a local full JID, or to the
    /// service that sent the original.
    pub(crate) fn route_reply(&self, reply: Element) {
        let Some(to) = reply.attr("to").and_then(|t| Jid::parse(t).ok()) else {
            return;
        };
        if let Some(s) = self.sessions.get(&to) {
            return self.deliver(&s, reply);
        }
        if self.services.contains_key(to.domain()) {
            self.to_service(to.domain(), reply);
        }
    }

    /// Hands a stanza to a session without waiting. A session that cannot
    /// keep up is told to close, so one slow reader never stalls the router.
    pub(crate) fn deliver(&self, s: &SessionEntry, stanza: Element) {
        match s.tx.try_send(Outbound::Stanza(Box::new(stanza))) {
            Ok(()) => {}
            Err(crate::queue::TrySendError::Full(out)) => {
                if !s
                    .overflowed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(resource = %s.resource, "outbox full: disconnecting a session that does not read");
                    s.kill.notify_one();
                }
                // The sender learns its stanza was not delivered.
                if let Outbound::Stanza(stanza) = out {
                    self.bounce(
                        &stanza,
                        StanzaError::new("resource-constraint", crate::stanza::ErrorType::Wait)
                            .with_text("the recipient is not reading; try again later"),
                    );
                }
            }
            Err(crate::queue::TrySendError::Closed(_)) => {}
        }
    }

    /// Closes every session with a stream error (shutdown).
    pub fn close_all(&self, err: &StreamError) {
        for s in self.sessions.all() {
            let _ = s.tx.try_send(Outbound::Close(Box::new(err.clone())));
        }
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
