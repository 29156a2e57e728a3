//! The component connector: runs a [`Service`] as its own process,
//! attached over XEP-0114 to any XMPP server (Prosody, ejabberd, or
//! another Switchboard), and keeps it attached.
//!
//! Each connection runs the handshake, then starts the service with a
//! fresh inbox and outbox and relays stanzas until either side ends. A
//! dropped connection, a refused handshake or a service that stops all
//! lead to a new attempt after a backoff that doubles from one second to a
//! minute, with jitter so that many components restarted together do not
//! reconnect in lockstep. Stanzas are `jabber:client` inside the service
//! and `jabber:component:accept` on the wire.

use std::sync::Arc;
use std::time::Duration;

use switchboard_link::backoff::{Backoff, Jitter, Policy};
use switchboard_xml::{ns, Element, Event, Limits, StreamParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::{handshake, Outbox, Service, ServiceContext, QUEUE_CAPACITY};

/// Reconnection delays: doubling from one second to a minute, each within
/// a quarter of its nominal value either way.
const RECONNECT: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(60),
    attempts: None,
    jitter: Jitter::Range(0.75, 1.25),
};
/// A connection that lasted this long was healthy: the next failure
/// retries quickly again.
const HEALTHY: Duration = Duration::from_secs(60);
/// Connecting and the handshake together must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// How often an idle link is checked (see [`ConnectOptions::keepalive`]).
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// Where to attach and as what.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The server's component port, `host:port`.
    pub server: String,
    pub secret: String,
    /// After this long without hearing from the server, the connector
    /// pings itself through it (an IQ from its hostname to its hostname,
    /// which any server routes back); after two and a half times this long
    /// the link is taken for dead and replaced. A link that died without a
    /// FIN or RST (a partition, a crashed host) is noticed this way instead
    /// of when TCP gives up, many minutes later.
    pub keepalive: Duration,
}

impl ConnectOptions {
    pub fn new(server: impl Into<String>, secret: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            server: server.into(),
            secret: secret.into(),
            keepalive: KEEPALIVE,
        }
    }
}

/// The id prefix of the connector's own keepalive pings.
const KEEPALIVE_ID: &str = "sb-keepalive-";

/// Whether `el` is one of our keepalive pings coming back (or its error):
/// consumed by the connector, never shown to the service.
fn is_keepalive(el: &Element, jid: &str) -> bool {
    el.name == "iq"
        && el.attr("from") == Some(jid)
        && el.attr("id").is_some_and(|id| id.starts_with(KEEPALIVE_ID))
}

/// Why one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server or the network closed it.
    Disconnected(String),
    /// The server refused the handshake (wrong secret, unknown hostname,
    /// another component already attached): `<condition> text`.
    Refused(String),
    /// The service stopped or crashed.
    ServiceStopped,
    /// Shutdown was asked for.
    Shutdown,
}

