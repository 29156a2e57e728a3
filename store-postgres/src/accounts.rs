//! Accounts with their credentials, rosters, account data and host data.

use switchboard_spool::store::rules::{self, RESERVED_ACCOUNT_KEYS};
use switchboard_spool::store::{
    AccountDataStore, AccountRef, AccountStore, BoxFuture, HostDataStore, RosterStore,
    ScramCredential, StoreError, StoreResult, StoredItem, StoredRoster,
};
use switchboard_xml::Element;

use crate::errors::{corrupt, is_duplicate, map};
use crate::names::enc;
use crate::{name, parse_xml, xml_text, PgStores};

impl AccountStore for PgStores {
    fn create<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let (host, user) = (enc(&account.host), enc(&account.user));
            let mut c = self.pool.get().await?;
            c.begin().await?;
            match c
                .execute_raw(
                    "INSERT INTO accounts (host, username) VALUES ($1, $2)",
                    &[&host, &user],
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    c.rollback().await?;
                    return Err(StoreError::AlreadyExists);
                }
                Err(e) => return Err(map("creating an account", e)),
            }
            insert_credentials(&mut c, &host, &user, &credentials).await?;
            c.commit().await
        })
    }

    fn exists<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            Ok(c.query_opt(
                "looking up an account",
                "SELECT 1 FROM accounts WHERE host = $1 AND username = $2",
                &[&enc(&account.host), &enc(&account.user)],
            )
            .await?
            .is_some())
        })
    }

    fn credentials<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<ScramCredential>>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            // One round trip: the account's row, and its credentials if any.
            let rows = c
                .query(
                    "reading credentials",
                    "SELECT c.hash, c.salt, c.iterations, c.stored_key, c.server_key \
                     FROM accounts a LEFT JOIN credentials c \
                       ON c.host = a.host AND c.username = a.username \
                     WHERE a.host = $1 AND a.username = $2 \
                     ORDER BY c.position",
                    &[&enc(&account.host), &enc(&account.user)],
                )
                .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::new();
            for r in rows {
                let Some(hash) = r.get::<_, Option<String>>(0) else {
                    continue;
                };
                let iterations: i32 = r.get(2);
                out.push(ScramCredential {
                    hash,
                    salt: r.get(1),
                    iterations: u32::try_from(iterations)
                        .map_err(|_| corrupt("credentials", "a negative iteration count"))?,
                    stored_key: r.get(3),
                    server_key: r.get(4),
                });
            }
            Ok(Some(out))
        })
    }

    fn set_credentials<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let (host, user) = (enc(&account.host), enc(&account.user));
            let mut c = self.pool.get().await?;
            c.begin().await?;
            if !lock_account(&mut c, &host, &user).await? {
                c.rollback().await?;
                return Err(StoreError::NotFound);
            }
            c.execute(
                "replacing credentials",
                "DELETE FROM credentials WHERE host = $1 AND username = $2",
                &[&host, &user],
            )
            .await?;
            insert_credentials(&mut c, &host, &user, &credentials).await?;
            c.commit().await
        })
    }

    fn delete<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let (host, user) = (enc(&account.host), enc(&account.user));
            let owner = account.to_string();
            let mut c = self.pool.get().await?;
            c.begin().await?;
            let gone = c
                .execute(
                    "deleting an account",
                    "DELETE FROM accounts WHERE host = $1 AND username = $2",
                    &[&host, &user],
                )
                .await?;
            if gone > 0 {
                crate::archive::remove_owner(&mut c, &enc(&owner)).await?;
            }
            c.commit().await?;
            Ok(gone > 0)
        })
    }

    fn list<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            let rows = c
                .query(
                    "listing accounts",
                    "SELECT username FROM accounts WHERE host = $1",
                    &[&enc(host)],
                )
                .await?;
            let mut users = rows
                .into_iter()
                .map(|r| name("accounts", r.get(0)))
                .collect::<StoreResult<Vec<_>>>()?;
            users.sort();
            Ok(users)
        })
    }
}

/// Locks the account's row for the transaction; `false` without it.
async fn lock_account(c: &mut crate::pool::Conn<'_>, host: &str, user: &str) -> StoreResult<bool> {
    Ok(c.query_opt(
        "locking an account",
        "SELECT 1 FROM accounts WHERE host = $1 AND username = $2 FOR UPDATE",
        &[&host, &user],
    )
    .await?
    .is_some())
}

async fn insert_credentials(
    c: &mut crate::pool::Conn<'_>,
    host: &str,
    user: &str,
    credentials: &[ScramCredential],
) -> StoreResult<()> {
    for (i, cred) in credentials.iter().enumerate() {
        let iterations = i32::try_from(cred.iterations)
            .map_err(|_| StoreError::Invalid(format!("{} iterations", cred.iterations)))?;
        c.execute(
            "storing credentials",
            "INSERT INTO credentials \
               (host, username, position, hash, salt, iterations, stored_key, server_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &host,
                &user,
                &(i as i32),
                &cred.hash,
                &cred.salt,
                &iterations,
                &cred.stored_key,
                &cred.server_key,
            ],
        )
        .await?;
    }
    Ok(())
}

