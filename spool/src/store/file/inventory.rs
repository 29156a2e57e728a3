//! What a spool holds, by a walk of its directory, for copying it
//! elsewhere ([`crate::store::copy`]): every top-level directory is a
//! domain (a host, a service, or both); in it, account documents, the
//! host's `+host.xml`, archives (`<local>.archive`, `+host.archive` for
//! the domain's own), collections (directories holding `.xml` values, at
//! any depth) and `+blobs/`. Names are decoded from the file names; a
//! hashed name (one too long for a file name) is read from the account's
//! document for accounts, and reported as unnamed elsewhere.

use std::path::Path;

use switchboard_xml::ns;

use super::blocking::run;
use super::{FileStores, Inner};
use crate::file_spool::{ARCHIVE_SUFFIX, LOCK_DIR};
use crate::filename::{decode_name, HOST_DATA_STEM};
use crate::store::copy::{Inventory, Listing};
use crate::store::rules::RESERVED_ACCOUNT_KEYS;
use crate::store::{AccountRef, BoxFuture, StoreResult};
use crate::{SpoolError, Storage};

const BLOBS: &str = "+blobs";

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |e| SpoolError::io(path, e)
}

/// A collection segment's name back from its directory name (see
/// `service.rs`: a trailing `.xml` is spelled `%2Exml`).
fn segment_name(dir: &str) -> Option<String> {
    match dir.strip_suffix("%2Exml") {
        Some(stem) => decode_name(&format!("{stem}.xml")),
        None => decode_name(dir),
    }
}

/// Sorted directory entries that are not hidden: (name, is a directory).
fn entries(dir: &Path) -> Result<Vec<(String, bool)>, SpoolError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = e.file_type().map_err(io_at(&e.path()))?.is_dir();
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

/// Collections under `dir` (the service's directory or a segment of it).
fn collections(
    service: &str,
    dir: &Path,
    prefix: Option<&str>,
    listing: &mut Listing,
) -> Result<(), SpoolError> {
    for (name, is_dir) in entries(dir)? {
        if !is_dir || (prefix.is_none() && (name == BLOBS || name == LOCK_DIR)) {
            continue;
        }
        let path = dir.join(&name);
        let Some(seg) = segment_name(&name) else {
            listing.unnamed.push(path.display().to_string());
            continue;
        };
        let collection = match prefix {
            Some(p) => format!("{p}/{seg}"),
            None => seg,
        };
        let holds_values = entries(&path)?
            .iter()
            .any(|(n, d)| !d && n.ends_with(".xml"));
        if holds_values {
            listing
                .collections
                .push((service.to_owned(), collection.clone()));
        }
        collections(service, &path, Some(&collection), listing)?;
    }
    Ok(())
}

impl Inner {
    fn listing(&self) -> Result<Listing, SpoolError> {
        let root = self.spool.root();
        let mut listing = Listing::default();
        for (dir_name, is_dir) in entries(root)? {
            if !is_dir {
                continue;
            }
            let dir = root.join(&dir_name);
            let Some(domain) = decode_name(&dir_name) else {
                listing.unnamed.push(dir.display().to_string());
                continue;
            };
            let files = entries(&dir)?;
            let has = |f: &str| files.iter().any(|(n, d)| !d && n == f);
            if !self.spool.list_users(&domain)?.is_empty() || has(&format!("{HOST_DATA_STEM}.xml"))
            {
                listing.hosts.push(domain.clone());
            }
            for (file, is_dir) in &files {
                let Some(stem) = file.strip_suffix(ARCHIVE_SUFFIX).filter(|_| !is_dir) else {
                    continue;
                };
                if stem == HOST_DATA_STEM {
                    listing.archive_owners.push(domain.clone());
                } else if let Some(local) = decode_name(stem) {
                    listing.archive_owners.push(format!("{local}@{domain}"));
                } else {
                    listing.unnamed.push(dir.join(file).display().to_string());
                }
            }
            if files.iter().any(|(n, d)| *d && n == BLOBS) {
                listing.blob_scopes.push(domain.clone());
            }
            collections(&domain, &dir, None, &mut listing)?;
        }
        Ok(listing)
    }
}

impl Inventory for FileStores {
    fn listing(&self) -> BoxFuture<'_, StoreResult<Listing>> {
        run(&self.inner, "list the spool", |s| Ok(s.listing()?))
    }

    fn account_data_keys<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let a = account.clone();
        run(&self.inner, "list account data", move |s| {
            Ok(s.spool
                .load_user(&a.host, &a.user)?
                .map(|r| {
                    r.extra
                        .into_iter()
                        .filter(|e| e.ns == ns::SPOOL && !RESERVED_ACCOUNT_KEYS.contains(&&*e.name))
                        .map(|e| e.name)
                        .collect()
                })
                .unwrap_or_default())
        })
    }

    fn host_data_keys<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let host = host.to_owned();
        run(&self.inner, "list host data", move |s| {
            Ok(s.spool
                .load_host(&host)?
                .into_iter()
                .filter(|e| e.ns == ns::SPOOL)
                .map(|e| e.name)
                .collect())
        })
    }
}
