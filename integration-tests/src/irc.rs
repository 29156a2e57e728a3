//! The IRC side of the tests: a real ngircd on loopback with a scratch
//! config ([`Ngircd`]), a raw IRC client ([`IrcPeer`]), and helpers to read
//! XMPP elements until one matches.
//!
//! ngircd must be installed (`apt-get install ngircd`; `./test` does it as root):
//! without it the tests that use it fail rather than skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::{RawClient, WAIT};

/// A free TCP port on 127.0.0.1 (free when asked; bind soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn ngircd_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("ngircd"))
        .find(|p| p.is_file())
        .expect("ngircd is not installed: install it (apt-get install ngircd, or run ./test as root) to run the IRC transport tests")
}

/// ngircd on 127.0.0.1 at a free port, killed on drop.
pub struct Ngircd {
    child: Child,
    /// The plain-text port it listens on.
    pub port: u16,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

fn spawn_ngircd(conf: &std::path::Path, dir: &std::path::Path) -> Child {
    let bin = ngircd_binary();
    // Appended to, so that the log of a restarted server keeps the first
    // run's lines.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ngircd.log"))
        .unwrap();
    Command::new(&bin)
        .arg("-n")
        .arg("-f")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

impl Ngircd {
    /// A plain ngircd with the test settings.
    pub fn start() -> Ngircd {
        Ngircd::start_with(|_| String::new())
    }

    /// With more config from `extra(scratch_dir)`.
    pub fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> Ngircd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("ngircd.conf");
        std::fs::write(
            &conf,
            format!(
                "[Global]\nName = irc.test.invalid\nInfo = Switchboard IRC transport test\n\
                 AdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = test@test.invalid\n\
                 Listen = 127.0.0.1\nPorts = {port}\nMotdPhrase = test server\n\
                 [Limits]\nMaxConnectionsIP = 20\nMaxPenaltyTime = 0\n\
                 [Options]\nPAM = no\nIdent = no\nDNS = no\n{}",
                extra(dir.path())
            ),
        )
        .unwrap();
        let child = spawn_ngircd(&conf, dir.path());
        let mut n = Ngircd {
            child,
            port,
            conf,
            _dir: dir,
        };
        n.wait_listening();
        n
    }

    /// Kills the server (SIGKILL: its clients see the connection drop,
    /// with no ERROR line first). [`Ngircd::resume`] starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same config, as
    /// after a restart.
    pub fn resume(&mut self) {
        self.child = spawn_ngircd(&self.conf, self._dir.path());
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ngircd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ngircd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What ngircd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("ngircd.log")).unwrap_or_default()
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw IRC client: answers PING, keeps every line it read.
pub struct IrcPeer {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl IrcPeer {
    /// Connects to 127.0.0.1:`port` and registers as `nick`.
    pub async fn connect(port: u16, nick: &str) -> IrcPeer {
        IrcPeer::connect_with_password(port, nick, None).await
    }

    /// Connects and registers, sending `PASS` first when `password` is
    /// given (a server with a global password).
    pub async fn connect_with_password(port: u16, nick: &str, password: Option<&str>) -> IrcPeer {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (rd, wr) = s.into_split();
        let mut p = IrcPeer {
            rd: BufReader::new(rd),
            wr,
            seen: Vec::new(),
        };
        if let Some(pw) = password {
            p.send(&format!("PASS :{pw}")).await;
        }
        p.send(&format!("NICK {nick}")).await;
        p.send(&format!("USER {nick} 0 * :{nick}")).await;
        p.expect(|l| l.contains(" 001 ")).await;
        p
    }

    /// Sends one line (CR LF added).
    pub async fn send(&mut self, line: &str) {
        self.wr
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Sends raw bytes as one line (CR LF added).
    pub async fn send_bytes(&mut self, line: &[u8]) {
        self.wr.write_all(line).await.unwrap();
        self.wr.write_all(b"\r\n").await.unwrap();
    }

    /// Reads lines until one matches; panics with all lines seen after
    /// [`WAIT`].
    pub async fn expect(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline, self.rd.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("IRC line not seen; got:\n{}", self.seen.join("\n")))
                .unwrap();
            assert!(n > 0, "IRC server closed; got:\n{}", self.seen.join("\n"));
            let line = line.trim_end().to_string();
            if let Some(arg) = line.strip_prefix("PING ") {
                let reply = format!("PONG {arg}");
                self.send(&reply).await;
            }
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }
}

/// Single quotes as double quotes, for matching attributes.
pub fn norm(el: &str) -> String {
    el.replace('\'', "\"")
}

/// Sends a MUC join of `room` as `nick` and reads until the self-presence
/// (status 110) or an error presence; returns the elements before it (the
/// occupants) and it.
pub async fn join_room(c: &mut RawClient, room: &str, nick: &str) -> (Vec<String>, String) {
    c.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await
    .unwrap();
    read_until(c, |el| {
        el.starts_with("<presence")
            && (el.contains(r#"code="110""#) || el.contains(r#"type="error""#))
    })
    .await
}

/// Reads XMPP elements until one matches; returns those before it and it.
pub async fn read_until(c: &mut RawClient, pred: impl Fn(&str) -> bool) -> (Vec<String>, String) {
    let deadline = Instant::now() + WAIT;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let el = match c.read_element(left).await {
            Ok(el) => norm(&el),
            Err(e) => panic!("{e}; elements before:\n{}", before.join("\n")),
        };
        if pred(&el) {
            return (before, el);
        }
        before.push(el);
    }
}
