//! Account removal by the user (XEP-0077 §3.2): contacts are told the
//! subscriptions are over and see the user go, the spool file is deleted,
//! and every session of the account is closed.

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::account::Account;
use super::subscription::Kind;
use crate::sessions::Outbound;
use crate::stanza::{iq_result, StanzaError};
use crate::stream::StreamError;

impl Account {
    pub(super) async fn remove_account(&mut self, iq: &Element) {
        let Some(from) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        if from.to_bare() != self.bare {
            return self.bounce(iq, StanzaError::forbidden());
        }
        let roster = match self.roster().await {
            Ok(r) => r.clone(),
            Err(_) => return self.bounce(iq, StanzaError::internal_server_error()),
        };
        let store = self.shared.storage.clone();
        let (host, user) = (self.host().to_string(), self.user().to_string());
        match tokio::task::spawn_blocking(move || store.delete_user(&host, &user)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(account = %self.bare, "cannot remove the account: {e}");
                return self.bounce(iq, StanzaError::internal_server_error());
            }
            Err(_) => return self.bounce(iq, StanzaError::internal_server_error()),
        }
        self.roster = None;
        tracing::info!(account = %self.bare, "account removed in band");
        let me = self.bare.to_string();
        let sessions = self.shared.router.sessions.of_account(&self.bare);
        for item in roster.items.values() {
            let to = item.jid.to_string();
            let tell = |kind: Kind| {
                Element::new("presence", ns::CLIENT)
                    .with_attr("type", kind.as_str())
                    .with_attr("from", me.clone())
                    .with_attr("to", to.clone())
            };
            if item.state.sub.has_from() {
                for s in &sessions {
                    if s.presence.is_some() {
                        let p = Element::new("presence", ns::CLIENT)
                            .with_attr("type", "unavailable")
                            .with_attr("from", format!("{me}/{}", s.resource))
                            .with_attr("to", to.clone());
                        self.send(p);
                    }
                }
                self.send(tell(Kind::Unsubscribed));
            }
            if item.state.sub.has_to() || item.state.pending_out {
                self.send(tell(Kind::Unsubscribe));
            }
        }
        for contact in roster.pending.keys() {
            let p = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unsubscribed")
                .with_attr("from", me.clone())
                .with_attr("to", contact.to_string());
            self.send(p);
        }
        // The result first, then the streams close: the outbox keeps order.
        let mut reply = iq_result(iq, None);
        reply.remove_attr("from");
        self.send_to_session(&from, reply);
        for s in sessions {
            let _ = s.tx.try_send(Outbound::Close(StreamError::with_text(
                "not-authorized",
                "this account has been removed",
            )));
        }
    }
}
