//! What a session keeps between runs, in the service's store: the sync
//! token (`next_batch`) of the last batch handled, and the contacts the
//! user has already been asked to add. One small XML document per user
//! in the collection [`SYNC`], like every other service record:
//!
//! ```xml
//! <sync xmlns="urn:switchboard:matrix:1" next-batch="s72595_4483_1934">
//!   <contact id="@alice:example.org"/>
//! </sync>
//! ```
//!
//! Nothing here is secret (the access token is sealed with the
//! registration, [`crate::registration`]); a document that does not read
//! is refused with its location, never replaced by an empty one.

use std::collections::BTreeSet;

use switchboard_jid::Jid;
use switchboard_service::ServiceStore;
use switchboard_xml::{parse_document, Element, Limits};

/// The collection of the service's store holding the sync state.
pub const SYNC: &str = "sync";

const NS: &str = "urn:switchboard:matrix:1";

/// The longest token or id kept.
const MAX_ITEM: usize = 1024;

/// Contacts remembered as announced.
const MAX_CONTACTS: usize = 10_000;

/// A session's saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Where the next `/sync` starts; `None` before the first batch.
    pub next_batch: Option<String>,
    /// Matrix users the user has been sent a subscription request from.
    pub contacts: BTreeSet<String>,
}

impl Saved {
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("sync", NS);
        if let Some(t) = &self.next_batch {
            el.set_attr("next-batch", t.clone());
        }
        for c in self.contacts.iter().take(MAX_CONTACTS) {
            el.append_child(Element::new("contact", NS).with_attr("id", c.clone()));
        }
        el
    }

    pub fn from_element(el: &Element) -> Result<Saved, String> {
        if !el.is("sync", NS) {
            return Err(format!("<{}> is not a Matrix sync state", el.name));
        }
        let ok = |s: &str| s.len() <= MAX_ITEM && !s.is_empty();
        let next_batch = match el.attr("next-batch") {
            Some(t) if ok(t) => Some(t.to_owned()),
            Some(_) => return Err("next-batch is empty or too long".into()),
            None => None,
        };
        let contacts = el
            .elements()
            .filter(|c| c.is("contact", NS))
            .filter_map(|c| c.attr("id"))
            .filter(|c| ok(c))
            .map(str::to_owned)
            .collect();
        Ok(Saved {
            next_batch,
            contacts,
        })
    }
}

/// Reads and writes users' sync state.
#[derive(Debug, Clone)]
pub struct SyncStore {
    store: ServiceStore,
}

impl SyncStore {
    pub fn new(store: ServiceStore) -> SyncStore {
        SyncStore { store }
    }

    /// The service the state belongs to.
    pub fn service(&self) -> &str {
        self.store.service()
    }

    /// `user`'s state; the default before the first batch.
    pub async fn load(&self, user: &Jid) -> Result<Saved, String> {
        let key = user.to_bare().to_string();
        let Some(bytes) = self
            .store
            .get(SYNC, &key)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(Saved::default());
        };
        let where_ = || self.store.location(SYNC, &key);
        let el =
            parse_document(&bytes, Limits::default()).map_err(|e| format!("{}: {e}", where_()))?;
        Saved::from_element(&el).map_err(|e| format!("{}: {e}", where_()))
    }

    pub async fn save(&self, user: &Jid, saved: &Saved) -> Result<(), String> {
        let key = user.to_bare().to_string();
        self.store
            .put(SYNC, &key, saved.to_element().to_bytes(None))
            .await
            .map_err(|e| e.to_string())
    }

    /// Forgets `user`'s state (unregistration).
    pub async fn remove(&self, user: &Jid) -> Result<(), String> {
        let key = user.to_bare().to_string();
        self.store
            .remove(SYNC, &key)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::memory::MemoryStores;

    #[tokio::test]
    async fn the_state_survives_a_round_trip_and_garbage_is_refused() {
        let store = ServiceStore::new(MemoryStores::new().service_data, "matrix.l");
        let s = SyncStore::new(store.clone());
        let user = Jid::parse("a@l/r").unwrap();
        assert_eq!(s.load(&user).await.unwrap(), Saved::default());
        let saved = Saved {
            next_batch: Some("s1_2&<3>".into()),
            contacts: ["@b:x".to_string()].into_iter().collect(),
        };
        s.save(&user, &saved).await.unwrap();
        assert_eq!(s.load(&Jid::parse("a@l").unwrap()).await.unwrap(), saved);
        store.put(SYNC, "a@l", b"not xml".to_vec()).await.unwrap();
        assert!(s.load(&user).await.is_err());
    }
}
