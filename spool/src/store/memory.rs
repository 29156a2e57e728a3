//! [`MemoryStores`]: every kind of store in one process's memory, for
//! tests of the code above the storage interface (and as the plainest
//! statement of the interface's semantics: the file backend and any later
//! one must pass the same conformance suite).
//!
//! One mutex guards all of it, so that deleting an account removes its
//! roster, offline messages, archive and documents at once, as a database
//! transaction would. Nothing survives the process; "durable on return"
//! holds trivially.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_xml::Element;

use super::archive_query::{select, Meta};
use super::rules::{self, RESERVED_ACCOUNT_KEYS};
use super::{
    AccountDataStore, AccountRef, AccountStore, ArchiveEntry, ArchiveOwner, ArchivePage,
    ArchiveQuery, ArchiveStore, BoxFuture, HostDataStore, OfflineMessage, OfflineStore,
    OfflineUsage, RosterStore, ScramCredential, ServiceDataStore, StoreError, StoreResult,
    StoredRoster, Stores,
};

/// The in-memory backend; [`MemoryStores::new`] hands out its [`Stores`].
#[derive(Debug, Default)]
pub struct MemoryStores {
    state: Mutex<State>,
    /// Blobs, shared with the writers that commit into them.
    blobs: blobs::Blobs,
}

mod blobs;

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountRef, Account>,
    hosts: HashMap<String, BTreeMap<String, Element>>,
    archives: HashMap<String, Vec<ArchiveEntry>>,
    /// (service, collection) → key → value.
    services: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

#[derive(Debug, Default)]
struct Account {
    credentials: Vec<ScramCredential>,
    roster: StoredRoster,
    data: BTreeMap<String, Element>,
    offline: Vec<(OfflineMessage, usize)>,
    /// The last offline id handed out.
    offline_last: u64,
}

impl Meta for ArchiveEntry {
    fn id(&self) -> &str {
        &self.id
    }
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
    fn with(&self) -> &str {
        &self.with
    }
}

impl MemoryStores {
    /// A fresh, empty backend: every store of the bundle shares it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Stores {
        let me = Arc::new(MemoryStores::default());
        Stores {
            accounts: me.clone(),
            rosters: me.clone(),
            offline: me.clone(),
            archive: me.clone(),
            account_data: me.clone(),
            host_data: me.clone(),
            service_data: me.clone(),
            blobs: me,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left plain data behind, no
        // half-done file: carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state as a ready future.
    fn with<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut State) -> StoreResult<T> + Send + 'a,
    ) -> BoxFuture<'a, StoreResult<T>> {
        Box::pin(async move { f(&mut self.state()) })
    }
}

fn usage(offline: &[(OfflineMessage, usize)]) -> OfflineUsage {
    OfflineUsage {
        messages: offline.len(),
        bytes: offline.iter().map(|(_, size)| size).sum(),
    }
}

impl AccountStore for MemoryStores {
    fn create<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            if s.accounts.contains_key(account) {
                return Err(StoreError::AlreadyExists);
            }
            s.accounts.insert(
                account.clone(),
                Account {
                    credentials,
                    ..Default::default()
                },
            );
            Ok(())
        })
    }

    fn exists<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        self.with(move |s| Ok(s.accounts.contains_key(account)))
    }

    fn credentials<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<ScramCredential>>>> {
        self.with(move |s| Ok(s.accounts.get(account).map(|a| a.credentials.clone())))
    }

    fn set_credentials<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            let a = s.accounts.get_mut(account).ok_or(StoreError::NotFound)?;
            a.credentials = credentials;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        self.with(move |s| {
            let existed = s.accounts.remove(account).is_some();
            if existed {
                s.archives.remove(&account.to_string());
            }
            Ok(existed)
        })
    }

    fn list<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.with(move |s| {
            Ok(s.accounts
                .keys()
                .filter(|a| a.host == host)
                .map(|a| a.user.clone())
                .collect())
        })
    }
}

impl RosterStore for MemoryStores {
    fn load<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<StoredRoster>>> {
        self.with(move |s| Ok(s.accounts.get(account).map(|a| a.roster.clone())))
    }

    fn save<'a>(
        &'a self,
        account: &'a AccountRef,
        roster: &'a StoredRoster,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::roster(roster)?;
            let a = s.accounts.get_mut(account).ok_or(StoreError::NotFound)?;
            a.roster = roster.clone();
            Ok(())
        })
    }
}

