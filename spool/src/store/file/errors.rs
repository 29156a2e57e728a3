//! How the spool's file errors become [`StoreError`]s: a full disk or
//! quota is `Full` (the client may try again later), anything else the
//! file system says is `Unavailable`, a file that does not read is
//! `Corrupt` with its path, line and column, a record the spool refused to
//! write is `Invalid`.

use std::io;

use crate::store::StoreError;
use crate::SpoolError;

impl From<SpoolError> for StoreError {
    fn from(e: SpoolError) -> StoreError {
        match e {
            SpoolError::Io { ref source, .. } => {
                let text = e.to_string();
                match source.raw_os_error() {
                    Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => StoreError::Full(text),
                    _ if source.kind() == io::ErrorKind::InvalidInput => StoreError::Invalid(text),
                    _ => StoreError::Unavailable(text),
                }
            }
            SpoolError::Corrupt { .. } => StoreError::Corrupt(e.to_string()),
            SpoolError::AlreadyExists => StoreError::AlreadyExists,
            SpoolError::NotFound => StoreError::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn io(errno: i32) -> SpoolError {
        SpoolError::Io {
            path: PathBuf::from("/s/a.xml"),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn disk_full_is_full_and_other_failures_unavailable() {
        assert!(
            matches!(StoreError::from(io(libc::ENOSPC)), StoreError::Full(m) if m.starts_with("/s/a.xml"))
        );
        assert!(matches!(
            StoreError::from(io(libc::EDQUOT)),
            StoreError::Full(_)
        ));
        assert!(matches!(
            StoreError::from(io(libc::EIO)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(io(libc::EACCES)),
            StoreError::Unavailable(_)
        ));
        let corrupt = SpoolError::Corrupt {
            path: PathBuf::from("/s/a.xml"),
            line: 3,
            col: 7,
            message: "bad".into(),
        };
        assert_eq!(
            StoreError::from(corrupt),
            StoreError::Corrupt("/s/a.xml:3:7: bad".into())
        );
    }
}
