//! `jabber:iq:roster` get and set (RFC 6121 §2) with roster versioning
//! (XEP-0237 / RFC 6121 §2.6).

use switchboard_jid::Jid;
use switchboard_xml::Element;

use super::account::Account;
use super::roster::{Item, NS};
use super::subscription::Kind;
use crate::stanza::{iq_result, ErrorType, StanzaError};

/// Most items a roster may hold; past it, additions get `not-allowed`
/// (RFC 6121 §2.3.3 allows a limit).
const MAX_ITEMS: usize = 5000;
/// Longest roster name or group name, in bytes.
const MAX_TEXT: usize = 1023;

impl Account {
    pub(super) async fn roster_iq(&mut self, iq: &Element) {
        let Some(from) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let result = match iq.attr("type") {
            Some("get") => self.roster_get(&from, iq).await,
            Some("set") => self.roster_set(iq).await,
            _ => return,
        };
        match result {
            Ok(payload) => {
                let mut reply = iq_result(iq, payload);
                reply.remove_attr("from");
                self.send_to_session(&from, reply);
            }
            Err(e) => self.bounce(iq, e),
        }
    }

    async fn roster_get(
        &mut self,
        from: &Jid,
        iq: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let client_ver = iq
            .first_element()
            .and_then(|q| q.attr("ver"))
            .map(str::to_string);
        let roster = self
            .roster()
            .await
            .map_err(|_| StanzaError::internal_server_error())?;
        let ver = roster.ver.to_string();
        let payload = if client_ver.as_deref() == Some(ver.as_str()) {
            // The client's cached copy is current: an empty result, and
            // later changes arrive as pushes (RFC 6121 §2.6.3).
            None
        } else {
            let mut q = Element::new("query", NS).with_attr("ver", ver);
            for item in roster.items.values() {
                q.append_child(item.to_client());
            }
            Some(q)
        };
        self.router.sessions().set_interested(from);
        Ok(payload)
    }

    async fn roster_set(&mut self, iq: &Element) -> Result<Option<Element>, StanzaError> {
        let query = iq.first_element().expect("routed as a roster query");
        let mut items = query.elements().filter(|e| e.is("item", NS));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(
                StanzaError::bad_request().with_text("a roster set carries exactly one item")
            );
        };
        let jid = item
            .attr("jid")
            .ok_or_else(|| StanzaError::bad_request().with_text("the item needs a 'jid'"))?;
        let jid =
            Jid::parse(jid).map_err(|e| StanzaError::jid_malformed().with_text(e.to_string()))?;
        if !jid.is_bare() {
            // RFC 6121 §2.1.2.1 / §2.3.3: roster items are bare JIDs.
            return Err(StanzaError::bad_request().with_text("roster items are bare JIDs"));
        }
        if jid == self.bare {
            return Err(
                StanzaError::not_allowed().with_text("you cannot add yourself to your roster")
            );
        }
        if item.attr("subscription") == Some("remove") {
            return self.roster_remove(jid).await;
        }
        // RFC 6121 §2.1.2.5: any other 'subscription' and any 'ask' from a
        // client are ignored; the server owns those.
        let name = item
            .attr("name")
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if name.as_ref().is_some_and(|n| n.len() > MAX_TEXT) {
            return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
                .with_text("the name is too long"));
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.elements().filter(|e| e.is("group", NS)) {
            let g = g.text();
            if g.is_empty() {
                return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
                    .with_text("a group name may not be empty"));
            }
            if g.len() > MAX_TEXT {
                return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
                    .with_text("a group name is too long"));
            }
            if groups.contains(&g) {
                return Err(StanzaError::bad_request().with_text("the same group is listed twice"));
            }
            groups.push(g);
        }
        let roster = self
            .roster()
            .await
            .map_err(|_| StanzaError::internal_server_error())?;
        if !roster.items.contains_key(&jid) && roster.items.len() >= MAX_ITEMS {
            return Err(StanzaError::not_allowed().with_text("your roster is full"));
        }
        let entry = roster
            .items
            .entry(jid.clone())
            .or_insert_with(|| Item::new(jid.clone()));
        entry.name = name;
        entry.groups = groups;
        entry.user_added = true;
        self.save_roster()
            .await
            .map_err(|_| StanzaError::internal_server_error())?;
        self.push(&jid).await;
        Ok(None)
    }

    /// RFC 6121 §2.5.2: removing an item cancels subscriptions both ways.
    async fn roster_remove(&mut self, jid: Jid) -> Result<Option<Element>, StanzaError> {
        let roster = self
            .roster()
            .await
            .map_err(|_| StanzaError::internal_server_error())?;
        let Some(item) = roster.items.remove(&jid) else {
            return Err(StanzaError::new("item-not-found", ErrorType::Cancel));
        };
        let had_pending = roster.pending.remove(&jid).is_some();
        self.save_roster()
            .await
            .map_err(|_| StanzaError::internal_server_error())?;
        self.push(&jid).await;
        let sub = item.state.sub;
        let me = self.bare.to_string();
        let tell = |kind: Kind| {
            let p = Element::new("presence", switchboard_xml::ns::CLIENT)
                .with_attr("type", kind.as_str())
                .with_attr("from", me.clone())
                .with_attr("to", jid.to_string());
            self.send(p);
        };
        if sub.has_to() || item.state.pending_out {
            tell(Kind::Unsubscribe);
        }
        if sub.has_from() || had_pending || item.state.approved {
            tell(Kind::Unsubscribed);
        }
        Ok(None)
    }

    /// Removes every roster item at a service's hostname (the service
    /// itself and the contacts it translated), each with its push and
    /// unsubscriptions, after the user unregistered from it.
    pub(super) async fn drop_service_items(&mut self, host: &str) {
        let Ok(roster) = self.roster().await else {
            return;
        };
        let doomed: Vec<Jid> = roster
            .items
            .keys()
            .filter(|j| j.domain() == host)
            .cloned()
            .collect();
        for jid in doomed {
            if let Err(e) = self.roster_remove(jid.clone()).await {
                tracing::warn!(account = %self.bare, item = %jid, "could not drop a roster item after unregistration: {e:?}");
            }
        }
    }
}
