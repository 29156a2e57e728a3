//! One IRC connection per (XMPP account, IRC server), shared by the
//! account's resources: a task that drives one [`Session`] (the sans-IO
//! machine that knows IRC) with a socket, a clock and the service's
//! requests.
//!
//! The task does only I/O: it reads the user's settings, waits for its
//! turn among the sign-ons to the server ([`SIGNONS`] at once) when the
//! session asks for a socket, opens it (TLS included), writes the lines
//! the session gives, reads bytes into it, sleeps until its deadline, and
//! sends its stanzas to the outbox. When the session ends, the task tells
//! the service through the `done` channel, with the requests that reached
//! it too late, and stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use switchboard_service::stanza::StanzaError;
use switchboard_service::Outbox;
use switchboard_xml::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

pub use crate::session::ToIrc;
use crate::session::{Event, Params, Session};
use crate::signon::Profile;

/// Sign-ons (connect, TLS, registration) to one IRC server in progress at
/// once, across all users. Enough that a user rarely waits for another's,
/// few enough that a burst of reconnections stays within what a server's
/// listen backlog and connection throttles take.
pub const SIGNONS: usize = 16;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;
type Turn = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;
type Opening = Pin<Box<dyn Future<Output = std::io::Result<(Reader, Writer)>> + Send>>;

/// What an ending connection tells the service: its key, and the stanzas
/// that reached it too late (a join just after the last leave) to be
/// handled again, by a new connection.
pub type Done = (Key, Vec<Element>);

/// The user's settings for the server, still being read: the connection
/// task awaits them before it connects.
pub type ProfileLoad = Pin<Box<dyn Future<Output = Result<Profile, StanzaError>> + Send>>;

/// Which connection: the user's bare JID and the IRC server's name.
pub type Key = (String, String);

/// Where a connection goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The TLS config, or `None` for plain text.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether this is the admin's default server: its users' JIDs then
    /// take the short form (`nick@irc.example.org`).
    pub default: bool,
    /// The outgoing flood control.
    pub flood: crate::config::Flood,
    /// Sign-ons to this server in progress at once, shared by every
    /// connection to it.
    pub signons: Arc<Semaphore>,
}

/// Starts a connection task; it tells `done` its key when it ends. A nick
/// in `profile` (the user's settings) is used instead of `nick`.
pub fn spawn(
    key: Key,
    service_host: String,
    target: Target,
    nick: String,
    profile: ProfileLoad,
    out: Outbox,
    done: mpsc::Sender<Done>,
) -> mpsc::Sender<ToIrc> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // Requests wait in the queue meanwhile.
        let loaded = profile.await;
        let params = Params {
            service_host,
            user: key.0.clone(),
            server: key.1.clone(),
            default: target.default,
            nick,
            flood: target.flood,
            profile: loaded.clone().unwrap_or_default(),
        };
        let mut session = Session::new(params, clock());
        if let Err(e) = loaded {
            // No sign-on without the user's settings: the joins fail, in
            // the words of the error that says why.
            session.give_up(
                e.text
                    .unwrap_or_else(|| "your IRC settings cannot be read".into()),
            );
        }
        let again = drive(&mut session, &target, rx, &out).await;
        let _ = done.send((key, again)).await;
    });
    tx
}

/// The session's clock: tokio's, so that tests may pause it.
fn clock() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The socket side of a session, in whichever stage it is.
#[derive(Default)]
struct Link {
    /// Waiting for a turn among the sign-ons to the server.
    turn: Option<Turn>,
    /// Opening the socket, TLS included.
    opening: Option<Opening>,
    socket: Option<(Reader, Writer)>,
    /// The turn, held until the session is signed on: a thousand users
    /// coming back at once (after a restart) would otherwise overflow the
    /// server's listen backlog and its connection throttles, and the
    /// registration timeout would fire on connections still waiting.
    permit: Option<OwnedSemaphorePermit>,
}

impl Link {
    /// Closes the socket (after `QUIT :reason` when there is one), or
    /// stops opening it.
    async fn close(&mut self, quit: Option<String>) {
        if let (Some((_, wr)), Some(why)) = (self.socket.as_mut(), quit) {
            let _ = wr.write_all(format!("QUIT :{why}\r\n").as_bytes()).await;
            let _ = wr.flush().await;
        }
        *self = Link::default();
    }
}

