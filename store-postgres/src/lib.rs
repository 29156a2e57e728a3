//! The PostgreSQL storage backend: every store of the storage interface
//! (`switchboard_spool::store`) over tables, one per kind of record, for
//! sites that want their data in a database they already run, or several
//! nodes on one store.
//!
//! | kind | tables |
//! | --- | --- |
//! | accounts | `accounts` (host, username, the offline id counter, the roster version), `credentials` (SCRAM keys, never a password) |
//! | rosters | `roster_items` (one row per contact, groups as `text[]`), `roster_pending` (subscription requests, the stanza as XML) |
//! | offline | `offline` (host, username, id, the stanza as XML, its size); ids and the queue's usage on the `accounts` row |
//! | archive | `archive`, in archive order by `seq`, indexed by (owner, seq), (owner, id), (owner, ts), (owner, with_bare, seq), (owner, with_full, seq) and (domain, ts); `archive_counts` (entries per owner) |
//! | account data, host data | `account_data`, `host_data`: one element, serialized, per key |
//! | service data | `service_data` (service, collection, key) → `bytea` |
//! | blobs | `blobs` (metadata) and `blob_chunks` (the bytes, 256 KiB per row) |
//!
//! Every table of an account references `accounts` with `ON DELETE
//! CASCADE`, so deleting an account is one transaction (its archive is
//! removed in the same one). The schema ships in the binary
//! (`migrations/*.sql`, see [`schema`]) and is brought up to date when the
//! store is opened.
//!
//! # The rules of the interface, here
//!
//! - **Durable on return**: every write is one statement in autocommit or
//!   one transaction, and its future resolves after PostgreSQL's `COMMIT`
//!   answered, which under `synchronous_commit = on` (the default) means
//!   the WAL is flushed. Group commit: a batch is one statement. The
//!   frequent writes (an offline message, an archive entry) are a single
//!   statement each, rows and counters together: one round trip.
//! - **Old or new, never torn**: transactions.
//! - **Refuse, never guess**: stored XML that does not parse, or a value
//!   outside what this crate writes, is `Corrupt`, naming the table.
//! - **Names**: parameters, never SQL text; escaped only for the one
//!   character text columns cannot hold (`names.rs`).
//! - **Errors**: a server that cannot be reached, a dropped connection:
//!   `Unavailable`, which callers treat as retriable (`errors.rs`).
//!
//! # Blobs in the database
//!
//! Blob bytes live in `blob_chunks` rather than in a directory beside the
//! database: several nodes on one database then see the same files with no
//! shared file system, and a backup of the database is a backup of
//! everything. A writer appends each chunk as it arrives (memory stays one
//! chunk) under an upload number drawn from a sequence; its commit writes
//! the `blobs` row in one transaction with the last chunk, so a blob is
//! visible whole or not at all. Chunks no blob row refers to are an upload
//! in progress or abandoned; those older than an hour are removed by
//! `list`, as the file backend removes its stray part files.
//!
//! # Connections
//!
//! A small pool of its own (`pool.rs`, which says why) over
//! `tokio-postgres` without TLS: the database is expected on the same
//! machine or a trusted network (`sslmode` other than `disable` or
//! `prefer` is refused at start-up).

mod accounts;
mod archive;
mod blobs;
mod errors;
mod inventory;
mod names;
mod offline;
mod pool;
pub mod schema;
#[cfg(feature = "scratch")]
pub mod scratch;
mod service;

use std::sync::Arc;

use switchboard_spool::store::{StoreError, StoreResult, Stores};
use switchboard_xml::Element;

pub use schema::Migrated;

/// How many connections a [`PgStores`] opens at most, unless told.
pub const DEFAULT_CONNECTIONS: usize = 16;

/// The PostgreSQL backend; [`PgStores::open`] hands out its [`Stores`].
#[derive(Clone)]
pub struct PgStores {
    pool: Arc<pool::Pool>,
}

impl std::fmt::Debug for PgStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStores")
            .field("target", &self.pool.target)
            .finish_non_exhaustive()
    }
}

impl PgStores {
    /// Connects to the database at `url` (`postgres://user@host:port/db`
    /// or libpq's `key=value` form), brings its schema up to date and
    /// returns the backend. Fails with `Unavailable` when the server
    /// cannot be reached or the database is not UTF-8.
    pub async fn open(url: &str, connections: usize) -> StoreResult<PgStores> {
        PgStores::open_with(url, connections, None).await
    }

    /// As [`PgStores::open`], with a password kept out of the URL.
    pub async fn open_with(
        url: &str,
        connections: usize,
        password: Option<&str>,
    ) -> StoreResult<PgStores> {
        let me = PgStores::connect_with(url, connections, password).await?;
        me.migrate_schema().await?;
        Ok(me)
    }

