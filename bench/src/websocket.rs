//! XMPP over WebSocket (RFC 7395) for the load generator, as an adapter
//! under the client's one XML stream: [`upgrade`] opens
//! `/xmpp-websocket` with the `xmpp` subprotocol on the web listener, and
//! the [`WsStream`] it returns turns what the client writes into masked
//! text frames, one element each, and the server's frames back into a
//! stream the client's reader parses as it parses a TCP stream:
//!
//! * written: the stream header becomes `<open/>`, `</stream:stream>`
//!   becomes `<close/>`, and an element without a namespace gets
//!   `xmlns='jabber:client'` (RFC 7395 §3.3.3: each message says its
//!   namespace; on TCP the stream header's default does);
//! * read: `<open/>` becomes a stream header, `<close/>` the end of the
//!   stream, every other message is passed on as it is; a ping is answered
//!   with a pong, a close frame ends the input.
//!
//! The client writes whole elements and flushes after each (see
//! `client.rs`), so frames are cut at each flush, split into top-level
//! elements.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Upgrades `io` (TCP, or TLS for `wss://`) to an XMPP WebSocket for
/// `domain`; the error says what the server answered instead.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    domain: &str,
) -> Result<WsStream<S>, String> {
    let request = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    );
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    io.flush().await.map_err(|e| format!("write: {e}"))?;
    // The answer's head, byte by byte up to the blank line: the first
    // frame may follow it in the same segment.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        match io.read(&mut b).await {
            Ok(0) => return Err("the server closed the connection during the upgrade".into()),
            Ok(_) => head.push(b[0]),
            Err(e) => return Err(format!("read: {e}")),
        }
        if head.len() > 8192 {
            return Err("the upgrade answer's head is over 8 KiB".into());
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101 ") {
        return Err(format!(
            "the upgrade was refused: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    if !head.contains("sec-websocket-protocol: xmpp") {
        return Err("the server did not agree to the xmpp subprotocol".into());
    }
    Ok(WsStream {
        io,
        raw: Vec::new(),
        message: Vec::new(),
        input: Vec::new(),
        input_at: 0,
        pending: Vec::new(),
        pending_at: 0,
        written: Vec::new(),
        mask: 0x9e37_79b9,
        closed: false,
    })
}

/// An XMPP WebSocket as a byte stream (see the module documentation).
pub struct WsStream<S> {
    io: S,
    /// Bytes read from the socket, not yet a whole frame.
    raw: Vec<u8>,
    /// The payloads of a fragmented message so far.
    message: Vec<u8>,
    /// Translated input, not yet handed to the reader.
    input: Vec<u8>,
    input_at: usize,
    /// Frames to write (the client's elements, pongs).
    pending: Vec<u8>,
    pending_at: usize,
    /// What the client wrote since its last flush.
    written: Vec<u8>,
    /// The state of the masking keys' generator (a client must mask;
    /// the keys need not be secret for a load test).
    mask: u32,
    /// The server's close frame arrived (or the socket ended).
    closed: bool,
}

impl<S> WsStream<S> {
    /// Queues one frame from the client (masked).
    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        let key = self.mask.to_be_bytes();
        let out = &mut self.pending;
        out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }

    /// Turns what was written since the last flush into frames.
    fn frame_written(&mut self) -> io::Result<()> {
        let written = std::mem::take(&mut self.written);
        for element in split_elements(&written)? {
            let message = to_message(element);
            self.frame(0x1, message.as_bytes());
        }
        Ok(())
    }

    /// Parses whole frames out of `raw` into `input`.
    fn parse_frames(&mut self) -> io::Result<()> {
        loop {
            let Some(Frame {
                fin,
                opcode,
                payload,
                used,
            }) = parse_frame(&self.raw)?
            else {
                return Ok(());
            };
            self.raw.drain(..used);
            match opcode {
                0x0..=0x2 => {
                    self.message.extend_from_slice(&payload);
                    if fin {
                        let message = std::mem::take(&mut self.message);
                        let text = String::from_utf8(message).map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "a message is not UTF-8")
                        })?;
                        self.input.extend_from_slice(from_message(&text).as_bytes());
                    }
                }
                0x8 => {
                    self.closed = true;
                    return Ok(());
                }
                0x9 => self.frame(0xA, &payload),
                _ => {} // a pong
            }
        }
    }

    /// Writes what is pending, as far as the socket takes it now.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>
    where
        S: AsyncWrite + Unpin,
    {
        while self.pending_at < self.pending.len() {
            let n = match Pin::new(&mut self.io).poll_write(cx, &self.pending[self.pending_at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.pending_at += n;
        }
        self.pending.clear();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }
}

/// A frame from the server: FIN, the opcode, the payload, and how many
/// bytes of the input it took.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
    used: usize,
}

