//! The stores the server uses, with every write timed on its way through
//! (`switchboard_spool_writes_total`, `switchboard_spool_write_seconds`).
//! Reads pass straight on. The time includes waiting for the record's
//! lock, which is what a user's request actually waits. Nothing here
//! touches the backend itself: each store is wrapped behind its trait.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use switchboard_spool::store::{
    AccountDataStore, AccountRef, AccountStore, ArchiveEntry, ArchiveOwner, ArchivePage,
    ArchiveQuery, ArchiveStore, BoxFuture, HostDataStore, OfflineMessage, OfflineStore,
    OfflineUsage, RosterStore, ScramCredential, ServiceDataStore, StoreResult, StoredRoster,
    Stores,
};
use switchboard_xml::Element;

use crate::metrics::Metrics;

/// Every store of `stores`, its writes counted in `metrics`.
pub fn metered(stores: Stores, metrics: Arc<Metrics>) -> Stores {
    let m = |_: ()| metrics.clone();
    Stores {
        accounts: Arc::new(Metered::new(stores.accounts, m(()))),
        rosters: Arc::new(Metered::new(stores.rosters, m(()))),
        offline: Arc::new(Metered::new(stores.offline, m(()))),
        archive: Arc::new(Metered::new(stores.archive, m(()))),
        account_data: Arc::new(Metered::new(stores.account_data, m(()))),
        host_data: Arc::new(Metered::new(stores.host_data, m(()))),
        service_data: Arc::new(Metered::new(stores.service_data, m(()))),
        // Blobs are streams the web side times itself (a 100 MiB upload
        // is not a spool write to put in the same histogram).
        blobs: stores.blobs,
    }
}

struct Metered<T: ?Sized> {
    inner: Arc<T>,
    metrics: Arc<Metrics>,
}

impl<T: ?Sized + Send + Sync> Metered<T> {
    fn new(inner: Arc<T>, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }

    /// Runs a write and records how long it took.
    fn timed<'a, R: Send + 'a>(
        &'a self,
        write: impl Future<Output = R> + Send + 'a,
    ) -> BoxFuture<'a, R> {
        Box::pin(async move {
            let start = Instant::now();
            let r = write.await;
            self.metrics.spool_write(start.elapsed());
            r
        })
    }
}

impl AccountStore for Metered<dyn AccountStore> {
    fn create<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.create(account, credentials))
    }
    fn exists<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        self.inner.exists(account)
    }
    fn credentials<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<ScramCredential>>>> {
        self.inner.credentials(account)
    }
    fn set_credentials<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.set_credentials(account, credentials))
    }
    fn delete<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        self.timed(self.inner.delete(account))
    }
    fn list<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.inner.list(host)
    }
}

impl RosterStore for Metered<dyn RosterStore> {
    fn load<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<StoredRoster>>> {
        self.inner.load(account)
    }
    fn save<'a>(
        &'a self,
        account: &'a AccountRef,
        roster: &'a StoredRoster,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.save(account, roster))
    }
}

impl OfflineStore for Metered<dyn OfflineStore> {
    fn append<'a>(
        &'a self,
        account: &'a AccountRef,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.timed(self.inner.append(account, stanza))
    }
    fn append_batch<'a>(
        &'a self,
        account: &'a AccountRef,
        stanzas: &'a [Element],
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.timed(self.inner.append_batch(account, stanzas))
    }
    fn usage<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        self.inner.usage(account)
    }
    fn list<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<OfflineMessage>>> {
        self.inner.list(account)
    }
    fn remove_through<'a>(
        &'a self,
        account: &'a AccountRef,
        through: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.remove_through(account, through))
    }
}

impl ArchiveStore for Metered<dyn ArchiveStore> {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.append(owner, entry))
    }
    fn append_batch<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entries: &'a [ArchiveEntry],
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.append_batch(owner, entries))
    }
    fn append_many<'a>(
        &'a self,
        batches: &'a [(String, Vec<ArchiveEntry>)],
    ) -> BoxFuture<'a, Vec<StoreResult<()>>> {
        self.timed(self.inner.append_many(batches))
    }
    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        query: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        self.inner.query(owner, query)
    }
    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        self.timed(self.inner.replace(owner, id, stanza))
    }
    fn expire<'a>(&'a self, domain: &'a str, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        self.timed(self.inner.expire(domain, before))
    }
    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.remove_owner(owner))
    }
}

impl AccountDataStore for Metered<dyn AccountDataStore> {
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        self.inner.get(account, key)
    }
    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.put(account, doc))
    }
    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.remove(account, key))
    }
}

impl HostDataStore for Metered<dyn HostDataStore> {
    fn get<'a>(
        &'a self,
        host: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        self.inner.get(host, key)
    }
    fn put<'a>(&'a self, host: &'a str, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.put(host, doc))
    }
    fn remove<'a>(&'a self, host: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.remove(host, key))
    }
}

impl ServiceDataStore for Metered<dyn ServiceDataStore> {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        self.inner.get(service, collection, key)
    }
    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.timed(self.inner.put(service, collection, key, value))
    }
    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        self.timed(self.inner.remove(service, collection, key))
    }
    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.inner.keys(service, collection)
    }
    fn location(&self, service: &str, collection: &str, key: &str) -> String {
        self.inner.location(service, collection, key)
    }
}
