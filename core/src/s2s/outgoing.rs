//! The driver of one outgoing link, from one of our domains to a remote
//! domain: a task that owns the socket, the clock and the link's queue,
//! and runs the sans-IO [`S2sOut`] machine.
//!
//! ```text
//! DNS (resolve.rs) → TCP to each candidate in turn → [direct TLS]
//!   → S2sOut: STARTTLS, our certificate / dialback → established
//!   → stanzas in the order they were queued, batched per write
//! ```
//!
//! Set-up, from the first lookup to authentication, has one deadline
//! (`<s2s timeout>`). Meanwhile requests keep coming off the queue:
//! stanzas wait here (at most `max-queue`; more bounce with
//! `resource-constraint`), dialback questions go to the machine, which
//! sends them as soon as TLS is up. When set-up fails, every waiting
//! stanza bounces with `remote-server-not-found` (or
//! `remote-server-timeout` for a deadline), worded with the reason, and
//! the pair of domains backs off. When an established link ends (idle,
//! or closed by the peer), stanzas that were queued but not written go
//! to a new link, once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use switchboard_link::backoff::OsRandom;
use switchboard_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::links::{Direction, Listed};
use super::resolve::{self, NotFound};
use super::{Federation, LinkRequest, S2sSettings};
use crate::routing::Router;
use crate::stanza::{ErrorType, StanzaError};
use crate::stream::s2s::{LinkFailure, OutAction, S2sOut};

/// One TCP connection attempt may take this long (the link's deadline
/// still bounds them all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that does not take what we write for this long is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Stanzas batched into one write while the queue has more.
const BATCH_BYTES: usize = 64 * 1024;

const READ_CHUNK: usize = 16 * 1024;

/// The socket, before and after TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
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
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer did not read for too long",
            )),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
        };
    }
}

/// How a link ended.
enum End {
    /// It was never set up: everything waiting bounces with this.
    Failed(StanzaError),
    /// It was set up and has ended: what is left goes to a new link.
    Ended,
    /// The server is stopping.
    Shutdown,
}

/// One outgoing link's task.
pub(crate) struct Link {
    fed: Arc<Federation>,
    router: Router,
    settings: Arc<S2sSettings>,
    local: String,
    remote: String,
    /// Stanzas waiting for the set-up, in order, with their retry mark.
    waiting: VecDeque<(Element, bool)>,
    /// Dialback questions asked over this link.
    questions: Vec<(String, oneshot::Sender<bool>)>,
    /// Questions that came before the machine existed (while connecting).
    pending_verifies: Vec<(String, String)>,
    listed: Listed,
}

