//! Copying everything one backend holds into another (`switchboard
//! storage migrate`), and reading everything a backend holds into one
//! comparable value ([`snapshot`]) to check such a copy.
//!
//! The storage interface reads by name (an account, an owner, a
//! collection); what names exist is the [`Inventory`]'s to say, one per
//! backend. Everything is copied through the ordinary stores, so the
//! destination applies its own rules to each record, exactly as when the
//! server writes it. Offline messages get the destination's ids (in the
//! same order); archive entries keep their ids, times and order.

use std::collections::BTreeMap;

use switchboard_xml::Element;

use super::{
    AccountRef, ArchiveEntry, ArchiveQuery, BlobMeta, BoxFuture, ScramCredential, StoreError,
    StoreResult, StoredRoster, Stores,
};

/// What names a backend holds, found by a walk of all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Hosts with accounts or host data.
    pub hosts: Vec<String>,
    /// The owners of archives.
    pub archive_owners: Vec<String>,
    /// (service, collection) pairs holding values.
    pub collections: Vec<(String, String)>,
    /// Scopes holding blobs.
    pub blob_scopes: Vec<String>,
    /// What the walk found but cannot name (a hand-made file, a name
    /// stored only as a digest): each with where it is, for the admin.
    pub unnamed: Vec<String>,
}

/// A backend's own list of what it holds, beyond what the stores can be
/// asked by name.
pub trait Inventory: Send + Sync {
    fn listing(&self) -> BoxFuture<'_, StoreResult<Listing>>;
    /// The keys of an account's data documents.
    fn account_data_keys<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>>;
    /// The keys of a host's data documents.
    fn host_data_keys<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>>;
}

/// How much [`copy_all`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub accounts: usize,
    pub roster_items: usize,
    pub offline_messages: usize,
    pub account_documents: usize,
    pub host_documents: usize,
    pub archive_entries: usize,
    pub service_values: usize,
    pub blobs: usize,
    /// What the source could not name, and so did not copy.
    pub unnamed: Vec<String>,
}

/// Archive entries read per page while copying.
const PAGE: usize = 1000;

async fn archive_entries(s: &Stores, owner: &str) -> StoreResult<Vec<ArchiveEntry>> {
    let mut all = Vec::new();
    loop {
        let q = ArchiveQuery {
            max: PAGE,
            skip: all.len(),
            ..Default::default()
        };
        let page = s
            .archive
            .query(owner, &q)
            .await?
            .ok_or_else(|| StoreError::Unavailable("an archive page vanished".into()))?;
        let done = page.complete || page.entries.is_empty();
        all.extend(page.entries);
        if done {
            return Ok(all);
        }
    }
}

async fn read_blob(s: &Stores, scope: &str, id: &str) -> StoreResult<Option<(BlobMeta, Vec<u8>)>> {
    use tokio::io::AsyncReadExt;
    let Some((meta, mut r)) = s.blobs.open(scope, id).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading blob {scope}/{id}: {e}")))?;
    Ok(Some((meta, bytes)))
}

