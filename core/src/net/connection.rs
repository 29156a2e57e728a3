//! The connection driver: runs one client connection through the sans-IO
//! [`C2s`] machine. It owns the I/O (TCP, the TLS upgrade, spool lookups on
//! the blocking pool) and the session's outbox; the machine decides.
//!
//! One driver serves both wires (see `wire.rs`): a TCP socket ([`serve`])
//! and a WebSocket the web layer upgraded ([`serve_websocket`]), so
//! negotiation, limits, stream management and resumption, SASL2 and
//! "nothing lost" are the same code for both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use switchboard_jid::Jid;
use switchboard_xml::Element;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::resume::Resumptions;
use super::session::{BoundSession, Resumption, SmState};
use super::wire::{self, Fed, WsInput};
use crate::auth_delay::{AccountKey, AuthDelays};
use crate::lifecycle::{ShutdownSignal, Tracker};
use crate::routing::table::SessionRef;
use crate::routing::Router;
use crate::sessions::{Outbound, SessionShared, OUTBOX_CAPACITY};
use crate::settings::LiveSettings;
use crate::stanza::{ErrorType, StanzaError};
use crate::stream::sm;
use crate::stream::{Action, C2s, Framing, StreamError};
use crate::throttle::Throttle;

/// Size of each worker thread's read buffer: one TLS record's worth of
/// plaintext, so a read never has to stop inside a record.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The buffer every connection on this thread reads into. A
    /// connection never owns a read buffer: an idle session then costs
    /// no buffer at all, and a read's bytes are handed to the machine
    /// (which keeps only what it has not consumed yet) within the same
    /// poll, so no other task can see them.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// How long one write may wait for a client that does not read.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the goodbye (the stream error, TLS close_notify) to a session
/// killed for not reading may take: a client that reads again gets it, a
/// stalled one does not hold its socket for `WRITE_TIMEOUT`.
const KILLED_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a run of the loop over one transport ended.
enum Flow {
    /// The machine asked for TLS: upgrade the same socket and go on.
    StartTls,
    Closed,
    /// Another connection resumed this session (XEP-0198): it takes the
    /// session, this connection only closes.
    Handover,
}

/// The SASL2 user-agent id (hashed) of the client a session belongs to.
struct ClientAgent(String);

/// What every client connection works with: the router, the settings
/// current when it started, the account store for logins and
/// registrations, the registration throttle and the shutdown signal.
/// Nothing else of the server.
pub struct C2sContext {
    pub router: Router,
    pub settings: Arc<LiveSettings>,
    /// Accounts, for logins and in-band registration.
    pub accounts: Arc<dyn switchboard_spool::store::AccountStore>,
    /// In-band registrations per source address.
    pub registrations: Arc<Throttle>,
    /// Sessions that may be resumed (XEP-0198).
    pub resumptions: Arc<Resumptions>,
    /// FAST tokens (XEP-0484).
    pub fast: Arc<crate::fast::Fast>,
    /// Recent failed logins per source address and per account, which
    /// make the next attempts wait (`net/auth_wait.rs`).
    pub auth_delays: Arc<AuthDelays>,
    pub shutdown: ShutdownSignal,
    /// `-D`: log every byte in and out (secrets masked).
    pub debug: bool,
}

struct Conn {
    shared: Arc<C2sContext>,
    machine: C2s,
    /// The session once a resource is bound (or resumed); boxed, because
    /// it moves into the resumption registry when the session hibernates.
    bound: Option<Box<BoundSession>>,
    peer: SocketAddr,
    /// What the login counters have been told about this stream so far.
    counted_login: bool,
    counted_failures: u32,
    counted_errors: u32,
    /// The account the SASL attempt in progress named, so that its
    /// failure is counted against it too.
    attempt_account: Option<AccountKey>,
    /// The router pulled the kill switch: the client does not read.
    killed: bool,
    /// The frame decoder of a WebSocket connection (boxed: TCP
    /// connections have none).
    ws: Option<Box<WsInput>>,
}