impl Link {
    pub(crate) fn new(
        fed: Arc<Federation>,
        router: Router,
        settings: Arc<S2sSettings>,
        local: String,
        remote: String,
    ) -> Link {
        let listed = fed.registry().list(Direction::Out, &local, Some(&remote));
        Link {
            fed,
            router,
            settings,
            local,
            remote,
            waiting: VecDeque::new(),
            questions: Vec::new(),
            pending_verifies: Vec::new(),
            listed,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<LinkRequest>) {
        let _guard = self.fed.tracker().guard();
        let end = self.session(&mut rx).await;
        self.finish(rx, end);
    }

    /// A request taken off the queue before the link is set up.
    fn take(&mut self, req: LinkRequest, machine: Option<&mut S2sOut>) {
        match req {
            LinkRequest::Stanza { el, retried } => {
                if self.waiting.len() >= self.settings.max_queue {
                    let err = StanzaError::new("resource-constraint", ErrorType::Wait).with_text(
                        format!(
                            "too many stanzas are waiting for the link to {}",
                            self.remote
                        ),
                    );
                    return self.router.bounce(&el, err);
                }
                self.waiting.push_back((el, retried));
            }
            LinkRequest::Verify { id, key, answer } => {
                self.questions.push((id.clone(), answer));
                if let Some(m) = machine {
                    m.verify(id, key);
                } else {
                    self.pending_verifies.push((id, key));
                }
            }
        }
    }

    async fn session(&mut self, rx: &mut mpsc::Receiver<LinkRequest>) -> End {
        let started = Instant::now();
        let deadline = started + self.settings.policy.timeout;
        let mut shutdown = self.fed.shutdown_signal();
        let connect = connect(self.settings.clone(), self.remote.clone(), deadline);
        tokio::pin!(connect);
        let (mut io, addr, direct) = loop {
            tokio::select! {
                r = &mut connect => match r {
                    Ok(c) => break c,
                    Err(e) => return End::Failed(e),
                },
                req = rx.recv() => match req {
                    Some(req) => self.take(req, None),
                    None => return End::Shutdown,
                },
                _ = shutdown.wait() => return End::Shutdown,
            }
        };
        self.listed.connected(addr);
        tracing::debug!(local = %self.local, remote = %self.remote, %addr, "s2s link connected");
        let mut m = S2sOut::new(
            self.settings.policy.clone(),
            &self.local,
            &self.remote,
            started,
            direct,
        );
        for (id, key) in std::mem::take(&mut self.pending_verifies) {
            m.verify(id, key);
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let mut established = false;
        loop {
            let mut out = Vec::new();
            let mut closing = false;
            while let Some(action) = m.poll_action() {
                match action {
                    OutAction::Send(b) => out.extend(b),
                    OutAction::StartTls => {
                        if !out.is_empty() && io.write_all(&out).await.is_err() {
                            return self.broken(established, &m);
                        }
                        out.clear();
                        let Io::Plain(tcp) = io else {
                            return End::Failed(not_found(format!(
                                "{} asked for TLS twice",
                                self.remote
                            )));
                        };
                        match tls(&self.settings, &self.remote, tcp).await {
                            Ok((tls, ok)) => {
                                io = Io::Tls(Box::new(tls));
                                m.tls_established(ok, Instant::now());
                            }
                            Err(why) => {
                                return End::Failed(not_found(format!(
                                    "TLS with {} failed: {why}",
                                    self.remote
                                )))
                            }
                        }
                    }
                    OutAction::Established(method) => {
                        established = true;
                        self.listed.established(method);
                        self.fed.note_success(&self.local, &self.remote);
                        tracing::info!(local = %self.local, remote = %self.remote, %addr, method = method.label(), "s2s link established");
                        let now = Instant::now();
                        while let Some((el, _)) = self.waiting.pop_front() {
                            self.wrote(&el);
                            m.write_stanza(&el, now, &mut out);
                        }
                    }
                    OutAction::Verified { id, valid } => self.answer(&id, valid),
                    OutAction::Close => closing = true,
                }
            }
            if !out.is_empty() {
                if io.write_all(&out).await.is_err() {
                    return self.broken(established, &m);
                }
                m.note_sent(Instant::now());
            }
            if closing || m.is_closed() {
                io.shutdown().await;
                return self.closed(established, &m);
            }
            let wake = m
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = io.read(&mut buf) => match r {
                    Ok(n) if n > 0 => m.handle_input(&buf[..n], Instant::now()),
                    _ => return self.broken(established, &m),
                },
                req = rx.recv() => match req {
                    Some(LinkRequest::Stanza { el, .. }) if established => {
                        let mut out = Vec::new();
                        let now = Instant::now();
                        self.wrote(&el);
                        m.write_stanza(&el, now, &mut out);
                        // Whatever else is queued goes in the same write.
                        while out.len() < BATCH_BYTES {
                            match rx.try_recv() {
                                Ok(LinkRequest::Stanza { el, .. }) => {
                                    self.wrote(&el);
                                    m.write_stanza(&el, now, &mut out);
                                }
                                Ok(other) => {
                                    self.take(other, Some(&mut m));
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if io.write_all(&out).await.is_err() {
                            return self.broken(established, &m);
                        }
                        m.note_sent(Instant::now());
                    }
                    Some(req) => self.take(req, Some(&mut m)),
                    None => m.close_stream(LinkFailure::Idle),
                },
                _ = tokio::time::sleep_until(wake) => m.handle_timeout(Instant::now()),
                _ = shutdown.wait() => {
                    m.close_stream(LinkFailure::Closed);
                    let mut out = Vec::new();
                    while let Some(a) = m.poll_action() {
                        if let OutAction::Send(b) = a {
                            out.extend(b);
                        }
                    }
                    let _ = io.write_all(&out).await;
                    io.shutdown().await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// One stanza handed to the socket.
    fn wrote(&self, el: &Element) {
        self.listed.stanza();
        self.router.metrics().s2s_out(el);
    }

    fn answer(&mut self, id: &str, valid: bool) {
        if let Some(at) = self.questions.iter().position(|(q, _)| q == id) {
            let (_, tx) = self.questions.remove(at);
            let _ = tx.send(valid);
        }
    }

    /// The socket broke (or the peer hung up).
    fn broken(&self, established: bool, m: &S2sOut) -> End {
        if established {
            return End::Ended;
        }
        let why = m
            .failure()
            .map(|f| f.describe(&self.remote))
            .unwrap_or_else(|| format!("{} closed the connection during set-up", self.remote));
        End::Failed(not_found(why))
    }

    /// The machine closed the stream.
    fn closed(&self, established: bool, m: &S2sOut) -> End {
        if established {
            return End::Ended;
        }
        let why = m
            .failure()
            .map(|f| f.describe(&self.remote))
            .unwrap_or_else(|| format!("the link to {} closed", self.remote));
        match m.failure() {
            Some(LinkFailure::Timeout) => End::Failed(timeout(why)),
            _ => End::Failed(not_found(why)),
        }
    }

    /// Answers everything still waiting, as the end requires.
    fn finish(mut self, mut rx: mpsc::Receiver<LinkRequest>, end: End) {
        // No new request can arrive once the queue is closed; what is in
        // it is taken out below, so nothing handed to this link is lost.
        rx.close();
        let mut left: Vec<(Element, bool)> = self.waiting.drain(..).collect();
        while let Ok(req) = rx.try_recv() {
            match req {
                LinkRequest::Stanza { el, retried } => left.push((el, retried)),
                LinkRequest::Verify { answer, .. } => {
                    let _ = answer.send(false);
                }
            }
        }
        for (_, answer) in self.questions.drain(..) {
            let _ = answer.send(false);
        }
        self.fed.link_ended(&self.local, &self.remote);
        match end {
            End::Failed(err) => {
                tracing::warn!(local = %self.local, remote = %self.remote, "s2s link failed: {}", err.text.as_deref().unwrap_or(err.condition));
                self.fed.note_failure(&self.local, &self.remote, &err);
                for (el, _) in left {
                    self.router.bounce(&el, err.clone());
                }
            }
            End::Ended => {
                tracing::debug!(local = %self.local, remote = %self.remote, "s2s link closed");
                for (el, retried) in left {
                    match (retried, self.fed.settings()) {
                        (false, Some(settings)) => self.fed.hand(
                            &self.router,
                            &settings,
                            &self.local,
                            &self.remote,
                            LinkRequest::Stanza { el, retried: true },
                        ),
                        _ => self.router.bounce(
                            &el,
                            timeout(format!(
                                "the link to {} closed before this could be sent",
                                self.remote
                            )),
                        ),
                    }
                }
            }
            End::Shutdown => {
                for (el, _) in left {
                    self.router.bounce(&el, StanzaError::service_unavailable());
                }
            }
        }
    }
}

fn not_found(why: String) -> StanzaError {
    StanzaError::remote_server_not_found().with_text(why)
}

fn timeout(why: String) -> StanzaError {
    StanzaError::new("remote-server-timeout", ErrorType::Wait).with_text(why)
}

/// Finds and connects to the remote domain's server (TLS already up for
/// a direct-TLS candidate, with the certificate's verdict).
async fn connect(
    settings: Arc<S2sSettings>,
    remote: String,
    deadline: Instant,
) -> Result<(Io, SocketAddr, Option<bool>), StanzaError> {
    let work = async {
        let mut random = OsRandom;
        let candidates =
            resolve::candidates(&settings.resolver, &settings.connect, &remote, &mut random)
                .await
                .map_err(|NotFound(why)| not_found(why))?;
        let mut tried = Vec::new();
        for c in candidates {
            let addrs = match resolve::addresses(&settings.resolver, &c).await {
                Ok(a) => a,
                Err(NotFound(why)) => {
                    tried.push(why);
                    continue;
                }
            };
            for addr in addrs {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(tcp)) => {
                        let _ = tcp.set_nodelay(true);
                        if !c.direct_tls {
                            return Ok((Io::Plain(tcp), addr, None));
                        }
                        match tls(&settings, &remote, tcp).await {
                            Ok((tls, ok)) => return Ok((Io::Tls(Box::new(tls)), addr, Some(ok))),
                            Err(why) => tried.push(format!("{addr} (direct TLS): {why}")),
                        }
                    }
                    Ok(Err(e)) => tried.push(format!("{addr}: {e}")),
                    Err(_) => tried.push(format!("{addr}: no answer")),
                }
            }
        }
        Err(not_found(format!(
            "could not connect to {remote}: {}",
            tried.join("; ")
        )))
    };
    match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await {
        Ok(r) => r,
        Err(_) => Err(timeout(format!("{remote} could not be reached in time"))),
    }
}

/// TLS as a client toward `remote`: our certificate presented, the
/// peer's checked for the remote domain afterwards.
async fn tls(
    settings: &S2sSettings,
    remote: &str,
    tcp: TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, bool), String> {
    let name = ServerName::try_from(remote.to_string()).map_err(|e| e.to_string())?;
    let stream = settings
        .tls
        .connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let chain: Vec<_> = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let ok = settings.tls.anchors.verifies(&chain, remote);
    if !ok {
        tracing::info!(
            remote,
            "the certificate of {remote} does not verify: {}",
            settings.tls.anchors.explain(&chain, remote)
        );
    }
    Ok((stream, ok))
}
