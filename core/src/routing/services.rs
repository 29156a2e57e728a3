//! The service slots: one per configured service hostname, filled by a
//! running in-process service or a connected external component, empty
//! while it is down. The router hands a service its stanzas without
//! waiting: a service that is down or too far behind costs its senders an
//! error, never the router a stall.

use dashmap::DashMap;
use switchboard_service::metrics::ServiceMetrics;
use switchboard_xml::Element;
use tokio::sync::mpsc;

use super::iq::ServiceInfo;
use super::requests::{self, AskError, Pending};
use crate::metrics::ServiceGauge;
use crate::stanza::{ErrorType, StanzaError};

/// What the router knows about a hostname-addressed service.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    pub info: ServiceInfo,
    /// The running service's inbox; `None` while it is down (restarting
    /// after a crash, or an external component that is not connected).
    pub inbox: Option<mpsc::Sender<Element>>,
    /// The numbers the service reports about itself (an in-process
    /// service's; an external component's stays empty), read at scrape
    /// time.
    pub metrics: ServiceMetrics,
}

/// The error for a stanza to a declared service that is not running.
pub fn service_down(host: &str) -> StanzaError {
    StanzaError::new("remote-server-timeout", ErrorType::Wait).with_text(format!(
        "{host} is not available right now; try again later"
    ))
}

/// Why a stanza did not get into a service's inbox.
pub enum Refused {
    /// No such service hostname.
    Unknown(Element),
    /// Declared but not running.
    Down(Element),
    /// Running, but its inbox is full.
    Busy(Element),
}

impl Refused {
    /// The stanza and the error its sender gets.
    pub fn into_bounce(self, host: &str) -> (Element, StanzaError) {
        match self {
            Refused::Unknown(el) => (el, StanzaError::remote_server_not_found()),
            Refused::Down(el) => (el, service_down(host)),
            Refused::Busy(el) => (
                el,
                StanzaError::new("resource-constraint", ErrorType::Wait)
                    .with_text(format!("{host} is busy; try again later")),
            ),
        }
    }
}

/// Every declared service hostname and its slot.
#[derive(Default)]
pub struct ServiceSlots {
    slots: DashMap<String, ServiceHandle>,
    /// The server's own requests to services (`requests.rs`).
    pending: Pending,
}

impl ServiceSlots {
    /// Declares a service (its slot starts empty unless `handle` has an
    /// inbox).
    pub fn add(&self, host: String, handle: ServiceHandle) {
        self.slots.insert(host, handle);
    }

    pub fn contains(&self, host: &str) -> bool {
        self.slots.contains_key(host)
    }

    /// Marks a declared service up (with its new inbox) or down.
    pub fn set_inbox(&self, host: &str, inbox: Option<mpsc::Sender<Element>>) {
        if let Some(mut h) = self.slots.get_mut(host) {
            h.inbox = inbox;
        }
    }

    /// Claims a declared service's slot for a new instance: `false` when a
    /// live instance holds it (a second external component for the same
    /// hostname) or the hostname is not declared.
    pub fn claim(&self, host: &str, inbox: mpsc::Sender<Element>) -> bool {
        match self.slots.get_mut(host) {
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

    /// Releases a slot claimed with [`ServiceSlots::claim`], unless a
    /// newer instance holds it already.
    pub fn release(&self, host: &str, inbox: &mpsc::Sender<Element>) {
        if let Some(mut h) = self.slots.get_mut(host) {
            if h.inbox.as_ref().is_some_and(|i| i.same_channel(inbox)) {
                h.inbox = None;
            }
        }
    }

    /// Puts a stanza into a service's inbox without waiting.
    pub fn send(&self, host: &str, stanza: Element) -> Result<(), Refused> {
        let Some(inbox) = self.slots.get(host).map(|s| s.inbox.clone()) else {
            return Err(Refused::Unknown(stanza));
        };
        let Some(inbox) = inbox else {
            return Err(Refused::Down(stanza));
        };
        inbox.try_send(stanza).map_err(|e| match e {
            mpsc::error::TrySendError::Closed(el) => Refused::Down(el),
            mpsc::error::TrySendError::Full(el) => Refused::Busy(el),
        })
    }

    /// Sends `iq` (a get or set without `id`, `from` or `to`) to the
    /// service at `host` from the local domain `from`, and waits up to
    /// `limit` for the service's answer.
    pub async fn ask(
        &self,
        host: &str,
        from: &str,
        mut iq: Element,
        limit: std::time::Duration,
    ) -> Result<Element, AskError> {
        let (id, rx) = self.pending.register(from);
        iq.set_attr("id", id.clone());
        iq.set_attr("from", from);
        iq.set_attr("to", host);
        if let Err(refused) = self.send(host, iq) {
            self.pending.forget(&id);
            let (_, err) = refused.into_bounce(host);
            return Err(AskError::Refused(
                err.text
                    .unwrap_or_else(|| format!("{host} is not a service here")),
            ));
        }
        requests::wait(&self.pending, &id, rx, limit).await
    }

    /// An answer to one of the server's own requests goes to its waiter
    /// (`None`); anything else comes back to be routed.
    pub fn take_answer(&self, el: Element) -> Option<Element> {
        self.pending.take_answer(el)
    }

    /// Each slot's state and queue, read now for a scrape. The depth is
    /// what the inbox holds: its bound minus its free room.
    pub fn gauges(&self) -> Vec<ServiceGauge> {
        let mut v: Vec<ServiceGauge> = self
            .slots
            .iter()
            .map(|s| {
                let live = s.inbox.as_ref().filter(|i| !i.is_closed());
                ServiceGauge {
                    host: s.key().clone(),
                    up: live.is_some(),
                    queue_depth: live.map_or(0, |i| (i.max_capacity() - i.capacity()) as u64),
                    own: s.metrics.samples(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    /// The declared services, sorted by hostname, for disco#items.
    pub fn infos(&self) -> Vec<ServiceInfo> {
        let mut v: Vec<ServiceInfo> = self.slots.iter().map(|s| s.info.clone()).collect();
        v.sort_by(|a, b| a.jid.cmp(&b.jid));
        v
    }
}
