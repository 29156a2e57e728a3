//! Running the real `switchboard` binary: locating (and if needed building)
//! it, writing a config into a fresh temporary home, starting it, reading
//! its `listening …` / `ready` lines, running its CLI subcommands, sending
//! it signals, and stopping it on drop.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::{HOST, WAIT};

/// The path of the `switchboard` binary, built on first use (see the crate
/// docs). Panics with the build output if it cannot be had.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_binary) {
        Ok(path) => path,
        Err(e) => panic!("cannot find the switchboard binary: {e}"),
    }
}

fn locate_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("SWITCHBOARD_BIN={} is not a file", path.display()))
        };
    }
    // A test executable lives at <target-dir>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let bin = profile_dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));

    if std::env::var_os("SWITCHBOARD_NO_BUILD").is_none() {
        build_binary(target_dir, &profile)?;
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} does not exist (build it with `cargo build -p switchboard` or set SWITCHBOARD_BIN)",
            bin.display()
        ))
    }
}

/// `cargo build -p switchboard` into the test executable's own target
/// directory and profile, bounded in time.
fn build_binary(target_dir: &Path, profile: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "switchboard", "--bin", "switchboard"]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().map_err(|e| format!("temp file: {e}"))?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    // A first build of the whole server on two cores takes a while; this is
    // set-up, not a wait on the server under test.
    let status = wait_bounded(&mut child, Duration::from_secs(30 * 60))
        .ok_or_else(|| "cargo build -p switchboard took over 30 minutes".to_owned())?;
    if status.success() {
        Ok(())
    } else {
        let out = fs::read_to_string(log.path()).unwrap_or_default();
        Err(format!(
            "cargo build -p switchboard failed ({status}):\n{out}"
        ))
    }
}

/// Waits for `child` at most `timeout`; kills it (and reaps it) when the
/// time is up and returns `None` then.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The default config, one top-level element per entry, in file order. A
/// snippet given to [`ServerBuilder::config`] replaces the entry with the
/// same element name (or is appended).
const DEFAULT_CONFIG: &[&str] = &[
    r#"<host name="localhost"><registration>open</registration></host>"#,
    r#"<listen><c2s addr="127.0.0.1:0"/><c2s-tls addr="127.0.0.1:0"/></listen>"#,
    r#"<tls required="true"/>"#,
    r#"<limits max-stanza-bytes="262144" preauth-timeout="60s" keepalive="60s" scram-iterations="4096"/>"#,
    r#"<spool dir="spool"/>"#,
    r#"<log file="logs/switchboard.log" level="info"/>"#,
    r#"<pidfile>run/switchboard.pid</pidfile>"#,
];

/// The element name a config snippet starts with (`<limits …/>` → `limits`).
fn snippet_name(snippet: &str) -> String {
    let s = snippet.trim_start();
    let s = s.strip_prefix('<').unwrap_or(s);
    s.chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect()
}

type Prepare = Box<dyn FnOnce(&Path) + Send>;

/// Builds a [`TestServer`]: config snippets, an optional existing home,
/// files to put in place and users to create before start-up.
pub struct ServerBuilder {
    config: Vec<(String, String)>,
    home: Option<PathBuf>,
    prepare: Vec<Prepare>,
    users: Vec<(String, String)>,
    debug: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// The default config (see [`DEFAULT_CONFIG`]) in a fresh temporary home.
    pub fn new() -> Self {
        ServerBuilder {
            config: DEFAULT_CONFIG
                .iter()
                .map(|s| (snippet_name(s), (*s).to_owned()))
                .collect(),
            home: None,
            prepare: Vec::new(),
            users: Vec::new(),
            debug: false,
        }
    }

