//! A byte-level WebSocket client (RFC 6455) for XMPP over WebSocket
//! (RFC 7395) tests, plain or over TLS: the upgrade request, masked text
//! frames out, whole frames in, and raw frames for the hostile cases. Also
//! [`http`], one raw HTTP request and its whole answer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{HOST, WAIT};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Ping,
    Pong,
    /// The close frame: its code and reason.
    Close(Option<u16>, String),
}

/// One WebSocket connection.
pub struct WsClient {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// Connects to `addr`, over TLS (trusting `tls`) when given.
async fn open(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Box<dyn Io>> {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(HOST.to_owned())
                .map_err(io::Error::other)?;
            let s = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(Box::new(s))
        }
    }
}

/// Sends one raw HTTP request and reads the answer until the server
/// closes or `WAIT` passes; returns what was read.
pub async fn http(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    request: &[u8],
) -> String {
    String::from_utf8_lossy(&http_bytes(addr, tls, request).await).into_owned()
}

/// [`http`], the answer as bytes (a binary body stays as it is).
pub async fn http_bytes(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    request: &[u8],
) -> Vec<u8> {
    let mut io = open(addr, tls).await.expect("connect");
    io.write_all(request).await.expect("send the request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, io.read_to_end(&mut out)).await;
    out
}

/// The upgrade request for `/xmpp-websocket` with `headers` added.
pub fn upgrade_request(headers: &[(&str, &str)]) -> String {
    let mut r = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r
}

impl WsClient {
    /// Opens an XMPP WebSocket (subprotocol `xmpp`); panics unless the
    /// server switches protocols properly.
    pub async fn connect(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> WsClient {
        match Self::try_connect(addr, tls, &[("Sec-WebSocket-Protocol", "xmpp")]).await {
            Ok(c) => c,
            Err(head) => panic!("the upgrade was refused: {head}"),
        }
    }

    /// Sends the upgrade request with `headers`; `Err` with the answer if
    /// it is not a proper 101.
    pub async fn try_connect(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ClientConfig>>,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, String> {
        let mut io = open(addr, tls).await.map_err(|e| e.to_string())?;
        io.write_all(upgrade_request(headers).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, io.read(&mut chunk))
                .await
                .map_err(|_| "no answer to the upgrade".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        if !head.starts_with("HTTP/1.1 101 ") {
            // Read the body of the refusal too (the server says why).
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), io.read_to_end(&mut rest)).await;
            return Err(
                format!("{head}{}", String::from_utf8_lossy(&buf[head_end..]))
                    + &String::from_utf8_lossy(&rest),
            );
        }
        let lower = head.to_ascii_lowercase();
        let accept = {
            let mut h = Sha1::new();
            h.update(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        };
        assert!(
            lower.contains(&format!(
                "sec-websocket-accept: {}",
                accept.to_ascii_lowercase()
            )),
            "wrong accept key: {head}"
        );
        assert!(lower.contains("sec-websocket-protocol: xmpp"), "{head}");
        Ok(WsClient {
            io,
            buf: buf[head_end..].to_vec(),
        })
    }

    /// Sends one text message.
    pub async fn send(&mut self, text: &str) {
        self.send_frame(0x1, true, text.as_bytes()).await;
    }

    /// Sends one frame, masked as a client must.
    pub async fn send_frame(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.send_raw(&out).await;
    }

    /// Writes bytes as they are (a broken frame, say).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.io.write_all(bytes).await;
        let _ = self.io.flush().await;
    }

    /// The next frame, or `None` if the connection ended first.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16384];
            let n = match tokio::time::timeout(WAIT, self.io.read(&mut chunk)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
                Err(_) => panic!("no frame within {WAIT:?}; unread: {:?}", self.buf),
            };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text message; pings are skipped, anything else panics.
    pub async fn recv_text(&mut self) -> String {
        loop {
            match self.recv().await {
                Some(Frame::Text(t)) => return t,
                Some(Frame::Ping) | Some(Frame::Pong) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Text messages until one contains `pattern`; returns that one.
    pub async fn expect(&mut self, pattern: &str) -> String {
        loop {
            let t = self.recv_text().await;
            if t.contains(pattern) {
                return t;
            }
        }
    }

    /// Opens the XMPP stream, logs in with PLAIN and binds `resource`;
    /// returns the full JID.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> String {
        self.open().await;
        self.expect("<stream:features").await;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{auth}</auth>"
        ))
        .await;
        let answer = self.recv_text().await;
        assert!(answer.contains("<success"), "login refused: {answer}");
        self.open().await;
        self.expect("<stream:features").await;
        self.send(&format!(
            "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let bound = self.expect("id=\"bind\"").await;
        let start = bound.find("<jid>").expect("a bound JID") + 5;
        let end = bound.find("</jid>").unwrap();
        bound[start..end].to_string()
    }

    /// Sends `<open/>` and reads the server's.
    pub async fn open(&mut self) {
        self.send(&format!(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{HOST}' version='1.0'/>"
        ))
        .await;
        self.expect("<open").await;
    }
}

/// One whole frame at the start of `buf`, and its length.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
    let (len, at) = match buf[1] & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(buf.get(2..10)?);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?;
    let frame = match buf[0] & 0x0F {
        0x1 => Frame::Text(String::from_utf8(payload.to_vec()).expect("UTF-8 text")),
        0x8 => Frame::Close(
            (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned(),
        ),
        0x9 => Frame::Ping,
        0xA => Frame::Pong,
        other => panic!("unexpected opcode {other:#x}"),
    };
    Some((frame, at + len))
}

impl WsClient {
    /// Reads until the close frame; its code, or `None` if the connection
    /// ended without one.
    pub async fn recv_until_close(&mut self) -> Option<u16> {
        loop {
            match self.recv().await? {
                Frame::Close(code, _) => return code,
                _ => continue,
            }
        }
    }
}
