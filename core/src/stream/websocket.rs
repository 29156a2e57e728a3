//! RFC 6455 WebSocket frames, the server's side, sans-IO: bytes in,
//! whole messages and control replies out. The HTTP upgrade happens
//! elsewhere (the web layer); from then on a WebSocket connection is a
//! byte stream like TCP, and this codec sits between it and the RFC 7395
//! framing of [`super::framing`].
//!
//! Hand-written rather than taken from a WebSocket library because a
//! session must cost almost nothing while idle: the decoder holds no
//! buffer at all between messages (the libraries keep a read buffer of
//! several kilobytes per connection), and the encoder writes frames
//! straight into the output the driver already batches.
//!
//! What a client may send is bounded: a message larger than the stream's
//! stanza limit (plus room for the framing) is refused before its payload
//! is buffered, and every protocol violation is an error naming what was
//! wrong, with the close code RFC 6455 §7.4.1 gives it.

/// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const UNSUPPORTED_DATA: u16 = 1003;
pub const TOO_BIG: u16 = 1009;

/// A frame the client sent that the protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsError {
    /// The close code to answer with.
    pub code: u16,
    pub reason: String,
}

impl WsError {
    fn new(code: u16, reason: impl Into<String>) -> WsError {
        WsError {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (WebSocket close code {})", self.reason, self.code)
    }
}

/// What the decoder found in the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// One whole text message (fragments joined).
    Message(Vec<u8>),
    /// The client closed the WebSocket (with this code, if it gave one).
    /// Nothing after it is read.
    Closed(Option<u16>),
}

/// The receiving half: frames in, messages out. Control frames are
/// answered into [`Decoder::replies`] (a pong for each ping).
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of an incomplete frame. Empty (and unallocated) between
    /// frames, which is where an idle connection sits.
    partial: Vec<u8>,
    /// A fragmented text message so far.
    message: Vec<u8>,
    /// A text message was started and not finished.
    in_message: bool,
    /// The close frame was seen or an error happened: no more input.
    done: bool,
    /// Control replies to write (pongs), as frames.
    replies: Vec<u8>,
}

impl Decoder {
    /// Feeds received bytes; whole messages and the close go to `out`, in
    /// order. `max_message` bounds a message's payload.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        max_message: usize,
        out: &mut Vec<Incoming>,
    ) -> Result<(), WsError> {
        if self.done {
            return Ok(());
        }
        // The common case, a read holding whole frames and nothing left
        // from before, is parsed in place.
        let owned;
        let mut input: &[u8] = if self.partial.is_empty() {
            bytes
        } else {
            self.partial.extend_from_slice(bytes);
            owned = std::mem::take(&mut self.partial);
            &owned[..]
        };
        let result = loop {
            match self.frame(input, max_message, out) {
                Ok(Some(used)) => {
                    input = &input[used..];
                    if self.done {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    self.done = true;
                    break Err(e);
                }
            }
        };
        if !self.done && !input.is_empty() {
            self.partial = input.to_vec();
        }
        result
    }

    /// Parses one frame at the start of `input`: `Some(bytes used)`, or
    /// `None` when it is not complete yet.
    fn frame(
        &mut self,
        input: &[u8],
        max_message: usize,
        out: &mut Vec<Incoming>,
    ) -> Result<Option<usize>, WsError> {
        if input.len() < 2 {
            return Ok(None);
        }
        let fin = input[0] & 0x80 != 0;
        if input[0] & 0x70 != 0 {
            return Err(WsError::new(
                PROTOCOL_ERROR,
                "reserved bits set in a frame (no extension was negotiated)",
            ));
        }
        let opcode = input[0] & 0x0F;
        if input[1] & 0x80 == 0 {
            return Err(WsError::new(
                PROTOCOL_ERROR,
                "a frame from the client is not masked (RFC 6455 §5.1)",
            ));
        }
        let (len, mut at) = match input[1] & 0x7F {
            126 if input.len() < 4 => return Ok(None),
            126 => (u64::from(u16::from_be_bytes([input[2], input[3]])), 4),
            127 if input.len() < 10 => return Ok(None),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&input[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = opcode & 0x8 != 0;
        if control && (len > 125 || !fin) {
            return Err(WsError::new(
                PROTOCOL_ERROR,
                "a control frame is fragmented or longer than 125 bytes",
            ));
        }
        // Checked before anything is buffered: a declared length alone is
        // enough to refuse a message that is too big.
        let so_far = if opcode == CONTINUATION {
            self.message.len() as u64
        } else {
            0
        };
        if !control && so_far.saturating_add(len) > max_message as u64 {
            return Err(WsError::new(
                TOO_BIG,
                format!("a message is larger than the limit of {max_message} bytes"),
            ));
        }
        if input.len() < at + 4 {
            return Ok(None);
        }
        let mask = [input[at], input[at + 1], input[at + 2], input[at + 3]];
        at += 4;
        let len = len as usize;
        if input.len() < at + len {
            return Ok(None);
        }
        let payload = unmask(&input[at..at + len], mask);
        let used = at + len;
        match opcode {
            TEXT | CONTINUATION => {
                if opcode == TEXT && self.in_message {
                    return Err(WsError::new(
                        PROTOCOL_ERROR,
                        "a new message started before the last one ended",
                    ));
                }
                if opcode == CONTINUATION && !self.in_message {
                    return Err(WsError::new(
                        PROTOCOL_ERROR,
                        "a continuation frame without a message to continue",
                    ));
                }
                if fin && !self.in_message {
                    out.push(Incoming::Message(payload));
                } else {
                    self.in_message = true;
                    self.message.extend_from_slice(&payload);
                    if fin {
                        self.in_message = false;
                        out.push(Incoming::Message(std::mem::take(&mut self.message)));
                    }
                }
            }
            BINARY => {
                return Err(WsError::new(
                    UNSUPPORTED_DATA,
                    "binary messages are not XMPP (RFC 7395 §3.2: text frames only)",
                ))
            }
            CLOSE => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                self.done = true;
                out.push(Incoming::Closed(code));
            }
            PING => frame(PONG, &payload, &mut self.replies),
            PONG => {}
            other => {
                return Err(WsError::new(
                    PROTOCOL_ERROR,
                    format!("unknown opcode {other:#x}"),
                ))
            }
        }
        Ok(Some(used))
    }

    /// Control replies waiting to be written (taken).
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    /// Whether a message or frame is half received (bytes are held).
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && self.message.is_empty()
    }

    /// Gives back buffer memory while idle.
    pub fn shrink_if_idle(&mut self) {
        if self.partial.is_empty() && self.partial.capacity() > 0 {
            self.partial = Vec::new();
        }
        if self.message.is_empty() && self.message.capacity() > 0 {
            self.message = Vec::new();
        }
    }
}

