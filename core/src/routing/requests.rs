//! IQs the server itself sends to a service, and their answers: how the
//! admin socket reaches a service's XEP-0050 commands (`switchboard
//! rooms …` asks the group chat service what its admins would ask it).
//!
//! The request goes into the service's inbox like any stanza, from the
//! JID of one of the server's own domains, with an id no one can guess.
//! The service answers into its outbox like any answer; on the way
//! through `Router::route_from_service` an IQ result or error with a
//! waiting id is taken out of routing and handed to the waiter instead.
//! The waiter forgets its id when it gives up, so an answer that comes
//! too late is routed (to the domain, where it ends) like any other.

use std::time::Duration;

use dashmap::DashMap;
use switchboard_xml::Element;
use tokio::sync::oneshot;

/// The requests waiting for answers, by id.
#[derive(Default)]
pub struct Pending {
    waiting: DashMap<String, (String, oneshot::Sender<Element>)>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The service is not declared, down or too busy to take it.
    Refused(String),
    /// No answer in time.
    TimedOut,
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Refused(why) => f.write_str(why),
            AskError::TimedOut => f.write_str("the service did not answer in time"),
        }
    }
}

/// A fresh id: 128 bits from the OS, so no stanza a client or component
/// makes up can pass for an answer.
fn fresh_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("sb-admin-{hex}")
}

impl Pending {
    /// Registers a request from `from` (a local domain); returns its id
    /// and where the answer will arrive.
    pub fn register(&self, from: &str) -> (String, oneshot::Receiver<Element>) {
        let id = fresh_id();
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id.clone(), (from.to_string(), tx));
        (id, rx)
    }

    /// Forgets a request (answered, refused or given up).
    pub fn forget(&self, id: &str) {
        self.waiting.remove(id);
    }

    /// Takes an answer out of routing: `None` when it went to a waiter,
    /// the stanza back otherwise.
    pub fn take_answer(&self, el: Element) -> Option<Element> {
        if el.name != "iq" || !matches!(el.attr("type"), Some("result" | "error")) {
            return Some(el);
        }
        let Some(id) = el.attr("id") else {
            return Some(el);
        };
        let matches = self
            .waiting
            .get(id)
            .is_some_and(|w| el.attr("to") == Some(w.0.as_str()));
        if !matches {
            return Some(el);
        }
        let (_, (_, tx)) = self.waiting.remove(id)?;
        // A waiter that gave up a moment ago drops the answer; fine.
        let _ = tx.send(el);
        None
    }
}

/// Waits for an answer, forgetting the request when time runs out.
pub async fn wait(
    pending: &Pending,
    id: &str,
    rx: oneshot::Receiver<Element>,
    limit: Duration,
) -> Result<Element, AskError> {
    let r = tokio::time::timeout(limit, rx).await;
    pending.forget(id);
    match r {
        Ok(Ok(el)) => Ok(el),
        _ => Err(AskError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, to: &str, kind: &str) -> Element {
        Element::new("iq", "jabber:client")
            .with_attr("type", kind)
            .with_attr("id", id)
            .with_attr("to", to)
            .with_attr("from", "conference.example.org")
    }

    #[tokio::test]
    async fn only_the_awaited_answer_is_taken() {
        let p = Pending::default();
        let (id, rx) = p.register("example.org");
        // Same id to someone else, or a request with the id: routed on.
        assert!(p
            .take_answer(answer(&id, "alice@example.org/a", "result"))
            .is_some());
        assert!(p.take_answer(answer(&id, "example.org", "get")).is_some());
        assert!(p
            .take_answer(answer("other", "example.org", "result"))
            .is_some());
        assert!(p.take_answer(answer(&id, "example.org", "error")).is_none());
        let got = wait(&p, &id, rx, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.attr("type"), Some("error"));
        // Answered once: a second copy is routed like any stanza.
        assert!(p
            .take_answer(answer(&id, "example.org", "result"))
            .is_some());
    }

    #[tokio::test]
    async fn a_late_answer_is_not_taken() {
        let p = Pending::default();
        let (id, rx) = p.register("example.org");
        // No time at all: the waiter gives up at once, unanswered.
        assert_eq!(
            wait(&p, &id, rx, Duration::ZERO).await,
            Err(AskError::TimedOut)
        );
        assert!(p
            .take_answer(answer(&id, "example.org", "result"))
            .is_some());
    }
}
