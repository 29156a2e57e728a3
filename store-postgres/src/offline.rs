//! Offline queues: rows in `offline`, ids drawn from the account's
//! `offline_last` under its row lock, so two appends to one account never
//! draw the same id and ids are never reused (the counter lives as long as
//! the account, and a new account starts from 0).

use switchboard_spool::store::rules;
use switchboard_spool::store::{
    AccountRef, BoxFuture, OfflineMessage, OfflineStore, OfflineUsage, StoreError, StoreResult,
};
use switchboard_xml::Element;

use crate::errors::corrupt;
use crate::names::enc;
use crate::pool::Conn;
use crate::{parse_xml, xml_text, PgStores};

impl PgStores {
    async fn offline_append(
        &self,
        a: &AccountRef,
        stanzas: &[Element],
    ) -> StoreResult<OfflineUsage> {
        let texts: Vec<String> = stanzas.iter().map(xml_text).collect();
        for (s, t) in stanzas.iter().zip(&texts) {
            rules::stanza(s, t.len())?;
        }
        let (host, user) = (enc(&a.host), enc(&a.user));
        let mut c = self.pool.get().await?;
        if texts.is_empty() {
            if !crate::accounts_exists(&mut c, &host, &user).await? {
                return Err(StoreError::NotFound);
            }
            return usage(&mut c, &host, &user).await;
        }
        c.begin().await?;
        let n = texts.len() as i64;
        let Some(row) = c
            .query_opt(
                "storing offline messages",
                "UPDATE accounts SET offline_last = offline_last + $3 \
                 WHERE host = $1 AND username = $2 RETURNING offline_last",
                &[&host, &user, &n],
            )
            .await?
        else {
            c.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let last: i64 = row.get(0);
        let ids: Vec<i64> = (last - n + 1..=last).collect();
        let sizes: Vec<i32> = texts.iter().map(|t| t.len() as i32).collect();
        c.execute(
            "storing offline messages",
            "INSERT INTO offline (host, username, id, stanza, bytes) \
             SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::integer[])",
            &[&host, &user, &ids, &texts, &sizes],
        )
        .await?;
        let used = usage(&mut c, &host, &user).await?;
        c.commit().await?;
        Ok(used)
    }
}

async fn usage(c: &mut Conn<'_>, host: &str, user: &str) -> StoreResult<OfflineUsage> {
    let row = c
        .query_opt(
            "measuring an offline queue",
            "SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM offline \
             WHERE host = $1 AND username = $2",
            &[&host, &user],
        )
        .await?;
    let (messages, bytes): (i64, i64) = row.map_or((0, 0), |r| (r.get(0), r.get(1)));
    Ok(OfflineUsage {
        messages: messages as usize,
        bytes: bytes as usize,
    })
}

impl OfflineStore for PgStores {
    fn append<'a>(
        &'a self,
        account: &'a AccountRef,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        Box::pin(self.offline_append(account, std::slice::from_ref(stanza)))
    }

    fn append_batch<'a>(
        &'a self,
        account: &'a AccountRef,
        stanzas: &'a [Element],
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        Box::pin(self.offline_append(account, stanzas))
    }

    fn usage<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            usage(&mut c, &enc(&account.host), &enc(&account.user)).await
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<OfflineMessage>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            let rows = c
                .query(
                    "reading offline messages",
                    "SELECT id, stanza FROM offline WHERE host = $1 AND username = $2 ORDER BY id",
                    &[&enc(&account.host), &enc(&account.user)],
                )
                .await?;
            rows.into_iter()
                .map(|r| {
                    let id: i64 = r.get(0);
                    Ok(OfflineMessage {
                        id: u64::try_from(id).map_err(|_| corrupt("offline", "a negative id"))?,
                        stanza: parse_xml("offline", r.get(1))?,
                    })
                })
                .collect()
        })
    }

    fn remove_through<'a>(
        &'a self,
        account: &'a AccountRef,
        through: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let through = i64::try_from(through).unwrap_or(i64::MAX);
            let mut c = self.pool.get().await?;
            c.execute(
                "removing delivered offline messages",
                "DELETE FROM offline WHERE host = $1 AND username = $2 AND id <= $3",
                &[&enc(&account.host), &enc(&account.user), &through],
            )
            .await?;
            Ok(())
        })
    }
}
