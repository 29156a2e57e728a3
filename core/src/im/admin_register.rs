//! Account creation by a host's admin from their own client (XEP-0077 set
//! naming another user), which is what `<registration>admin</registration>`
//! allows. An admin may also do it on an `open` host.

use switchboard_config::Registration;
use switchboard_jid::{normalize_localpart, Jid};
use switchboard_xml::{ns, Element};

use super::account::Account;
use crate::stanza::{iq_result, ErrorType, StanzaError};

/// Whether a register set names a user other than the sender.
pub(super) fn names_another_user(payload: &Element, own: &Jid) -> bool {
    let Some(given) = payload.child_text("username", ns::REGISTER) else {
        return false;
    };
    let given = given.trim();
    let user = match given.split_once('@') {
        Some((u, _)) => u,
        None => given,
    };
    normalize_localpart(user).is_ok_and(|u| Some(u.as_str()) != own.node())
}

impl Account {
    pub(super) async fn admin_register(&mut self, iq: &Element) {
        let Some(from) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let host = self.host().to_string();
        let allowed = self.settings().is_admin(&host, &from)
            && matches!(
                self.settings().registration(&host),
                Registration::Admin | Registration::Open
            );
        if !allowed {
            return self.bounce(
                iq,
                StanzaError::forbidden()
                    .with_text("only this host's admins may create accounts for others"),
            );
        }
        let payload = iq.first_element().expect("a register query");
        let (Some(user), Some(password)) = (
            payload.child_text("username", ns::REGISTER),
            payload
                .child_text("password", ns::REGISTER)
                .filter(|p| !p.is_empty()),
        ) else {
            return self.bounce(
                iq,
                StanzaError::new("not-acceptable", ErrorType::Modify)
                    .with_text("both a user name and a password are required"),
            );
        };
        let user = user
            .split_once('@')
            .map(|(u, _)| u.to_string())
            .unwrap_or(user);
        let Ok(user) = normalize_localpart(&user) else {
            return self.bounce(
                iq,
                StanzaError::jid_malformed().with_text("that user name cannot be used"),
            );
        };
        let store = self.storage();
        let iterations = self.settings().scram_iterations;
        let reply =
            crate::accounts::create_in_band(store, &host, &user, password, iterations).await;
        if reply.is_ok() {
            tracing::info!(admin = %from, "account {user}@{host} created by an admin in band");
            crate::notices::admins::registration(
                &self.router,
                &self.settings(),
                &host,
                &user,
                None,
                Some(&from),
            );
        }
        match reply {
            Ok(()) => {
                let mut r = iq_result(iq, None);
                r.remove_attr("from");
                self.send_to_session(&from, r);
            }
            Err(e) => self.bounce(iq, e),
        }
    }
}
