//! A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks
//! (feature `scratch`): `initdb` into a temporary directory, `postgres`
//! on a free port, one fresh database per [`ScratchCluster::database`].
//!
//! The programs are PostgreSQL's own: `$SWITCHBOARD_PG_BINDIR`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/<n>/bin`
//! (Debian's layout), else the `PATH`. Without them the caller panics with
//! one line naming the Debian package. PostgreSQL refuses to run as root:
//! as root the cluster runs as the `postgres` user (the Debian package
//! creates it), else as `nobody`, and the directory is handed to that
//! user.
//!
//! The server dies with the process: it is killed (SIGINT, a fast
//! shutdown) when the [`ScratchCluster`] is dropped, at process exit for
//! the shared one ([`ScratchCluster::shared`]), and by the kernel if the
//! process dies first (`PR_SET_PDEATHSIG`, armed from a thread that lives
//! as long as the process).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the tests say when PostgreSQL is missing.
pub const MISSING: &str =
    "PostgreSQL is not installed: the PostgreSQL tests need the Debian package postgresql (apt-get install postgresql)";

/// A running scratch cluster.
pub struct ScratchCluster {
    child: Mutex<Option<Child>>,
    dir: Option<tempfile::TempDir>,
    port: u16,
    next: AtomicU32,
    bindir: PathBuf,
}

/// How the cluster is tuned.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `fsync` on: commits reach the disk (benchmarks); off for tests,
    /// which do not crash the machine and run faster.
    pub fsync: bool,
}

fn bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("SWITCHBOARD_PG_BINDIR") {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| has(d)))
}

/// The user to run as when we are root: (uid, gid).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in [c"postgres", c"nobody"] {
        // SAFETY: a NUL-terminated name; the result is read at once.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null, as returned by getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    panic!("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as");
}

fn command(bindir: &Path, program: &str, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bindir.join(program));
    if let Some((uid, gid)) = user {
        // The standard library also drops root's supplementary groups.
        c.uid(uid).gid(gid);
    }
    c.env_remove("PGDATA").env("LC_ALL", "C");
    // A working directory the server's user can enter (the caller's may
    // be a home it cannot).
    c.current_dir(std::env::temp_dir());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl ScratchCluster {
    /// Starts a cluster; panics with [`MISSING`] without PostgreSQL, or
    /// with the server's log if it does not start.
    pub fn start(options: Options) -> ScratchCluster {
        let bindir = bindir().unwrap_or_else(|| panic!("{MISSING}"));
        let user = run_as();
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .expect("a temporary directory");
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let out = command(&bindir, "initdb", user)
            .args([
                "-A",
                "trust",
                "-U",
                "switchboard",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg("--no-sync")
            .arg("-D")
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // From a thread that outlives every caller: the death signal
        // follows the thread that forked, and this one ends with the
        // process.
        let (tx, rx) = std::sync::mpsc::channel();
        let log = dir.path().join("postgres.log");
        let (b, d, l) = (bindir.clone(), data.clone(), log.clone());
        let fsync = if options.fsync { "on" } else { "off" };
        std::thread::spawn(move || {
            let mut last = None;
            for _ in 0..5 {
                let port = free_port();
                let logfile = std::fs::File::create(&l).expect("the log file");
                if let Some((uid, gid)) = user {
                    let _ = std::os::unix::fs::chown(&l, Some(uid), Some(gid));
                }
                let mut cmd = command(&b, "postgres", user);
                cmd.arg("-D")
                    .arg(&d)
                    .args(["-p", &port.to_string()])
                    .args(["-c", "listen_addresses=127.0.0.1"])
                    .arg("-c")
                    .arg(format!("unix_socket_directories={}", d.display()))
                    .args(["-c", &format!("fsync={fsync}")])
                    .args(["-c", "max_connections=200"])
                    .args(["-c", "shared_buffers=64MB"])
                    .stdin(Stdio::null())
                    .stdout(logfile.try_clone().expect("log"))
                    .stderr(logfile);
                // SAFETY: prctl between fork and exec touches no memory.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                        Ok(())
                    });
                }
                let mut child = cmd.spawn().expect("running postgres");
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        last = Some(read_log(&l));
                        break;
                    }
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                        && accepting(&b, port)
                    {
                        tx.send(Ok((child, port))).expect("the caller waits");
                        loop {
                            std::thread::park();
                        }
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        last = Some(format!("not ready within 30 s\n{}", read_log(&l)));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = tx.send(Err(last.unwrap_or_default()));
        });
        let (child, port) = match rx.recv().expect("the starter answers") {
            Ok(started) => started,
            Err(log) => panic!("PostgreSQL did not start:\n{log}"),
        };
        ScratchCluster {
            child: Mutex::new(Some(child)),
            dir: Some(dir),
            port,
            next: AtomicU32::new(0),
            bindir,
        }
    }

    /// One cluster for the whole test process, stopped at its exit.
    pub fn shared() -> &'static ScratchCluster {
        static SHARED: OnceLock<ScratchCluster> = OnceLock::new();
        static SHARED_REF: OnceLock<&'static ScratchCluster> = OnceLock::new();
        extern "C" fn stop() {
            if let Some(c) = SHARED_REF.get() {
                c.stop();
                if let Some(dir) = &c.dir {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
            }
        }
        let c = SHARED.get_or_init(|| ScratchCluster::start(Options { fsync: false }));
        SHARED_REF.get_or_init(|| {
            // SAFETY: registering a plain function, once.
            unsafe { libc::atexit(stop) };
            c
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://switchboard@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} ENCODING 'UTF8'"),
        );
        self.url(&name)
    }

    /// The name of the database a [`ScratchCluster::url`] leads to.
    pub fn name_of(url: &str) -> &str {
        let tail = url.rsplit('/').next().unwrap_or(url);
        tail.split('?').next().unwrap_or(tail)
    }

    /// Runs SQL as the superuser in a database of the cluster (through
    /// `psql`).
    pub fn psql(&self, database: &str, sql: &str) {
        let mut psql = self.bindir.join("psql");
        if !psql.is_file() {
            psql = PathBuf::from("psql");
        }
        let out = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "switchboard",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (a fast shutdown) and waits for it.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        self.stop();
        drop(self.dir.take());
    }
}

/// Whether the server accepts connections (not merely listening while it
/// starts up).
fn accepting(bindir: &Path, port: u16) -> bool {
    Command::new(bindir.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