    /// As [`PgStores::open`], but leaves the schema as it is.
    pub async fn connect(url: &str, connections: usize) -> StoreResult<PgStores> {
        PgStores::connect_with(url, connections, None).await
    }

    /// As [`PgStores::connect`], with a password kept out of the URL.
    pub async fn connect_with(
        url: &str,
        connections: usize,
        password: Option<&str>,
    ) -> StoreResult<PgStores> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("the PostgreSQL URL does not read: {e}")))?;
        if let Some(p) = password {
            config.password(p);
        }
        use tokio_postgres::config::SslMode;
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(StoreError::Invalid(
                "this build connects to PostgreSQL without TLS: use sslmode=disable, \
                 over loopback, a Unix socket or a trusted network"
                    .into(),
            ));
        }
        let me = PgStores {
            pool: Arc::new(pool::Pool::new(config, connections)),
        };
        let mut conn = me.pool.get().await?;
        let encoding: String = conn
            .query_opt("reading the encoding", "SHOW server_encoding", &[])
            .await?
            .map(|r| r.get(0))
            .unwrap_or_default();
        if encoding != "UTF8" {
            return Err(StoreError::Unavailable(format!(
                "the database at {} has encoding {encoding}; Switchboard needs UTF8 \
                 (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)",
                me.pool.target
            )));
        }
        drop(conn);
        Ok(me)
    }

    /// Applies the migrations this binary has and the database lacks.
    pub async fn migrate_schema(&self) -> StoreResult<Migrated> {
        schema::migrate(&mut self.pool.get().await?).await
    }

    /// The database's schema version (0: none yet).
    pub async fn schema_version(&self) -> StoreResult<i32> {
        schema::version(&mut self.pool.get().await?).await
    }

    /// Gathers the planner's statistics now (`ANALYZE`), after a bulk
    /// load such as a migration, rather than when autovacuum comes by:
    /// until then the planner takes large archives for small ones.
    pub async fn analyze(&self) -> StoreResult<()> {
        let mut c = self.pool.get().await?;
        c.batch("gathering statistics", "ANALYZE").await
    }

    /// Where it connects (host, port, database, user), for messages.
    pub fn target(&self) -> &str {
        &self.pool.target
    }

    /// Every store of this backend.
    pub fn stores(&self) -> Stores {
        let me = Arc::new(self.clone());
        Stores {
            accounts: me.clone(),
            rosters: me.clone(),
            offline: me.clone(),
            archive: me.clone(),
            account_data: me.clone(),
            host_data: me.clone(),
            service_data: me.clone(),
            blobs: me,
        }
    }
}

/// Stored XML back as an element; `Corrupt` naming the table if it does
/// not parse.
pub(crate) fn parse_xml(table: &str, text: &str) -> StoreResult<Element> {
    switchboard_xml::parse_document(
        text.as_bytes(),
        switchboard_spool::file_spool::spool_limits(),
    )
    .map_err(|e| errors::corrupt(table, format!("stored XML does not parse: {}", e.error)))
}

/// An element as stored.
pub(crate) fn xml_text(el: &Element) -> String {
    String::from_utf8(el.to_bytes(None)).expect("the serializer writes UTF-8")
}

/// A stored name back, `Corrupt` if it is not one this crate wrote.
pub(crate) fn name(table: &str, stored: String) -> StoreResult<String> {
    names::dec(stored).map_err(|s| errors::corrupt(table, format!("a badly escaped name {s:?}")))
}

/// u64 → bigint, for values the interface gives as u64.
pub(crate) fn to_i64(what: &str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is too large")))
}

#[cfg(test)]
mod tests {
    /// The URL forms the README shows read as it says.
    #[test]
    fn urls_for_tcp_and_unix_sockets() {
        use tokio_postgres::config::Host;
        let c: tokio_postgres::Config = "postgres://switchboard@127.0.0.1:5432/switchboard"
            .parse()
            .unwrap();
        assert_eq!(c.get_hosts(), [Host::Tcp("127.0.0.1".into())]);
        assert_eq!(c.get_ports(), [5432]);
        let c: tokio_postgres::Config =
            "postgresql:///switchboard?user=switchboard&host=/run/postgresql"
                .parse()
                .unwrap();
        assert_eq!(c.get_hosts(), [Host::Unix("/run/postgresql".into())]);
        assert_eq!(c.get_dbname(), Some("switchboard"));
        assert_eq!(c.get_user(), Some("switchboard"));
    }
}
