//! `/http-bind`: BOSH (XEP-0124, XEP-0206), XMPP over long-polled HTTP
//! requests for clients and networks that cannot use WebSocket.
//!
//! A BOSH session runs the core's one client driver, exactly as a
//! WebSocket does: the session holds one end of an in-memory pipe and
//! speaks RFC 7395 to the driver on it (one element per message, `<open/>`
//! for a stream restart, `<close/>` to end), so negotiation, limits and
//! stream management are the same as for every other client. What is left
//! here is BOSH's own part:
//!
//! * the session: created by a request without `sid` (`to` a local host,
//!   `wait` and `hold` capped by `<web><bosh>`), a random `sid`, at most
//!   `max-sessions-per-address` per client address;
//! * request ids: each request's `rid` must be the next one (or the one
//!   after it, `requests="2"`); a repeated `rid` gets the same answer again
//!   (a retry after a network error); anything else ends the session with
//!   `item-not-found`;
//! * long polling: an answer waits (at most `wait`) until the driver has
//!   something to send, and a new request releases the one held
//!   (`hold="1"`);
//! * the end: `type="terminate"` from the client, the driver's `<close/>`,
//!   or no request for `inactivity`; the pipe closing is a lost connection
//!   to the driver (so a session with stream management hibernates).
//!
//! Errors are `<body type="terminate" condition="…"/>` (XEP-0124 §17);
//! a body that is not XML is a 400 as well.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use switchboard_xml::{ns, parse_document, Element, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::sync::Notify;

use crate::body::BodyError;
use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

/// XEP-0124's namespace.
pub const NS: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206's.
const XBOSH: &str = "urn:xmpp:xbosh";

/// The pipe between a session and its driver.
const PIPE: usize = 64 * 1024;

/// Every BOSH session of the web side, by `sid`.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<Session>> {
        lock(&self.map).get(sid).cloned()
    }

    fn remove(&self, sid: &str) {
        lock(&self.map).remove(sid);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Session {
    sid: String,
    /// The local domain the session is with.
    host: String,
    ip: IpAddr,
    wait: Duration,
    to_driver: tokio::sync::Mutex<Option<WriteHalf<DuplexStream>>>,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// Messages from the driver not yet answered to the client.
    out: VecDeque<String>,
    /// Why the session ended (a BOSH condition), once it has.
    ended: Option<&'static str>,
    /// The `rid` expected next.
    next_rid: u64,
    /// The last answer, for a retried request.
    last: Option<(u64, Bytes)>,
    /// Bumped by every request: a held request returns when it changes.
    generation: u64,
    /// When a request last arrived or was answered.
    last_seen: Instant,
    /// Requests being answered.
    in_flight: usize,
}

pub(crate) async fn serve(app: &Arc<App>, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    if let (Some(allowed), Some(origin)) = (&app.web.origins, req.headers().get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        if !allowed.contains(&origin) {
            return reply::error(
                StatusCode::FORBIDDEN,
                format!("pages from {origin} may not connect here (see <web origins>)"),
            );
        }
    }
    let response = match *req.method() {
        Method::OPTIONS => reply::preflight("POST, OPTIONS"),
        Method::POST => post(app, conn, req).await,
        Method::GET | Method::HEAD => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this is a BOSH endpoint (XEP-0206): POST <body/> elements to it",
        ),
        _ => reply::method_not_allowed("POST, OPTIONS"),
    };
    reply::cors(response)
}

/// A `<body/>` answer.
fn body_response(status: StatusCode, bytes: Bytes) -> Response<Body> {
    reply::with(status, "text/xml; charset=utf-8", bytes)
}

/// `<body type="terminate" condition="…"/>`, with a sentence for people.
fn terminate(status: StatusCode, condition: &str, why: &str) -> Response<Body> {
    tracing::debug!(condition, "BOSH request refused: {why}");
    let el = Element::new("body", NS)
        .with_attr("type", "terminate")
        .with_attr("condition", condition)
        .with_child(Element::new("text", "urn:switchboard:bosh").with_text(why));
    body_response(status, el.to_bytes(None).into())
}

