//! Service data: `service_data` rows by (service, collection, key), the
//! value as `bytea`.

use switchboard_spool::store::rules;
use switchboard_spool::store::{BoxFuture, ServiceDataStore, StoreResult};

use crate::names::enc;
use crate::{name, PgStores};

impl ServiceDataStore for PgStores {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            rules::service_key(collection, key)?;
            let mut c = self.pool.get().await?;
            Ok(c.query_opt(
                "reading service data",
                "SELECT value FROM service_data \
                 WHERE service = $1 AND collection = $2 AND key = $3",
                &[&enc(service), &enc(collection), &enc(key)],
            )
            .await?
            .map(|r| r.get(0)))
        })
    }

    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            rules::service_key(collection, key)?;
            rules::value(&value)?;
            let mut c = self.pool.get().await?;
            c.execute(
                "storing service data",
                "INSERT INTO service_data (service, collection, key, value) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (service, collection, key) DO UPDATE SET value = EXCLUDED.value",
                &[&enc(service), &enc(collection), &enc(key), &value],
            )
            .await?;
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            rules::service_key(collection, key)?;
            let mut c = self.pool.get().await?;
            let n = c
                .execute(
                    "removing service data",
                    "DELETE FROM service_data \
                     WHERE service = $1 AND collection = $2 AND key = $3",
                    &[&enc(service), &enc(collection), &enc(key)],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            rules::collection(collection)?;
            let mut c = self.pool.get().await?;
            let rows = c
                .query(
                    "listing service data",
                    "SELECT key FROM service_data WHERE service = $1 AND collection = $2",
                    &[&enc(service), &enc(collection)],
                )
                .await?;
            let mut keys = rows
                .into_iter()
                .map(|r| name("service_data", r.get(0)))
                .collect::<StoreResult<Vec<_>>>()?;
            keys.sort();
            Ok(keys)
        })
    }

    fn location(&self, service: &str, collection: &str, key: &str) -> String {
        format!(
            "PostgreSQL {}, table service_data, service {service:?}, collection {collection:?}, key {key:?}",
            self.pool.target
        )
    }
}
