//! Offline queues: rows in `offline`, ids drawn from the account's
//! `offline_last` under its row lock, so two appends to one account never
//! draw the same id and ids are never reused (the counter lives as long as
//! the account, and a new account starts from 0). The queue's usage is
//! kept beside it (`offline_messages`, `offline_bytes`), changed by the
//! same statement that adds or removes rows, so the quota costs no scan.
//! Each call is one statement: one round trip and one commit.

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
            return usage(&mut c, &host, &user)
                .await?
                .ok_or(StoreError::NotFound);
        }
        let n = texts.len() as i64;
        let sizes: Vec<i32> = texts.iter().map(|t| t.len() as i32).collect();
        let bytes: i64 = sizes.iter().map(|&b| i64::from(b)).sum();
        // One statement, so one transaction and one round trip: the ids
        // and the counters under the account row's lock, then the rows.
        let row = c
            .query_opt(
                "storing offline messages",
                "WITH a AS ( \
                   UPDATE accounts SET offline_last = offline_last + $3, \
                     offline_messages = offline_messages + $3, \
                     offline_bytes = offline_bytes + $6 \
                   WHERE host = $1 AND username = $2 \
                   RETURNING offline_last, offline_messages, offline_bytes), \
                 ins AS ( \
                   INSERT INTO offline (host, username, id, stanza, bytes) \
                   SELECT $1, $2, a.offline_last - $3 + e.n, e.stanza, e.bytes \
                   FROM a, unnest($4::text[], $5::integer[]) WITH ORDINALITY AS e(stanza, bytes, n)) \
                 SELECT offline_messages, offline_bytes FROM a",
                &[&host, &user, &n, &texts, &sizes, &bytes],
            )
            .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(usage_of(row.get(0), row.get(1)))
    }
}

fn usage_of(messages: i64, bytes: i64) -> OfflineUsage {
    OfflineUsage {
        messages: messages.max(0) as usize,
        bytes: bytes.max(0) as usize,
    }
}

/// The queue's usage from the account's counters; `None` without the
/// account.
async fn usage(c: &mut Conn<'_>, host: &str, user: &str) -> StoreResult<Option<OfflineUsage>> {
    let row = c
        .query_opt(
            "measuring an offline queue",
            "SELECT offline_messages, offline_bytes FROM accounts \
             WHERE host = $1 AND username = $2",
            &[&host, &user],
        )
        .await?;
    Ok(row.map(|r| usage_of(r.get(0), r.get(1))))
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
            Ok(usage(&mut c, &enc(&account.host), &enc(&account.user))
                .await?
                .unwrap_or_default())
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
            // The rows and the counters in one statement.
            c.execute(
                "removing delivered offline messages",
                "WITH d AS ( \
                   DELETE FROM offline WHERE host = $1 AND username = $2 AND id <= $3 \
                   RETURNING bytes) \
                 UPDATE accounts SET \
                   offline_messages = offline_messages - (SELECT count(*) FROM d), \
                   offline_bytes = offline_bytes - (SELECT coalesce(sum(bytes), 0) FROM d) \
                 WHERE host = $1 AND username = $2",
                &[&enc(&account.host), &enc(&account.user), &through],
            )
            .await?;
            Ok(())
        })
    }
}
