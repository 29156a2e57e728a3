//! [`RawClient`]: a byte-level XMPP client for scripted edge cases.
//!
//! It writes exactly the strings a test gives it and reads the server's
//! bytes into a buffer, from which a test takes text up to a pattern, the
//! next top-level element, or everything until the server hangs up. It can
//! do STARTTLS or direct TLS (trusting only the server's own certificate),
//! SASL (SCRAM via the `sasl` crate, or PLAIN) and resource binding, so a
//! test can get an authenticated session and then misbehave on purpose.
//!
//! Every read is bounded by a timeout; nothing here loops without one.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{HOST, WAIT};

/// XML namespaces the scripted client uses.
pub mod ns {
    pub const CLIENT: &str = "jabber:client";
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    pub const PING: &str = "urn:xmpp:ping";
}

/// What went wrong while talking to the server.
#[derive(Debug)]
pub enum RawError {
    /// Nothing matching arrived in time; `received` is what did arrive and
    /// is still unread.
    Timeout {
        waiting_for: String,
        received: String,
    },
    /// The server closed the connection first.
    Closed {
        waiting_for: String,
        received: String,
    },
    /// Connecting, TLS or writing failed.
    Io(io::Error),
    /// The server said something the script did not expect.
    Protocol(String),
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::Timeout {
                waiting_for,
                received,
            } => write!(
                f,
                "timed out waiting for {waiting_for}; unread: {received:?}"
            ),
            RawError::Closed {
                waiting_for,
                received,
            } => write!(
                f,
                "connection closed while waiting for {waiting_for}; unread: {received:?}"
            ),
            RawError::Io(e) => write!(f, "I/O error: {e}"),
            RawError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for RawError {}

impl From<io::Error> for RawError {
    fn from(e: io::Error) -> Self {
        RawError::Io(e)
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// A scripted client connection. See the module docs.
pub struct RawClient {
    io: Io,
    buf: Vec<u8>,
    eof: bool,
    /// Why reading stopped, if it was an error rather than a clean EOF.
    pub read_error: Option<io::Error>,
    next_id: u64,
    /// The full JID the server bound, after [`Self::bind`].
    pub jid: Option<String>,
}

/// The opening stream header a well-behaved client sends to `to`.
pub fn stream_header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' to='{}' version='1.0' xml:lang='en'>",
        ns::CLIENT,
        ns::STREAM,
        to
    )
}

impl RawClient {
    /// A plain TCP connection (for STARTTLS listeners).
    pub async fn connect(addr: SocketAddr) -> Result<RawClient, RawError> {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Self::over(tcp)
    }

    /// A plain TCP connection from the local address `local`, for tests
    /// that need clients at different source addresses (on Linux every
    /// address of 127.0.0.0/8 is loopback).
    pub async fn connect_from(addr: SocketAddr, local: IpAddr) -> Result<RawClient, RawError> {
        let socket = match local {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        let tcp = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Self::over(tcp)
    }

    fn over(tcp: TcpStream) -> Result<RawClient, RawError> {
        tcp.set_nodelay(true)?;
        Ok(RawClient {
            io: Io::Plain(tcp),
            buf: Vec::new(),
            eof: false,
            read_error: None,
            next_id: 1,
            jid: None,
        })
    }

    /// A direct TLS connection (XEP-0368 listeners), verifying the server
    /// as `localhost` against `tls`.
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<RawClient, RawError> {
        let mut client = Self::connect(addr).await?;
        client.upgrade(tls).await?;
        Ok(client)
    }

    async fn upgrade(&mut self, tls: Arc<rustls::ClientConfig>) -> Result<(), RawError> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(RawError::Protocol("TLS is already on".into()));
        };
        let name = rustls::pki_types::ServerName::try_from(HOST.to_owned())
            .map_err(|e| RawError::Protocol(format!("server name: {e}")))?;
        let stream = tokio::time::timeout(WAIT, TlsConnector::from(tls).connect(name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.io = Io::Tls(Box::new(stream));
        Ok(())
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// The negotiated TLS protocol version, if TLS is on.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.io {
            Io::Tls(s) => s.get_ref().1.protocol_version(),
            _ => None,
        }
    }

