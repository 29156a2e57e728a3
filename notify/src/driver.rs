//! The I/O around the [`Machine`]: name resolution, TCP, the TLS handshake,
//! reads and writes, and the deadline that covers all of it.
//!
//! Every await is bounded by the one deadline of `--timeout`; when it
//! passes, the failure names what the client was waiting for (taken from
//! the machine), so "the server never answered STARTTLS" and "the server
//! did not confirm the message" read differently.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use switchboard_xml::{Limits, StreamParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::Failure;
use crate::machine::{Action, Machine, Params, Report};
use crate::tls::{self, TlsSetup};
use crate::Request;

/// The port of XMPP client connections (RFC 6120 §14.7).
pub const DEFAULT_PORT: u16 = 5222;

/// How long to wait for the server's `</stream:stream>` after ours, at
/// most; the message is confirmed by then, this only avoids cutting the
/// connection under the server's feet.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where to connect: `--server HOST[:PORT]` (`[v6]:port` for IPv6), or the
/// account's domain on 5222. DNS SRV records are not looked up.
pub fn target(server: Option<&str>, domain: &str) -> Result<(String, u16), Failure> {
    let Some(s) = server else {
        return Ok((domain.to_owned(), DEFAULT_PORT));
    };
    let bad = |why: &str| {
        Failure::Usage(format!(
            "--server {s:?}: {why} (expected HOST or HOST:PORT)"
        ))
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("no closing ']'"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            ),
        }
    } else {
        match s.matches(':').count() {
            0 => (s, None),
            1 => {
                let (h, p) = s.split_once(':').expect("one colon");
                (h, Some(p))
            }
            // A bare IPv6 address.
            _ => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    Ok((host.to_owned(), port))
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        };
    }
}

struct Driver<'a> {
    deadline: Instant,
    secs: u64,
    machine: Machine,
    notes: &'a mut dyn FnMut(&str),
}

impl Driver<'_> {
    /// Awaits `f` within the deadline; the timeout names `waiting_for`.
    async fn timed<T>(
        &self,
        waiting_for: String,
        f: impl Future<Output = T>,
    ) -> Result<T, Failure> {
        timeout_at(self.deadline, f)
            .await
            .map_err(|_| Failure::Timeout {
                secs: self.secs,
                waiting_for,
            })
    }

    fn note(&mut self, s: &str) {
        (self.notes)(s);
    }
}

/// Runs one send; see the crate docs.
pub async fn run(
    req: Request,
    id_prefix: String,
    notes: &mut dyn FnMut(&str),
) -> Result<Report, Failure> {
    let domain = req.account.jid.domain().to_owned();
    let setup = tls::setup(&req.trust)?;
    let server_name = ServerName::try_from(domain.clone()).map_err(|_| {
        Failure::Usage(format!(
            "the account's domain {domain} cannot be checked against a certificate"
        ))
    })?;
    let (host, port) = target(req.server.as_deref(), &domain)?;
    let mut d = Driver {
        deadline: Instant::now() + req.timeout,
        secs: req.timeout.as_secs(),
        machine: Machine::new(Params {
            account: req.account.jid.clone(),
            password: req.account.password.clone(),
            recipients: req.recipients.clone(),
            body: req.body.clone(),
            subject: req.subject.clone(),
            kind: req.kind,
            id_prefix,
        }),
        notes,
    };

    let tcp = d
        .timed(
            format!("a connection to {host}:{port}"),
            connect(&host, port),
        )
        .await??;
    if let Ok(peer) = tcp.peer_addr() {
        if peer.ip().to_string() == host {
            d.note(&format!("connected to {peer}"));
        } else {
            d.note(&format!("connected to {host}:{port} ({peer})"));
        }
    }
    let mut conn = Conn::Plain(tcp);
    let mut parser = StreamParser::new(Limits::default());
    let mut actions: VecDeque<Action> = d.machine.start().into();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(bytes) => {
                    let waiting = d.machine.waiting_for();
                    d.timed(waiting, conn.write_all(&bytes))
                        .await?
                        .map_err(|e| lost(&d.machine, &e))?;
                }
                Action::StartTls => {
                    // Whatever came in clear text after <proceed/> is
                    // dropped, never read as part of the encrypted stream.
                    parser.reset();
                    conn = starttls(&mut d, conn, &setup, server_name.clone(), &domain).await?;
                    actions.extend(d.machine.tls_established());
                }
                Action::ResetParser => parser.reset(),
                Action::Note(n) => d.note(&n),
                Action::Closing => {
                    close(&mut d, &mut conn, &mut parser, &mut buf).await;
                    return d.machine.outcome();
                }
            }
        }
        match parser.next_event() {
            Ok(Some(event)) => match d.machine.handle(event) {
                Ok(more) => actions.extend(more),
                Err(failure) => {
                    abort(&mut conn).await;
                    return Err(failure);
                }
            },
            Ok(None) => {
                let waiting = d.machine.waiting_for();
                let n = d
                    .timed(waiting, conn.read(&mut buf))
                    .await?
                    .map_err(|e| lost(&d.machine, &e))?;
                if n == 0 {
                    d.machine.eof()?;
                } else if let Err(e) = parser.feed(&buf[..n]) {
                    return Err(malformed(&d.machine, &e));
                }
            }
            Err(e) => return Err(malformed(&d.machine, &e)),
        }
    }
}