    /// Replaces the top-level config element of the same name with
    /// `snippet`, or appends it.
    pub fn config(mut self, snippet: &str) -> Self {
        let name = snippet_name(snippet);
        match self.config.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = snippet.to_owned(),
            None => self.config.push((name, snippet.to_owned())),
        }
        self
    }

    /// Appends `snippet` even if an element of the same name is there
    /// (several `<service>`s).
    pub fn also(mut self, snippet: &str) -> Self {
        self.config
            .push((snippet_name(snippet), snippet.to_owned()));
        self
    }

    /// Drops the top-level config element `name` from the config.
    pub fn without(mut self, name: &str) -> Self {
        self.config.retain(|(n, _)| n != name);
        self
    }

    /// Uses an existing home directory (it is not deleted afterwards). The
    /// config is written there under a name not yet taken.
    pub fn home(mut self, home: &Path) -> Self {
        self.home = Some(home.to_owned());
        self
    }

    /// Runs `f(home)` after the config is written, before start-up.
    pub fn prepare(mut self, f: impl FnOnce(&Path) + Send + 'static) -> Self {
        self.prepare.push(Box::new(f));
        self
    }

    /// Creates a user with `switchboard user add` before start-up.
    pub fn user(mut self, jid: &str, password: &str) -> Self {
        self.users.push((jid.to_owned(), password.to_owned()));
        self
    }

    /// Runs the server with `-D` (every stanza logged, secrets masked).
    pub fn debug(mut self) -> Self {
        self.debug = true;
        self
    }

    /// The config file's text.
    pub fn config_xml(&self) -> String {
        let mut out = String::from("<switchboard>\n");
        for (_, snippet) in &self.config {
            out.push_str("  ");
            out.push_str(snippet);
            out.push('\n');
        }
        out.push_str("</switchboard>\n");
        out
    }

    /// Starts the server and waits (at most [`WAIT`]) for `ready`.
    /// Panics with the server's output if it does not get there.
    pub fn start(self) -> TestServer {
        match self.try_start() {
            Ok(server) => server,
            Err(e) => panic!("switchboard did not start: {e}"),
        }
    }

    /// Starts the server; an error carries what it printed if it exited or
    /// did not become ready within [`WAIT`].
    pub fn try_start(self) -> Result<TestServer, StartError> {
        let bin = binary().to_owned();
        let xml = self.config_xml();
        let (temp, home) = match self.home {
            Some(home) => (None, home),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("switchboard-it-")
                    .tempdir()
                    .expect("cannot create a temporary home");
                let path = dir.path().to_owned();
                (Some(dir), path)
            }
        };
        fs::create_dir_all(home.join("etc")).expect("cannot create HOME/etc");
        let config_path = unused_path(&home.join("etc"), "switchboard", "xml");
        fs::write(&config_path, xml).expect("cannot write the config");
        for f in self.prepare {
            f(&home);
        }
        let mut server = TestServer {
            _temp: temp,
            home,
            config_path,
            child: None,
            listeners: Vec::new(),
            stdout: Arc::new(Mutex::new(Vec::new())),
            stderr_path: PathBuf::new(),
            debug: self.debug,
        };
        for (jid, password) in &self.users {
            let out = server.cli(&["user", "add", jid], Some(&format!("{password}\n")));
            if !out.status.success() {
                return Err(StartError {
                    reason: format!("`user add {jid}` failed: {out}"),
                    status: None,
                    stdout: String::new(),
                    stderr: String::new(),
                });
            }
        }
        server.spawn(&bin)?;
        Ok(server)
    }
}

/// A fresh `dir/stem.ext`, or `dir/stem-N.ext` if that is taken.
fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.{ext}"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}.{ext}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// Why a server did not become ready.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong, in words.
    pub reason: String,
    /// The exit status, if it exited.
    pub status: Option<ExitStatus>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.reason, self.stdout, self.stderr
        )
    }
}

/// What a CLI subcommand did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `switchboard ARGS…` with `stdin` fed to it, at most [`WAIT`].
/// Panics if it does not finish in time.
pub fn run_cli(args: &[&str], stdin: Option<&str>) -> CliOutput {
    run_cli_with(args, stdin.unwrap_or("").as_bytes(), &[])
}

