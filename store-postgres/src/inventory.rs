//! What the database holds, for copying it elsewhere
//! (`switchboard_spool::store::copy`): the distinct names of each table.

use switchboard_spool::store::copy::{Inventory, Listing};
use switchboard_spool::store::{AccountRef, BoxFuture, StoreResult};

use crate::names::enc;
use crate::pool::Conn;
use crate::{name, PgStores};

async fn names(c: &mut Conn<'_>, table: &str, sql: &'static str) -> StoreResult<Vec<String>> {
    let rows = c.query("listing what is stored", sql, &[]).await?;
    let mut out = rows
        .into_iter()
        .map(|r| name(table, r.get(0)))
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

impl Inventory for PgStores {
    fn listing(&self) -> BoxFuture<'_, StoreResult<Listing>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            let hosts = names(
                &mut c,
                "accounts",
                "SELECT host FROM accounts UNION SELECT host FROM host_data",
            )
            .await?;
            let archive_owners =
                names(&mut c, "archive", "SELECT DISTINCT owner FROM archive").await?;
            let blob_scopes = names(&mut c, "blobs", "SELECT DISTINCT scope FROM blobs").await?;
            let rows = c
                .query(
                    "listing what is stored",
                    "SELECT DISTINCT service, collection FROM service_data",
                    &[],
                )
                .await?;
            let mut collections = rows
                .into_iter()
                .map(|r| {
                    Ok((
                        name("service_data", r.get(0))?,
                        name("service_data", r.get(1))?,
                    ))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            collections.sort();
            Ok(Listing {
                hosts,
                archive_owners,
                collections,
                blob_scopes,
                unnamed: Vec::new(),
            })
        })
    }

    fn account_data_keys<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            let rows = c
                .query(
                    "listing account data",
                    "SELECT key FROM account_data WHERE host = $1 AND username = $2 ORDER BY key",
                    &[&enc(&account.host), &enc(&account.user)],
                )
                .await?;
            rows.into_iter()
                .map(|r| name("account_data", r.get(0)))
                .collect()
        })
    }

    fn host_data_keys<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            let rows = c
                .query(
                    "listing host data",
                    "SELECT key FROM host_data WHERE host = $1 ORDER BY key",
                    &[&enc(host)],
                )
                .await?;
            rows.into_iter()
                .map(|r| name("host_data", r.get(0)))
                .collect()
        })
    }
}
