//! Driving the third-party `tokio-xmpp` client (6.x) against a
//! [`TestServer`].
//!
//! `tokio-xmpp`'s own connectors either resolve DNS (SRV) or, with
//! `DnsConfig::addr`, connect to an explicit address but then trust only
//! the platform's root store. Neither fits a server with a freshly
//! generated self-signed certificate on `127.0.0.1:PORT`, so [`Connector`]
//! implements the library's public `ServerConnector` trait: TCP to the
//! listener's address, the library's own XML stream for the pre-TLS
//! exchange (`<starttls/>` → `<proceed/>`), then rustls with a root store
//! holding exactly `HOME/etc/localhost.crt`. Everything after that —
//! stream restarts, SASL (SCRAM-SHA-256-PLUS / SCRAM-SHA-256 / …),
//! binding, IQ tracking — is the library's code.
//!
//! With channel binding on (the default, as in `tokio-xmpp`'s own
//! connectors) the connector hands the library RFC 9266 `tls-exporter`
//! data on TLS 1.3, so the library logs in with `SCRAM-SHA-*-PLUS`.
//!
//! Use a current-thread runtime (`#[tokio::test]`) with `Client`:
//! tokio-xmpp 6.0.0's `StanzaReceiver::poll_next` does `try_lock()` on a
//! mutex that `Client::send_iq`/`send_stanza` hold while queueing, and
//! returns `Pending` without registering a waker when it fails. On a
//! multi-threaded runtime a fast reply can land in that window and is then
//! never handed to the IQ tracker (seen ~1 in 90 pings here). With one
//! thread the lock is never held across a yield point.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{Error, ProtocolError};
use tokio_xmpp::jid::{FullJid, Jid};
use tokio_xmpp::parsers::bind::{BindQuery, BindResponse};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::{
    initiate_stream, FallibleStreamElement, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts,
    XmppStream, XmppStreamElement,
};
use tokio_xmpp::{Client, Event, IqRequest, IqResponse, Stanza};

use crate::server::TestServer;
use crate::WAIT;

/// The stream type our connector produces.
pub type TlsIo = BufStream<TlsStream<TcpStream>>;

/// How the connector reaches TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP, `<starttls/>`, then TLS (the `c2s` listener).
    StartTls,
    /// TLS from the first byte (the `c2s-tls` listener, XEP-0368).
    DirectTls,
}

/// A `tokio_xmpp::connect::ServerConnector` for one test server. See the
/// module docs.
#[derive(Debug, Clone)]
pub struct Connector {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    transport: Transport,
    channel_binding: bool,
}

impl Connector {
    /// STARTTLS to the server's `c2s` listener.
    pub fn starttls(server: &TestServer) -> Connector {
        Connector {
            addr: server.c2s(),
            tls: server.tls_config(),
            transport: Transport::StartTls,
            channel_binding: true,
        }
    }

    /// Direct TLS to the server's `c2s-tls` listener.
    pub fn direct_tls(server: &TestServer) -> Connector {
        Connector {
            addr: server.c2s_tls(),
            tls: server.tls_config(),
            transport: Transport::DirectTls,
            channel_binding: true,
        }
    }

    /// Whether to offer `tls-exporter` channel binding to the library (which
    /// then picks a `-PLUS` mechanism). Off: plain `SCRAM-SHA-*`.
    pub fn with_channel_binding(mut self, on: bool) -> Connector {
        self.channel_binding = on;
        self
    }

    /// A `tokio_xmpp::Client` for `jid` (bare: the server picks the
    /// resource; full: that resource is requested) that connects here.
    pub fn client(&self, jid: &str, password: &str) -> Client {
        let jid: Jid = jid
            .parse()
            .unwrap_or_else(|e| panic!("bad JID {jid:?}: {e}"));
        Client::new_with_connector(jid, password, self.clone(), Timeouts::tight())
    }

    async fn tls(
        &self,
        tcp: TcpStream,
        domain: &str,
    ) -> Result<(TlsStream<TcpStream>, ChannelBinding), Error> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let conn = stream.get_ref().1;
        let binding = if self.channel_binding
            && conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        {
            let data = conn
                .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                .map_err(|e| io::Error::other(format!("tls-exporter: {e}")))?;
            ChannelBinding::TlsExporter(data)
        } else {
            ChannelBinding::None
        };
        Ok((stream, binding))
    }
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

impl ServerConnector for Connector {
    type Stream = TlsIo;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<TlsIo>, ChannelBinding), Error> {
        let domain = jid.domain().as_str();
        let tcp = TcpStream::connect(self.addr).await?;
        let tcp = match self.transport {
            Transport::DirectTls => tcp,
            Transport::StartTls => {
                let pending =
                    initiate_stream(BufStream::new(tcp), ns, header(domain), timeouts).await?;
                let (features, mut stream) =
                    pending.recv_features::<FallibleStreamElement>().await?;
                if features.starttls.is_none() {
                    return Err(ProtocolError::NoTls.into());
                }
                stream
                    .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                        starttls::Request,
                    )))
                    .await?;
                loop {
                    match stream.next().await {
                        Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Starttls(
                            starttls::Nonza::Proceed(_),
                        )))) => break,
                        Some(Err(ReadError::SoftTimeout)) => continue,
                        Some(Ok(other)) => {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("expected <proceed/>, got {other:?}"),
                            )
                            .into())
                        }
                        Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                        Some(Err(ReadError::ParseError(e))) => {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e).into())
                        }
                        None | Some(Err(ReadError::StreamFooterReceived)) => {
                            return Err(Error::Disconnected)
                        }
                    }
                }
                stream.into_inner().into_inner()
            }
        };
        let (tls, binding) = self.tls(tcp, domain).await?;
        let pending = initiate_stream(BufStream::new(tls), ns, header(domain), timeouts).await?;
        Ok((pending, binding))
    }
}