/// One frame from the server at the start of `raw`; `None` until it is
/// all there.
fn parse_frame(raw: &[u8]) -> io::Result<Option<Frame>> {
    if raw.len() < 2 {
        return Ok(None);
    }
    let fin = raw[0] & 0x80 != 0;
    let opcode = raw[0] & 0x0f;
    let masked = raw[1] & 0x80 != 0;
    let (len, mut at) = match raw[1] & 0x7f {
        126 if raw.len() >= 4 => (u16::from_be_bytes([raw[2], raw[3]]) as usize, 4),
        127 if raw.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if masked {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server masked a frame",
        ));
    }
    if raw.len() < at + len {
        return Ok(None);
    }
    let payload = raw[at..at + len].to_vec();
    at += len;
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
        used: at,
    }))
}

/// Splits written bytes into top-level elements (and the stream header or
/// end tag, each one piece). The load generator writes only simple XML:
/// no comments, no CDATA, `<?xml …?>` only before a stream header.
fn split_elements(bytes: &[u8]) -> io::Result<Vec<&str>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "written bytes are not UTF-8"))?;
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("</stream:stream>") {
            out.push("</stream:stream>");
            rest = after.trim_start();
            continue;
        }
        if rest.starts_with("<?xml") || rest.starts_with("<stream:stream") {
            // The header ends at the first '>' after the stream tag.
            let tag = rest.find("<stream:stream").unwrap_or(0);
            let end = tag
                + rest[tag..]
                    .find('>')
                    .map(|i| i + 1)
                    .unwrap_or(rest.len() - tag);
            out.push(&rest[..end]);
            rest = rest[end..].trim_start();
            continue;
        }
        let (mut depth, mut i, mut quote) = (0i32, 0usize, None::<u8>);
        let b = rest.as_bytes();
        let mut in_tag = false;
        let end = loop {
            if i >= b.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a written element is not whole",
                ));
            }
            let c = b[i];
            match (in_tag, quote) {
                (true, Some(q)) if c == q => quote = None,
                (true, Some(_)) => {}
                (true, None) if c == b'\'' || c == b'"' => quote = Some(c),
                (true, None) if c == b'>' => {
                    in_tag = false;
                    if b[i - 1] == b'/' {
                        depth -= 1;
                    }
                    if depth == 0 {
                        break i + 1;
                    }
                }
                (true, None) => {}
                (false, _) if c == b'<' => {
                    in_tag = true;
                    if b.get(i + 1) == Some(&b'/') {
                        depth -= 2; // the end tag closes; its '>' adds nothing
                    }
                    depth += 1;
                }
                (false, _) => {}
            }
            i += 1;
        };
        out.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Ok(out)
}

/// A written piece as the WebSocket message for it.
fn to_message(piece: &str) -> String {
    if piece.starts_with("<?xml") || piece.starts_with("<stream:stream") {
        let header = &piece[piece.find("<stream:stream").unwrap_or(0)..];
        let to = attr(header, "to").unwrap_or_default();
        return format!("<open xmlns='{FRAMING}' to='{to}' version='1.0'/>");
    }
    if piece.starts_with("</stream:stream") {
        return format!("<close xmlns='{FRAMING}'/>");
    }
    let name_end = piece[1..]
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .map(|i| i + 1)
        .unwrap_or(piece.len());
    let start_tag = &piece[..piece.find('>').unwrap_or(piece.len())];
    if start_tag.contains("xmlns=") {
        piece.to_string()
    } else {
        format!(
            "{} xmlns='jabber:client'{}",
            &piece[..name_end],
            &piece[name_end..]
        )
    }
}

