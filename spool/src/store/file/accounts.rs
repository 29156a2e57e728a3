//! Accounts, rosters, account data and host data over the documents the
//! spool has always had: `<host>/<user>.xml` and `<host>/+host.xml`. Each
//! method is one call of the synchronous [`Storage`] implementation
//! ([`crate::file_spool`]) on the blocking pool, so the two paths share
//! every line of reading, checking, locking and writing.

use switchboard_xml::{ns, Element};

use super::blocking::run;
use super::roster_form::{self, ROSTER};
use super::FileStores;
use crate::store::rules::{self, RESERVED_ACCOUNT_KEYS};
use crate::store::{
    AccountDataStore, AccountRef, AccountStore, BoxFuture, HostDataStore, RosterStore,
    ScramCredential, StoreResult, StoredRoster,
};
use crate::{SpoolError, Storage, UserRecord};

/// Replaces the element named `name` in the spool namespace, or appends
/// `el` where there is none.
fn put_element(elements: &mut Vec<Element>, name: &str, el: Element) {
    match elements.iter_mut().find(|e| e.is(name, ns::SPOOL)) {
        Some(old) => *old = el,
        None => elements.push(el),
    }
}

impl AccountStore for FileStores {
    fn create<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let a = account.clone();
        run(&self.inner, "create an account", move |s| {
            let record = UserRecord {
                credentials,
                extra: Vec::new(),
            };
            s.forget_logs(&a);
            Ok(s.spool.create_user(&a.host, &a.user, &record)?)
        })
    }

    fn exists<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        let a = account.clone();
        run(&self.inner, "look up an account", move |s| {
            Ok(s.spool.user_exists(&a.host, &a.user)?)
        })
    }

    fn credentials<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<ScramCredential>>>> {
        let a = account.clone();
        run(&self.inner, "read credentials", move |s| {
            Ok(s.spool.load_user(&a.host, &a.user)?.map(|r| r.credentials))
        })
    }

    fn set_credentials<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let a = account.clone();
        run(&self.inner, "change credentials", move |s| {
            Ok(s.spool.update_user(&a.host, &a.user, &mut |r| {
                r.credentials = credentials.clone()
            })?)
        })
    }

    fn delete<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        let a = account.clone();
        run(&self.inner, "delete an account", move |s| {
            let deleted = s.spool.delete_user(&a.host, &a.user);
            // Whatever happened, nothing cached about its logs is known
            // any more.
            s.forget_logs(&a);
            Ok(deleted?)
        })
    }

    fn list<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let host = host.to_owned();
        run(&self.inner, "list accounts", move |s| {
            Ok(s.spool.list_users(&host)?)
        })
    }
}

impl RosterStore for FileStores {
    fn load<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<StoredRoster>>> {
        let a = account.clone();
        run(&self.inner, "read a roster", move |s| {
            let Some(record) = s.spool.load_user(&a.host, &a.user)? else {
                return Ok(None);
            };
            match record.extra.iter().find(|e| e.is(ROSTER, ns::SPOOL)) {
                None => Ok(Some(StoredRoster::default())),
                Some(el) => roster_form::from_element(el).map(Some).map_err(|e| {
                    SpoolError::corrupt(
                        &s.spool.user_path(&a.host, &a.user),
                        e.line,
                        e.col,
                        e.message,
                    )
                    .into()
                }),
            }
        })
    }

    fn save<'a>(
        &'a self,
        account: &'a AccountRef,
        roster: &'a StoredRoster,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let a = account.clone();
        let checked = rules::roster(roster).map(|()| roster_form::to_element(roster));
        run(&self.inner, "save a roster", move |s| {
            let el = checked?;
            Ok(s.spool.update_user(&a.host, &a.user, &mut |r| {
                put_element(&mut r.extra, ROSTER, el.clone())
            })?)
        })
    }
}

impl AccountDataStore for FileStores {
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        let (a, key) = (account.clone(), key.to_owned());
        run(&self.inner, "read account data", move |s| {
            rules::document_key(&key, RESERVED_ACCOUNT_KEYS)?;
            Ok(s.spool
                .load_user(&a.host, &a.user)?
                .and_then(|r| r.extra.into_iter().find(|e| e.is(&key, ns::SPOOL))))
        })
    }

    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        let a = account.clone();
        run(&self.inner, "store account data", move |s| {
            rules::document(&doc, RESERVED_ACCOUNT_KEYS)?;
            let name = doc.name.clone();
            Ok(s.spool.update_user(&a.host, &a.user, &mut |r| {
                put_element(&mut r.extra, &name, doc.clone())
            })?)
        })
    }

    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (a, key) = (account.clone(), key.to_owned());
        run(&self.inner, "remove account data", move |s| {
            rules::document_key(&key, RESERVED_ACCOUNT_KEYS)?;
            match s.spool.update_user(&a.host, &a.user, &mut |r| {
                r.extra.retain(|e| !e.is(&key, ns::SPOOL))
            }) {
                Ok(()) | Err(SpoolError::NotFound) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

impl HostDataStore for FileStores {
    fn get<'a>(
        &'a self,
        host: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        let (host, key) = (host.to_owned(), key.to_owned());
        run(&self.inner, "read host data", move |s| {
            rules::document_key(&key, &[])?;
            Ok(s.spool
                .load_host(&host)?
                .into_iter()
                .find(|e| e.is(&key, ns::SPOOL)))
        })
    }

    fn put<'a>(&'a self, host: &'a str, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        let host = host.to_owned();
        run(&self.inner, "store host data", move |s| {
            rules::document(&doc, &[])?;
            let name = doc.name.clone();
            Ok(s.spool
                .update_host(&host, &mut |data| put_element(data, &name, doc.clone()))?)
        })
    }

    fn remove<'a>(&'a self, host: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let (host, key) = (host.to_owned(), key.to_owned());
        run(&self.inner, "remove host data", move |s| {
            rules::document_key(&key, &[])?;
            if s.spool.host_dir(&host).is_dir() {
                s.spool
                    .update_host(&host, &mut |data| data.retain(|e| !e.is(&key, ns::SPOOL)))?;
            }
            Ok(())
        })
    }
}
