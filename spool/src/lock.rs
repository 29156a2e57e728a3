//! An exclusive lock on a lock file with `flock(2)`, good across processes
//! and across threads of one process.
//!
//! `flock` locks belong to an open file description, so two `open`s of the
//! same file conflict even inside one process: each acquisition opens the
//! file afresh, and no in-process mutex is needed on top. The file is opened
//! close-on-exec (Rust's default), so a child process started while a lock
//! is held does not inherit it. The lock is released when the [`FileLock`]
//! is dropped, or when the process dies, so a crashed writer never leaves a
//! stale lock behind.
//!
//! Lock files may be removed ([`FileLock::unlink`]) without racing other
//! lockers: after locking, [`FileLock::acquire`] checks that the path still
//! names the inode it locked, and starts over if the file was unlinked or
//! replaced in the meantime. Whoever unlinks does so while holding the lock.
//!
//! `flock` is advisory and, on some network file systems, local only; the
//! spool is meant to live on a local disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A held exclusive lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    /// Never read: the open file description is what holds the lock, and
    /// closing it (on drop) releases it.
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the lock file at `path` (created, mode 0600, if missing)
    /// is locked exclusively.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        loop {
            let file = open_lock_file(path)?;
            flock(&file, libc::LOCK_EX)?;
            if still_linked(&file, path)? {
                return Ok(FileLock {
                    _file: file,
                    path: path.to_owned(),
                });
            }
        }
    }

    /// Like [`FileLock::acquire`], but returns `None` at once if someone
    /// else holds the lock.
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        loop {
            let file = open_lock_file(path)?;
            match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(None),
                Err(e) => return Err(e),
            }
            if still_linked(&file, path)? {
                return Ok(Some(FileLock {
                    _file: file,
                    path: path.to_owned(),
                }));
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock file, then releases the lock. Anyone waiting on the
    /// removed file notices and locks a fresh one.
    pub fn unlink(self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        // `self._file` is dropped here, after the unlink, which releases the
        // lock.
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: `flock` only reads the descriptor number, which `file`
        // keeps open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // A signal may interrupt a blocking wait; that is not a failure.
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether `path` still names the file `file` has open. It does not if a
/// previous holder unlinked it between our `open` and our `flock`.
fn still_linked(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn second_open_file_description_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::acquire(&path).unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn waiter_survives_unlink_and_gets_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::acquire(&path).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (path, got) = (path.clone(), got.clone());
            std::thread::spawn(move || {
                let lock = FileLock::acquire(&path).unwrap();
                got.store(true, Ordering::SeqCst);
                lock
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!got.load(Ordering::SeqCst), "lock was not exclusive");
        held.unlink().unwrap();
        let lock = waiter.join().unwrap();
        // The waiter holds a lock on the file now at the path, so a third
        // party is excluded too.
        assert!(path.exists());
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(lock);
    }
}
