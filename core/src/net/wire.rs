//! The two wires a client connection runs over, for the one driver in
//! `connection.rs`: a byte stream (TCP or TLS, RFC 6120) or WebSocket
//! frames (RFC 6455) carrying RFC 7395 messages, after an HTTP upgrade the
//! web layer did. The stream machine, the session, stream management and
//! every limit are the same on both; only these few steps differ:
//!
//! * **out**: each unit the machine or the session writes (a header, a
//!   stanza, an error) is appended as-is to a stream, or as one text frame
//!   to a WebSocket ([`unit`], [`stanza`]);
//! * **in**: a stream's bytes go to the machine as they come; a
//!   WebSocket's bytes go through the frame decoder first, and the machine
//!   gets one whole message at a time ([`WsInput::feed`]);
//! * **around**: a WebSocket answers pings, sends pings as keepalives
//!   (the machine's whitespace keepalive is a stream's), and ends with a
//!   close frame.

use switchboard_xml::{ns, Element};

use crate::stream::websocket::{self, Decoder, Incoming};
use crate::stream::{C2s, Framing, StreamError};

/// Appends one unit the machine produced (`Action::Send`).
pub(crate) fn unit(framing: Framing, bytes: &[u8], out: &mut Vec<u8>) {
    match framing {
        Framing::Stream => out.extend_from_slice(bytes),
        Framing::WebSocket => websocket::text(bytes, out),
    }
}

/// Appends one stanza to the client.
pub(crate) fn stanza(framing: Framing, el: &Element, out: &mut Vec<u8>) {
    match framing {
        Framing::Stream => el.write_to(out, Some(ns::CLIENT)),
        Framing::WebSocket => websocket::text(&el.to_bytes(None), out),
    }
}

/// The receiving side of a WebSocket connection.
pub(crate) struct WsInput {
    decoder: Decoder,
    /// The close code to end with: normal, or what the client broke.
    code: u16,
    /// The largest message taken: the stanza limit.
    max_message: usize,
}

/// What a read brought.
#[derive(PartialEq, Eq)]
pub(crate) enum Fed {
    More,
    /// The client sent its close frame: treat as the end of the input.
    PeerClosed,
}

impl WsInput {
    pub fn new(max_message: usize) -> WsInput {
        WsInput {
            decoder: Decoder::default(),
            code: websocket::NORMAL,
            max_message,
        }
    }

    /// Received bytes → whole messages for the machine. A frame the
    /// protocol forbids ends the stream with a stream error saying what
    /// was wrong, and the WebSocket with the matching close code.
    pub fn feed(&mut self, bytes: &[u8], machine: &mut C2s) -> Fed {
        let mut messages = Vec::new();
        let result = self.decoder.feed(bytes, self.max_message, &mut messages);
        let mut fed = Fed::More;
        for m in messages {
            match m {
                Incoming::Message(text) => machine.handle_input(&text),
                Incoming::Closed(_) => fed = Fed::PeerClosed,
            }
        }
        if let Err(e) = result {
            self.code = e.code;
            let condition = match e.code {
                websocket::TOO_BIG => "policy-violation",
                websocket::UNSUPPORTED_DATA => "unsupported-encoding",
                _ => "bad-format",
            };
            machine.fail(StreamError::with_text(condition, e.reason));
        }
        self.decoder.shrink_if_idle();
        fed
    }

    /// Pongs to write.
    pub fn take_replies(&mut self) -> Vec<u8> {
        self.decoder.take_replies()
    }

    /// The close frame that ends the connection.
    pub fn close(&self, out: &mut Vec<u8>) {
        let reason = if self.code == websocket::NORMAL {
            ""
        } else {
            "protocol error"
        };
        websocket::close(self.code, reason, out);
    }
}
