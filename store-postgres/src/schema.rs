//! The schema and its migrations, shipped in the binary: one SQL file per
//! version under `migrations/`, applied in order, each in the transaction
//! that also records it in `schema_version`. The migrations are applied
//! when the server opens the store and by `switchboard storage
//! migrate-schema`; several nodes starting at once take turns on an
//! advisory lock. A database written by a newer release (a version this
//! binary does not know) is refused rather than used.

use switchboard_spool::store::{StoreError, StoreResult};

use crate::pool::Conn;

/// Every migration, in order: version `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_initial.sql",
    include_str!("../migrations/0001_initial.sql"),
)];

/// The schema version this binary writes.
pub const CURRENT: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key the migrations take (an arbitrary constant:
/// "SWBD" in ASCII).
const LOCK: i64 = 0x5357_4244;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0 for an empty database).
    pub from: i32,
    /// The version now.
    pub to: i32,
}

pub(crate) async fn migrate(conn: &mut Conn<'_>) -> StoreResult<Migrated> {
    conn.begin().await?;
    conn.execute(
        "locking the schema",
        "SELECT pg_advisory_xact_lock($1)",
        &[&LOCK],
    )
    .await?;
    conn.batch(
        "creating schema_version",
        "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    )
    .await?;
    let from: i32 = conn
        .query_opt(
            "reading the schema version",
            "SELECT max(version) FROM schema_version",
            &[],
        )
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    if from > CURRENT {
        conn.rollback().await?;
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {from}, written by a newer release; \
             this one knows versions up to {CURRENT}"
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        conn.batch(&format!("applying migration {name}"), sql)
            .await?;
        let version = i as i32 + 1;
        conn.execute(
            "recording the schema version",
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!("PostgreSQL: applied schema migration {name}");
    }
    conn.commit().await?;
    Ok(Migrated { from, to: CURRENT })
}

/// The version a database has, without changing it.
pub(crate) async fn version(conn: &mut Conn<'_>) -> StoreResult<i32> {
    let exists = conn
        .query_opt(
            "looking for schema_version",
            "SELECT to_regclass('schema_version') IS NOT NULL",
            &[],
        )
        .await?
        .is_some_and(|r| r.get::<_, bool>(0));
    if !exists {
        return Ok(0);
    }
    Ok(conn
        .query_opt(
            "reading the schema version",
            "SELECT max(version) FROM schema_version",
            &[],
        )
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0))
        .unwrap_or(0))
}