    /// Writes `text` as is.
    pub async fn send(&mut self, text: &str) -> Result<(), RawError> {
        self.send_bytes(text.as_bytes()).await
    }

    /// Writes `bytes` as is (bounded by [`WAIT`]).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError> {
        let write = async {
            match &mut self.io {
                Io::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Io::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Io::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "no connection")),
            }
        };
        tokio::time::timeout(WAIT, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))??;
        Ok(())
    }

    /// Writes `bytes` in chunks, reading whatever the server says between
    /// chunks; stops early once the unread text contains `stop_at` or the
    /// connection fails. For floods the server is expected to cut short:
    /// what it said before hanging up stays readable.
    pub async fn send_watching(&mut self, bytes: &[u8], chunk: usize, stop_at: &str) {
        for part in bytes.chunks(chunk.max(1)) {
            if self.unread().contains(stop_at) || self.eof {
                return;
            }
            if self.send_bytes(part).await.is_err() {
                return;
            }
            let _ = self
                .read_some(Instant::now() + Duration::from_millis(15))
                .await;
        }
    }

    /// Reads once into the buffer, until `deadline`. `Ok(false)` on a
    /// timeout, `Ok(true)` when something arrived or the stream ended
    /// (see `self.eof`).
    async fn read_some(&mut self, deadline: Instant) -> Result<bool, RawError> {
        if self.eof {
            return Ok(true);
        }
        let mut chunk = [0u8; 16 * 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        let read = async {
            match &mut self.io {
                Io::Plain(s) => s.read(&mut chunk).await,
                Io::Tls(s) => s.read(&mut chunk).await,
                Io::Gone => Ok(0),
            }
        };
        match tokio::time::timeout(left, read).await {
            Err(_) => Ok(false),
            Ok(Ok(0)) => {
                self.eof = true;
                Ok(true)
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Ok(Err(e)) => {
                // A reset or a TLS close without close_notify: the server
                // has gone either way.
                self.read_error = Some(e);
                self.eof = true;
                Ok(true)
            }
        }
    }

    /// The text received and not yet taken.
    pub fn unread(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Whether the server has closed the connection (as far as read so far).
    pub fn is_closed(&self) -> bool {
        self.eof
    }

    fn take(&mut self, n: usize) -> String {
        let rest = self.buf.split_off(n);
        let taken = std::mem::replace(&mut self.buf, rest);
        String::from_utf8_lossy(&taken).into_owned()
    }

    /// Reads until `find` finds something in the unread bytes (it returns
    /// the length to take), at most `timeout`.
    async fn read_with(
        &mut self,
        waiting_for: &str,
        timeout: Duration,
        find: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<String, RawError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = find(&self.buf) {
                return Ok(self.take(n));
            }
            if self.eof {
                return Err(RawError::Closed {
                    waiting_for: waiting_for.to_owned(),
                    received: self.unread(),
                });
            }
            if Instant::now() >= deadline || !self.read_some(deadline).await? {
                return Err(RawError::Timeout {
                    waiting_for: waiting_for.to_owned(),
                    received: self.unread(),
                });
            }
        }
    }

    /// Takes the unread text up to and including `pattern`.
    pub async fn read_until(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, RawError> {
        let pat = pattern.as_bytes().to_vec();
        self.read_with(&format!("{pattern:?}"), timeout, move |buf| {
            find(buf, &pat).map(|i| i + pat.len())
        })
        .await
    }

    /// Reads until the server closes the connection; returns everything
    /// unread. Fails if it is still open after `timeout`.
    pub async fn read_to_close(&mut self, timeout: Duration) -> Result<String, RawError> {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            if Instant::now() >= deadline || !self.read_some(deadline).await? {
                return Err(RawError::Timeout {
                    waiting_for: "the server to close the connection".into(),
                    received: self.unread(),
                });
            }
        }
        let n = self.buf.len();
        Ok(self.take(n))
    }

    /// Takes the server's stream header (and any XML declaration before it).
    pub async fn read_stream_header(&mut self, timeout: Duration) -> Result<String, RawError> {
        self.read_with("a stream header", timeout, stream_header_end)
            .await
    }

    /// Takes the next top-level element (whitespace before it is dropped).
    /// A stream close tag `</stream:stream>` counts as an element.
    pub async fn read_element(&mut self, timeout: Duration) -> Result<String, RawError> {
        let el = self
            .read_with("a complete element", timeout, |buf| {
                let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
                element_end(&buf[start..]).map(|n| start + n)
            })
            .await?;
        Ok(el.trim_start().to_owned())
    }

    /// Reads elements until one with `id='ID'` arrives (others are
    /// skipped), at most `timeout` in all.
    pub async fn read_id(&mut self, id: &str, timeout: Duration) -> Result<String, RawError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let el = self.read_element(left).await?;
            if attr(&el, "id").as_deref() == Some(id) {
                return Ok(el);
            }
            if el.starts_with("</") || local_name(&el) == "error" {
                return Err(RawError::Protocol(format!(
                    "stream ended while waiting for id {id:?}: {el}"
                )));
            }
        }
    }

    /// Sends a stream header to `to` and reads the server's header and
    /// features; returns the features element.
    pub async fn open_stream(&mut self, to: &str) -> Result<String, RawError> {
        self.send(&stream_header(to)).await?;
        self.read_stream_header(WAIT).await?;
        let features = self.read_element(WAIT).await?;
        if local_name(&features) != "features" {
            return Err(RawError::Protocol(format!(
                "expected features, got {features}"
            )));
        }
        Ok(features)
    }

    /// `<starttls/>`, `<proceed/>`, then the TLS handshake.
    pub async fn starttls(&mut self, tls: Arc<rustls::ClientConfig>) -> Result<(), RawError> {
        self.send(&format!("<starttls xmlns='{}'/>", ns::TLS))
            .await?;
        let answer = self.read_element(WAIT).await?;
        if local_name(&answer) != "proceed" {
            return Err(RawError::Protocol(format!(
                "expected <proceed/>, got {answer}"
            )));
        }
        if !self.buf.is_empty() {
            return Err(RawError::Protocol(format!(
                "bytes after <proceed/> before TLS: {:?}",
                self.unread()
            )));
        }
        self.upgrade(tls).await
    }

    /// SASL with the best of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN that
    /// `features` offers (no channel binding). `Err(Protocol)` carries the
    /// `<failure/>` element if the server refuses.
    pub async fn authenticate(
        &mut self,
        features: &str,
        user: &str,
        password: &str,
    ) -> Result<(), RawError> {
        let offered = |m: &str| features.contains(&format!(">{m}<"));
        let creds = Credentials::default()
            .with_username(user)
            .with_password(password)
            .with_channel_binding(ChannelBinding::None);
        let mech_err = |e: sasl::client::MechanismError| RawError::Protocol(format!("SASL: {e}"));
        let mut mech: Box<dyn Mechanism + Send> = if offered("SCRAM-SHA-256") {
            Box::new(Scram::<Sha256>::from_credentials(creds).map_err(mech_err)?)
        } else if offered("SCRAM-SHA-1") {
            Box::new(Scram::<Sha1>::from_credentials(creds).map_err(mech_err)?)
        } else if offered("PLAIN") {
            Box::new(Plain::from_credentials(creds).map_err(mech_err)?)
        } else {
            return Err(RawError::Protocol(format!(
                "no usable SASL mechanism in {features}"
            )));
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let initial = mech.initial();
        self.send(&format!(
            "<auth xmlns='{}' mechanism='{}'>{}</auth>",
            ns::SASL,
            mech.name(),
            if initial.is_empty() {
                "=".to_owned()
            } else {
                b64.encode(&initial)
            }
        ))
        .await?;
        // SCRAM takes two round trips; bound the dialogue anyway.
        for _ in 0..8 {
            let el = self.read_element(WAIT).await?;
            let data = {
                let text = inner_text(&el);
                let text = text.trim();
                if text.is_empty() || text == "=" {
                    Vec::new()
                } else {
                    b64.decode(text)
                        .map_err(|e| RawError::Protocol(format!("bad base64 in {el}: {e}")))?
                }
            };
            match local_name(&el).as_str() {
                "challenge" => {
                    let response = mech.response(&data).map_err(mech_err)?;
                    self.send(&format!(
                        "<response xmlns='{}'>{}</response>",
                        ns::SASL,
                        b64.encode(&response)
                    ))
                    .await?;
                }
                "success" => {
                    mech.success(&data).map_err(mech_err)?;
                    return Ok(());
                }
                _ => return Err(RawError::Protocol(format!("SASL refused: {el}"))),
            }
        }
        Err(RawError::Protocol("SASL did not finish in 8 steps".into()))
    }

    /// Binds `resource` (a session too, if the features demand one);
    /// returns and remembers the full JID.
    pub async fn bind(&mut self, features: &str, resource: &str) -> Result<String, RawError> {
        let id = self.new_id("bind");
        self.send(&format!(
            "<iq type='set' id='{id}'><bind xmlns='{}'><resource>{resource}</resource></bind></iq>",
            ns::BIND
        ))
        .await?;
        let reply = self.read_id(&id, WAIT).await?;
        if attr(&reply, "type").as_deref() != Some("result") {
            return Err(RawError::Protocol(format!("bind failed: {reply}")));
        }
        let jid = between(&reply, "<jid>", "</jid>")
            .ok_or_else(|| RawError::Protocol(format!("no <jid/> in {reply}")))?
            .to_owned();
        if features.contains(ns::SESSION) && !features.contains("<optional") {
            let id = self.new_id("sess");
            self.send(&format!(
                "<iq type='set' id='{id}'><session xmlns='{}'/></iq>",
                ns::SESSION
            ))
            .await?;
            self.read_id(&id, WAIT).await?;
        }
        self.jid = Some(jid.clone());
        Ok(jid)
    }

    /// Connects to a STARTTLS listener and does it all: stream, STARTTLS,
    /// SASL, stream restart, bind.
    pub async fn login(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<RawClient, RawError> {
        let mut c = RawClient::connect(addr).await?;
        c.open_stream(HOST).await?;
        c.starttls(tls).await?;
        let features = c.open_stream(HOST).await?;
        c.authenticate(&features, user, password).await?;
        let features = c.open_stream(HOST).await?;
        c.bind(&features, resource).await?;
        Ok(c)
    }

    /// A fresh stanza id with `prefix`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// XEP-0199 ping to `to`; returns the reply (result or error).
    pub async fn ping(&mut self, to: &str) -> Result<String, RawError> {
        let id = self.new_id("ping");
        self.send(&format!(
            "<iq type='get' id='{id}' to='{to}'><ping xmlns='{}'/></iq>",
            ns::PING
        ))
        .await?;
        self.read_id(&id, WAIT).await
    }

    /// Closes our side of the stream politely (does not wait).
    pub async fn close(&mut self) {
        let _ = self.send("</stream:stream>").await;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The end of the tag starting at `buf[0] == b'<'`, honouring quotes.
fn tag_end(buf: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i + 1),
            None => {}
        }
    }
    None
}

