//! The driver of one incoming server-to-server connection: accepted by a
//! `<listen><s2s/>` (STARTTLS) or `<s2s-tls/>` (direct TLS) listener, run
//! through the sans-IO [`S2sIn`] machine until either side closes.
//!
//! The driver does what the machine cannot: the TLS handshake (asking for
//! the peer's certificate, whose chain it hands the machine as a
//! [`CertCheck`](crate::stream::s2s::CertCheck) over the trust anchors),
//! dialback questions to the claimed domain's server (over our outgoing
//! link there, answered back into the machine), the clock, and routing:
//! every stanza the machine lets through goes to
//! [`Router::route_from_remote`] with the domain it was authenticated
//! for, which checks `from` once more and never relays to a third server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::links::{Direction, Listed};
use super::Federation;
use crate::lifecycle::ShutdownSignal;
use crate::routing::Router;
use crate::stream::s2s::{InAction, S2sIn};
use crate::stream::StreamError;

const READ_CHUNK: usize = 16 * 1024;

/// A peer that does not take what we write for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every incoming server-to-server connection works with.
pub struct S2sContext {
    pub federation: Arc<Federation>,
    pub router: Router,
    pub shutdown: ShutdownSignal,
    /// `-D`: log every byte in and out.
    pub debug: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Io {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let write = async {
            match self {
                Io::Plain(s) => s.write_all(bytes).await,
                Io::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
        };
    }
}

/// The certificate chain the peer presented (empty without one).
fn chain(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    tls.get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default()
}

/// Serves one accepted connection to its end.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<S2sContext>, direct_tls: bool) {
    let fed = &ctx.federation;
    let Some(settings) = fed.settings() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let listed = fed.registry().list(Direction::In, "", None);
    listed.connected(peer);
    let started = Instant::now();
    let handshake = settings.policy.timeout;
    let (io, cert) = if direct_tls {
        match tokio::time::timeout(handshake, settings.tls.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                let check = settings.tls.anchors.check(chain(&tls));
                (Io::Tls(Box::new(tls)), Some(check))
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, "s2s direct TLS failed: {e}");
                return;
            }
            Err(_) => return,
        }
    } else {
        (Io::Plain(tcp), None)
    };
    let machine = S2sIn::new(settings.policy.clone(), fed.local().clone(), started, cert);
    let mut conn = Conn {
        ctx: ctx.clone(),
        settings,
        peer,
        machine,
        listed,
    };
    if let Err(e) = conn.run(io).await {
        tracing::debug!(%peer, "s2s connection ended: {e}");
    }
}

struct Conn {
    ctx: Arc<S2sContext>,
    settings: Arc<super::S2sSettings>,
    peer: SocketAddr,
    machine: S2sIn,
    listed: Listed,
}

impl Conn {
    async fn run(&mut self, mut io: Io) -> std::io::Result<()> {
        let (verified_tx, mut verified) = mpsc::unbounded_channel::<(String, String, bool)>();
        let mut shutdown = self.ctx.shutdown.clone();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let mut out = Vec::new();
            let mut closing = false;
            while let Some(action) = self.machine.poll_action() {
                match action {
                    InAction::Send(b) => out.extend(b),
                    InAction::StartTls => {
                        self.write(&mut io, &out).await?;
                        out.clear();
                        let Io::Plain(tcp) = io else {
                            return Ok(());
                        };
                        let accept = self.settings.tls.acceptor.accept(tcp);
                        let tls = match tokio::time::timeout(self.settings.policy.timeout, accept)
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => return Err(e),
                            Err(_) => return Ok(()),
                        };
                        let check = self.settings.tls.anchors.check(chain(&tls));
                        io = Io::Tls(Box::new(tls));
                        self.machine.tls_established(check);
                    }
                    InAction::Authenticated {
                        remote,
                        local,
                        method,
                    } => {
                        tracing::info!(peer = %self.peer, %remote, %local, method = method.label(), "s2s peer authenticated");
                        self.listed.authenticated(&local, &remote, method);
                    }
                    InAction::VerifyDialback {
                        local,
                        remote,
                        id,
                        key,
                    } => {
                        let fed = self.ctx.federation.clone();
                        let router = self.ctx.router.clone();
                        let tx = verified_tx.clone();
                        tokio::spawn(async move {
                            let ok = fed.verify(&router, &local, &remote, id, key).await;
                            let _ = tx.send((remote, local, ok));
                        });
                    }
                    InAction::Stanza { remote, el } => {
                        self.listed.stanza();
                        self.ctx.router.metrics().s2s_in(&el);
                        if let Err(problem) = self.ctx.router.route_from_remote(&remote, el) {
                            // The machine checks the same first; this is
                            // a second line of defence.
                            self.machine.fail(StreamError::new(problem));
                        }
                    }
                    InAction::Close => closing = true,
                }
            }
            self.write(&mut io, &out).await?;
            if closing || self.machine.is_closed() {
                io.shutdown().await;
                return Ok(());
            }
            let wake = self
                .machine
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            // Over the stanza rate the machine holds a stanza and the
            // peer is not read until it goes (at `wake`).
            let reading = self.machine.wants_input();
            tokio::select! {
                r = io.read(&mut buf), if reading => match r? {
                    0 => return Ok(()),
                    n => {
                        self.log("recv", &buf[..n]);
                        self.machine.handle_input(&buf[..n], Instant::now());
                    }
                },
                Some((remote, local, ok)) = verified.recv() => {
                    self.machine.dialback_verified(&remote, &local, ok);
                }
                _ = tokio::time::sleep_until(wake) => self.machine.handle_timeout(Instant::now()),
                _ = shutdown.wait() => self.machine.fail(StreamError::new("system-shutdown")),
            }
        }
    }

    async fn write(&self, io: &mut Io, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.log("send", bytes);
        io.write_all(bytes).await
    }

    fn log(&self, dir: &str, bytes: &[u8]) {
        if self.ctx.debug {
            tracing::debug!(peer = %self.peer, "s2s {dir} {}", crate::debug_log::masked(bytes));
        }
    }
}
