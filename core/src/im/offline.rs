//! Offline messages (RFC 6121 §8.5.2.2): a `normal` or `chat` message for
//! an account with no available resource is appended to its offline log
//! with a XEP-0203 delay stamp — durably, before the actor moves on — and
//! handed to the next resource that comes online with non-negative
//! priority. A per-account quota protects the disk; past it the sender is
//! told.
//!
//! **Group commit.** The actor hands over every message that waited in its
//! queue together ([`Account::inbound_messages`]), and the store appends
//! them with one flush to disk: a burst of a thousand messages for an
//! absent user costs a few fsyncs, not a thousand. Each sender's session
//! waits (its next IQ is answered) only until its messages are durable.

use switchboard_jid::Jid;
use switchboard_spool::store::StoreError;
use switchboard_xml::{ns, Element};

use super::account::Account;
use crate::lifecycle::Guard;
use crate::stanza::{stanza_type, ErrorType, StanzaError};

/// Most messages kept for one account.
pub const QUOTA_MESSAGES: usize = 1000;
/// Most bytes (serialized) kept for one account.
pub const QUOTA_BYTES: usize = 4 * 1024 * 1024;

/// The error for a message that would overflow the recipient's log.
fn quota_full() -> StanzaError {
    StanzaError::new("resource-constraint", ErrorType::Wait)
        .with_text("the recipient's offline storage is full; try again when they are online")
}

impl Account {
    /// Messages for this account that found no available resource, in the
    /// order they came, each with the guard of the session that waits for
    /// it. Every one ends delivered, stored or bounced before its guard is
    /// dropped.
    pub(super) async fn inbound_messages(&mut self, batch: Vec<(Element, Option<Guard>)>) {
        // The user may have come online while these waited in the queue.
        let online = self
            .router
            .sessions()
            .of_account(&self.bare)
            .iter()
            .any(|s| s.priority.is_some_and(|p| p >= 0));
        if online {
            // Their hooks ran when they first arrived (an archive, say, has
            // them already): they go on as redeliveries.
            for (msg, ticket) in batch {
                self.router.route_again(msg, ticket.as_ref());
            }
            return;
        }
        // Headlines are not stored (§8.5.2.2.2); errors are dropped.
        let mut batch: Vec<_> = batch
            .into_iter()
            .filter(|(m, _)| matches!(stanza_type(m), "normal" | "chat"))
            .collect();
        // What other modules refuse is not stored (a blocked sender's).
        if !self.stores().gates.is_empty() {
            let mut passed = Vec::with_capacity(batch.len());
            for (msg, ticket) in batch {
                match self.stores().gates.check(&self.account, &msg).await {
                    super::Gate::Pass => passed.push((msg, ticket)),
                    super::Gate::Drop => {}
                    super::Gate::Refuse(err) => self.bounce(&msg, err),
                }
            }
            batch = passed;
        }
        if batch.is_empty() {
            return;
        }
        if self.offline_usage.is_none() {
            match self.exists().await {
                Ok(true) => {}
                Ok(false) => return self.refuse_all(batch, StanzaError::service_unavailable()),
                Err(e) => {
                    let err = crate::accounts::store_error(&e, "checking an offline recipient");
                    return self.refuse_all(batch, err);
                }
            }
            match self.stores().offline.usage(&self.account).await {
                Ok(u) => self.offline_usage = Some(u),
                Err(e) => {
                    let err = crate::accounts::store_error(&e, "measuring an offline log");
                    return self.refuse_all(batch, err);
                }
            }
        }
        let mut usage = self.offline_usage.unwrap_or_default();
        let stamp = crate::time::stamp(crate::time::unix_now());
        let delay = Element::new("delay", ns::DELAY)
            .with_attr("from", self.host().to_string())
            .with_attr("stamp", stamp);
        let mut accepted = Vec::new();
        for (msg, ticket) in batch {
            // Measured as it will be stored, with its delay stamp.
            let size = msg.to_bytes(None).len() + delay.to_bytes(None).len();
            if usage.messages >= QUOTA_MESSAGES || usage.bytes + size > QUOTA_BYTES {
                self.bounce(&msg, quota_full());
                continue;
            }
            usage.messages += 1;
            usage.bytes += size;
            accepted.push((msg, ticket));
        }
        if accepted.is_empty() {
            return;
        }
        // Other modules see (and may amend) what is about to be stored:
        // the archive stamps the id it keeps each message under.
        if !self.stores().observers.is_empty() {
            let _ = self.roster().await;
            let observers = self.stores().observers.clone();
            observers
                .before_offline(&self.bare, self.roster.as_ref(), &mut accepted)
                .await;
        }
        let stored: Vec<Element> = accepted
            .iter()
            .map(|(msg, _)| {
                let mut s = msg.clone();
                s.append_child(delay.clone());
                s
            })
            .collect();
        match self
            .stores()
            .offline
            .append_batch(&self.account, &stored)
            .await
        {
            Ok(u) => self.offline_usage = Some(u),
            Err(e) => {
                // Only a successful write makes the usage certain.
                self.offline_usage = None;
                let err = match e {
                    StoreError::NotFound => StanzaError::service_unavailable(),
                    e => crate::accounts::store_error(&e, "storing offline messages"),
                };
                self.refuse_all(accepted, err);
            }
        }
    }

    /// Bounces every message of a batch with `err`, then lets their
    /// senders' sessions go on.
    fn refuse_all(&self, batch: Vec<(Element, Option<Guard>)>, err: StanzaError) {
        for (msg, _ticket) in batch {
            self.bounce(&msg, err.clone());
        }
    }

    /// Hands stored messages to a session that just became available, then
    /// removes them from the log. They are removed only after being queued
    /// for the session, so a failure loses nothing (at worst a message is
    /// delivered twice).
    pub(super) async fn deliver_offline(&mut self, to: &Jid) {
        let messages = match self.stores().offline.list(&self.account).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(account = %self.bare, "cannot read offline messages: {e}");
                return;
            }
        };
        let Some(last) = messages.last().map(|m| m.id) else {
            return;
        };
        // Recomputed from the store at the next offline message.
        self.offline_usage = None;
        for m in messages {
            let mut stanza = m.stanza;
            stanza.set_attr("to", to.to_string());
            self.send_to_session(to, stanza);
        }
        // Only the delivered ones: anything stored meanwhile stays.
        if let Err(e) = self
            .stores()
            .offline
            .remove_through(&self.account, last)
            .await
        {
            tracing::error!(account = %self.bare, "cannot clear delivered offline messages: {e}");
        }
    }
}