/// Where the stream header (after an optional XML declaration, comments
/// and whitespace) ends.
fn stream_header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let lt = i + buf[i..].iter().position(|&b| b == b'<')?;
        let rest = &buf[lt..];
        if rest.starts_with(b"<?") {
            i = lt + find(rest, b"?>")? + 2;
        } else if rest.starts_with(b"<!--") {
            i = lt + find(rest, b"-->")? + 3;
        } else {
            return Some(lt + tag_end(rest)?);
        }
    }
}

/// The length of the complete element at the start of `buf` (which starts
/// with `<`), or `None` if it is not complete yet. An end tag alone (the
/// stream close) is one element.
fn element_end(buf: &[u8]) -> Option<usize> {
    if buf.first() != Some(&b'<') {
        // Text at the top level (not XMPP); hand it out up to the next tag.
        return buf.iter().position(|&b| b == b'<').filter(|&n| n > 0);
    }
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        let lt = i + buf[i..].iter().position(|&b| b == b'<')?;
        let rest = &buf[lt..];
        if rest.starts_with(b"<!--") {
            i = lt + find(rest, b"-->")? + 3;
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            i = lt + find(rest, b"]]>")? + 3;
            continue;
        }
        if rest.starts_with(b"<?") {
            i = lt + find(rest, b"?>")? + 2;
            continue;
        }
        let end = lt + tag_end(rest)?;
        let tag = &buf[lt..end];
        if tag.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(end);
            }
        } else if tag.ends_with(b"/>") {
            if depth == 0 {
                return Some(end);
            }
        } else {
            depth += 1;
        }
        i = end;
    }
}

