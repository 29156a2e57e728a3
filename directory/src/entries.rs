//! The listings: one small XML file per listed user in the service's data
//! directory, all loaded into memory at start (a company directory is
//! thousands of entries, not millions) and written through on change.
//!
//! ```xml
//! <entry xmlns='urn:switchboard:spool:1' jid='alice@example.org'>
//!   <first>Alice</first><last>Liddell</last><nick>al</nick><email>…</email>
//! </entry>
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use switchboard_jid::Jid;
use switchboard_spool::{atomic, filename};
use switchboard_xml::{ns, parse_document, Element};

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
    dir: PathBuf,
    map: BTreeMap<String, Entry>,
}

impl Entries {
    /// Loads every listing in `dir`. A file that does not parse is skipped
    /// with an error in the log and left untouched for the admin.
    pub fn load(dir: &Path) -> Result<Entries, String> {
        let mut map = BTreeMap::new();
        let listing =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for item in listing.flatten() {
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".xml") || name.contains(atomic::TMP_MARK) {
                continue;
            }
            match read_entry(&path) {
                Ok((jid, entry)) => {
                    map.insert(jid, entry);
                }
                Err(e) => tracing::error!("directory: skipping {}: {e}", path.display()),
            }
        }
        Ok(Entries {
            dir: dir.to_path_buf(),
            map,
        })
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

    /// Lists (or re-lists) a user; on disk before it returns.
    pub fn put(&mut self, jid: &Jid, entry: Entry) -> Result<(), String> {
        let mut el = Element::new("entry", ns::SPOOL).with_attr("jid", jid.to_string());
        for (k, v) in &entry.values {
            el.append_child(Element::new(k.clone(), ns::SPOOL).with_text(v.clone()));
        }
        let stem = filename::encode_name(&jid.to_string());
        atomic::replace_file(&self.dir, &format!("{stem}.xml"), &stem, &el.to_bytes(None))
            .map_err(|e| format!("cannot write {}: {}", e.path.display(), e.source))?;
        self.map.insert(jid.to_string(), entry);
        Ok(())
    }

    /// Removes a user's listing; `false` if there was none.
    pub fn remove(&mut self, jid: &Jid) -> Result<bool, String> {
        if self.map.remove(&jid.to_string()).is_none() {
            return Ok(false);
        }
        let path = self
            .dir
            .join(format!("{}.xml", filename::encode_name(&jid.to_string())));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
        }
        atomic::sync_dir(&self.dir)
            .map_err(|e| format!("cannot sync {}: {e}", self.dir.display()))?;
        Ok(true)
    }
}

fn read_entry(path: &Path) -> Result<(String, Entry), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let root = parse_document(&bytes, switchboard_spool::file_spool::spool_limits())
        .map_err(|e| e.to_string())?;
    if !root.is("entry", ns::SPOOL) {
        return Err("not a directory entry".into());
    }
    let jid = root
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .ok_or("the entry has no valid jid")?;
    let mut entry = Entry::default();
    for c in root.elements() {
        if FIELDS.contains(&c.name.as_str()) {
            entry.values.insert(c.name.clone(), c.text());
        }
    }
    Ok((jid.to_bare().to_string(), entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_survive_a_reload_and_removal_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Jid::parse("alice@example.org").unwrap();
        let mut e = Entries::load(dir.path()).unwrap();
        let mut entry = Entry::default();
        entry.values.insert("first".into(), "Alice".into());
        entry
            .values
            .insert("email".into(), "alice@example.org".into());
        e.put(&alice, entry.clone()).unwrap();
        let again = Entries::load(dir.path()).unwrap();
        assert_eq!(again.get(&alice), Some(&entry));
        e.remove(&alice).unwrap();
        assert!(Entries::load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_file_is_skipped_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.xml"), "<entry").unwrap();
        let e = Entries::load(dir.path()).unwrap();
        assert!(e.is_empty());
        assert!(dir.path().join("bad.xml").exists());
    }
}