/// Runs `switchboard ARGS…` with `stdin` (any bytes) fed to it and `env`
/// added to its environment, at most [`WAIT`]. The variables of
/// `switchboard send`'s account are never inherited from the test's own
/// environment. Panics if it does not finish in time.
pub fn run_cli_with(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> CliOutput {
    let mut cmd = Command::new(binary());
    cmd.env_remove("SWITCHBOARD_SEND_JID")
        .env_remove("SWITCHBOARD_SEND_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run switchboard");
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_owned();
    // The child may exit without reading; a broken pipe here is fine.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&text);
    });
    let out = read_all_thread(child.stdout.take().expect("piped stdout"));
    let err = read_all_thread(child.stderr.take().expect("piped stderr"));
    let status = wait_bounded(&mut child, WAIT).unwrap_or_else(|| {
        panic!(
            "`switchboard {}` did not exit within {WAIT:?}",
            args.join(" ")
        )
    });
    let _ = writer.join();
    CliOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn read_all_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A running `switchboard` process in its own temporary home. Dropping it
/// sends SIGTERM, then SIGKILL if it has not exited within 5 s.
pub struct TestServer {
    _temp: Option<tempfile::TempDir>,
    home: PathBuf,
    config_path: PathBuf,
    child: Option<Child>,
    listeners: Vec<(String, SocketAddr)>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
    debug: bool,
}

impl TestServer {
    /// Starts a server with the default config, with each of `snippets`
    /// replacing the default element of the same name.
    pub fn start(snippets: &[&str]) -> TestServer {
        snippets
            .iter()
            .fold(ServerBuilder::new(), |b, s| b.config(s))
            .start()
    }

    fn spawn(&mut self, bin: &Path) -> Result<(), StartError> {
        self.stderr_path = unused_path(&self.home, "stderr", "log");
        let stderr = fs::File::create(&self.stderr_path).expect("cannot create the stderr file");
        let mut cmd = Command::new(bin);
        if self.debug || std::env::var_os("SWITCHBOARD_IT_DEBUG").is_some() {
            // Log every stanza in and out (into the log and stderr files).
            cmd.arg("-D");
        }
        let mut child = cmd
            .arg("-H")
            .arg(&self.home)
            .arg("-c")
            .arg(&self.config_path)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot run switchboard");
        let (tx, rx) = mpsc::channel();
        spawn_stdout_reader(
            child.stdout.take().expect("piped stdout"),
            self.stdout.clone(),
            tx,
        );
        self.child = Some(child);

        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if line == "ready" {
                        if self.listeners.is_empty() {
                            return Err(
                                self.start_failed("`ready` came before any `listening` line")
                            );
                        }
                        return Ok(());
                    }
                    if let Some(rest) = line.strip_prefix("listening ") {
                        let mut parts = rest.split_whitespace();
                        if let (Some(kind), Some(addr)) = (parts.next(), parts.next()) {
                            match addr.parse() {
                                Ok(addr) => self.listeners.push((kind.to_owned(), addr)),
                                Err(_) => {
                                    return Err(self.start_failed(&format!(
                                        "cannot parse the address in {line:?}"
                                    )))
                                }
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.start_failed("stdout closed before `ready`"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.start_failed(&format!("no `ready` within {WAIT:?}")));
                }
            }
        }
    }

    /// Stops the process (if it runs) and describes what happened.
    fn start_failed(&mut self, reason: &str) -> StartError {
        let status = self.child.as_mut().and_then(|c| {
            // It may be exiting on its own: give it a moment before forcing.
            match wait_bounded_no_kill(c, Duration::from_secs(5)) {
                Some(s) => Some(s),
                None => {
                    let _ = c.kill();
                    c.wait().ok()
                }
            }
        });
        self.child = None;
        StartError {
            reason: reason.to_owned(),
            status,
            stdout: self.stdout_text(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        }
    }

    /// The server's home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server process").id()
    }

    /// Every `listening KIND ADDR` line, in order.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The first listener of `kind` (`c2s`, `c2s-tls`, …).
    pub fn listener(&self, kind: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no `listening {kind}` line in {:?}", self.listeners))
    }

    /// The STARTTLS client listener.
    pub fn c2s(&self) -> SocketAddr {
        self.listener("c2s")
    }

    /// The direct-TLS client listener.
    pub fn c2s_tls(&self) -> SocketAddr {
        self.listener("c2s-tls")
    }

