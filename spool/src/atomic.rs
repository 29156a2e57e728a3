//! Crash-safe file replacement: write a temporary file next to the target,
//! flush it to disk, rename it over the target, flush the directory.
//!
//! `rename(2)` within one directory is atomic, so at every instant the
//! target holds either its old or its new content, never a torn mix; the
//! `fsync` of the file before the rename makes sure the new name never
//! points at data still in flight, and the `fsync` of the directory after
//! it makes the rename itself durable. A crash can leave a temporary file
//! behind; its name starts with `.` and contains `.tmp.`, so listings skip
//! it and [`crate::FileSpool::open`] removes it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique among the threads of this process; the pid
/// makes them unique among processes.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The marker between a temporary file's stem and its pid and counter.
pub const TMP_MARK: &str = ".tmp.";

/// A temporary file's name for the file stem `stem`:
/// `.<stem>.tmp.<pid>.<counter>`.
pub fn temp_name(stem: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{stem}{TMP_MARK}{}.{n}", std::process::id())
}

/// The stem of a name made by [`temp_name`], or `None` if `name` is not one.
pub fn temp_stem(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let mut parts = rest.rsplitn(3, '.');
    let counter = parts.next()?;
    let pid = parts.next()?;
    let stem = parts.next()?.strip_suffix(".tmp")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(counter) && digits(pid) && !stem.is_empty()).then_some(stem)
}

/// A failed step and the path it failed on.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Replaces (or creates) `dir/file_name` with `bytes`, mode 0600, using a
/// temporary file named after `stem`. The caller holds the lock that
/// serializes writers of this file.
pub fn replace_file(
    dir: &Path,
    file_name: &str,
    stem: &str,
    bytes: &[u8],
) -> Result<(), WriteError> {
    replace_file_with(dir, file_name, stem, &mut |w| w.write_all(bytes))
}

/// [`replace_file`] for content too large to hold in memory at once (a
/// log being compacted): `write` streams it into the temporary file.
pub fn replace_file_with(
    dir: &Path,
    file_name: &str,
    stem: &str,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), WriteError> {
    let target = dir.join(file_name);
    let tmp = dir.join(temp_name(stem));
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { path, source }
    };
    let written = write_new(&tmp, write)
        .map_err(fail(&tmp))
        .and_then(|()| std::fs::rename(&tmp, &target).map_err(fail(&target)));
    if let Err(e) = written {
        // Best effort: the temporary file is garbage either way, and the
        // original error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(fail(dir))
}

/// Creates `path` (which must not exist), writes it with `write` and
/// flushes it to disk.
fn write_new(
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut out = io::BufWriter::with_capacity(256 * 1024, file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Flushes a directory's entries (a rename, an unlink, a new entry) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_names_parse_back() {
        let n = temp_name("a.tmp.1.2");
        assert!(n.starts_with(".a.tmp.1.2.tmp."));
        assert_eq!(temp_stem(&n), Some("a.tmp.1.2"));
        assert_ne!(temp_name("x"), temp_name("x"));
        for not in [
            "a.xml",
            ".locks",
            ".x.tmp.1",
            ".x.tmp.1.b",
            "..tmp.1.2",
            ".x.tmq.1.2",
        ] {
            assert_eq!(temp_stem(not), None, "{not}");
        }
    }

    #[test]
    fn replaces_with_mode_0600_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        replace_file(dir.path(), "f.xml", "f", b"one").unwrap();
        replace_file(dir.path(), "f.xml", "f", b"two").unwrap();
        let path = dir.path().join("f.xml");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.xml"]);
    }

    #[test]
    fn failed_rename_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory in the way makes the rename fail.
        std::fs::create_dir_all(dir.path().join("f.xml/sub")).unwrap();
        let err = replace_file(dir.path(), "f.xml", "f", b"x").unwrap_err();
        assert_eq!(err.path, dir.path().join("f.xml"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.xml"]);
    }
}
