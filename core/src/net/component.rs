//! The connection driver for external components (XEP-0114): runs one
//! socket through the sans-IO [`ComponentStream`] machine, fills the
//! service's router slot once the handshake succeeds, and empties it when
//! the component goes.
//!
//! Component connections are plain TCP, as XEP-0114 specifies; the default
//! listener is on loopback, where a component usually runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchboard_service::QUEUE_CAPACITY;
use switchboard_xml::{Element, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::lifecycle::ShutdownSignal;
use crate::routing::Router;
use crate::settings::LiveSettings;
use crate::stream::{ComponentAction, ComponentStream, StreamError};

const READ_CHUNK: usize = 16 * 1024;

/// A component that stops reading for this long is disconnected; its
/// stanzas bounce until it reconnects.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every component connection works with.
pub struct ComponentContext {
    pub router: Router,
    /// The component secrets and limits (read when a connection starts),
    /// and the admins to tell when a component goes.
    pub settings: Arc<LiveSettings>,
    pub shutdown: ShutdownSignal,
    /// `-D`: log every byte in and out (secrets masked).
    pub debug: bool,
}

/// Serves one accepted component connection to its end.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, shared: Arc<ComponentContext>) {
    let _ = tcp.set_nodelay(true);
    let snapshot = shared.settings.get();
    let settings = snapshot.c2s.clone();
    let limits = Limits {
        max_stanza_bytes: settings.limits.max_stanza_bytes,
        ..Limits::default()
    };
    let mut conn = Conn {
        machine: ComponentStream::new(snapshot.component_secrets.clone(), limits),
        shared,
        peer,
        slot: None,
        inbox: None,
    };
    let mut tcp = tcp;
    let handshake = tokio::time::timeout(settings.preauth_timeout, conn.handshake(&mut tcp)).await;
    let result = match handshake {
        Ok(Ok(true)) => conn.relay(&mut tcp).await,
        Ok(Ok(false)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            conn.machine.fail(StreamError::with_text(
                "connection-timeout",
                "the handshake did not complete in time",
            ));
            conn.drain(&mut tcp).await.map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "component connection ended: {e}");
    }
    conn.finish();
}

struct Conn {
    shared: Arc<ComponentContext>,
    machine: ComponentStream,
    peer: SocketAddr,
    /// The hostname served and the sender in its router slot.
    slot: Option<(String, mpsc::Sender<Element>)>,
    /// What the router sends the component, until the relay takes it.
    inbox: Option<mpsc::Receiver<Element>>,
}

impl Conn {
    /// Runs the stream header and handshake. `Ok(true)` when the component
    /// is authenticated and holds its slot.
    async fn handshake(&mut self, tcp: &mut TcpStream) -> std::io::Result<bool> {
        let mut buf = vec![0u8; 4096];
        loop {
            if !self.drain(tcp).await? {
                return Ok(false);
            }
            if self.slot.is_some() {
                return Ok(true);
            }
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return Ok(false);
            }
            self.log("recv", &buf[..n]);
            self.machine.handle_input(&buf[..n]);
        }
    }

    /// Relays stanzas both ways until either side closes.
    async fn relay(&mut self, tcp: &mut TcpStream) -> std::io::Result<()> {
        let host = self.machine.host().unwrap_or_default().to_string();
        let mut rx = self
            .inbox
            .take()
            .expect("an authenticated component has an inbox");
        tracing::info!(peer = %self.peer, service = %host, "component connected");
        let mut shutdown = self.shared.shutdown.clone();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            tokio::select! {
                r = tcp.read(&mut buf) => match r? {
                    0 => return Ok(()),
                    n => {
                        self.log("recv", &buf[..n]);
                        self.machine.handle_input(&buf[..n]);
                    }
                },
                out = rx.recv() => match out {
                    Some(stanza) => {
                        let mut bytes = self.machine.encode(&stanza);
                        // Batch whatever else is waiting into one write.
                        while bytes.len() < 64 * 1024 {
                            match rx.try_recv() {
                                Ok(s) => bytes.extend(self.machine.encode(&s)),
                                Err(_) => break,
                            }
                        }
                        self.write(tcp, &bytes).await?;
                    }
                    None => self.machine.fail(StreamError::new("internal-server-error")),
                },
                _ = shutdown.wait() => self.machine.fail(StreamError::new("system-shutdown")),
            }
            if !self.drain(tcp).await? {
                return Ok(());
            }
        }
    }

    /// Carries out the machine's actions; `false` once the stream is over.
    async fn drain(&mut self, tcp: &mut TcpStream) -> std::io::Result<bool> {
        let mut out = Vec::new();
        let mut open = true;
        while let Some(action) = self.machine.poll_action() {
            match action {
                ComponentAction::Send(bytes) => out.extend(bytes),
                ComponentAction::Authenticated(host) => {
                    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
                    let ok = self.shared.router.services().claim(&host, tx.clone());
                    if ok {
                        self.slot = Some((host, tx));
                        self.inbox = Some(rx);
                    } else {
                        tracing::warn!(peer = %self.peer, service = %host, "refused a second component for the same hostname");
                    }
                    self.machine.claimed(ok);
                }
                ComponentAction::Stanza(stanza) => {
                    let host = self.machine.host().unwrap_or_default().to_string();
                    if let Err(problem) = self.shared.router.route_from_service(&host, stanza) {
                        // The machine checks the same rules first; this is
                        // a second line of defence.
                        self.machine.fail(StreamError::new(problem));
                    }
                }
                ComponentAction::Close => open = false,
            }
        }
        if !out.is_empty() {
            self.write(tcp, &out).await?;
        }
        if !open {
            let _ = tcp.shutdown().await;
        }
        Ok(open)
    }

    async fn write(&self, tcp: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        self.log("send", bytes);
        match tokio::time::timeout(WRITE_TIMEOUT, tcp.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the component did not read for too long",
            )),
        }
    }

    fn log(&self, dir: &str, bytes: &[u8]) {
        if self.shared.debug {
            tracing::debug!(peer = %self.peer, "component {dir} {}", crate::debug_log::masked(bytes));
        }
    }

    /// Empties the router slot and tells the admins that the component
    /// went away.
    fn finish(&mut self) {
        if let Some((host, tx)) = self.slot.take() {
            self.shared.router.services().release(&host, &tx);
            if self.shared.shutdown.is_raised() {
                // The server is stopping: not news for the admins.
                return;
            }
            tracing::warn!(peer = %self.peer, service = %host, "component disconnected");
            crate::notices::admins::notify(
                &self.shared.router,
                &self.shared.settings.get(),
                &host,
                &format!("Service {host} disconnected"),
                &format!(
                    "The external component for {host} disconnected. Stanzas to it are \
                     answered with remote-server-timeout until it connects again."
                ),
            );
        }
    }
}
