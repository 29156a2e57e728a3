//! Client, component and server-to-server listeners: bind the configured
//! addresses, accept, and spawn one task per connection until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::component::ComponentContext;
use super::connection::C2sContext;
use crate::lifecycle::{ShutdownSignal, Tracker};
use crate::s2s::incoming::S2sContext;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// STARTTLS on a plain socket (5222).
    C2s,
    /// Direct TLS (XEP-0368, 5223).
    C2sTls,
    /// External components (XEP-0114, 5347).
    Component,
    /// Other servers, STARTTLS (RFC 6120, 5269).
    S2s,
    /// Other servers, direct TLS (XEP-0368).
    S2sTls,
}

impl ListenerKind {
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::C2s => "c2s",
            ListenerKind::C2sTls => "c2s-tls",
            ListenerKind::Component => "component",
            ListenerKind::S2s => "s2s",
            ListenerKind::S2sTls => "s2s-tls",
        }
    }
}

/// Binds an address with a clear error on failure.
pub async fn bind(addr: SocketAddr, kind: ListenerKind) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (is another server running on that port?)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        format!("cannot listen for {} on {addr}: {e}{hint}", kind.label())
    })
}

/// What a listener's connections are served with.
#[derive(Clone)]
pub enum Serve {
    /// Client connections; `direct_tls` for XEP-0368 (TLS from the first
    /// byte).
    C2s {
        ctx: Arc<C2sContext>,
        direct_tls: bool,
    },
    /// External components (XEP-0114).
    Component(Arc<ComponentContext>),
    /// Other servers; `direct_tls` for XEP-0368.
    S2s {
        ctx: Arc<S2sContext>,
        direct_tls: bool,
    },
}

/// Accepts connections until shutdown. Each connection holds a guard from
/// `tracker` for its whole life, so shutdown can wait for them to go.
pub async fn run(
    listener: TcpListener,
    kind: ListenerKind,
    serve: Serve,
    tracker: Tracker,
    mut shutdown: ShutdownSignal,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let guard = tracker.guard();
                    let serve = serve.clone();
                    tokio::spawn(async move {
                        match serve {
                            Serve::Component(ctx) => super::component::serve(tcp, peer, ctx).await,
                            Serve::C2s { ctx, direct_tls } => super::connection::serve(tcp, peer, ctx, direct_tls).await,
                            Serve::S2s { ctx, direct_tls } => crate::s2s::incoming::serve(tcp, peer, ctx, direct_tls).await,
                        }
                        drop(guard);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: log and back off instead of spinning.
                    tracing::warn!("accept failed on {}: {e}", kind.label());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}
