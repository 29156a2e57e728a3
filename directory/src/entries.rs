//! The listings: one small XML document per listed user, keyed by bare
//! JID in the collection [`COLLECTION`] of the directory's store (with the
//! file spool, `spool/<service>/entries/<encoded JID>.xml`), all loaded
//! into memory at start (a company directory is thousands of entries, not
//! millions) and written through on change.
//!
//! ```xml
//! <entry xmlns='urn:switchboard:spool:1' jid='alice@example.org'>
//!   <first>Alice</first><last>Liddell</last><nick>al</nick><email>…</email>
//! </entry>
//! ```
//!
//! Releases before the storage interface kept these same documents
//! directly in `spool/<service>/`; the file backend moves them into the
//! collection on first access.

use std::collections::BTreeMap;

use switchboard_jid::Jid;
use switchboard_service::ServiceStore;
use switchboard_xml::{ns, parse_document, Element};

/// The collection of the directory's store holding the listings. The file
/// backend moves the listings of older releases here
/// (`switchboard_spool::store::file::LEGACY_DIRECTORY_COLLECTION`).
pub const COLLECTION: &str = "entries";

/// The searchable fields, in XEP-0055's order (also XEP-0077 field names).
pub const FIELDS: [&str; 4] = ["first", "last", "nick", "email"];

/// One user's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `(field, value)` for the fields the user filled in.
    pub values: BTreeMap<String, String>,
}

impl Entry {
    pub fn get(&self, field: &str) -> &str {
        self.values.get(field).map(String::as_str).unwrap_or("")
    }
}

/// All listings, keyed by bare JID.
pub struct Entries {
    store: ServiceStore,
    map: BTreeMap<String, Entry>,
}

impl Entries {
    /// Loads every listing in `store`. A listing that does not parse is
    /// skipped with an error in the log and left untouched for the admin;
    /// a store that cannot be listed is an error.
    pub async fn load(store: ServiceStore) -> Result<Entries, String> {
        let mut map = BTreeMap::new();
        let keys = store
            .keys(COLLECTION)
            .await
            .map_err(|e| format!("cannot list the directory's entries: {e}"))?;
        for key in keys {
            let read = match store.get(COLLECTION, &key).await {
                Ok(Some(bytes)) => read_entry(&key, &bytes),
                // Removed since the listing.
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            match read {
                Ok(entry) => {
                    map.insert(key, entry);
                }
                Err(e) => {
                    let at = store.location(COLLECTION, &key);
                    tracing::error!("directory: skipping {at}: {e}");
                }
            }
        }
        Ok(Entries { store, map })
    }

    pub fn get(&self, jid: &Jid) -> Option<&Entry> {
        self.map.get(&jid.to_string())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Lists (or re-lists) a user; stored durably before it returns.
    pub async fn put(&mut self, jid: &Jid, entry: Entry) -> Result<(), String> {
        let mut el = Element::new("entry", ns::SPOOL).with_attr("jid", jid.to_string());
        for (k, v) in &entry.values {
            el.append_child(Element::new(k.clone(), ns::SPOOL).with_text(v.clone()));
        }
        self.store
            .put(COLLECTION, &jid.to_string(), el.to_bytes(None))
            .await
            .map_err(|e| format!("cannot store the entry of {jid}: {e}"))?;
        self.map.insert(jid.to_string(), entry);
        Ok(())
    }

    /// Removes a user's listing; `false` if there was none.
    pub async fn remove(&mut self, jid: &Jid) -> Result<bool, String> {
        if !self.map.contains_key(&jid.to_string()) {
            return Ok(false);
        }
        self.store
            .remove(COLLECTION, &jid.to_string())
            .await
            .map_err(|e| format!("cannot remove the entry of {jid}: {e}"))?;
        self.map.remove(&jid.to_string());
        Ok(true)
    }
}

/// Reads the listing stored under `key`, which must be the bare JID it
/// states.
fn read_entry(key: &str, bytes: &[u8]) -> Result<Entry, String> {
    let root = parse_document(bytes, switchboard_spool::file_spool::spool_limits())
        .map_err(|e| e.to_string())?;
    if !root.is("entry", ns::SPOOL) {
        return Err("not a directory entry".into());
    }
    let jid = root
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .ok_or("the entry has no valid jid")?;
    if jid.to_bare().to_string() != key {
        return Err(format!("the entry is {jid}'s, not {key}'s"));
    }
    let mut entry = Entry::default();
    for c in root.elements() {
        if FIELDS.contains(&c.name.as_str()) {
            entry.values.insert(c.name.clone(), c.text());
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::file::FileStores;
    use switchboard_spool::store::memory::MemoryStores;

    fn memory() -> ServiceStore {
        ServiceStore::new(MemoryStores::new().service_data, "users.example.org")
    }

    #[tokio::test]
    async fn listings_survive_a_reload_and_removal_is_durable() {
        let store = memory();
        let alice = Jid::parse("alice@example.org").unwrap();
        let mut e = Entries::load(store.clone()).await.unwrap();
        let mut entry = Entry::default();
        entry.values.insert("first".into(), "Alice".into());
        entry
            .values
            .insert("email".into(), "alice@example.org".into());
        e.put(&alice, entry.clone()).await.unwrap();
        let again = Entries::load(store.clone()).await.unwrap();
        assert_eq!(again.get(&alice), Some(&entry));
        assert!(e.remove(&alice).await.unwrap());
        assert!(!e.remove(&alice).await.unwrap());
        assert!(Entries::load(store).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_damaged_or_misplaced_listing_is_skipped_and_kept() {
        let store = memory();
        store
            .put(COLLECTION, "bad@example.org", b"<entry".to_vec())
            .await
            .unwrap();
        let bob = b"<entry xmlns='urn:switchboard:spool:1' jid='bob@example.org'/>".to_vec();
        store
            .put(COLLECTION, "mallory@example.org", bob)
            .await
            .unwrap();
        let e = Entries::load(store.clone()).await.unwrap();
        assert!(e.is_empty());
        assert_eq!(
            store.get(COLLECTION, "bad@example.org").await.unwrap(),
            Some(b"<entry".to_vec())
        );
    }

    /// The listings a release wrote (`spool/tests/fixtures/release-spool`)
    /// load as they were listed.
    #[tokio::test]
    async fn listings_written_by_the_release_load_unchanged() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../spool/tests/fixtures/release-spool/spool/users.example.org");
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("spool/users.example.org");
        std::fs::create_dir_all(&service).unwrap();
        for f in std::fs::read_dir(&fixture).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), service.join(f.file_name())).unwrap();
        }
        let stores = FileStores::open(dir.path().join("spool")).unwrap();
        let store = ServiceStore::new(stores.service_data, "users.example.org");
        let e = Entries::load(store).await.unwrap();
        let alice = e.get(&Jid::parse("alice@example.org").unwrap()).unwrap();
        let want: BTreeMap<String, String> = [
            ("email", "alice@example.org"),
            ("first", "Alice"),
            ("last", "Liddell"),
            ("nick", "al"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(alice.values, want);
        let bob = e.get(&Jid::parse("bob@example.org").unwrap()).unwrap();
        assert_eq!(bob.get("last"), "Builder & Sons");
        assert_eq!(e.len(), 2);
    }
}
