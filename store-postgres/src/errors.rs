//! PostgreSQL's errors as [`StoreError`]s. A server that cannot be
//! reached, a dropped connection or a timeout is `Unavailable` (retriable:
//! nothing is known to have been written); a full disk or an exceeded
//! limit is `Full`; a stored value that does not read back is `Corrupt`.

use switchboard_spool::store::StoreError;
use tokio_postgres::error::SqlState;

/// What went wrong, in words for the log, with what was being done.
pub(crate) fn map(what: &str, e: tokio_postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => format!(
            "PostgreSQL, {what}: {} ({})",
            db.message(),
            db.code().code()
        ),
        None => format!("PostgreSQL, {what}: {e}"),
    };
    match e.code() {
        Some(c)
            if *c == SqlState::DISK_FULL
                || *c == SqlState::INSUFFICIENT_RESOURCES
                || *c == SqlState::OUT_OF_MEMORY
                || *c == SqlState::PROGRAM_LIMIT_EXCEEDED
                || *c == SqlState::STRING_DATA_RIGHT_TRUNCATION =>
        {
            StoreError::Full(text)
        }
        _ => StoreError::Unavailable(text),
    }
}

/// Whether `e` is a unique-key violation (an insert of what exists).
pub(crate) fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A stored value that does not read back.
pub(crate) fn corrupt(table: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("PostgreSQL table {table}: {what}"))
}