/// Runs the session until it ends; returns the stanzas to be handled
/// again by a new connection.
async fn drive(
    session: &mut Session,
    target: &Target,
    mut rx: mpsc::Receiver<ToIrc>,
    out: &Outbox,
) -> Vec<Element> {
    let mut link = Link::default();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut requests_open = true;
    loop {
        // The lines due now, in one write.
        if let Some((_, wr)) = link.socket.as_mut() {
            let mut bytes = Vec::new();
            while let Some(line) = session.poll_transmit(clock()) {
                bytes.extend_from_slice(line.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            if !bytes.is_empty() {
                let written = async {
                    wr.write_all(&bytes).await?;
                    wr.flush().await
                };
                if let Err(e) = written.await {
                    session.handle_io_error(e.to_string(), clock());
                }
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Stanza(s) => {
                    let _ = out.send(s).await;
                }
                Event::Connect => {
                    link.turn = Some(Box::pin(target.signons.clone().acquire_owned()));
                }
                Event::Disconnect { quit } => link.close(quit).await,
                Event::End => {
                    // Close the queue first so that nothing more can
                    // arrive (the service then starts a new connection),
                    // then take what is in it.
                    rx.close();
                    let mut late = Vec::new();
                    while let Ok(req) = rx.try_recv() {
                        late.push(req);
                    }
                    let again = session.finish(late);
                    while let Some(event) = session.poll_event() {
                        if let Event::Stanza(s) = event {
                            let _ = out.send(s).await;
                        }
                    }
                    return again;
                }
            }
        }
        if session.signed_on() {
            link.permit = None;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            req = rx.recv(), if requests_open => match req {
                Some(r) => session.handle_request(r, clock()),
                None => {
                    requests_open = false;
                    session.handle_shutdown(clock());
                }
            },
            turn = async { link.turn.as_mut().expect("guarded").await }, if link.turn.is_some() => {
                link.turn = None;
                match turn {
                    Ok(permit) => {
                        link.permit = Some(permit);
                        session.handle_dialing(clock());
                        link.opening = Some(Box::pin(open(target.clone())));
                    }
                    Err(_) => session.give_up("the transport is shutting down".into()),
                }
            }
            opened = async { link.opening.as_mut().expect("guarded").await }, if link.opening.is_some() => {
                link.opening = None;
                match opened {
                    Ok(socket) => {
                        link.socket = Some(socket);
                        session.handle_connected(clock());
                    }
                    Err(e) => session.handle_connect_failed(e.to_string(), clock()),
                }
            }
            read = async { link.socket.as_mut().expect("guarded").0.read(&mut buf).await }, if link.socket.is_some() => match read {
                Ok(0) => session.handle_eof(clock()),
                Ok(n) => session.handle_input(&buf[..n], clock()),
                Err(e) => session.handle_io_error(e.to_string(), clock()),
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline.unwrap_or_else(clock))), if deadline.is_some() => {
                session.handle_timeout(clock());
            }
        }
    }
}

/// Opens the socket, TLS included.
async fn open(target: Target) -> std::io::Result<(Reader, Writer)> {
    let sock = TcpStream::connect((target.host.as_str(), target.port)).await?;
    Ok(match &target.tls {
        None => {
            let (rd, wr) = sock.into_split();
            (Box::new(rd), Box::new(wr))
        }
        Some(config) => {
            let name = ServerName::try_from(target.host.clone()).map_err(std::io::Error::other)?;
            let stream = TlsConnector::from(config.clone())
                .connect(name, sock)
                .await?;
            let (rd, wr) = tokio::io::split(stream);
            (Box::new(rd), Box::new(wr))
        }
    })
}

#[cfg(test)]
mod tests {
    //! The driver against loopback listeners: the session's own behaviour
    //! is tested without sockets in `session/tests.rs`; these check that
    //! the task wires its socket, clock and outbox to it.

    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// A connection to a loopback listener driven by `server`, with one
    /// resource joining `#t`; returns the stanzas the user got by the time
    /// the connection ended.
    async fn against(server: impl FnOnce(TcpStream) -> tokio::task::JoinHandle<()>) -> Vec<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (out, mut stanzas) = Outbox::channel();
        let (done_tx, mut done_rx) = mpsc::channel(1);
        let key = ("a@l".to_string(), "127.0.0.1".to_string());
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            default: false,
            flood: crate::config::Flood::default(),
            signons: Arc::new(Semaphore::new(1)),
        };
        let tx = spawn(
            key,
            "irc.l".into(),
            target,
            "alice".into(),
            Box::pin(async { Ok(Profile::default()) }),
            out,
            done_tx,
        );
        tx.send(ToIrc::Join {
            channel: "#t".into(),
            nick: "alice".into(),
            full: "a@l/r".into(),
            short: false,
            key: None,
        })
        .await
        .unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        let peer = server(sock);
        // Whatever the server does next, the connection gives up after
        // its first reconnection attempt (nobody listens any more).
        drop(listener);
        let mut got = Vec::new();
        loop {
            tokio::select! {
                Some(s) = stanzas.recv() => got.push(s.to_xml_string()),
                _ = done_rx.recv() => break,
            }
        }
        while let Ok(s) = stanzas.try_recv() {
            got.push(s.to_xml_string());
        }
        peer.abort();
        got
    }

    #[tokio::test(start_paused = true)]
    async fn no_welcome_within_the_registration_timeout_fails_the_join() {
        let got = against(|sock| {
            tokio::spawn(async move {
                // Reads, never answers.
                let mut sock = sock;
                let mut buf = [0u8; 512];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            })
        })
        .await;
        let all = got.join("\n");
        assert!(all.contains("remote-server-not-found"), "{all}");
        assert!(all.contains("no welcome"), "{all}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_stops_answering_is_pinged_then_dropped() {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<String>();
        let got = against(move |sock| {
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                wr.write_all(b":srv 001 alice :hi\r\n").await.unwrap();
                let mut line = String::new();
                while rd.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let _ = seen_tx.send(line.trim_end().to_string());
                    line.clear();
                }
            })
        })
        .await;
        let all = got.join("\n");
        assert!(all.contains("no answer to PING"), "{all}");
        let mut lines = Vec::new();
        while let Ok(l) = seen_rx.try_recv() {
            lines.push(l);
        }
        assert!(lines.iter().any(|l| l == "PING :switchboard"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "JOIN #t"), "{lines:?}");
    }
}
