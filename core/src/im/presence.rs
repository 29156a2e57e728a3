//! Presence (RFC 6121 §4): broadcast to subscribers and the user's own
//! resources, probes on initial presence (answered at once for local
//! contacts), offline messages, pending subscription requests and the
//! message of the day handed to a newly available resource, and
//! unavailable presence when a session ends for any reason.

use std::collections::BTreeSet;
use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::account::Account;
use crate::routing::table::SessionEnd;
use crate::stanza::stanza_type;

impl Account {
    /// Presence without `to` from one of the user's sessions.
    pub(super) async fn own_presence(&mut self, el: Element) {
        let Some(from) = el.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let sessions = &self.router.sessions();
        match stanza_type(&el) {
            "available" => {
                let was_available = sessions.get(&from).is_some_and(|s| s.presence.is_some());
                sessions.set_presence(&from, Some(el.clone()));
                let priority = sessions.get(&from).and_then(|s| s.priority).unwrap_or(0);
                self.broadcast(&el).await;
                if !was_available {
                    self.initial_presence(&from, priority).await;
                }
            }
            "unavailable" => {
                sessions.set_presence(&from, None);
                self.broadcast(&el).await;
            }
            // Other types without `to` mean nothing (RFC 6121 §4.7.1).
            _ => {}
        }
    }

    /// Sends a presence from one of the user's resources to every contact
    /// with a `from` subscription and to all of the user's available
    /// resources (the sender included, RFC 6121 §4.2.2).
    async fn broadcast(&mut self, el: &Element) {
        let contacts: Vec<Jid> = match self.roster().await {
            Ok(r) => r.presence_subscribers().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for c in contacts {
            let mut p = el.clone();
            p.set_attr("to", c.to_string());
            self.send(p);
        }
        for s in self.router.sessions().of_account(&self.bare) {
            if s.presence.is_some() || stanza_type(el) == "unavailable" {
                let mut p = el.clone();
                p.set_attr("to", format!("{}/{}", self.bare, s.resource));
                self.send(p);
            }
        }
    }

    /// The first available presence of a session: probe contacts, show it
    /// the user's other resources, and (with non-negative priority) hand it
    /// what waited while the user was away.
    async fn initial_presence(&mut self, from: &Jid, priority: i8) {
        let (subscriptions, pending): (Vec<Jid>, Vec<Element>) = match self.roster().await {
            Ok(r) => (
                r.presence_subscriptions().cloned().collect(),
                r.pending.values().cloned().collect(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        };
        for c in subscriptions {
            // Probes to servers we cannot reach yet (no federation) would
            // only produce errors; local contacts answer at once.
            if !self.router.is_local(c.domain()) {
                continue;
            }
            let probe = Element::new("presence", ns::CLIENT)
                .with_attr("type", "probe")
                .with_attr("from", from.to_string())
                .with_attr("to", c.to_string());
            self.send(probe);
        }
        for s in self.router.sessions().of_account(&self.bare) {
            if Some(&*s.resource) == from.resource() {
                continue;
            }
            if let Some(p) = &s.presence {
                let mut p = (**p).clone();
                p.set_attr("to", from.to_string());
                self.send(p);
            }
        }
        if priority >= 0 {
            for mut request in pending {
                request.set_attr("to", self.bare.to_string());
                self.send_to_session(from, request);
            }
            self.deliver_offline(from).await;
            self.deliver_motd(Some(from)).await;
        }
    }

    /// Each available resource's presence again, as `amend` changes it
    /// (a feature's job: a new avatar hash, XEP-0153); unchanged ones are
    /// not sent. See `AccountScope::rebroadcast_presence`.
    pub(super) async fn rebroadcast(&mut self, amend: &(dyn Fn(&mut Element) + Sync)) {
        for s in self.router.sessions().of_account(&self.bare) {
            let Some(old) = &s.presence else { continue };
            let mut p = (**old).clone();
            amend(&mut p);
            if p == **old {
                continue;
            }
            let Ok(from) = self.bare.with_resource(&s.resource) else {
                continue;
            };
            p.set_attr("from", from.to_string());
            self.router.sessions().set_presence(&from, Some(p.clone()));
            self.broadcast(&p).await;
        }
    }

    /// Delivers to one session directly (no routing decisions).
    pub(super) fn send_to_session(&self, to: &Jid, el: Element) {
        if let Some(s) = self.router.sessions().get(to) {
            let _ =
                s.tx.try_send(crate::sessions::Outbound::Stanza(Box::new(el)));
        }
    }

    /// A probe from a contact's resource: answered with the user's current
    /// presence if the contact may see it (RFC 6121 §4.3.2).
    pub(super) async fn answer_probe(&mut self, probe: Element) {
        let Some(from) = probe.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let allowed = match self.roster().await {
            Ok(r) => r.state(&from.to_bare()).sub.has_from(),
            Err(_) => false,
        };
        if !allowed {
            return;
        }
        let mut any = false;
        for s in self.router.sessions().of_account(&self.bare) {
            if let Some(p) = &s.presence {
                any = true;
                let mut p = (**p).clone();
                p.set_attr("to", from.to_string());
                self.send(p);
            }
        }
        if !any {
            let p = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", self.bare.to_string())
                .with_attr("to", from.to_string());
            self.send(p);
        }
    }

    /// A session ended (clean close, dropped socket, kick): contacts and
    /// directed-presence recipients see it go, and the last logout is
    /// recorded for XEP-0012 when it was the last session.
    pub(super) async fn session_ended(&mut self, end: SessionEnd) {
        let SessionEnd {
            jid,
            presence,
            status,
            directed,
        } = end;
        // A session that already said goodbye was broadcast as unavailable
        // then; one that just vanished is announced here.
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", jid.to_string());
        let mut told: BTreeSet<Jid> = BTreeSet::new();
        if presence.is_some() {
            let contacts: Vec<Jid> = match self.roster().await {
                Ok(r) => r.presence_subscribers().cloned().collect(),
                Err(_) => Vec::new(),
            };
            for c in contacts {
                told.insert(c.clone());
                let mut p = unavailable.clone();
                p.set_attr("to", c.to_string());
                self.send(p);
            }
            for s in self.router.sessions().of_account(&self.bare) {
                if s.presence.is_some() {
                    let mut p = unavailable.clone();
                    p.set_attr("to", format!("{}/{}", self.bare, s.resource));
                    self.send(p);
                }
            }
        }
        for d in directed {
            if told.contains(&d) || told.contains(&d.to_bare()) {
                continue;
            }
            let mut p = unavailable.clone();
            p.set_attr("to", d.to_string());
            self.send(p);
        }
        if self.router.sessions().of_account(&self.bare).is_empty() {
            let now = crate::time::unix_now();
            let doc = crate::modules::last::logout_doc(now, status.as_deref());
            match self.stores().data.put(&self.account, doc).await {
                Ok(()) => {}
                // The account was just removed: nothing to record.
                Err(switchboard_spool::store::StoreError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(account = %self.bare, "cannot record last activity: {e}")
                }
            }
        }
    }
}