impl RosterStore for PgStores {
    fn load<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<StoredRoster>>> {
        Box::pin(async move {
            let (host, user) = (enc(&account.host), enc(&account.user));
            let mut c = self.pool.get().await?;
            // One snapshot for the three reads.
            c.begin_snapshot().await?;
            let Some(row) = c
                .query_opt(
                    "reading a roster",
                    "SELECT roster_ver FROM accounts WHERE host = $1 AND username = $2",
                    &[&host, &user],
                )
                .await?
            else {
                c.rollback().await?;
                return Ok(None);
            };
            let ver: i64 = row.get(0);
            let items = c
                .query(
                    "reading a roster",
                    "SELECT jid, name, subscription, ask, approved, added, groups \
                     FROM roster_items WHERE host = $1 AND username = $2 ORDER BY position",
                    &[&host, &user],
                )
                .await?;
            let pending = c
                .query(
                    "reading a roster",
                    "SELECT jid, stanza FROM roster_pending \
                     WHERE host = $1 AND username = $2 ORDER BY position",
                    &[&host, &user],
                )
                .await?;
            c.commit().await?;
            let mut roster = StoredRoster {
                ver: u64::try_from(ver)
                    .map_err(|_| corrupt("accounts", "a negative roster_ver"))?,
                items: Vec::with_capacity(items.len()),
                pending: Vec::with_capacity(pending.len()),
            };
            for r in items {
                roster.items.push(StoredItem {
                    jid: r.get(0),
                    name: r.get(1),
                    subscription: r.get(2),
                    ask: r.get(3),
                    approved: r.get(4),
                    added: r.get(5),
                    groups: r.get(6),
                });
            }
            for r in pending {
                let stanza: String = r.get(1);
                roster
                    .pending
                    .push((r.get(0), parse_xml("roster_pending", &stanza)?));
            }
            Ok(Some(roster))
        })
    }

    fn save<'a>(
        &'a self,
        account: &'a AccountRef,
        roster: &'a StoredRoster,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::roster(roster)?;
            let ver = crate::to_i64("roster version", roster.ver)?;
            let (host, user) = (enc(&account.host), enc(&account.user));
            let mut c = self.pool.get().await?;
            c.begin().await?;
            let found = c
                .execute(
                    "saving a roster",
                    "UPDATE accounts SET roster_ver = $3 WHERE host = $1 AND username = $2",
                    &[&host, &user, &ver],
                )
                .await?;
            if found == 0 {
                c.rollback().await?;
                return Err(StoreError::NotFound);
            }
            c.execute(
                "saving a roster",
                "DELETE FROM roster_items WHERE host = $1 AND username = $2",
                &[&host, &user],
            )
            .await?;
            c.execute(
                "saving a roster",
                "DELETE FROM roster_pending WHERE host = $1 AND username = $2",
                &[&host, &user],
            )
            .await?;
            for (i, item) in roster.items.iter().enumerate() {
                c.execute(
                    "saving a roster",
                    "INSERT INTO roster_items (host, username, position, jid, name, \
                       subscription, ask, approved, added, groups) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &host,
                        &user,
                        &(i as i32),
                        &item.jid,
                        &item.name,
                        &item.subscription,
                        &item.ask,
                        &item.approved,
                        &item.added,
                        &item.groups,
                    ],
                )
                .await?;
            }
            for (i, (jid, stanza)) in roster.pending.iter().enumerate() {
                c.execute(
                    "saving a roster",
                    "INSERT INTO roster_pending (host, username, position, jid, stanza) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&host, &user, &(i as i32), jid, &xml_text(stanza)],
                )
                .await?;
            }
            c.commit().await
        })
    }
}

impl AccountDataStore for PgStores {
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        Box::pin(async move {
            rules::document_key(key, RESERVED_ACCOUNT_KEYS)?;
            let mut c = self.pool.get().await?;
            let row = c
                .query_opt(
                    "reading account data",
                    "SELECT doc FROM account_data WHERE host = $1 AND username = $2 AND key = $3",
                    &[&enc(&account.host), &enc(&account.user), &enc(key)],
                )
                .await?;
            row.map(|r| parse_xml("account_data", r.get(0))).transpose()
        })
    }

    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::document(&doc, RESERVED_ACCOUNT_KEYS)?;
            let mut c = self.pool.get().await?;
            // Inserted only where the account exists: no row, no account.
            let n = c
                .execute(
                    "storing account data",
                    "INSERT INTO account_data (host, username, key, doc) \
                     SELECT host, username, $3, $4 FROM accounts \
                     WHERE host = $1 AND username = $2 \
                     ON CONFLICT (host, username, key) DO UPDATE SET doc = EXCLUDED.doc",
                    &[
                        &enc(&account.host),
                        &enc(&account.user),
                        &enc(&doc.name),
                        &xml_text(&doc),
                    ],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::document_key(key, RESERVED_ACCOUNT_KEYS)?;
            let mut c = self.pool.get().await?;
            c.execute(
                "removing account data",
                "DELETE FROM account_data WHERE host = $1 AND username = $2 AND key = $3",
                &[&enc(&account.host), &enc(&account.user), &enc(key)],
            )
            .await?;
            Ok(())
        })
    }
}

impl HostDataStore for PgStores {
    fn get<'a>(
        &'a self,
        host: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        Box::pin(async move {
            rules::document_key(key, &[])?;
            let mut c = self.pool.get().await?;
            let row = c
                .query_opt(
                    "reading host data",
                    "SELECT doc FROM host_data WHERE host = $1 AND key = $2",
                    &[&enc(host), &enc(key)],
                )
                .await?;
            row.map(|r| parse_xml("host_data", r.get(0))).transpose()
        })
    }

    fn put<'a>(&'a self, host: &'a str, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::document(&doc, &[])?;
            let mut c = self.pool.get().await?;
            c.execute(
                "storing host data",
                "INSERT INTO host_data (host, key, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (host, key) DO UPDATE SET doc = EXCLUDED.doc",
                &[&enc(host), &enc(&doc.name), &xml_text(&doc)],
            )
            .await?;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, host: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::document_key(key, &[])?;
            let mut c = self.pool.get().await?;
            c.execute(
                "removing host data",
                "DELETE FROM host_data WHERE host = $1 AND key = $2",
                &[&enc(host), &enc(key)],
            )
            .await?;
            Ok(())
        })
    }
}