/// Copies every record `inventory` names from `from` into `to`. An
/// account that exists in `to` already stops the copy
/// (`AlreadyExists`): it is meant for an empty destination.
pub async fn copy_all(
    from: &Stores,
    inventory: &dyn Inventory,
    to: &Stores,
) -> StoreResult<Copied> {
    let listing = inventory.listing().await?;
    let mut n = Copied {
        unnamed: listing.unnamed.clone(),
        ..Copied::default()
    };
    for host in &listing.hosts {
        for key in inventory.host_data_keys(host).await? {
            if let Some(doc) = from.host_data.get(host, &key).await? {
                to.host_data.put(host, doc).await?;
                n.host_documents += 1;
            }
        }
        for user in from.accounts.list(host).await? {
            let a = AccountRef::new(host.clone(), user);
            let Some(credentials) = from.accounts.credentials(&a).await? else {
                continue;
            };
            to.accounts
                .create(&a, credentials)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists => {
                        StoreError::Invalid(format!("{a} exists in the destination already"))
                    }
                    e => e,
                })?;
            n.accounts += 1;
            if let Some(roster) = from.rosters.load(&a).await? {
                n.roster_items += roster.items.len();
                to.rosters.save(&a, &roster).await?;
            }
            for key in inventory.account_data_keys(&a).await? {
                if let Some(doc) = from.account_data.get(&a, &key).await? {
                    to.account_data.put(&a, doc).await?;
                    n.account_documents += 1;
                }
            }
            let offline: Vec<Element> = from
                .offline
                .list(&a)
                .await?
                .into_iter()
                .map(|m| m.stanza)
                .collect();
            n.offline_messages += offline.len();
            to.offline.append_batch(&a, &offline).await?;
        }
    }
    for owner in &listing.archive_owners {
        let entries = archive_entries(from, owner).await?;
        for chunk in entries.chunks(PAGE) {
            to.archive.append_batch(owner, chunk).await?;
        }
        n.archive_entries += entries.len();
    }
    for (service, collection) in &listing.collections {
        for key in from.service_data.keys(service, collection).await? {
            if let Some(value) = from.service_data.get(service, collection, &key).await? {
                to.service_data
                    .put(service, collection, &key, value)
                    .await?;
                n.service_values += 1;
            }
        }
    }
    for scope in &listing.blob_scopes {
        for (id, _) in from.blobs.list(scope).await? {
            let Some((meta, bytes)) = read_blob(from, scope, &id).await? else {
                continue;
            };
            let mut w = to.blobs.create(scope, &id, meta).await?;
            for chunk in bytes.chunks(64 * 1024) {
                w.write(chunk).await?;
            }
            w.commit().await?;
            n.blobs += 1;
        }
    }
    Ok(n)
}

/// One account as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub credentials: Vec<ScramCredential>,
    pub roster: Option<StoredRoster>,
    pub documents: BTreeMap<String, Element>,
    /// The stanzas, oldest first (ids are the backend's own).
    pub offline: Vec<Element>,
}

/// Everything a backend holds, read through its stores: equal for two
/// backends that hold the same records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub accounts: BTreeMap<AccountRef, AccountSnapshot>,
    pub host_data: BTreeMap<(String, String), Element>,
    pub archives: BTreeMap<String, Vec<ArchiveEntry>>,
    pub service_data: BTreeMap<(String, String, String), Vec<u8>>,
    pub blobs: BTreeMap<(String, String), (BlobMeta, Vec<u8>)>,
}

/// Reads everything `inventory` names.
pub async fn snapshot(s: &Stores, inventory: &dyn Inventory) -> StoreResult<Snapshot> {
    let listing = inventory.listing().await?;
    let mut snap = Snapshot::default();
    for host in &listing.hosts {
        for key in inventory.host_data_keys(host).await? {
            if let Some(doc) = s.host_data.get(host, &key).await? {
                snap.host_data.insert((host.clone(), key), doc);
            }
        }
        for user in s.accounts.list(host).await? {
            let a = AccountRef::new(host.clone(), user);
            let Some(credentials) = s.accounts.credentials(&a).await? else {
                continue;
            };
            let mut documents = BTreeMap::new();
            for key in inventory.account_data_keys(&a).await? {
                if let Some(doc) = s.account_data.get(&a, &key).await? {
                    documents.insert(key, doc);
                }
            }
            let offline = s.offline.list(&a).await?.into_iter().map(|m| m.stanza);
            snap.accounts.insert(
                a.clone(),
                AccountSnapshot {
                    credentials,
                    roster: s.rosters.load(&a).await?,
                    documents,
                    offline: offline.collect(),
                },
            );
        }
    }
    for owner in &listing.archive_owners {
        let entries = archive_entries(s, owner).await?;
        if !entries.is_empty() {
            snap.archives.insert(owner.clone(), entries);
        }
    }
    for (service, collection) in &listing.collections {
        for key in s.service_data.keys(service, collection).await? {
            if let Some(v) = s.service_data.get(service, collection, &key).await? {
                snap.service_data
                    .insert((service.clone(), collection.clone(), key), v);
            }
        }
    }
    for scope in &listing.blob_scopes {
        for (id, _) in s.blobs.list(scope).await? {
            if let Some(blob) = read_blob(s, scope, &id).await? {
                snap.blobs.insert((scope.clone(), id), blob);
            }
        }
    }
    Ok(snap)
}
