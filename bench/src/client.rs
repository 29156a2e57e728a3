//! One XMPP client connection of the load generator, over a real socket:
//! stream to the domain, STARTTLS, TLS handshake, stream restart,
//! SCRAM-SHA-256 (or SCRAM-SHA-1, for servers without it), stream restart, resource binding, initial presence. Every
//! answer of the server is parsed and checked, and every wait is bounded by
//! the step timeout. With [`Target::plain`] the client skips STARTTLS and
//! logs in over plain TCP (for measuring a server's memory per session
//! without TLS; the server must allow it). With [`Target::websocket`] it
//! speaks XMPP over WebSocket (RFC 7395) to the web listener instead,
//! over TLS (`wss://`) unless plain, through the adapter in
//! `websocket.rs`: the same login, stanzas and checks.
//!
//! A logged-in [`Session`] can then [`Session::hold`] (stay connected,
//! reading and ignoring whatever arrives, until told to stop), send and
//! read stanzas, [`Session::split`] into a reader and a writer for tasks
//! that do both at once, and [`Session::close`] (`</stream:stream>`, wait
//! for the server's, TLS close_notify).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::websocket::WsStream;
use crate::xml::{
    escape, Element, Event, StreamReader, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_TLS,
};
use switchboard_link::scram::{KeyCache, ScramClient, ScramHash};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;

/// Where and how to connect; shared by all connections of a run.
pub struct Target {
    pub addr: SocketAddr,
    /// The XMPP domain (stream `to`, TLS SNI, JID domain).
    pub domain: String,
    pub server_name: ServerName<'static>,
    pub tls: TlsConnector,
    pub keys: Arc<KeyCache>,
    /// The SCRAM variant to log in with (it must be offered).
    pub mechanism: ScramHash,
    /// Skip STARTTLS: log in over plain TCP.
    pub plain: bool,
    /// Connect to this web listener and speak XMPP over WebSocket
    /// (`/xmpp-websocket`; TLS from the start unless `plain`) instead of
    /// to `addr`.
    pub websocket: Option<SocketAddr>,
    /// The longest any one login, or any one wait after it, may take.
    pub step_timeout: Duration,
}

/// Who logs in.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
    pub resource: String,
}

/// A failed connection: the step it failed in and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn new(step: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            step,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

