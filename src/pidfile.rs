//! The pidfile: written at start, removed at clean exit. A pidfile whose
//! process is gone (a crash, a reboot) is replaced with a warning instead of
//! blocking start-up as jabberd's did; a live one stops start-up.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct PidFile {
    path: PathBuf,
}

/// Whether a process with this pid exists (signal 0 probes without
/// sending; EPERM means it exists but belongs to someone else).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for the process' existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile, String> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    return Ok(PidFile {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(path).unwrap_or_default();
                    match text.trim().parse::<i32>() {
                        Ok(pid) if alive(pid) && pid as u32 != std::process::id() => {
                            return Err(format!(
                                "another Switchboard is running with this home (pid {pid}, from {}); stop it first, or use another -H",
                                path.display()
                            ));
                        }
                        _ => {
                            tracing::warn!(
                                "removing stale pidfile {} (it named {:?}, which is not running)",
                                path.display(),
                                text.trim()
                            );
                            fs::remove_file(path)
                                .map_err(|e| format!("{}: {e}", path.display()))?;
                        }
                    }
                }
                Err(e) => return Err(format!("cannot write the pidfile {}: {e}", path.display())),
            }
        }
        Err(format!(
            "cannot create the pidfile {}: it keeps reappearing",
            path.display()
        ))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
