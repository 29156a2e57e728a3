//! Accepting HTTP connections: TLS for HTTPS listeners (the server's
//! certificate, reloaded with it on SIGHUP), then hyper's HTTP/1.1 server
//! with every limit a stranger could otherwise exploit:
//!
//! * at most `max-connections` connections at once across the listeners
//!   (beyond that a new connection is closed at once, before any work);
//! * the TLS handshake and each request head within `header-timeout`
//!   (a client that sends headers byte by byte is cut off);
//! * request heads up to `max-header-bytes` (hyper answers 431 beyond);
//! * bodies bounded by each endpoint (see `routes.rs`).
//!
//! HTTP connections are not XMPP connections and hold no connection
//! guard; a WebSocket session, once upgraded, takes one like a TCP client.
//! At shutdown each connection finishes the request in flight and closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::App;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP; `behind_tls_proxy` when a reverse proxy in front
    /// terminates TLS.
    Http { behind_tls_proxy: bool },
    /// HTTPS with the server's certificate.
    Https,
    /// The metrics endpoint (plain HTTP, `/metrics` only).
    Metrics,
}

impl Kind {
    /// The name in the start-up lines (`listening http 127.0.0.1:5280`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Http { .. } => "http",
            Kind::Https => "https",
            Kind::Metrics => "metrics",
        }
    }
}

/// What an endpoint knows about the connection a request came on.
#[derive(Clone)]
pub(crate) struct Conn {
    pub kind: Kind,
    pub peer: SocketAddr,
    /// The TLS connection's `tls-exporter` channel binding (HTTPS, TLS
    /// 1.3), for SCRAM-PLUS over WebSocket.
    pub channel_binding: Option<Arc<Vec<u8>>>,
}

impl Conn {
    /// Whether the client's connection is encrypted (here, or by a proxy
    /// the admin vouched for).
    pub fn secure(&self) -> bool {
        matches!(
            self.kind,
            Kind::Https
                | Kind::Http {
                    behind_tls_proxy: true
                }
        )
    }
}

pub(crate) async fn bind(addr: SocketAddr, kind: Kind) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (is another server running on that port?)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        format!("cannot listen for {} on {addr}: {e}{hint}", kind.label())
    })
}

/// Accepts connections until shutdown.
pub(crate) async fn run(listener: TcpListener, kind: Kind, app: Arc<App>, slots: Arc<Semaphore>) {
    let mut shutdown = app.handles.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    // Over the limit the connection is dropped unanswered:
                    // a flood must not queue up work or memory.
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "http: too many connections; closing");
                        continue;
                    };
                    let app = app.clone();
                    tokio::spawn(async move {
                        serve(tcp, peer, kind, app).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed on {}: {e}", kind.label());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}

async fn serve(tcp: TcpStream, peer: SocketAddr, kind: Kind, app: Arc<App>) {
    let _ = tcp.set_nodelay(true);
    if kind != Kind::Https {
        let conn = Conn {
            kind,
            peer,
            channel_binding: None,
        };
        return http(tcp, conn, app).await;
    }
    let Some(acceptor) = app.handles.settings.get().https.clone() else {
        return;
    };
    let tls = match tokio::time::timeout(app.web.header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "https: TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "https: TLS handshake timed out");
            return;
        }
    };
    let channel_binding = switchboard_core::tls::channel_binding(tls.get_ref().1).map(Arc::new);
    let conn = Conn {
        kind,
        peer,
        channel_binding,
    };
    http(tls, conn, app).await
}

/// Serves HTTP/1.1 requests on one connection until it closes, an
/// upgrade takes it over, or the server shuts down.
async fn http<S>(io: S, conn: Conn, app: Arc<App>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = app.handles.shutdown.clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.web.header_timeout)
        .max_buf_size(app.web.max_header_bytes.max(8192))
        // Scrapers make one request per connection; closing after it
        // frees the slot at once.
        .keep_alive(conn.kind != Kind::Metrics)
        // `Content-Type`, as browsers and the old responder wrote them;
        // some scripts grep for it.
        .title_case_headers(true);
    let peer = conn.peer;
    let service = service_fn(move |req| {
        let app = app.clone();
        let conn = conn.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::routes::route(app, conn, req).await) }
    });
    let served = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = shutdown.wait() => {
            served.as_mut().graceful_shutdown();
            match tokio::time::timeout(Duration::from_secs(5), served.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "http: {e}");
    }
}