/// A stream after SASL and the stream restart, not yet bound.
pub type AuthedStream = XmppStream<TlsIo>;

/// SASL-authenticates `jid` with the library's own mechanism choice
/// (`tokio_xmpp::client_login`) and restarts the stream. Unlike
/// `Client` (which retries failed logins forever) this returns the
/// failure, e.g. `Error::Auth(AuthError::Fail(NotAuthorized))`. Bounded
/// by [`WAIT`].
pub async fn login(
    connector: &Connector,
    jid: &str,
    password: &str,
) -> Result<(StreamFeatures, AuthedStream), Error> {
    let jid: Jid = jid.parse()?;
    let work = async {
        let (pending, binding) = connector
            .connect(
                &jid,
                tokio_xmpp::parsers::ns::JABBER_CLIENT,
                Timeouts::tight(),
            )
            .await?;
        let (features, stream) = pending.recv_features::<FallibleStreamElement>().await?;
        let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
        let creds = Credentials::default()
            .with_username(user)
            .with_password(password)
            .with_channel_binding(binding);
        let initiating = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await?;
        let pending = initiating
            .send_header(header(jid.domain().as_str()))
            .await?;
        Ok(pending.recv_features::<FallibleStreamElement>().await?)
    };
    tokio::time::timeout(WAIT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "login timed out"))?
}

/// [`login`] then resource binding (of `jid`'s resource, if it has one);
/// returns the stream and the JID the server bound.
pub async fn bind(
    connector: &Connector,
    jid: &str,
    password: &str,
) -> Result<(AuthedStream, FullJid), Error> {
    let resource = jid
        .parse::<Jid>()?
        .resource()
        .map(|r| r.as_str().to_owned());
    let (_, mut stream) = login(connector, jid, password).await?;
    let iq = Iq::from_set("bind-1", BindQuery::new(resource));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Iq(iq)))
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        match next_element(
            &mut stream,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
        {
            Some(XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                id,
                payload: Some(payload),
                ..
            }))) if id == "bind-1" => {
                let bound = BindResponse::try_from(payload)
                    .map_err(|_| ProtocolError::InvalidBindResponse)?;
                return Ok((stream, bound.into()));
            }
            Some(XmppStreamElement::Stanza(Stanza::Iq(iq))) if iq.id() == "bind-1" => {
                return Err(io::Error::other(format!("bind refused: {iq:?}")).into())
            }
            Some(XmppStreamElement::StreamError(e)) => return Err(Error::StreamError(e)),
            Some(_) => continue,
            None => return Err(Error::Disconnected),
        }
    }
}

/// The next stream-level element, skipping soft timeouts; `None` when the
/// stream ends (footer, EOF, error) or nothing arrives within `timeout`.
pub async fn next_element(
    stream: &mut AuthedStream,
    timeout: Duration,
) -> Option<XmppStreamElement> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(FallibleStreamElement::Ok(el)))) => return Some(el),
            Ok(Some(Err(ReadError::SoftTimeout))) => continue,
            Ok(Some(Ok(FallibleStreamElement::Err(_)))) => continue,
            Ok(_) => return None,
        }
    }
}

/// The next `tokio_xmpp::Event`, at most `timeout`; panics on a timeout.
pub async fn next_event(client: &mut Client, timeout: Duration) -> Event {
    match tokio::time::timeout(timeout, client.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the client's event stream ended"),
        Err(_) => panic!("no event within {timeout:?}"),
    }
}

/// Waits (at most [`WAIT`]) for `Event::Online`; returns the bound JID.
/// Stanzas arriving before it are dropped.
pub async fn online(client: &mut Client) -> FullJid {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = if left.is_zero() {
            Duration::from_millis(1)
        } else {
            left
        };
        match tokio::time::timeout(left, client.next()).await {
            Ok(Some(Event::Online { bound_jid, .. })) => {
                return bound_jid
                    .try_into_full()
                    .unwrap_or_else(|b| panic!("bound JID {b} has no resource"))
            }
            Ok(Some(Event::Disconnected(e))) => panic!("disconnected before online: {e}"),
            Ok(Some(Event::Stanza(_))) => continue,
            Ok(None) => panic!("the client's event stream ended before online"),
            Err(_) => panic!("not online within {WAIT:?} (see the server log)"),
        }
    }
}

/// Waits (at most `timeout`) for a stanza `pick` accepts (maps to `Some`);
/// other events are dropped. `None` on a timeout.
pub async fn wait_stanza<T>(
    client: &mut Client,
    timeout: Duration,
    mut pick: impl FnMut(&Stanza) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next()).await {
            Ok(Some(Event::Stanza(st))) => {
                if let Some(v) = pick(&st) {
                    return Some(v);
                }
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends an IQ and waits (at most [`WAIT`]) for its response.
pub async fn iq(client: &mut Client, to: &str, req: IqRequest) -> IqResponse {
    let to: Jid = to.parse().unwrap_or_else(|e| panic!("bad JID {to:?}: {e}"));
    let token = client.send_iq(Some(to.clone()), req).await;
    // The client must be polled for the response to be routed; the token
    // resolves from the client's worker task, so just await it.
    match tokio::time::timeout(WAIT, token).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => panic!("IQ to {to} failed: {e}"),
        Err(_) => panic!("no IQ response from {to} within {WAIT:?}"),
    }
}
