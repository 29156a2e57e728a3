//! Switchboard's web side: one HTTP/1.1 stack (hyper, with rustls for
//! HTTPS) serving everything a browser or an HTTP client asks of the
//! server:
//!
//! | path | endpoint | file |
//! | --- | --- | --- |
//! | `/xmpp-websocket` | XMPP over WebSocket (RFC 7395) | `websocket.rs` |
//! | `/http-bind` | BOSH (XEP-0124, XEP-0206) | `bosh.rs` |
//! | `/.well-known/host-meta`, `host-meta.json` | connection discovery (XEP-0156) | `host_meta.rs` |
//! | `/` and `/chat/…` | the chat page (converse.js from a directory the admin installs) | `chat.rs`, `files.rs` |
//! | `/upload/{service}/{id}/{name}` | HTTP file upload (XEP-0363): PUT with a signed slot, GET | `upload.rs` |
//! | `/admin/…` | the admin console for the hosts' admins (HTTPS only) | `admin/` |
//! | `/metrics` | Prometheus metrics, on the `<metrics>` listener only | `metrics.rs` |
//!
//! `listener.rs` accepts connections (TLS for HTTPS, limits on headers,
//! time and connections), `routes.rs` picks the endpoint, and `reply.rs`
//! builds the answers, errors included: every refusal is a status and a
//! sentence saying what was wrong.
//!
//! The web side holds no logic of its own that the core has: a WebSocket
//! session runs the core's one client driver on the core's handles
//! ([`switchboard_core::server::WebHandles`]), the metrics are the core's
//! counters, and the admin console acts only through the core's admin
//! seam.

mod admin;
mod body;
mod bosh;
mod chat;
mod files;
mod host_meta;
mod html;
mod listener;
mod metrics;
mod reply;
mod routes;
mod upload;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use switchboard_config::Config;
use switchboard_core::server::WebHandles;

pub use listener::Kind;

/// Everything the endpoints work with, shared by every connection.
pub(crate) struct App {
    pub handles: WebHandles,
    pub web: switchboard_config::WebConfig,
    /// The local domains (discovery answers for them).
    pub hosts: Vec<String>,
    /// The group chat service's hostname, if there is one (the chat page
    /// offers its rooms).
    pub muc: Option<String>,
    /// The upload services whose files this side stores and serves.
    pub uploads: Vec<Arc<switchboard_upload::Uploads>>,
    /// The BOSH sessions.
    pub bosh: bosh::Sessions,
    /// The admin console's sessions and readings.
    pub console: admin::Console,
}

/// Binds every HTTP, HTTPS and metrics listener in the config and starts
/// serving. Returns what was bound (with the real ports, for port 0).
pub async fn start(
    config: &Config,
    handles: WebHandles,
    uploads: Vec<Arc<switchboard_upload::Uploads>>,
) -> Result<Vec<(Kind, SocketAddr)>, String> {
    let app = Arc::new(App {
        handles,
        web: config.web.clone(),
        hosts: config.hosts.iter().map(|h| h.name.clone()).collect(),
        muc: config
            .services
            .iter()
            .find(|s| s.kind == "muc")
            .map(|s| s.id.clone()),
        uploads,
        bosh: bosh::Sessions::default(),
        console: admin::Console::new(config),
    });
    let mut wanted: Vec<(Kind, SocketAddr)> = Vec::new();
    for h in &config.listen.http {
        wanted.push((
            Kind::Http {
                behind_tls_proxy: h.behind_tls_proxy,
            },
            h.addr,
        ));
    }
    for a in &config.listen.https {
        wanted.push((Kind::Https, *a));
    }
    if let Some(addr) = config.metrics {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "the metrics endpoint on {addr} is not on loopback: it has no \
                 authentication, so firewall it to the scraper"
            );
        }
        wanted.push((Kind::Metrics, addr));
    }
    // Bind everything first: a busy port stops the start before anything
    // is served.
    let mut bound = Vec::new();
    for (kind, addr) in wanted {
        let l = listener::bind(addr, kind).await?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        bound.push((kind, local, l));
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(app.web.max_connections));
    let mut out = Vec::new();
    for (kind, local, l) in bound {
        out.push((kind, local));
        tokio::spawn(listener::run(l, kind, app.clone(), limit.clone()));
    }
    // Upload slots point at the first HTTPS listener (else the first
    // HTTP one) under the first host's name, unless the config says url=.
    let first = |k: fn(&Kind) -> bool| out.iter().find(|(kind, _)| k(kind)).map(|(_, a)| *a);
    let host = app
        .hosts
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let base = first(|k| *k == Kind::Https)
        .map(|a| format!("https://{host}:{}", a.port()))
        .or_else(|| {
            first(|k| matches!(k, Kind::Http { .. })).map(|a| format!("http://{host}:{}", a.port()))
        });
    if let Some(base) = base {
        for u in &app.uploads {
            u.set_default_base_url(base.clone());
        }
    }
    Ok(out)
}
