//! Account removal by the user (XEP-0077 §3.2) or by an admin (XEP-0133
//! delete-user): contacts are told the subscriptions are over and see the
//! user go, the spool file is deleted, and every session of the account is
//! closed.

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::account::{Account, LoadError};
use super::subscription::Kind;
use crate::sessions::{Outbound, SessionEntry};
use crate::stanza::{iq_result, ErrorType, StanzaError};
use crate::stream::StreamError;

impl Account {
    pub(super) async fn remove_account(&mut self, iq: &Element) {
        let Some(from) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        if from.to_bare() != self.bare {
            return self.bounce(iq, StanzaError::forbidden());
        }
        let sessions = match self.remove().await {
            Ok(sessions) => sessions,
            Err(_) => return self.bounce(iq, StanzaError::internal_server_error()),
        };
        // The result first, then the streams close: the outbox keeps order.
        let mut reply = iq_result(iq, None);
        reply.remove_attr("from");
        self.send_to_session(&from, reply);
        tracing::info!(account = %self.bare, "account removed in band");
        close_removed(sessions);
    }

    /// An admin's deletion: the same removal, then the account's sessions
    /// close, and the outcome goes back to whoever asked.
    pub(super) async fn remove_by_admin(
        &mut self,
        done: tokio::sync::oneshot::Sender<Result<(), StanzaError>>,
    ) {
        let r = match self.remove().await {
            Ok(sessions) => {
                tracing::info!(account = %self.bare, "account removed by an admin");
                close_removed(sessions);
                Ok(())
            }
            Err(LoadError::NoAccount) => Err(StanzaError::new("item-not-found", ErrorType::Cancel)
                .with_text("there is no such account")),
            Err(LoadError::Spool(_)) => Err(StanzaError::internal_server_error()),
        };
        let _ = done.send(r);
    }

    /// Deletes the account's spool file, then tells its contacts (the
    /// subscriptions are over, its available resources go). Returns the
    /// account's sessions, for the caller to close after its reply.
    async fn remove(&mut self) -> Result<Vec<SessionEntry>, LoadError> {
        let roster = self.roster().await?.clone();
        let store = self.storage();
        let (host, user) = (self.host().to_string(), self.user().to_string());
        match tokio::task::spawn_blocking(move || store.delete_user(&host, &user)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(account = %self.bare, "cannot remove the account: {e}");
                return Err(LoadError::Spool(e));
            }
            Err(e) => {
                return Err(LoadError::Spool(switchboard_spool::SpoolError::Io {
                    path: Default::default(),
                    source: std::io::Error::other(e.to_string()),
                }))
            }
        }
        self.roster = None;
        self.offline_usage = None;
        let me = self.bare.to_string();
        let sessions = self.router.sessions().of_account(&self.bare);
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
        Ok(sessions)
    }
}

/// Closes the sessions of a removed account.
fn close_removed(sessions: Vec<SessionEntry>) {
    for s in sessions {
        let _ =
            s.tx.try_send(Outbound::Close(Box::new(StreamError::with_text(
                "not-authorized",
                "this account has been removed",
            ))));
    }
}