impl OfflineStore for MemoryStores {
    fn append<'a>(
        &'a self,
        account: &'a AccountRef,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.with(move |s| {
            let size = stanza.to_bytes(None).len();
            rules::stanza(stanza, size)?;
            let a = s.accounts.get_mut(account).ok_or(StoreError::NotFound)?;
            a.offline_last += 1;
            let message = OfflineMessage {
                id: a.offline_last,
                stanza: stanza.clone(),
            };
            a.offline.push((message, size));
            Ok(usage(&a.offline))
        })
    }

    fn append_batch<'a>(
        &'a self,
        account: &'a AccountRef,
        stanzas: &'a [Element],
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.with(move |s| {
            let sizes: Vec<usize> = stanzas.iter().map(|m| m.to_bytes(None).len()).collect();
            for (m, size) in stanzas.iter().zip(&sizes) {
                rules::stanza(m, *size)?;
            }
            let a = s.accounts.get_mut(account).ok_or(StoreError::NotFound)?;
            for (m, size) in stanzas.iter().zip(sizes) {
                a.offline_last += 1;
                let message = OfflineMessage {
                    id: a.offline_last,
                    stanza: m.clone(),
                };
                a.offline.push((message, size));
            }
            Ok(usage(&a.offline))
        })
    }

    fn usage<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.with(move |s| {
            Ok(s.accounts
                .get(account)
                .map(|a| usage(&a.offline))
                .unwrap_or_default())
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<OfflineMessage>>> {
        self.with(move |s| {
            Ok(s.accounts
                .get(account)
                .map(|a| a.offline.iter().map(|(m, _)| m.clone()).collect())
                .unwrap_or_default())
        })
    }

    fn remove_through<'a>(
        &'a self,
        account: &'a AccountRef,
        through: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            if let Some(a) = s.accounts.get_mut(account) {
                a.offline.retain(|(m, _)| m.id > through);
            }
            Ok(())
        })
    }
}

impl ArchiveStore for MemoryStores {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::stanza(&entry.stanza, entry.stanza.to_bytes(None).len())?;
            s.archives
                .entry(owner.to_owned())
                .or_default()
                .push(entry.clone());
            Ok(())
        })
    }

    fn append_batch<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entries: &'a [ArchiveEntry],
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            for e in entries {
                rules::stanza(&e.stanza, e.stanza.to_bytes(None).len())?;
            }
            s.archives
                .entry(owner.to_owned())
                .or_default()
                .extend_from_slice(entries);
            Ok(())
        })
    }

    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        query: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        self.with(move |s| {
            let entries = s.archives.get(owner).map(Vec::as_slice).unwrap_or_default();
            Ok(select(entries, query).map(|sel| ArchivePage {
                entries: sel.picks.iter().map(|&i| entries[i].clone()).collect(),
                complete: sel.complete,
                count: Some(sel.count),
            }))
        })
    }

    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        self.with(move |s| {
            rules::stanza(stanza, stanza.to_bytes(None).len())?;
            let Some(entries) = s.archives.get_mut(owner) else {
                return Ok(false);
            };
            match super::archive_query::position(entries, id) {
                Some(i) => {
                    entries[i].stanza = stanza.clone();
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn expire<'a>(&'a self, domain: &'a str, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        self.with(move |s| {
            let mut gone = 0;
            for (owner, entries) in s.archives.iter_mut() {
                let at = owner.split_once('@').map_or(owner.as_str(), |(_, d)| d);
                if at != domain {
                    continue;
                }
                let was = entries.len();
                entries.retain(|e| e.timestamp >= before);
                gone += (was - entries.len()) as u64;
            }
            s.archives.retain(|_, entries| !entries.is_empty());
            Ok(gone)
        })
    }

    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            s.archives.remove(owner);
            Ok(())
        })
    }
}

impl AccountDataStore for MemoryStores {
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        self.with(move |s| {
            rules::document_key(key, RESERVED_ACCOUNT_KEYS)?;
            Ok(s.accounts
                .get(account)
                .and_then(|a| a.data.get(key).cloned()))
        })
    }

    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::document(&doc, RESERVED_ACCOUNT_KEYS)?;
            let a = s.accounts.get_mut(account).ok_or(StoreError::NotFound)?;
            a.data.insert(doc.name.clone(), doc);
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::document_key(key, RESERVED_ACCOUNT_KEYS)?;
            if let Some(a) = s.accounts.get_mut(account) {
                a.data.remove(key);
            }
            Ok(())
        })
    }
}

impl HostDataStore for MemoryStores {
    fn get<'a>(
        &'a self,
        host: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        self.with(move |s| {
            rules::document_key(key, &[])?;
            Ok(s.hosts.get(host).and_then(|h| h.get(key).cloned()))
        })
    }

    fn put<'a>(&'a self, host: &'a str, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::document(&doc, &[])?;
            s.hosts
                .entry(host.to_owned())
                .or_default()
                .insert(doc.name.clone(), doc);
            Ok(())
        })
    }

    fn remove<'a>(&'a self, host: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::document_key(key, &[])?;
            if let Some(h) = s.hosts.get_mut(host) {
                h.remove(key);
            }
            Ok(())
        })
    }
}

impl ServiceDataStore for MemoryStores {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        self.with(move |s| {
            rules::service_key(collection, key)?;
            Ok(s.services
                .get(&(service.to_owned(), collection.to_owned()))
                .and_then(|c| c.get(key).cloned()))
        })
    }

    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(move |s| {
            rules::service_key(collection, key)?;
            rules::value(&value)?;
            s.services
                .entry((service.to_owned(), collection.to_owned()))
                .or_default()
                .insert(key.to_owned(), value);
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        self.with(move |s| {
            rules::service_key(collection, key)?;
            Ok(s.services
                .get_mut(&(service.to_owned(), collection.to_owned()))
                .and_then(|c| c.remove(key))
                .is_some())
        })
    }

    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.with(move |s| {
            rules::collection(collection)?;
            Ok(s.services
                .get(&(service.to_owned(), collection.to_owned()))
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn location(&self, service: &str, collection: &str, key: &str) -> String {
        format!("memory:{service}/{collection}/{key}")
    }
}