/// Resolves `host` and connects to the first address that answers.
async fn connect(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::Unreachable(format!("cannot resolve the server name {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(Failure::Unreachable(match last {
        Some((addr, e)) => format!("cannot connect to {host}:{port} ({addr}: {e})"),
        None => format!("the server name {host} has no address"),
    }))
}

async fn starttls(
    d: &mut Driver<'_>,
    conn: Conn,
    setup: &TlsSetup,
    name: ServerName<'static>,
    domain: &str,
) -> Result<Conn, Failure> {
    let Conn::Plain(tcp) = conn else {
        return Err(Failure::Protocol(
            "the server asked for STARTTLS twice; nothing was sent".into(),
        ));
    };
    let connector = TlsConnector::from(setup.config.clone());
    let tls = d
        .timed("the TLS handshake".into(), connector.connect(name, tcp))
        .await?
        .map_err(|e| tls::handshake_failure(setup, domain, &e))?;
    let fp = setup.presented.fingerprint();
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    d.note(&format!(
        "TLS established ({version}); certificate SHA-256 {}",
        fp.unwrap_or_default()
    ));
    Ok(Conn::Tls(Box::new(tls)))
}

/// Waits (briefly, bounded) for the server's close after ours, taking any
/// late stanza into account, then ends TLS cleanly.
async fn close(d: &mut Driver<'_>, conn: &mut Conn, parser: &mut StreamParser, buf: &mut [u8]) {
    let until = (Instant::now() + CLOSE_WAIT).min(d.deadline);
    loop {
        match parser.next_event() {
            Ok(Some(event)) => {
                let closed = matches!(event, switchboard_xml::Event::StreamClose);
                // Late message errors still count; anything else the
                // server says now changes nothing.
                let _ = d.machine.handle(event);
                if closed {
                    break;
                }
            }
            Ok(None) => match timeout_at(until, conn.read(buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    if parser.feed(&buf[..n]).is_err() {
                        break;
                    }
                }
                _ => break,
            },
            Err(_) => break,
        }
    }
    let _ = timeout_at(until + Duration::from_millis(500), conn.shutdown()).await;
}

/// Ends our stream and the connection politely after a refusal (a failed
/// login, a stream error), so the server logs a close rather than an
/// unexpected end of file. Best effort, and quick.
async fn abort(conn: &mut Conn) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = conn.write_all(b"</stream:stream>").await;
        conn.shutdown().await;
    })
    .await;
}

fn lost(machine: &Machine, e: &io::Error) -> Failure {
    let what = format!(
        "the connection broke ({e}) while this client was waiting for {}",
        machine.waiting_for()
    );
    Failure::Protocol(if machine.sent() {
        format!("{what}; the message was sent but not confirmed, so it may or may not have been delivered")
    } else {
        format!("{what}; nothing was sent")
    })
}

fn malformed(machine: &Machine, e: &switchboard_xml::XmlError) -> Failure {
    Failure::Protocol(format!(
        "the server sent XML this client cannot read ({e:?}) while it was waiting for {}{}",
        machine.waiting_for(),
        if machine.sent() {
            "; the message was sent but not confirmed"
        } else {
            "; nothing was sent"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_targets() {
        let t = |s: Option<&str>| target(s, "example.com");
        assert_eq!(t(None).unwrap(), ("example.com".into(), 5222));
        assert_eq!(
            t(Some("xmpp.example.com")).unwrap(),
            ("xmpp.example.com".into(), 5222)
        );
        assert_eq!(
            t(Some("127.0.0.1:15222")).unwrap(),
            ("127.0.0.1".into(), 15222)
        );
        assert_eq!(t(Some("[::1]:5223")).unwrap(), ("::1".into(), 5223));
        assert_eq!(t(Some("[::1]")).unwrap(), ("::1".into(), 5222));
        assert_eq!(t(Some("::1")).unwrap(), ("::1".into(), 5222));
        for bad in [
            "host:",
            "host:0",
            "host:99999",
            "host:x",
            ":5222",
            "[::1",
            "[::1]x",
        ] {
            let e = t(Some(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // Bind then drop: the port is free and (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = connect("127.0.0.1", port).await.unwrap_err();
        assert_eq!(e.exit_code(), 68, "{e}");
        let e = connect("no-such-host.invalid", 5222).await.unwrap_err();
        assert_eq!(e.exit_code(), 68, "{e}");
        assert!(e.to_string().contains("cannot resolve"), "{e}");
    }
}