/// A logged-in connection's transport: TLS, or plain TCP with
/// [`Target::plain`].
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// XMPP over WebSocket, on TCP or TLS.
    WebSocket(Box<WsStream<Stream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::WebSocket(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::WebSocket(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::WebSocket(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::WebSocket(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A socket with the stream reader for what the server sends on it.
struct Conn<S> {
    io: S,
    reader: StreamReader,
    buf: Box<[u8]>,
}

impl<S> Conn<S> {
    fn new(io: S) -> Conn<S> {
        Conn {
            io,
            reader: StreamReader::new(),
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }
}

/// Writes and flushes; shared by whole connections and write halves.
async fn write_flush<W: AsyncWrite + Unpin>(
    io: &mut W,
    step: &'static str,
    data: &[u8],
) -> Result<(), Failure> {
    io.write_all(data)
        .await
        .map_err(|e| Failure::new(step, format!("write: {e}")))?;
    io.flush()
        .await
        .map_err(|e| Failure::new(step, format!("write: {e}")))
}

impl<S: AsyncRead + Unpin> Conn<S> {
    /// The next event; reading as needed. Cancel-safe: bytes are fed to
    /// the reader only after a read completed.
    async fn next(&mut self, step: &'static str) -> Result<Event, Failure> {
        loop {
            if let Some(ev) = self
                .reader
                .next_event()
                .map_err(|e| Failure::new(step, e.to_string()))?
            {
                return Ok(ev);
            }
            let n = self
                .io
                .read(&mut self.buf)
                .await
                .map_err(|e| Failure::new(step, format!("read: {e}")))?;
            if n == 0 {
                return Err(Failure::new(step, "the server closed the connection"));
            }
            self.reader
                .feed(&self.buf[..n])
                .map_err(|e| Failure::new(step, e.to_string()))?;
        }
    }

    /// The next top-level element; a stream error, a header or the end of
    /// the stream is a failure.
    async fn element(&mut self, step: &'static str) -> Result<Element, Failure> {
        match self.next(step).await? {
            Event::Element(e) if e.is("error", NS_STREAM) => {
                Err(Failure::new(step, stream_error(&e)))
            }
            Event::Element(e) => Ok(e),
            Event::Open(_) => Err(Failure::new(step, "unexpected stream header")),
            Event::Close => Err(Failure::new(step, "the server closed the stream")),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, step: &'static str, data: &[u8]) -> Result<(), Failure> {
        write_flush(&mut self.io, step, data).await
    }

    /// Opens (or restarts) the stream and returns the server's features.
    async fn open(&mut self, step: &'static str, domain: &str) -> Result<Element, Failure> {
        self.reader = StreamReader::new();
        let header = switchboard_xml::stream::open_stream(&switchboard_xml::stream::StreamOpen {
            ns: NS_CLIENT,
            to: Some(domain),
            version: true,
            ..Default::default()
        });
        self.send(step, &header).await?;
        let h = match self.next(step).await? {
            Event::Open(h) => h,
            Event::Element(e) => {
                return Err(Failure::new(
                    step,
                    format!("expected a stream header, got {}", e.describe()),
                ))
            }
            Event::Close => return Err(Failure::new(step, "the server closed the stream")),
        };
        if h.attr("xmlns") != Some(NS_CLIENT) {
            return Err(Failure::new(
                step,
                "the stream header's default namespace is not jabber:client",
            ));
        }
        if h.attr("version") != Some("1.0") {
            return Err(Failure::new(
                step,
                format!("stream version {:?}", h.attr("version")),
            ));
        }
        if h.attr("from") != Some(domain) {
            return Err(Failure::new(
                step,
                format!("stream from {:?}, expected {domain}", h.attr("from")),
            ));
        }
        if h.attr("id").is_none_or(str::is_empty) {
            return Err(Failure::new(step, "the stream header has no id"));
        }
        let features = self.element(step).await?;
        if !features.is("features", NS_STREAM) {
            return Err(Failure::new(
                step,
                format!("expected stream features, got {}", features.describe()),
            ));
        }
        Ok(features)
    }
}

fn stream_error(e: &Element) -> String {
    let cond = e
        .children
        .first()
        .map(|c| c.name.as_str())
        .unwrap_or("(no condition)");
    format!("stream error {cond}")
}

fn sasl_failure(e: &Element) -> String {
    let cond = e
        .children
        .first()
        .map(|c| c.name.as_str())
        .unwrap_or("(no condition)");
    format!("SASL failure {cond}")
}

fn decode_sasl(step: &'static str, text: &str) -> Result<Vec<u8>, Failure> {
    let t = text.trim();
    if t.is_empty() || t == "=" {
        return Ok(Vec::new());
    }
    B64.decode(t)
        .map_err(|_| Failure::new(step, "SASL data is not base64"))
}

/// A logged-in session (resource bound, initial presence sent unless
/// logged in with [`login_with`] without it).
pub struct Session {
    conn: Conn<Stream>,
    /// The full JID the server bound.
    pub jid: String,
}

/// Logs `account` in and sends initial presence; the whole login is
/// bounded by the step timeout.
pub async fn login(target: &Target, account: &Account) -> Result<Session, Failure> {
    login_with(target, account, true).await
}

/// Logs `account` in, sending initial presence only if `presence` is true
/// (a session without it gets no presence broadcasts and no messages to
/// the bare JID, and its login sends no probes).
pub async fn login_with(
    target: &Target,
    account: &Account,
    presence: bool,
) -> Result<Session, Failure> {
    let mut step = "connect";
    let result = tokio::time::timeout(
        target.step_timeout,
        login_steps(target, account, presence, &mut step),
    )
    .await;
    match result {
        Ok(r) => r,
        Err(_) => Err(Failure::new(
            step,
            format!("no answer within {:?}", target.step_timeout),
        )),
    }
}

async fn login_steps(
    target: &Target,
    account: &Account,
    presence: bool,
    step: &mut &'static str,
) -> Result<Session, Failure> {
    let domain = target.domain.as_str();
    *step = "connect";
    let tcp = TcpStream::connect(target.websocket.unwrap_or(target.addr))
        .await
        .map_err(|e| Failure::new("connect", e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let (mut conn, features) = if target.websocket.is_some() {
        let io = if target.plain {
            Stream::Plain(tcp)
        } else {
            *step = "tls";
            let tls = target
                .tls
                .connect(target.server_name.clone(), tcp)
                .await
                .map_err(|e| Failure::new("tls", e.to_string()))?;
            Stream::Tls(Box::new(tls))
        };
        *step = "upgrade";
        let ws = crate::websocket::upgrade(io, domain)
            .await
            .map_err(|e| Failure::new("upgrade", e))?;
        *step = "stream";
        let mut conn = Conn::new(Stream::WebSocket(Box::new(ws)));
        let features = conn.open("stream", domain).await?;
        (conn, features)
    } else if target.plain {
        *step = "stream";
        let mut conn = Conn::new(Stream::Plain(tcp));
        let features = conn.open("stream", domain).await?;
        (conn, features)
    } else {
        starttls(target, tcp, step).await?
    };

    let wanted = target.mechanism.name();
    let offers_scram = features.child("mechanisms", NS_SASL).is_some_and(|m| {
        m.children
            .iter()
            .any(|c| c.is("mechanism", NS_SASL) && c.text.trim() == wanted)
    });
    if !offers_scram {
        return Err(Failure::new(
            "stream-tls",
            format!("{wanted} is not offered"),
        ));
    }

    *step = "sasl";
    authenticate(&mut conn, target, account).await?;

    *step = "stream-auth";
    let features = conn.open("stream-auth", domain).await?;
    if features.child("bind", NS_BIND).is_none() {
        return Err(Failure::new(
            "stream-auth",
            "resource binding is not offered",
        ));
    }

    *step = "bind";
    let iq = format!(
        "<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
        escape(&account.resource)
    );
    conn.send("bind", iq.as_bytes()).await?;
    let jid = loop {
        let reply = conn.element("bind").await?;
        if !reply.is("iq", NS_CLIENT) || reply.attr("id") != Some("bind1") {
            continue; // not the answer (nothing else is expected before it)
        }
        match reply.attr("type") {
            Some("result") => {}
            t => {
                return Err(Failure::new(
                    "bind",
                    format!("bind answered with type {t:?}"),
                ))
            }
        }
        let jid = reply
            .child("bind", NS_BIND)
            .and_then(|b| b.child("jid", NS_BIND))
            .map(|j| j.text.trim().to_string());
        let Some(jid) = jid else {
            return Err(Failure::new("bind", "the bind result has no <jid/>"));
        };
        if !jid.starts_with(&format!("{}@{domain}/", account.user)) {
            return Err(Failure::new(
                "bind",
                format!("bound {jid}, not a resource of {}@{domain}", account.user),
            ));
        }
        break jid;
    };

    if presence {
        *step = "presence";
        conn.send("presence", b"<presence/>").await?;
    }
    Ok(Session { conn, jid })
}

/// STARTTLS on a fresh connection, the TLS handshake and the stream
/// restart; returns the TLS connection and the features offered on it.
async fn starttls(
    target: &Target,
    tcp: TcpStream,
    step: &mut &'static str,
) -> Result<(Conn<Stream>, Element), Failure> {
    let domain = target.domain.as_str();
    let mut conn = Conn::new(tcp);
    *step = "stream";
    let features = conn.open("stream", domain).await?;
    if features.child("starttls", NS_TLS).is_none() {
        return Err(Failure::new("stream", "STARTTLS is not offered"));
    }
    *step = "starttls";
    conn.send(
        "starttls",
        format!("<starttls xmlns='{NS_TLS}'/>").as_bytes(),
    )
    .await?;
    let answer = conn.element("starttls").await?;
    if !answer.is("proceed", NS_TLS) {
        return Err(Failure::new(
            "starttls",
            format!("expected <proceed/>, got {}", answer.describe()),
        ));
    }
    if !conn.reader.is_drained() {
        return Err(Failure::new(
            "starttls",
            "the server sent data after <proceed/>",
        ));
    }

    *step = "tls";
    let tls = target
        .tls
        .connect(target.server_name.clone(), conn.io)
        .await
        .map_err(|e| Failure::new("tls", e.to_string()))?;
    let mut conn = Conn::new(Stream::Tls(Box::new(tls)));

    *step = "stream-tls";
    let features = conn.open("stream-tls", domain).await?;
    Ok((conn, features))
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    target: &Target,
    account: &Account,
) -> Result<(), Failure> {
    const STEP: &str = "sasl";
    let mut scram = ScramClient::new(target.mechanism, &account.user, &account.password)
        .map_err(|e| Failure::new(STEP, format!("SCRAM: {e}")))?
        .with_cache(target.keys.clone());
    let auth = format!(
        "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
        target.mechanism.name(),
        B64.encode(scram.initial())
    );
    conn.send(STEP, auth.as_bytes()).await?;
    let challenge = conn.element(STEP).await?;
    if challenge.is("failure", NS_SASL) {
        return Err(Failure::new(STEP, sasl_failure(&challenge)));
    }
    if !challenge.is("challenge", NS_SASL) {
        return Err(Failure::new(
            STEP,
            format!("expected a challenge, got {}", challenge.describe()),
        ));
    }
    let server_first = decode_sasl(STEP, &challenge.text)?;
    let client_final = scram
        .challenge(&server_first)
        .map_err(|e| Failure::new(STEP, format!("SCRAM: {e}")))?;
    let response = format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        B64.encode(client_final)
    );
    conn.send(STEP, response.as_bytes()).await?;
    let mut answer = conn.element(STEP).await?;
    if answer.is("challenge", NS_SASL) {
        // RFC 6120 §6.3.10 lets a server send server-final as a challenge
        // and answer an empty response with a bare <success/>.
        let server_final = decode_sasl(STEP, &answer.text)?;
        scram
            .finish(&server_final)
            .map_err(|e| Failure::new(STEP, format!("SCRAM: {e}")))?;
        conn.send(STEP, format!("<response xmlns='{NS_SASL}'/>").as_bytes())
            .await?;
        answer = conn.element(STEP).await?;
        if !answer.is("success", NS_SASL) {
            return Err(Failure::new(
                STEP,
                format!("expected success, got {}", answer.describe()),
            ));
        }
        return Ok(());
    }
    if answer.is("failure", NS_SASL) {
        return Err(Failure::new(STEP, sasl_failure(&answer)));
    }
    if !answer.is("success", NS_SASL) {
        return Err(Failure::new(
            STEP,
            format!("expected success, got {}", answer.describe()),
        ));
    }
    let server_final = decode_sasl(STEP, &answer.text)?;
    scram
        .finish(&server_final)
        .map_err(|e| Failure::new(STEP, format!("SCRAM: {e}")))
}

/// The reading half of a split [`Session`].
pub struct SessionReader {
    conn: Conn<ReadHalf<Stream>>,
}

/// The writing half of a split [`Session`].
pub struct SessionWriter {
    io: WriteHalf<Stream>,
}

impl SessionReader {
    /// The next stanza; a stream error, the end of the stream or of the
    /// connection is a failure. Cancel-safe (for `select!`).
    pub async fn element(&mut self, step: &'static str) -> Result<Element, Failure> {
        self.conn.element(step).await
    }

    /// Puts a session back together from its two halves.
    ///
    /// # Panics
    ///
    /// If the halves come from different sessions.
    pub fn unsplit(self, writer: SessionWriter, jid: String) -> Session {
        let SessionReader { conn } = self;
        Session {
            conn: Conn {
                io: conn.io.unsplit(writer.io),
                reader: conn.reader,
                buf: conn.buf,
            },
            jid,
        }
    }
}

impl SessionWriter {
    /// Writes `data` (whole stanzas) and flushes.
    pub async fn send(&mut self, step: &'static str, data: &[u8]) -> Result<(), Failure> {
        write_flush(&mut self.io, step, data).await
    }
}

impl Session {
    /// Writes `data` (whole stanzas) and flushes.
    pub async fn send(&mut self, step: &'static str, data: &[u8]) -> Result<(), Failure> {
        self.conn.send(step, data).await
    }

    /// The next stanza; a stream error, the end of the stream or of the
    /// connection is a failure. Cancel-safe (for `select!`).
    pub async fn element(&mut self, step: &'static str) -> Result<Element, Failure> {
        self.conn.element(step).await
    }

    /// Splits the session so that one task can read while another writes
    /// (a sender is never held up by what it receives). Bytes already read
    /// and not yet parsed stay with the reader.
    pub fn split(self) -> (SessionReader, SessionWriter) {
        let Conn { io, reader, buf } = self.conn;
        let (r, w) = tokio::io::split(io);
        (
            SessionReader {
                conn: Conn { io: r, reader, buf },
            },
            SessionWriter { io: w },
        )
    }

    /// Stays connected until `release` becomes true, reading (and
    /// ignoring) stanzas and whitespace keepalives. The server closing the
    /// stream or the connection is a failure.
    pub async fn hold(&mut self, release: &mut watch::Receiver<bool>) -> Result<(), Failure> {
        loop {
            if *release.borrow_and_update() {
                return Ok(());
            }
            tokio::select! {
                ev = self.conn.next("hold") => match ev? {
                    Event::Element(e) if e.is("error", NS_STREAM) => return Err(Failure::new("hold", stream_error(&e))),
                    Event::Element(_) => {}
                    Event::Open(_) => return Err(Failure::new("hold", "unexpected stream header")),
                    Event::Close => return Err(Failure::new("hold", "the server closed the stream")),
                },
                changed = release.changed() => if changed.is_err() {
                    return Ok(()); // the sender is gone: the run is over
                },
            }
        }
    }

    /// Ends the stream cleanly: `</stream:stream>`, then waits (at most
    /// `timeout`) for the server's, then closes TLS and the socket.
    pub async fn close(mut self, timeout: Duration) -> Result<(), Failure> {
        let closing = async {
            self.conn
                .send("close", switchboard_xml::stream::CLOSE_STREAM)
                .await?;
            loop {
                match self.conn.next("close").await? {
                    Event::Close => break,
                    Event::Element(e) if e.is("error", NS_STREAM) => {
                        return Err(Failure::new("close", stream_error(&e)))
                    }
                    Event::Element(_) => {} // e.g. our own presence, reflected
                    Event::Open(_) => {
                        return Err(Failure::new("close", "unexpected stream header"))
                    }
                }
            }
            let _ = self.conn.io.shutdown().await;
            Ok(())
        };
        match tokio::time::timeout(timeout, closing).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                "close",
                format!("the server did not close the stream within {timeout:?}"),
            )),
        }
    }
}