async fn post(app: &Arc<App>, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    let max = app.web.max_body_bytes;
    let timeout = app.web.body_timeout;
    let bytes = match crate::body::collect(req.into_body(), max, timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a BOSH request is at most {max} bytes"),
            )
        }
        Err(BodyError::TimedOut) => {
            return crate::body::timed_out(format!(
                "the BOSH request did not arrive within {} s",
                timeout.as_secs_f64()
            ))
        }
        Err(BodyError::Cut) => {
            return reply::error(StatusCode::BAD_REQUEST, "the request was cut short")
        }
    };
    let limits = Limits {
        max_stanza_bytes: max,
        ..Limits::default()
    };
    let body = match parse_document(&bytes, limits) {
        Ok(b) => b,
        Err(e) => {
            return terminate(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &format!("the request is not XML: {e}"),
            )
        }
    };
    if !body.is("body", NS) {
        return terminate(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("the root must be <body xmlns='{NS}'/>"),
        );
    }
    let Some(rid) = body.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "rid= is missing or not a number",
        );
    };
    match body.attr("sid") {
        None => create(app, conn, &body, rid).await,
        Some(sid) => match app.bosh.get(sid) {
            Some(s) => request(app, s, body, rid).await,
            None => terminate(
                StatusCode::NOT_FOUND,
                "item-not-found",
                "no such session (it ended, or never was)",
            ),
        },
    }
}

/// A request without `sid`: a new session.
async fn create(app: &Arc<App>, conn: &Conn, body: &Element, rid: u64) -> Response<Body> {
    let cfg = &app.web.bosh;
    let to = body.attr("to").unwrap_or_default().to_ascii_lowercase();
    if !app.hosts.contains(&to) {
        return terminate(
            StatusCode::OK,
            "host-unknown",
            &format!("\"{to}\" is not a domain of this server"),
        );
    }
    if body.attr("ver").is_some_and(|v| !v.starts_with("1.")) {
        return terminate(StatusCode::OK, "undefined-condition", "BOSH 1.x only");
    }
    let wait = body
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(cfg.max_wait)
        .min(cfg.max_wait);
    let ip = conn.peer.ip();
    let session = {
        let mut map = lock(&app.bosh.map);
        if map.values().filter(|s| s.ip == ip).count() >= cfg.max_sessions_per_address {
            drop(map);
            return terminate(
                StatusCode::OK,
                "policy-violation",
                &format!(
                    "{} BOSH sessions from one address at once at most",
                    cfg.max_sessions_per_address
                ),
            );
        }
        let mut sid;
        loop {
            sid = new_sid();
            if !map.contains_key(&sid) {
                break;
            }
        }
        let (ours, driver) = tokio::io::duplex(PIPE);
        let (mut from_driver, to_driver) = tokio::io::split(ours);
        let session = Arc::new(Session {
            sid: sid.clone(),
            host: to.clone(),
            ip,
            wait,
            to_driver: tokio::sync::Mutex::new(Some(to_driver)),
            state: Mutex::new(State {
                out: VecDeque::new(),
                ended: None,
                next_rid: rid.wrapping_add(1),
                last: None,
                generation: 0,
                last_seen: Instant::now(),
                in_flight: 1,
            }),
            changed: Notify::new(),
        });
        map.insert(sid.clone(), session.clone());

        // The driver, as for a WebSocket; it holds a connection guard.
        let handles = app.handles.clone();
        let (peer, secure) = (conn.peer, conn.secure());
        let guard = handles.connections.guard();
        tokio::spawn(async move {
            switchboard_core::net::connection::serve_websocket(
                driver,
                peer,
                handles.c2s.clone(),
                secure,
                None,
            )
            .await;
            drop(guard);
        });
        // What the driver says, decoded into messages for the answers.
        let s = session.clone();
        tokio::spawn(async move {
            let mut frames = FrameReader::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from_driver.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut pongs = Vec::new();
                let closed = frames.feed(&buf[..n], &mut pongs);
                for m in frames.take() {
                    s.driver_said(m);
                }
                if !pongs.is_empty() {
                    s.write(&pongs).await;
                }
                if closed {
                    break;
                }
            }
            s.end("remote-connection-failed");
        });
        // Inactivity.
        let (s, sessions) = (session.clone(), app.clone());
        let inactivity = cfg.inactivity;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(inactivity / 4).await;
                let idle = {
                    let st = lock(&s.state);
                    st.in_flight == 0 && st.last_seen.elapsed() >= inactivity
                };
                if idle {
                    tracing::debug!(sid = %s.sid, "BOSH session ends: no request for {inactivity:?}");
                    s.end("remote-connection-failed");
                    s.close_pipe().await;
                    sessions.bosh.remove(&s.sid);
                    break;
                }
            }
        });
        session
    };
    let sid = session.sid.clone();
    session.write(&frame(&open(&to))).await;
    let attrs = [
        ("sid", sid.clone()),
        ("wait", wait.as_secs().to_string()),
        ("hold", "1".into()),
        ("requests", "2".into()),
        ("inactivity", cfg.inactivity.as_secs().to_string()),
        ("polling", "0".into()),
        ("ver", "1.11".into()),
        ("from", to.clone()),
        ("ack", rid.to_string()),
        ("maxpause", cfg.inactivity.as_secs().to_string()),
    ];
    session.answer(rid, &attrs, true).await
}