/// A server's message as stream input.
fn from_message(text: &str) -> String {
    let t = text.trim_start();
    if t.starts_with("<open") {
        let attrs: String = ["id", "from", "version", "xml:lang"]
            .iter()
            .filter_map(|k| attr(t, k).map(|v| format!(" {k}='{v}'")))
            .collect();
        return format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'{attrs}>"
        );
    }
    if t.starts_with("<close") {
        return "</stream:stream>".into();
    }
    text.to_string()
}

/// The value of attribute `name` in the first tag of `tag` (either quote).
fn attr(tag: &str, name: &str) -> Option<String> {
    let head = &tag[..tag.find('>').unwrap_or(tag.len())];
    for q in ['\'', '"'] {
        let key = format!(" {name}={q}");
        if let Some(at) = head.find(&key) {
            let rest = &head[at + key.len()..];
            return Some(rest[..rest.find(q)?].to_string());
        }
    }
    None
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            // Pongs go out as soon as the socket takes them.
            if let Poll::Ready(Err(e)) = me.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            if me.input_at < me.input.len() {
                let n = buf.remaining().min(me.input.len() - me.input_at);
                buf.put_slice(&me.input[me.input_at..me.input_at + n]);
                me.input_at += n;
                if me.input_at == me.input.len() {
                    me.input.clear();
                    me.input_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if me.closed {
                return Poll::Ready(Ok(())); // the end of the input
            }
            let mut chunk = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut me.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    me.closed = true;
                }
                Poll::Ready(Ok(())) => {
                    me.raw.extend_from_slice(rb.filled());
                    me.parse_frames()?;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.written.is_empty() {
            me.frame_written()?;
        }
        match me.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut me.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        match me.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut me.io).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_elements_become_one_message_each_with_their_namespace() {
        let written = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>\
            <message to='a@localhost' type='chat'><body>x &gt; y</body></message><presence/>\
            <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biws</auth>\
            </stream:stream>";
        let pieces: Vec<String> = split_elements(written)
            .unwrap()
            .into_iter()
            .map(to_message)
            .collect();
        assert_eq!(
            pieces,
            [
                format!("<open xmlns='{FRAMING}' to='localhost' version='1.0'/>"),
                "<message xmlns='jabber:client' to='a@localhost' type='chat'><body>x &gt; y</body></message>".into(),
                "<presence xmlns='jabber:client'/>".into(),
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biws</auth>".into(),
                format!("<close xmlns='{FRAMING}'/>"),
            ]
        );
        assert!(split_elements(b"<message><body>").is_err());
    }

    #[test]
    fn server_messages_become_a_stream() {
        assert_eq!(
            from_message(&format!(
                "<open xmlns='{FRAMING}' id='s1' from='localhost' version='1.0' xml:lang='en'/>"
            )),
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
             id='s1' from='localhost' version='1.0' xml:lang='en'>"
        );
        assert_eq!(
            from_message(&format!("<close xmlns='{FRAMING}'/>")),
            "</stream:stream>"
        );
        let stanza = "<message xmlns='jabber:client'><body/></message>";
        assert_eq!(from_message(stanza), stanza);
    }

    #[test]
    fn frames_are_parsed_whole_and_not_before() {
        let mut raw = vec![0x81, 126, 0x01, 0x00];
        raw.extend(std::iter::repeat_n(b'a', 256));
        assert!(parse_frame(&raw[..100]).unwrap().is_none());
        let f = parse_frame(&raw).unwrap().unwrap();
        assert!(f.fin);
        assert_eq!((f.opcode, f.payload.len(), f.used), (1, 256, 260));
        assert!(parse_frame(&[0x81, 0x81, 0, 0, 0, 0, b'a']).is_err());
    }
}
