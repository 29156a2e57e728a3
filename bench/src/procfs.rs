//! Readings of a process from `/proc` (Linux): resident memory from
//! `/proc/PID/status`, CPU time from `/proc/PID/stat`, open files and
//! sockets from `/proc/PID/fd`.

use std::time::Duration;

/// Memory figures of `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident set now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident set.
    pub hwm_kib: u64,
    /// `Threads`.
    pub threads: u64,
}

/// Reads the memory figures of `pid` ("self" for this process).
pub fn memory(pid: &str) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_status(&text).ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// Parses the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Option<Memory> {
    let mut m = Memory::default();
    let mut seen = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let n = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match (key, n) {
            ("VmRSS", Some(n)) => {
                m.rss_kib = n;
                seen = true;
            }
            ("VmHWM", Some(n)) => m.hwm_kib = n,
            ("Threads", Some(n)) => m.threads = n,
            _ => {}
        }
    }
    seen.then_some(m)
}

/// User plus system CPU time consumed by `pid` ("self" for this process).
pub fn cpu_time(pid: &str) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| format!("{path}: unexpected format"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" come field 3 (state) onwards: utime is field 14, stime 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// How many file descriptors `pid` has open, of every kind.
pub fn open_fds(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/fd");
    let dir = std::fs::read_dir(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(dir.filter_map(Result::ok).count() as u64)
}

/// How many sockets `pid` has open (files it has open for a moment, such
/// as spool reads, are not counted).
pub fn open_sockets(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/fd");
    let dir = std::fs::read_dir(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(dir
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count() as u64)
}

/// Raises this process's soft limit on open files to its hard limit and
/// returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim = wanted;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let t = "Name:\tswitchboard\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(t),
            Some(Memory {
                rss_kib: 10240,
                hwm_kib: 20480,
                threads: 3
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn parses_stat_with_odd_names() {
        let t = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10 0";
        assert_eq!(parse_stat_ticks(t), Some(300));
    }

    #[test]
    fn reads_own_process() {
        assert!(memory("self").unwrap().rss_kib > 0);
        assert!(cpu_time("self").is_ok());
        assert!(open_sockets("self").is_ok());
    }
}
