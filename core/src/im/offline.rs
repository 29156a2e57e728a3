//! Offline messages (RFC 6121 §8.5.2.2): a `normal` or `chat` message for an
//! account with no available resource is stored in its spool file with a
//! XEP-0203 delay stamp — fsynced before the actor moves on — and handed
//! to the next resource that comes online with non-negative priority.
//! A per-account quota protects the disk; past it the sender is told.
//!
//! Spool form: `<offline xmlns='urn:switchboard:spool:1'>` holding the
//! messages in arrival order.

use switchboard_jid::Jid;
use switchboard_spool::SpoolError;
use switchboard_xml::{ns, Element};

use super::account::{Account, LoadError};
use crate::stanza::{stanza_type, ErrorType, StanzaError};

/// Most messages kept for one account.
pub const QUOTA_MESSAGES: usize = 1000;
/// Most bytes (serialized) kept for one account.
pub const QUOTA_BYTES: usize = 4 * 1024 * 1024;

/// The error for a message that would overflow the recipient's queue.
fn quota_full() -> StanzaError {
    StanzaError::new("resource-constraint", ErrorType::Wait)
        .with_text("the recipient's offline storage is full; try again when they are online")
}

fn offline_size(rec_extra: &[Element]) -> (usize, usize) {
    rec_extra
        .iter()
        .find(|e| e.is("offline", ns::SPOOL))
        .map(|o| (o.elements().count(), o.to_bytes(None).len()))
        .unwrap_or((0, 0))
}

impl Account {
    /// A message for this account that found no available resource.
    pub(super) async fn offline_message(&mut self, msg: Element) {
        // The user may have come online while this waited in the queue.
        let sessions = self.router.sessions().of_account(&self.bare);
        if sessions.iter().any(|s| s.priority.is_some_and(|p| p >= 0)) {
            self.router.route(msg);
            return;
        }
        match stanza_type(&msg) {
            "normal" | "chat" => {}
            // Headlines are not stored (§8.5.2.2.2); errors are dropped.
            _ => return,
        }
        if let Err(LoadError::NoAccount) = self.load().await {
            return self.bounce(&msg, StanzaError::service_unavailable());
        }
        let mut stored = msg.clone();
        stored.append_child(
            Element::new("delay", ns::DELAY)
                .with_attr("from", self.host().to_string())
                .with_attr("stamp", crate::time::stamp(crate::time::unix_now())),
        );
        let size = stored.to_bytes(None).len();
        let over_quota = move |(count, bytes): (usize, usize)| {
            count >= QUOTA_MESSAGES || bytes + size > QUOTA_BYTES
        };
        if self.offline_usage.is_some_and(over_quota) {
            return self.bounce(&msg, quota_full());
        }
        // What the closure saw and did: the usage afterwards, and whether
        // it refused the message.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let out = seen.clone();
        let r = self
            .update(move |rec| {
                let usage = offline_size(&rec.extra);
                if over_quota(usage) {
                    *out.lock().unwrap_or_else(|e| e.into_inner()) = Some((usage, true));
                    return;
                }
                match rec.extra.iter_mut().find(|e| e.is("offline", ns::SPOOL)) {
                    Some(o) => o.append_child(stored.clone()),
                    None => rec
                        .extra
                        .push(Element::new("offline", ns::SPOOL).with_child(stored.clone())),
                }
                *out.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(((usage.0 + 1, usage.1 + size), false));
            })
            .await;
        let seen = *seen.lock().unwrap_or_else(|e| e.into_inner());
        // Only a successful write makes the usage certain.
        self.offline_usage = match (&r, seen) {
            (Ok(()), Some((usage, _))) => Some(usage),
            _ => None,
        };
        let over_quota = seen.is_some_and(|(_, refused)| refused);
        match r {
            Ok(()) if over_quota => self.bounce(&msg, quota_full()),
            Ok(()) => {}
            Err(SpoolError::NotFound) => self.bounce(&msg, StanzaError::service_unavailable()),
            Err(e) => {
                tracing::error!(account = %self.bare, "cannot store an offline message: {e}");
                self.bounce(&msg, StanzaError::internal_server_error());
            }
        }
    }

    /// Hands stored messages to a session that just became available, then
    /// removes them from the spool. They are removed only after being
    /// queued for the session, so a failure loses nothing (at worst a
    /// message is delivered twice).
    pub(super) async fn deliver_offline(&mut self, to: &Jid) {
        let Ok(rec) = self.load().await else { return };
        let Some(offline) = rec.extra.iter().find(|e| e.is("offline", ns::SPOOL)) else {
            return;
        };
        let messages: Vec<Element> = offline.elements().cloned().collect();
        if messages.is_empty() {
            return;
        }
        let n = messages.len();
        // Recomputed from the spool at the next offline message.
        self.offline_usage = None;
        for mut m in messages {
            m.set_attr("to", to.to_string());
            self.send_to_session(to, m);
        }
        let r = self
            .update(move |rec| {
                if let Some(o) = rec.extra.iter_mut().find(|e| e.is("offline", ns::SPOOL)) {
                    // Only the delivered ones: anything stored meanwhile stays.
                    let keep: Vec<_> = o
                        .children
                        .drain(..)
                        .filter(|c| matches!(c, switchboard_xml::Node::Element(_)))
                        .skip(n)
                        .collect();
                    o.children = keep;
                }
                rec.extra
                    .retain(|e| !(e.is("offline", ns::SPOOL) && e.children.is_empty()));
            })
            .await;
        if let Err(e) = r {
            tracing::error!(account = %self.bare, "cannot clear delivered offline messages: {e}");
        }
    }
}