fn open(to: &str) -> Vec<u8> {
    Element::new("open", ns::FRAMING)
        .with_attr("to", to)
        .with_attr("version", "1.0")
        .to_bytes(None)
}

fn new_sid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A request of a running session.
async fn request(app: &Arc<App>, s: Arc<Session>, mut body: Element, rid: u64) -> Response<Body> {
    {
        let mut st = lock(&s.state);
        if let Some((last, answer)) = &st.last {
            if *last == rid {
                // A retry: the same answer again.
                return body_response(StatusCode::OK, answer.clone());
            }
        }
        if rid < st.next_rid || rid > st.next_rid.saturating_add(1) {
            let expected = st.next_rid;
            st.ended = Some("item-not-found");
            drop(st);
            s.changed.notify_waiters();
            app.bosh.remove(&s.sid);
            let s2 = s.clone();
            tokio::spawn(async move { s2.close_pipe().await });
            return terminate(
                StatusCode::NOT_FOUND,
                "item-not-found",
                &format!("rid {rid} is out of order (expected {expected})"),
            );
        }
        st.next_rid = rid + 1;
        st.generation += 1;
        st.in_flight += 1;
        st.last_seen = Instant::now();
    }
    // A held request returns now: this one takes its place.
    s.changed.notify_waiters();

    // `xmpp:restart` (XEP-0206 §5), as the parser names it.
    let restart = body.attr(&format!("{{{XBOSH}}}restart")) == Some("true");
    let ending = body.attr("type") == Some("terminate");
    let mut bytes = Vec::new();
    if restart {
        bytes.extend(frame(&open(&s.host)));
    } else {
        for node in std::mem::take(&mut body.children) {
            if let switchboard_xml::Node::Element(mut el) = node {
                el.rename_ns(NS, ns::CLIENT);
                bytes.extend(frame(&el.to_bytes(None)));
            }
        }
    }
    if ending {
        bytes.extend(frame(&Element::new("close", ns::FRAMING).to_bytes(None)));
    }
    if !bytes.is_empty() {
        s.write(&bytes).await;
    }
    if ending {
        s.end("");
        app.bosh.remove(&s.sid);
        {
            let mut st = lock(&s.state);
            st.in_flight -= 1;
        }
        // The driver has the close; the pipe goes once it has read it.
        let s2 = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            s2.close_pipe().await;
        });
        return body_response(
            StatusCode::OK,
            Element::new("body", NS)
                .with_attr("type", "terminate")
                .to_bytes(None)
                .into(),
        );
    }
    s.answer(rid, &[], restart).await
}

impl Session {
    async fn write(&self, bytes: &[u8]) {
        let mut w = self.to_driver.lock().await;
        if let Some(pipe) = w.as_mut() {
            if pipe.write_all(bytes).await.is_err() {
                *w = None;
            }
        }
    }

    async fn close_pipe(&self) {
        if let Some(mut pipe) = self.to_driver.lock().await.take() {
            let _ = pipe.shutdown().await;
        }
    }