fn unmask(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect()
}

/// Appends one unmasked server frame (RFC 6455 §5.2) to `out`.
fn frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// One text message.
pub fn text(payload: &[u8], out: &mut Vec<u8>) {
    frame(TEXT, payload, out);
}

/// A ping (the keepalive of an idle WebSocket session).
pub fn ping(out: &mut Vec<u8>) {
    frame(PING, b"", out);
}

/// The close frame, with a code and a short reason (cut to fit the 125
/// bytes of a control frame).
pub fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(CLOSE, &payload, out);
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`
/// (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A client's frame, masked as a client must: for tests and test clients.
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(unmask(payload, mask));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn decode(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, WsError> {
        let mut out = Vec::new();
        d.feed(bytes, 1000, &mut out)?;
        Ok(out)
    }

    #[test]
    fn the_accept_key_of_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn whole_and_split_frames_give_whole_messages() {
        let mut d = Decoder::default();
        let mut bytes = client_frame(TEXT, true, b"<presence/>", M);
        bytes.extend(client_frame(TEXT, true, b"<iq/>", M));
        assert_eq!(
            decode(&mut d, &bytes).unwrap(),
            vec![
                Incoming::Message(b"<presence/>".to_vec()),
                Incoming::Message(b"<iq/>".to_vec())
            ]
        );
        assert!(d.is_idle());
        // Byte by byte.
        let bytes = client_frame(TEXT, true, b"<message/>", M);
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(decode(&mut d, &[*b]).unwrap());
        }
        assert_eq!(got, vec![Incoming::Message(b"<message/>".to_vec())]);
        assert!(d.is_idle());
    }

    #[test]
    fn fragments_are_joined_and_pings_answered_between_them() {
        let mut d = Decoder::default();
        let mut bytes = client_frame(TEXT, false, b"<mess", M);
        bytes.extend(client_frame(PING, true, b"p", M));
        bytes.extend(client_frame(CONTINUATION, true, b"age/>", M));
        assert_eq!(
            decode(&mut d, &bytes).unwrap(),
            vec![Incoming::Message(b"<message/>".to_vec())]
        );
        assert_eq!(d.take_replies(), vec![0x8A, 1, b'p']);
    }

    #[test]
    fn close_ends_the_input() {
        let mut d = Decoder::default();
        let mut bytes = client_frame(CLOSE, true, &1000u16.to_be_bytes(), M);
        bytes.extend(client_frame(TEXT, true, b"<late/>", M));
        assert_eq!(
            decode(&mut d, &bytes).unwrap(),
            vec![Incoming::Closed(Some(1000))]
        );
    }

    #[test]
    fn violations_are_refused_with_their_close_codes() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        assert_eq!(
            decode(&mut Decoder::default(), &unmasked).unwrap_err().code,
            PROTOCOL_ERROR
        );
        let binary = client_frame(BINARY, true, b"x", M);
        assert_eq!(
            decode(&mut Decoder::default(), &binary).unwrap_err().code,
            UNSUPPORTED_DATA
        );
        // Too big is known from the header alone: nothing is buffered.
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let mut d = Decoder::default();
        assert_eq!(decode(&mut d, &huge).unwrap_err().code, TOO_BIG);
        assert!(d.is_idle());
        // So is a fragmented message that grows past the limit.
        let mut d = Decoder::default();
        decode(&mut d, &client_frame(TEXT, false, &[b'a'; 600], M)).unwrap();
        let e = decode(&mut d, &client_frame(CONTINUATION, true, &[b'a'; 600], M)).unwrap_err();
        assert_eq!(e.code, TOO_BIG);
        let stray = client_frame(CONTINUATION, true, b"x", M);
        assert_eq!(
            decode(&mut Decoder::default(), &stray).unwrap_err().code,
            PROTOCOL_ERROR
        );
        let long_ping = client_frame(PING, true, &[0; 126], M);
        assert_eq!(
            decode(&mut Decoder::default(), &long_ping)
                .unwrap_err()
                .code,
            PROTOCOL_ERROR
        );
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        let mut out = Vec::new();
        text(b"hi", &mut out);
        assert_eq!(out, vec![0x81, 2, b'h', b'i']);
        let mut out = Vec::new();
        text(&[b'x'; 300], &mut out);
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        let mut out = Vec::new();
        close(NORMAL, "", &mut out);
        assert_eq!(out, vec![0x88, 2, 0x03, 0xE8]);
    }
}