/// Serves one accepted client connection to its end.
///
/// The connection's state lives in boxes ([`Conn`], the TLS stream) and
/// the handshakes are boxed futures, so the task itself stays small: an
/// idle session costs only what it must keep (see `bench/README.md`,
/// "Where an idle session's memory goes").
pub async fn serve(tcp: TcpStream, peer: SocketAddr, shared: Arc<C2sContext>, direct_tls: bool) {
    let _ = tcp.set_nodelay(true);
    let snapshot = shared.settings.get();
    let mut settings = snapshot.c2s.clone();
    settings.extensions = shared.router.table().extensions().clone();
    let acceptor = snapshot.tls.clone();
    drop(snapshot);
    let preauth_timeout = settings.preauth_timeout;
    let now = Instant::now();
    let result = if direct_tls {
        let Some(acceptor) = acceptor else { return };
        let Some(mut tls) = handshake(&acceptor, tcp, preauth_timeout, peer).await else {
            return;
        };
        let cb = crate::tls::channel_binding(tls.get_ref().1);
        let mut conn = Box::new(Conn::new(shared, C2s::new(settings, now, true, cb), peer));
        let r = conn.run(&mut tls).await;
        conn.finish(matches!(r, Ok(Flow::Handover)));
        r.map(|_| ())
    } else {
        let mut conn = Box::new(Conn::new(
            shared,
            C2s::new(settings, now, false, None),
            peer,
        ));
        let mut tcp = tcp;
        let r = match conn.run(&mut tcp).await {
            Ok(Flow::StartTls) => match acceptor {
                Some(acceptor) => match handshake(&acceptor, tcp, preauth_timeout, peer).await {
                    Some(mut tls) => {
                        let cb = crate::tls::channel_binding(tls.get_ref().1);
                        conn.machine.tls_established(cb);
                        conn.run(&mut tls).await
                    }
                    None => Ok(Flow::Closed),
                },
                None => Ok(Flow::Closed),
            },
            other => other,
        };
        conn.finish(matches!(r, Ok(Flow::Handover)));
        r.map(|_| ())
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Serves one client over a WebSocket (RFC 7395) to its end. The web
/// layer has answered the HTTP upgrade; `io` is the upgraded connection,
/// `secure` when it runs inside TLS (or behind a proxy the admin says
/// terminates TLS), with the TLS connection's channel binding if any.
pub async fn serve_websocket<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: SocketAddr,
    shared: Arc<C2sContext>,
    secure: bool,
    channel_binding: Option<Vec<u8>>,
) {
    let snapshot = shared.settings.get();
    let mut settings = snapshot.c2s.clone();
    drop(snapshot);
    // RFC 7395 §3.6: no STARTTLS over a WebSocket; TLS is the HTTP
    // layer's (wss://).
    settings.tls_available = false;
    settings.extensions = shared.router.table().extensions().clone();
    let max_message = settings.limits.max_stanza_bytes;
    let machine = C2s::with_framing(
        settings,
        Instant::now(),
        Framing::WebSocket,
        secure,
        channel_binding,
    );
    let mut conn = Box::new(Conn::new(shared, machine, peer));
    conn.ws = Some(Box::new(WsInput::new(max_message)));
    // A WebSocket offers no STARTTLS (the machine is told it is secure or
    // that TLS is not available), so the loop runs once.
    let r = conn.run(&mut io).await;
    conn.finish(matches!(r, Ok(Flow::Handover)));
    if let Err(e) = r {
        tracing::debug!(%peer, "WebSocket connection ended: {e}");
    }
}

/// The TLS stream of one connection, boxed: rustls' connection state is
/// over a kilobyte and is only needed by TLS sessions.
type Tls = Box<tokio_rustls::server::TlsStream<TcpStream>>;

/// Runs the TLS handshake within the pre-authentication timeout. The
/// handshake future is boxed so that its size (it holds the whole TLS
/// stream while in progress) is not reserved in the connection task for
/// the session's lifetime.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    timeout: std::time::Duration,
    peer: SocketAddr,
) -> Option<Tls> {
    match Box::pin(tokio::time::timeout(timeout, acceptor.accept(tcp))).await {
        Ok(Ok(t)) => Some(Box::new(t)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Reads once from `io` into this thread's buffer and hands the bytes to
/// the machine within the same poll. Returns how many bytes were read
/// (0 at end of stream).
fn poll_read_into(
    cx: &mut std::task::Context<'_>,
    io: &mut (impl AsyncRead + Unpin),
    machine: &mut C2s,
    ws: Option<&mut WsInput>,
    debug: Option<SocketAddr>,
) -> std::task::Poll<std::io::Result<usize>> {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut rb = ReadBuf::new(&mut buf[..]);
        match std::pin::Pin::new(io).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => {
                let bytes = rb.filled();
                if !bytes.is_empty() {
                    if let Some(peer) = debug {
                        tracing::debug!(%peer, "recv {}", crate::debug_log::masked(bytes));
                    }
                    match ws {
                        None => machine.handle_input(bytes),
                        // The client's close frame ends the input as the
                        // end of a TCP stream does.
                        Some(ws) => {
                            if ws.feed(bytes, machine) == Fed::PeerClosed {
                                return std::task::Poll::Ready(Ok(0));
                            }
                        }
                    }
                }
                std::task::Poll::Ready(Ok(bytes.len()))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}

impl Conn {
    fn new(shared: Arc<C2sContext>, machine: C2s, peer: SocketAddr) -> Conn {
        Conn {
            shared,
            machine,
            bound: None,
            peer,
            counted_login: false,
            counted_failures: 0,
            counted_errors: 0,
            attempt_account: None,
            killed: false,
            ws: None,
        }
    }

    /// The connection is over. A resumable session whose socket died (no
    /// clean close, no stream error, not given up on) hibernates for the
    /// agreed time (XEP-0198); one that another connection resumed is
    /// handed over; any other session ends.
    fn finish(&mut self, handed_over: bool) {
        let Some(b) = self.bound.take() else { return };
        let resumption =
            b.sm.as_ref()
                .and_then(|s| s.resume.as_ref())
                .map(|r| (r.slot.clone(), r.max));
        let died = !self.machine.is_closed() && !self.killed;
        match resumption {
            Some((slot, max)) if handed_over || died => {
                if !handed_over {
                    tracing::info!(jid = %b.session.jid, peer = %self.peer, "connection lost");
                }
                self.shared.resumptions.hibernate(
                    &slot,
                    b,
                    max,
                    self.shared.router.clone(),
                    !handed_over,
                );
            }
            _ => b.end(&self.shared.router),
        }
    }

    /// Counts logins, failed logins and error replies the machine has
    /// seen since the last call. The machine does no I/O and keeps no
    /// metrics; the driver compares its state instead.
    fn count_machine_events(&mut self) {
        if !self.counted_login && self.machine.is_authenticated() {
            self.counted_login = true;
            self.shared.router.metrics().login();
        }
        let failures = self.machine.auth_failures();
        while self.counted_failures < failures {
            self.counted_failures += 1;
            self.shared.router.metrics().login_failure();
            let policy = self.shared.settings.get().auth_delay;
            let account = self.attempt_account.take();
            self.shared
                .auth_delays
                .failed(&policy, self.peer.ip(), account, Instant::now());
        }
        let errors = self.machine.stanza_errors();
        while self.counted_errors < errors {
            self.counted_errors += 1;
            self.shared.router.metrics().stanza_error();
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Flow> {
        let mut shutdown = self.shared.shutdown.clone();
        let debug = self.shared.debug.then_some(self.peer);
        loop {
            if let Some(flow) = self.drain_actions(io).await? {
                return Ok(flow);
            }
            let deadline = self
                .machine
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let kill = self.bound.as_ref().map(|b| b.session.shared.clone());
            // While stanzas are held, the client is not read (its stanzas
            // would only queue up behind them) and the loop waits for the
            // work they wait for instead.
            let holding = self
                .bound
                .as_ref()
                .filter(|b| !b.held.is_empty())
                .map(|b| b.session.pending.clone());
            let work_done = async {
                match &holding {
                    Some(p) => p.drained().await,
                    None => std::future::pending().await,
                }
            };
            let reading = holding.is_none();
            // A resumable session can be asked to hand over to a new
            // connection that resumes it.
            let slot = self.resume_slot();
            let handover = async {
                match &slot {
                    Some(s) => s.handover.notified().await,
                    None => std::future::pending().await,
                }
            };
            let rx = self.bound.as_mut().map(|b| &mut b.rx);
            let machine = &mut self.machine;
            let ws = &mut self.ws;
            let outbound = async {
                match rx {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let killed = async {
                match kill {
                    Some(k) => k.kill.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = std::future::poll_fn(|cx| poll_read_into(cx, io, machine, ws.as_deref_mut(), debug)), if reading => {
                    if r? == 0 {
                        if self.ws.is_some() {
                            // Boxed: it runs once, at the end, and would
                            // otherwise widen every connection task.
                            Box::pin(self.websocket_closed(io)).await;
                        }
                        return Ok(Flow::Closed);
                    }
                }
                _ = work_done => {
                    let acks = self.release_held();
                    if !acks.is_empty() {
                        self.write(io, &acks).await?;
                    }
                }
                _ = handover => {
                    // The client resumed on another connection; this one
                    // is probably a dead socket: say why, briefly, and go.
                    self.killed = true;
                    self.machine.fail(StreamError::with_text("conflict", "the session was resumed on another connection"));
                    let _ = self.drain_actions(io).await;
                    return Ok(Flow::Handover);
                }
                out = outbound => match out {
                    Some(Outbound::Stanza(el)) => {
                        let (bytes, close) = self.take_outbound(*el);
                        if !bytes.is_empty() {
                            self.write(io, &bytes).await?;
                            self.machine.note_sent(Instant::now());
                        }
                        if let Some(b) = self.bound.as_mut() {
                            b.written();
                        }
                        if let Some(err) = close {
                            self.machine.fail(err);
                        }
                    }
                    Some(Outbound::Close(err)) => self.machine.fail(*err),
                    None => self.machine.fail(StreamError::new("internal-server-error")),
                },
                _ = killed => {
                    self.killed = true;
                    self.machine.fail(StreamError::with_text("policy-violation", "the client does not read what it is sent"));
                }
                _ = sleep => {
                    // A bound session's timer is its keepalive: on a
                    // WebSocket that is a ping (the machine sends a
                    // stream's whitespace itself).
                    let keepalive = self.machine.jid().is_some();
                    self.machine.handle_timeout(Instant::now());
                    if keepalive && self.ws.is_some() && !self.machine.is_closed() {
                        let mut ping = Vec::new();
                        crate::stream::websocket::ping(&mut ping);
                        self.write(io, &ping).await?;
                    }
                }
                _ = shutdown.wait() => self.machine.fail(StreamError::new("system-shutdown")),
            }
        }
    }

    /// `first` and whatever else waits in the outbox, through the
    /// session's outbound filter if a module installed one, serialized
    /// for one write (up to 64 KiB); and the stream error to close with, if
    /// the outbox asked for it after them.
    fn take_outbound(&mut self, first: switchboard_xml::Element) -> (Vec<u8>, Option<StreamError>) {
        let framing = self.machine.framing();
        let metrics = self.shared.router.metrics().clone();
        let mut bytes = Vec::new();
        let Some(b) = self.bound.as_mut() else {
            return (bytes, None);
        };
        let filter = b.session.shared.ext.filter();
        let mut passed = Vec::new();
        let mut next = Some(first);
        let mut close = None;
        while let Some(el) = next.take() {
            match &filter {
                Some(f) => f.outgoing(el, &mut passed),
                None => passed.push(el),
            }
            for el in passed.drain(..) {
                metrics.stanza_out(&el);
                wire::stanza(framing, &el, &mut bytes);
                // Kept until the client acknowledges it (XEP-0198).
                b.sent(el);
            }
            if bytes.len() >= 64 * 1024 {
                break;
            }
            match b.rx.try_recv() {
                Ok(Outbound::Stanza(el)) => next = Some(*el),
                Ok(Outbound::Close(err)) => {
                    close = Some(*err);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(s) = b.sm.as_mut() {
            if s.sm.overflowing() {
                // The client has acknowledged nothing for thousands of
                // stanzas: it is as good as gone.
                self.killed = true;
                close.get_or_insert(StreamError::with_text(
                    "policy-violation",
                    "too many stanzas are waiting to be acknowledged",
                ));
            } else if s.sm.should_request() {
                wire::stanza(framing, &Element::new("r", sm::NS), &mut bytes);
            }
        }
        (bytes, close)
    }

    /// The client closed its WebSocket: what the machine still has to
    /// say goes out (its `<close/>` if the client sent one first), then
    /// the close frame answering the client's, and the connection ends.
    /// Without a `<close/>` the XMPP stream did not end cleanly, so a
    /// resumable session hibernates as for a dropped TCP connection.
    async fn websocket_closed<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) {
        if let Ok(Some(_)) = self.drain_actions(io).await {
            return; // the machine closed, close frame included
        }
        let mut out = Vec::new();
        if let Some(ws) = &self.ws {
            ws.close(&mut out);
        }
        let _ = tokio::time::timeout(KILLED_WRITE_TIMEOUT, async {
            io.write_all(&out).await?;
            io.shutdown().await
        })
        .await;
    }

    /// The session's resumption slot, if it is resumable.
    fn resume_slot(&self) -> Option<Arc<super::resume::Slot>> {
        let sm = self.bound.as_ref()?.sm.as_ref()?;
        sm.resume.as_ref().map(|r| r.slot.clone())
    }

    /// How long a write may make no progress before the connection ends.
    fn write_limit(&self) -> std::time::Duration {
        if self.killed {
            KILLED_WRITE_TIMEOUT
        } else {
            WRITE_TIMEOUT
        }
    }

    /// Writes `bytes` and flushes them to the socket (an empty `bytes`
    /// only flushes what the TLS layer still holds).
    async fn write<S: AsyncWrite + Unpin>(&self, io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
        if self.shared.debug && !bytes.is_empty() {
            tracing::debug!(peer = %self.peer, "send {}", crate::debug_log::masked(bytes));
        }
        // A client that stops reading must not pin this task (and its
        // buffers) forever: the router's kill switch, pulled when the
        // outbox overflows, interrupts a blocked write or flush, and one
        // that makes no progress for WRITE_TIMEOUT ends the connection
        // too. The flush is inside the same guard: with TLS, a write can
        // be taken into rustls' buffer and the flush be what blocks.
        let limit = self.write_limit();
        let write_and_flush = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        let kill = self.bound.as_ref().map(|b| b.session.shared.clone());
        let killed = async {
            match kill {
                Some(k) => k.kill.notified().await,
                None => std::future::pending().await,
            }
        };
        // A client resuming on a new connection usually finds this one
        // stuck on a dead socket: the write gives way, and the session
        // hibernates for the new connection to take.
        let slot = self.resume_slot();
        let handover = async {
            match &slot {
                Some(s) => s.handover.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout(limit, write_and_flush) => match r {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client did not read for too long")),
            },
            _ = killed => Err(std::io::Error::other("the client does not read what it is sent")),
            _ = handover => Err(std::io::Error::other("the session was resumed on another connection")),
        }
    }

    /// Carries out the machine's actions. Returns a flow when the loop over
    /// this transport must end.
    async fn drain_actions<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Option<Flow>> {
        // Everything the machine sends in one pass goes out as one write
        // (one TLS record, one syscall) instead of one per element.
        let mut out: Vec<u8> = Vec::new();
        let mut wrote = false;
        if let Some(ws) = self.ws.as_mut() {
            // Pongs for the pings the last read brought.
            out = ws.take_replies();
        }
        let framing = self.machine.framing();
        while let Some(action) = self.machine.poll_action() {
            // Checked on every action: a close after the last allowed
            // failure returns from the loop early.
            self.count_machine_events();
            if let Action::Send(bytes) = action {
                wire::unit(framing, &bytes, &mut out);
                continue;
            }
            if !out.is_empty() {
                self.write(io, &out).await?;
                out.clear();
                wrote = true;
            }
            match action {
                Action::Send(_) => unreachable!("handled above"),
                Action::StartTls => {
                    self.write(io, &[]).await?;
                    return Ok(Some(Flow::StartTls));
                }
                Action::LookupScram { host, user, hash } => {
                    if !self.before_credentials(&host, &user).await {
                        continue;
                    }
                    let cred = crate::accounts::scram_credential(
                        self.shared.accounts.as_ref(),
                        &host,
                        &user,
                        hash,
                    )
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!("login lookup failed: {e}");
                        None
                    });
                    self.machine.scram_credentials(cred);
                }
                Action::VerifyPlain {
                    host,
                    user,
                    password,
                } => {
                    if !self.before_credentials(&host, &user).await {
                        continue;
                    }
                    let ok = crate::accounts::verify(
                        self.shared.accounts.as_ref(),
                        &host,
                        &user,
                        password,
                    )
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!("login lookup failed: {e}");
                        false
                    });
                    self.machine.plain_verified(&user, ok);
                }
                Action::Register {
                    host,
                    user,
                    password,
                } => {
                    // Boxed: account creation is rare, and its future would
                    // otherwise enlarge every connection task for good.
                    let result = Box::pin(self.register(host, user, password)).await;
                    self.machine.registered(result);
                }
                Action::Bound(jid) => {
                    let session = self.new_session(jid);
                    // The session-start hooks run before the session is in
                    // the session table, so nothing is routed to it before
                    // what they prepare (a block list, archive preferences)
                    // is ready. Boxed: rare, and the hooks' futures would
                    // otherwise enlarge every connection task.
                    Box::pin(self.shared.router.session_started(&session)).await;
                    self.enter_table(&session);
                }
                Action::Stanza(el, to) => {
                    if let Some(b) = self.bound.as_mut() {
                        b.client_stanza(&self.shared.router, el, to);
                    }
                }
                Action::Nonza(el) => self.client_nonza(el, &mut out),
                Action::Answered(reply) => {
                    if let Some(el) = self.bound.as_mut().and_then(|b| b.answered(reply)) {
                        wire::stanza(framing, &el, &mut out);
                    }
                }
                Action::SmEnable { resume, max } => self.sm_enable(resume, max),
                Action::SmRequest => {
                    if let Some(a) = self.bound.as_mut().and_then(|b| b.ack_request()) {
                        self.machine.send_nonza(&a);
                    }
                }
                Action::SmAck(h) => self.sm_ack(h),
                Action::SmResume { previd, h } => {
                    // Boxed: rare, and waiting for a hand-over would
                    // otherwise enlarge every connection task.
                    Box::pin(self.sm_resume(previd, h)).await;
                }
                Action::VerifyFast {
                    host,
                    user,
                    agent,
                    mechanism,
                    proof,
                    cb,
                    invalidate,
                } => {
                    let account = switchboard_spool::store::AccountRef::new(host, user.clone());
                    let login = crate::fast::Login {
                        account: &account,
                        agent_id: &agent,
                        mechanism,
                        cb: &cb,
                        proof: &proof,
                        invalidate,
                    };
                    // Boxed, like the other login lookups.
                    let result = Box::pin(
                        self.shared
                            .fast
                            .authenticate(login, crate::time::unix_now()),
                    )
                    .await;
                    self.machine.fast_verified(&user, result);
                }
                Action::IssueFast {
                    host,
                    user,
                    agent,
                    mechanism,
                } => {
                    let account = switchboard_spool::store::AccountRef::new(host, user);
                    let issued = Box::pin(self.shared.fast.issue(
                        &account,
                        &agent,
                        mechanism,
                        crate::time::unix_now(),
                    ))
                    .await;
                    let token = match issued {
                        Ok(t) => Some(t.to_success_child()),
                        Err(e) => {
                            tracing::error!("could not store a FAST token: {e}");
                            None
                        }
                    };
                    self.machine.fast_issued(token);
                }
                Action::ClientAgent(agent) => self.client_agent(&agent),
                Action::Sasl2Step => self.machine.sasl2_step(),
                Action::Close => {
                    if let Some(ws) = &self.ws {
                        ws.close(&mut out);
                    }
                    self.write(io, &out).await?;
                    let _ = tokio::time::timeout(self.write_limit(), io.shutdown()).await;
                    return Ok(Some(Flow::Closed));
                }
            }
        }
        self.count_machine_events();
        if !out.is_empty() {
            self.write(io, &out).await?;
            wrote = true;
        }
        if wrote {
            self.machine.note_sent(Instant::now());
        }
        Ok(None)
    }

    /// A nonza from the client, for the module that takes its namespace;
    /// what the session's outbound filter lets go after it (the client
    /// said it is active again, say) is appended to `out`.
    fn client_nonza(&mut self, el: switchboard_xml::Element, out: &mut Vec<u8>) {
        let Some(b) = self.bound.as_mut() else { return };
        let session = b.session.clone();
        if !self.shared.router.nonza(&session, el) {
            tracing::warn!(jid = %session.jid, "a nonza no module takes; dropped");
        }
        if let Some(filter) = session.shared.ext.filter() {
            let mut released = Vec::new();
            filter.release(&mut released);
            let framing = self.machine.framing();
            for el in released {
                self.shared.router.metrics().stanza_out(&el);
                wire::stanza(framing, &el, out);
                // Under stream management, kept until acknowledged; these
                // go out with the machine's own bytes, whose write the
                // caller does not report, so without it they are not kept.
                if b.sm.is_some() {
                    b.sent(el);
                }
            }
        }
    }

    /// The work held stanzas waited for is done: route them; the `<a/>`
    /// answers that were waiting too, serialized.
    fn release_held(&mut self) -> Vec<u8> {
        let Some(b) = self.bound.as_mut() else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        let framing = self.machine.framing();
        for a in b.release_held(&self.shared.router) {
            wire::stanza(framing, &a, &mut bytes);
        }
        bytes
    }

    /// `<enable/>`: stream management for this session, resumable for at
    /// most the server's maximum if the client asked (XEP-0198 §3).
    fn sm_enable(&mut self, resume: bool, max: Option<u32>) {
        let Some(b) = self.bound.as_mut() else { return };
        let mut enabled = Element::new("enabled", sm::NS);
        let resumption = resume.then(|| {
            let server_max = self.shared.settings.get().resume_timeout;
            let max = max
                .map(|m| std::time::Duration::from_secs(m.into()))
                .map_or(server_max, |m| m.min(server_max));
            let slot = self.shared.resumptions.register(b.session.jid.to_bare());
            enabled.set_attr("id", slot.id().to_string());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", max.as_secs().to_string());
            Resumption { slot, max }
        });
        b.sm = Some(Box::new(SmState {
            sm: Default::default(),
            resume: resumption,
        }));
        self.machine.send_nonza(&enabled);
    }

    /// A session bound through Bind 2 belongs to this client (its SASL2
    /// user-agent id): the client's earlier sessions end, as XEP-0386 §3
    /// asks (a client that binds anew has given up on them; a hibernating
    /// one would otherwise hold messages until it times out).
    fn client_agent(&mut self, agent: &str) {
        let Some(b) = &self.bound else { return };
        let key = crate::fast::client_key(agent);
        let me = b.session.id;
        let bare = b.session.jid.to_bare();
        b.session.shared.ext.set(Arc::new(ClientAgent(key.clone())));
        for other in self.shared.router.sessions().of_account(&bare) {
            let same = other
                .shared
                .ext
                .get::<ClientAgent>()
                .is_some_and(|a| a.0 == key);
            if other.id == me || !same {
                continue;
            }
            tracing::info!(jid = %bare, resource = %other.resource, "a new session of the same client replaces this one");
            if super::resume::is_hibernating(&other.shared.ext)
                || other
                    .tx
                    .try_send(Outbound::Close(Box::new(StreamError::with_text(
                        "conflict",
                        "replaced by a new session of the same client",
                    ))))
                    .is_err()
            {
                other.shared.kill.notify_one();
            }
        }
    }

    /// `<a h/>` from the client.
    fn sm_ack(&mut self, h: u32) {
        let Some(s) = self.bound.as_mut().and_then(|b| b.sm.as_mut()) else {
            return;
        };
        if let Err(sm::AckError::TooHigh { h, sent }) = s.sm.ack(h) {
            // XEP-0198 §4: a count higher than what was sent is a stream
            // error; the session ends (it cannot be trusted to resume).
            if let Some(r) = s.resume.take() {
                r.slot.forget();
            }
            self.machine.fail(
                StreamError::with_text(
                    "undefined-condition",
                    format!("the client acknowledged {h} stanzas, but only {sent} were sent"),
                )
                .with_app(
                    Element::new("handled-count-too-high", sm::NS)
                        .with_attr("h", h.to_string())
                        .with_attr("send-count", sent.to_string()),
                ),
            );
        }
    }

    /// `<resume previd h/>`: take the hibernating session over, send again
    /// what the client did not receive, and carry on as that session.
    async fn sm_resume(&mut self, previd: String, h: u32) {
        let Some(user) = self.machine.user().map(str::to_string) else {
            return self.machine.resume_failed();
        };
        let Some(host) = self.machine.host().map(str::to_string) else {
            return self.machine.resume_failed();
        };
        let Ok(owner) = Jid::from_parts(Some(&user), &host, None) else {
            return self.machine.resume_failed();
        };
        let (slot, mut session) = match self.shared.resumptions.take(&previd, &owner).await {
            Ok(taken) => taken,
            Err(_) => return self.machine.resume_failed(),
        };
        let Some(sm_state) = session.sm.as_mut() else {
            return self.machine.resume_failed();
        };
        let again = match sm_state.sm.resend_after(h) {
            Ok(again) => again,
            Err(_) => {
                // The client claims more than was sent: resuming would
                // lose or duplicate; the session ends instead.
                slot.forget();
                session.end(&self.shared.router);
                return self.machine.resume_failed();
            }
        };
        let handled = sm_state.sm.handled;
        let jid = session.session.jid.clone();
        tracing::info!(%jid, peer = %self.peer, resent = again.len(), "session resumed");
        let resumed = Element::new("resumed", sm::NS)
            .with_attr("previd", previd)
            .with_attr("h", handled.to_string());
        self.machine.resumed(jid, &resumed);
        for el in again {
            self.machine.send_stanza(&el);
        }
        self.bound = Some(session);
    }

    /// Waits as recent failures from this address or on `user@host` say
    /// before that account's credentials are checked; `false` when the
    /// connection ended meanwhile (see `net/auth_wait.rs`). Boxed: only
    /// logins pay for the wait's state, not every idle session.
    async fn before_credentials(&mut self, host: &str, user: &str) -> bool {
        let account = self.shared.auth_delays.account_key(host, user);
        self.attempt_account = Some(account);
        let peer = self.peer.ip();
        Box::pin(super::auth_wait::before_check(
            &self.shared,
            peer,
            &mut self.machine,
            account,
        ))
        .await
    }

    /// Creates an account for XEP-0077, throttled per source address.
    async fn register(
        &self,
        host: String,
        user: String,
        password: String,
    ) -> Result<(), StanzaError> {
        if !self
            .shared
            .registrations
            .allow(self.peer.ip(), Instant::now())
        {
            return Err(StanzaError::new("resource-constraint", ErrorType::Wait)
                .with_text("too many registrations from your address; try again later"));
        }
        let settings = self.shared.settings.get();
        crate::accounts::create_in_band(
            self.shared.accounts.as_ref(),
            &host,
            &user,
            password,
            settings.scram_iterations,
        )
        .await?;
        tracing::info!(user = %user, host = %host, peer = %self.peer, "account registered in band");
        crate::notices::admins::registration(
            &self.shared.router,
            &settings,
            &host,
            &user,
            Some(self.peer.ip()),
            None,
        );
        Ok(())
    }

    /// The session a bound resource gets: its outbox and shared state, not
    /// yet in the session table (see [`Conn::enter_table`]).
    fn new_session(&mut self, jid: Jid) -> SessionRef {
        // A session left over on this connection (it cannot happen: the
        // machine binds once) would otherwise be lost without an end.
        if let Some(old) = self.bound.take() {
            old.end(&self.shared.router);
        }
        let (tx, rx) = crate::queue::channel(OUTBOX_CAPACITY);
        let id = self.shared.router.sessions().new_id();
        let session = SessionRef {
            jid,
            id,
            tx,
            shared: Arc::new(SessionShared::default()),
            pending: Tracker::default(),
        };
        self.bound = Some(Box::new(BoundSession::new(session.clone(), rx)));
        session
    }

    /// Puts the session in the session table, where the router finds it.
    fn enter_table(&mut self, session: &SessionRef) {
        if let Some(old) = self.shared.router.sessions().bind(
            &session.jid,
            session.id,
            session.tx.clone(),
            session.shared.clone(),
        ) {
            // RFC 6120 §7.7.2.2: the new session takes over the resource.
            if old
                .tx
                .try_send(Outbound::Close(Box::new(StreamError::with_text(
                    "conflict",
                    "replaced by a new connection with the same resource",
                ))))
                .is_err()
            {
                old.shared.kill.notify_one();
            }
        }
        tracing::info!(jid = %session.jid, peer = %self.peer, "session started");
    }
}

#[cfg(test)]
mod footprint {
    //! Guards on what every idle session holds for its whole life. The
    //! idle-memory benchmark (`bench/run.sh`, scenario `idle`) measures
    //! the whole; these catch a change that quietly puts a large state
    //! back inline in every connection task or account actor.

    /// The size of the future an async fn of four arguments returns.
    fn future_size<A, B, C, D, F>(_f: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn the_connection_task_stays_small() {
        // 1,208 bytes when written; the TLS stream, the machine and the
        // handshakes are boxed. Before they were, it was 7,144.
        let size = future_size(super::serve);
        assert!(size <= 1536, "the connection future is {size} bytes");
    }

    #[test]
    fn the_websocket_connection_task_stays_small() {
        // The same driver over a WebSocket: the task holds the upgraded
        // I/O object (hyper's is a box) besides what a TCP task holds;
        // the frame decoder is boxed in the connection.
        fn size<S, F>(
            _f: impl Fn(S, SocketAddr, Arc<C2sContext>, bool, Option<Vec<u8>>) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        use super::{C2sContext, SocketAddr};
        use std::sync::Arc;
        let ws = size(super::serve_websocket::<tokio::net::TcpStream>);
        let tcp = future_size(super::serve);
        assert!(
            ws <= tcp + 256,
            "the WebSocket connection future is {ws} bytes (TCP: {tcp})"
        );
    }

    #[test]
    fn queued_items_are_pointers() {
        // A queue's buffer holds these inline.
        assert!(std::mem::size_of::<crate::sessions::Outbound>() <= 16);
    }

    #[test]
    fn the_account_actor_stays_small() {
        // 584 bytes when written; its handlers run in a boxed future.
        let size = crate::im::account::actor_future_size();
        assert!(size <= 1024, "the account actor's future is {size} bytes");
    }
}