    /// `HOME/etc/localhost.crt`: the certificate the server generated.
    pub fn cert_path(&self) -> PathBuf {
        self.home.join("etc").join(format!("{HOST}.crt"))
    }

    /// The pidfile of the default config.
    pub fn pidfile(&self) -> PathBuf {
        self.home.join("run").join("switchboard.pid")
    }

    /// A rustls client config that trusts exactly the server's certificate.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        trusting(&self.cert_path())
    }

    /// Runs `switchboard -H HOME -c CONFIG ARGS…` (at most [`WAIT`]).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let home = self.home.to_str().expect("UTF-8 temp path");
        let config = self.config_path.to_str().expect("UTF-8 temp path");
        let mut all = vec!["-H", home, "-c", config];
        all.extend_from_slice(args);
        run_cli(&all, stdin)
    }

    /// `switchboard user add JID` with the password on stdin; panics unless
    /// it exits 0.
    pub fn add_user(&self, jid: &str, password: &str) {
        let out = self.cli(&["user", "add", jid], Some(&format!("{password}\n")));
        assert!(out.status.success(), "`user add {jid}` failed: {out}");
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits at most `timeout` for the process to exit (without killing it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        wait_bounded_no_kill(child, timeout)
    }

    /// SIGTERM, then waits at most [`WAIT`] for the exit status; panics
    /// (after SIGKILL) if it does not exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        match self.wait_exit(WAIT) {
            Some(status) => status,
            None => {
                let diag = self.diagnostics();
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("switchboard did not exit within {WAIT:?} of SIGTERM\n{diag}");
            }
        }
    }

    /// Everything the server printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The log file of the default config.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.home.join("logs").join("switchboard.log")).unwrap_or_default()
    }

    /// The log file's lines that contain every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits (at most [`WAIT`]) until the log file has a line containing
    /// every one of `parts`, and returns the first; panics with the
    /// server's diagnostics otherwise. For waiting on an event the server
    /// logs only once it has happened (a reload, a component's departure),
    /// instead of waiting a fixed time.
    pub fn wait_for_log(&self, parts: &[&str]) -> String {
        self.wait_for_log_lines(parts, 1).swap_remove(0)
    }

    /// Waits (at most [`WAIT`]) until at least `n` log lines contain every
    /// one of `parts`; returns them all. Panics as [`Self::wait_for_log`].
    pub fn wait_for_log_lines(&self, parts: &[&str], n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.log_lines(parts);
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} log line(s) with {parts:?} within {WAIT:?}, wanted {n}\n{}",
                    lines.len(),
                    self.diagnostics()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// stdout, stderr and the last part of the log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = self.log_text();
        let tail: String = {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        format!(
            "--- switchboard stdout ---\n{}\n--- switchboard stderr ---\n{}\n--- log (tail) ---\n{}",
            self.stdout_text(),
            self.stderr_text(),
            tail
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
                }
                if wait_bounded_no_kill(child, Duration::from_secs(5)).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

fn wait_bounded_no_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads stdout line by line for as long as the process keeps it open, so
/// the server never blocks on a full pipe; forwards each line to `tx`.
fn spawn_stdout_reader(out: ChildStdout, all: Arc<Mutex<Vec<String>>>, tx: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut all) = all.lock() {
                all.push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
}

/// A rustls client config whose only trust anchor is the PEM certificate
/// (or certificates) in `cert_pem`: what a client does when its operator
/// pins the server's self-signed certificate.
pub fn trusting(cert_pem: &Path) -> Arc<rustls::ClientConfig> {
    let pem = fs::read(cert_pem).unwrap_or_else(|e| {
        panic!(
            "cannot read the server certificate {}: {e}",
            cert_pem.display()
        )
    });
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.unwrap_or_else(|e| panic!("bad PEM in {}: {e}", cert_pem.display()));
        roots
            .add(cert)
            .unwrap_or_else(|e| panic!("unusable certificate in {}: {e}", cert_pem.display()));
    }
    assert!(
        !roots.is_empty(),
        "no certificate in {}",
        cert_pem.display()
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