/// The local name of the element `el` starts with (`<stream:error>` →
/// `error`).
pub fn local_name(el: &str) -> String {
    let s = el
        .trim_start()
        .trim_start_matches('<')
        .trim_start_matches('/');
    let name: String = s
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_owned(),
        None => name,
    }
}

/// The value of attribute `name` on the first tag of `el`.
pub fn attr(el: &str, name: &str) -> Option<String> {
    let start = el.find('<')?;
    let end = start + tag_end(&el.as_bytes()[start..])?;
    let tag = &el[start..end];
    for q in ['\'', '"'] {
        let pat = format!(" {name}={q}");
        if let Some(i) = tag.find(&pat) {
            let v = &tag[i + pat.len()..];
            return v.find(q).map(|j| v[..j].to_owned());
        }
    }
    None
}

/// The text between the first tag's end and the last end tag of `el`
/// (empty for a self-closing element).
pub fn inner_text(el: &str) -> String {
    let Some(start) = tag_end(el.as_bytes()) else {
        return String::new();
    };
    if el[..start].ends_with("/>") {
        return String::new();
    }
    let end = el.rfind("</").unwrap_or(el.len()).max(start);
    el[start..end].to_owned()
}

/// The text between the first `open` and the following `close`.
pub fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let i = text.find(open)? + open.len();
    let j = text[i..].find(close)?;
    Some(&text[i..i + j])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_elements() {
        let buf = b" <a x='>'><b/><c>t</c></a><d/>";
        let start = 1;
        let n = element_end(&buf[start..]).unwrap();
        assert_eq!(&buf[start..start + n], b"<a x='>'><b/><c>t</c></a>");
        assert_eq!(element_end(b"<a><b/>"), None);
        assert_eq!(element_end(b"</stream:stream>"), Some(16));
        assert_eq!(element_end(b"<x/>rest"), Some(4));
    }

    #[test]
    fn finds_stream_header() {
        let buf = b"<?xml version='1.0'?>\n<stream:stream from='x' id='1'><stream:features/>";
        let n = stream_header_end(buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with("id='1'>"));
        assert_eq!(stream_header_end(b"<?xml version='1.0'?><stream:str"), None);
    }

    #[test]
    fn reads_names_and_attributes() {
        assert_eq!(
            local_name("<stream:error><conflict/></stream:error>"),
            "error"
        );
        assert_eq!(local_name("<success xmlns='x'/>"), "success");
        assert_eq!(
            attr("<iq type=\"result\" id='a-1'/>", "type").as_deref(),
            Some("result")
        );
        assert_eq!(
            attr("<iq type=\"result\" id='a-1'/>", "id").as_deref(),
            Some("a-1")
        );
        assert_eq!(inner_text("<challenge xmlns='x'>abc=</challenge>"), "abc=");
        assert_eq!(inner_text("<success xmlns='x'/>"), "");
        assert_eq!(
            between("<bind><jid>a@b/c</jid></bind>", "<jid>", "</jid>"),
            Some("a@b/c")
        );
    }
}