    fn driver_said(&self, message: String) {
        let mut st = lock(&self.state);
        if message.starts_with("<close") {
            st.ended.get_or_insert("remote-stream-error");
        } else if !message.starts_with("<open") {
            st.out.push_back(message);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Marks the session ended (`condition` for the client's next answer,
    /// unless it already has one).
    fn end(&self, condition: &'static str) {
        lock(&self.state).ended.get_or_insert(condition);
        self.changed.notify_waiters();
    }

    /// Waits (at most `wait`) for something to send, and answers with it.
    /// `features`: wait for the stream features (a new or restarted
    /// stream).
    async fn answer(&self, rid: u64, attrs: &[(&str, String)], features: bool) -> Response<Body> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let generation = lock(&self.state).generation;
        let (out, ended) = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut st = lock(&self.state);
                let ready = if features {
                    st.out.iter().any(|m| m.starts_with("<stream:features"))
                } else {
                    !st.out.is_empty()
                };
                if ready || st.ended.is_some() || st.generation != generation {
                    break (st.out.drain(..).collect::<Vec<_>>(), st.ended);
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let mut st = lock(&self.state);
                break (st.out.drain(..).collect::<Vec<_>>(), st.ended);
            }
        };
        let mut body = String::from("<body xmlns='");
        body.push_str(NS);
        body.push_str("' xmlns:xmpp='");
        body.push_str(XBOSH);
        body.push_str("' xmlns:stream='http://etherx.jabber.org/streams'");
        for (k, v) in attrs {
            body.push_str(&format!(" {k}='{v}'"));
        }
        if !attrs.is_empty() {
            body.push_str(" xmpp:version='1.0' xmpp:restartlogic='true'");
        }
        if let Some(condition) = ended.filter(|c| !c.is_empty()) {
            body.push_str(&format!(" type='terminate' condition='{condition}'"));
        }
        body.push('>');
        for m in &out {
            body.push_str(m);
        }
        body.push_str("</body>");
        let bytes = Bytes::from(body);
        let mut st = lock(&self.state);
        st.last = Some((rid, bytes.clone()));
        st.in_flight -= 1;
        st.last_seen = Instant::now();
        body_response(StatusCode::OK, bytes)
    }
}

/// A masked WebSocket text frame (the session is the client of the
/// driver's RFC 6455 wire; the mask is zero, the pipe being in-process).
fn frame(payload: &[u8]) -> Vec<u8> {
    frame_of(0x1, payload)
}

fn frame_of(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// The driver's frames → whole text messages; pings answered.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
    message: Vec<u8>,
    done: Vec<String>,
}

impl FrameReader {
    /// Takes bytes; returns whether the driver closed.
    fn feed(&mut self, bytes: &[u8], pongs: &mut Vec<u8>) -> bool {
        self.buf.extend_from_slice(bytes);
        loop {
            if self.buf.len() < 2 {
                return false;
            }
            let (b0, b1) = (self.buf[0], self.buf[1]);
            let (len, head) = match b1 & 0x7f {
                126 if self.buf.len() >= 4 => {
                    (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                }
                127 if self.buf.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&self.buf[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => return false,
                n => (n as usize, 2),
            };
            if self.buf.len() < head + len {
                return false;
            }
            let payload: Vec<u8> = self.buf[head..head + len].to_vec();
            self.buf.drain(..head + len);
            match b0 & 0x0f {
                0x0 | 0x1 => {
                    self.message.extend_from_slice(&payload);
                    if b0 & 0x80 != 0 {
                        let m = std::mem::take(&mut self.message);
                        self.done.push(String::from_utf8_lossy(&m).into_owned());
                    }
                }
                0x8 => return true,
                0x9 => pongs.extend(frame_of(0xA, &payload)),
                _ => {}
            }
        }
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_whatever_the_pieces() {
        // Unmasked frames as the driver sends them: a text message in two
        // fragments, a ping, a long message, a close.
        let mut wire = vec![0x01, 3];
        wire.extend_from_slice(b"<a ");
        wire.extend_from_slice(&[0x80, 2]);
        wire.extend_from_slice(b"/>");
        wire.extend_from_slice(&[0x89, 1, b'p']);
        let long = "x".repeat(300);
        wire.extend_from_slice(&[0x81, 126, 1, 44]);
        wire.extend_from_slice(long.as_bytes());
        wire.extend_from_slice(&[0x88, 0]);
        let mut r = FrameReader::default();
        let mut pongs = Vec::new();
        let mut closed = false;
        for b in &wire {
            closed = r.feed(std::slice::from_ref(b), &mut pongs);
        }
        assert!(closed);
        assert_eq!(r.take(), vec!["<a />".to_string(), long]);
        assert_eq!(pongs, frame_of(0xA, b"p"));
    }

    #[test]
    fn frames_to_the_driver_are_masked_with_their_length() {
        let f = frame(b"hi");
        assert_eq!(f, vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
        let f = frame(&[b'x'; 200]);
        assert_eq!(&f[..4], &[0x81, 0x80 | 126, 0, 200]);
        assert_eq!(f.len(), 4 + 4 + 200);
    }
}
