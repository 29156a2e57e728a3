//! The message of the day, on the account's side: shown once per series
//! (see [`crate::notices::motd`]) — to a resource after its initial presence
//! with non-negative priority, or, when an admin sets or updates it, to
//! every such resource online. The series shown is stamped in the
//! account's record (fsynced) after it is handed over, so a failure at
//! worst shows it twice and never loses it; and because the actor does
//! both the check and the stamp, two sessions logging in at once still see
//! it once.

use switchboard_jid::Jid;

use super::account::Account;
use crate::notices::motd;

impl Account {
    /// Shows the host's current MOTD unless the account has seen its
    /// series: to `login` (a resource that just became available), or with
    /// `None` to every available resource with non-negative priority.
    pub(super) async fn deliver_motd(&mut self, login: Option<&Jid>) {
        let Some(current) = self.accounts.motds().current(self.host()) else {
            return;
        };
        let Ok(rec) = self.load().await else { return };
        if !motd::unseen(&current, motd::seen_series(&rec.extra)) {
            return;
        }
        let host = self.host().to_string();
        match login {
            Some(to) => {
                // It was set while this user was away: say when (XEP-0203),
                // as jabberd's "Announced" delay did.
                let mut m = current.announcement.message(&host, &to.to_string());
                m.append_child(
                    switchboard_xml::Element::new("delay", switchboard_xml::ns::DELAY)
                        .with_attr("from", host.clone())
                        .with_attr("stamp", crate::time::stamp(current.updated)),
                );
                self.send_to_session(to, m);
            }
            None => {
                let targets: Vec<_> = self
                    .router
                    .sessions()
                    .of_account(&self.bare)
                    .into_iter()
                    .filter(|s| s.priority.is_some_and(|p| p >= 0))
                    .collect();
                // Nobody to show it to yet: it waits for their login.
                if targets.is_empty() {
                    return;
                }
                for s in targets {
                    let to = format!("{}/{}", self.bare, s.resource);
                    self.router
                        .deliver(&s, current.announcement.message(&host, &to));
                }
            }
        }
        let series = current.series;
        if let Err(e) = self
            .update(move |rec| motd::mark_seen(&mut rec.extra, series))
            .await
        {
            tracing::error!(account = %self.bare, "cannot record that the message of the day was shown: {e}");
        }
    }
}