/// Runs `service` attached to `opts.server` until `shutdown` turns true.
/// `base` carries everything but the outbox, which is made per connection.
pub async fn run(
    service: Arc<dyn Service>,
    base: ServiceContext,
    opts: ConnectOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(RECONNECT);
    loop {
        let started = tokio::time::Instant::now();
        let ended = tokio::select! {
            e = connect_once(service.clone(), &base, &opts, shutdown.clone()) => e,
            _ = shutdown.changed() => Ended::Shutdown,
        };
        match &ended {
            Ended::Shutdown => return,
            Ended::Refused(why) => tracing::error!(
                server = %opts.server, component = %base.jid,
                "the server refused the component: {why}; check the hostname and secret on both sides"
            ),
            Ended::Disconnected(why) => tracing::warn!(
                server = %opts.server, component = %base.jid, "connection ended: {why}"
            ),
            Ended::ServiceStopped => {
                tracing::error!(component = %base.jid, "the service stopped; reconnecting")
            }
        }
        if started.elapsed() >= HEALTHY {
            backoff.reset();
        }
        // Never `None`: the attempts are not bounded.
        let wait = backoff.failed().unwrap_or(RECONNECT.max);
        tracing::info!(component = %base.jid, "reconnecting in {:.1}s", wait.as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The stream header a component opens with (XEP-0114: no version).
pub fn stream_header(jid: &str) -> Vec<u8> {
    switchboard_xml::stream::open_stream(&switchboard_xml::stream::StreamOpen {
        ns: ns::COMPONENT_ACCEPT,
        to: Some(jid),
        ..Default::default()
    })
}

/// A `<stream:error>` element as `condition: text`.
fn describe_stream_error(el: &Element) -> String {
    let condition = el
        .elements()
        .find(|c| c.ns == ns::STREAMS && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    match el.child_text("text", ns::STREAMS) {
        Some(t) => format!("{condition}: {t}"),
        None => condition,
    }
}

struct Link {
    tcp: TcpStream,
    parser: StreamParser,
    buf: Vec<u8>,
}

impl Link {
    /// The next parser event, reading as needed; `None` at EOF.
    async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => return Err(format!("the server sent bad XML: {e}")),
            }
            let n = self
                .tcp
                .read(&mut self.buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(None);
            }
            self.parser
                .feed(&self.buf[..n])
                .map_err(|e| format!("the server sent bad XML: {e}"))?;
        }
    }
}

/// Connects, authenticates, and relays until the connection ends.
async fn connect_once(
    service: Arc<dyn Service>,
    base: &ServiceContext,
    opts: &ConnectOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Ended {
    let mut link = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(base, opts)).await {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => return e,
        Err(_) => return Ended::Disconnected("the handshake timed out".into()),
    };
    tracing::info!(server = %opts.server, component = %base.jid, "attached");

    let (in_tx, in_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (outbox, mut out_rx) = Outbox::channel();
    let ctx = ServiceContext {
        out: outbox,
        ..base.clone()
    };
    let mut task = tokio::spawn(service.run(ctx, in_rx));
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + opts.keepalive, opts.keepalive);
    let mut last_heard = tokio::time::Instant::now();
    let mut pings = 0u64;
    // A service may drop its outbox (it only listens); that ends nothing.
    let mut outbox_open = true;
    let ended = loop {
        tokio::select! {
            ev = link.next() => match ev {
                Ok(Some(Event::Stanza(mut el))) => {
                    last_heard = tokio::time::Instant::now();
                    if el.is("error", ns::STREAM) {
                        break Ended::Disconnected(describe_stream_error(&el));
                    }
                    if is_keepalive(&el, &base.jid) {
                        continue;
                    }
                    el.rename_ns_everywhere(ns::COMPONENT_ACCEPT, ns::CLIENT);
                    if in_tx.send(el).await.is_err() {
                        break Ended::ServiceStopped;
                    }
                }
                Ok(Some(Event::StreamClose)) | Ok(None) => break Ended::Disconnected("the server closed the stream".into()),
                Ok(Some(Event::StreamOpen(_))) => break Ended::Disconnected("unexpected second stream header".into()),
                Err(e) => break Ended::Disconnected(e),
            },
            out = out_rx.recv(), if outbox_open => {
                let Some(mut stanza) = out else {
                    outbox_open = false;
                    continue;
                };
                stanza.rename_ns(ns::CLIENT, ns::COMPONENT_ACCEPT);
                let bytes = stanza.to_bytes(Some(ns::COMPONENT_ACCEPT));
                if let Err(e) = link.tcp.write_all(&bytes).await {
                    break Ended::Disconnected(e.to_string());
                }
            }
            _ = tick.tick() => {
                let quiet = last_heard.elapsed();
                if quiet >= opts.keepalive.mul_f64(2.5) {
                    break Ended::Disconnected(format!(
                        "nothing from the server for {:.0} s, not even an answer to a keepalive",
                        quiet.as_secs_f64()
                    ));
                }
                if quiet >= opts.keepalive {
                    pings += 1;
                    let ping = Element::new("iq", ns::COMPONENT_ACCEPT)
                        .with_attr("type", "get")
                        .with_attr("id", format!("{KEEPALIVE_ID}{pings}"))
                        .with_attr("from", base.jid.clone())
                        .with_attr("to", base.jid.clone())
                        .with_child(Element::new("ping", ns::PING));
                    if let Err(e) = link.tcp.write_all(&ping.to_bytes(Some(ns::COMPONENT_ACCEPT))).await {
                        break Ended::Disconnected(e.to_string());
                    }
                }
            }
            _ = &mut task => break Ended::ServiceStopped,
            _ = shutdown.changed() => break Ended::Shutdown,
        }
    };
    // Closing the inbox asks the service to finish; it gets a moment to
    // send its goodbyes (they go out if the link is still up).
    drop(in_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(mut stanza) = out_rx.recv().await {
            stanza.rename_ns(ns::CLIENT, ns::COMPONENT_ACCEPT);
            if link
                .tcp
                .write_all(&stanza.to_bytes(Some(ns::COMPONENT_ACCEPT)))
                .await
                .is_err()
            {
                break;
            }
        }
    })
    .await;
    task.abort();
    let _ = link
        .tcp
        .write_all(switchboard_xml::stream::CLOSE_STREAM)
        .await;
    let _ = link.tcp.shutdown().await;
    ended
}

/// Opens the stream and proves the secret.
async fn handshake(base: &ServiceContext, opts: &ConnectOptions) -> Result<Link, Ended> {
    let tcp = TcpStream::connect(&opts.server)
        .await
        .map_err(|e| Ended::Disconnected(format!("cannot connect to {}: {e}", opts.server)))?;
    let _ = tcp.set_nodelay(true);
    let mut link = Link {
        tcp,
        parser: StreamParser::new(Limits::default()),
        buf: vec![0u8; 16 * 1024],
    };
    let io = |e: std::io::Error| Ended::Disconnected(e.to_string());
    link.tcp
        .write_all(&stream_header(&base.jid))
        .await
        .map_err(io)?;
    let id = match link.next().await.map_err(Ended::Disconnected)? {
        Some(Event::StreamOpen(h)) => h
            .attr("id")
            .map(str::to_string)
            .ok_or_else(|| Ended::Refused("the server's stream header has no id".into()))?,
        Some(Event::Stanza(el)) if el.is("error", ns::STREAM) => {
            return Err(Ended::Refused(describe_stream_error(&el)))
        }
        _ => {
            return Err(Ended::Disconnected(
                "no stream header from the server".into(),
            ))
        }
    };
    let digest = handshake::digest(&id, &opts.secret);
    link.tcp
        .write_all(format!("<handshake>{digest}</handshake>").as_bytes())
        .await
        .map_err(io)?;
    match link.next().await.map_err(Ended::Disconnected)? {
        Some(Event::Stanza(el)) if el.name == "handshake" => Ok(link),
        Some(Event::Stanza(el)) if el.is("error", ns::STREAM) => {
            Err(Ended::Refused(describe_stream_error(&el)))
        }
        Some(Event::Stanza(el)) => Err(Ended::Refused(format!(
            "expected <handshake/>, got <{}>",
            el.name
        ))),
        _ => Err(Ended::Disconnected(
            "the server closed the stream during the handshake".into(),
        )),
    }
}

#[cfg(test)]
#[path = "component_tests.rs"]
mod tests;
