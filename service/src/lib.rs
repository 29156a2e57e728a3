//! What a Switchboard service is made of.
//!
//! A service is an actor addressed by its own hostname (`irc.example.org`,
//! `users.example.org`). It receives every stanza sent to that hostname or
//! to any JID at it through an inbox, and sends stanzas back through an
//! [`Outbox`]. The same service runs unchanged in two places:
//!
//! - **in-process**: the core's supervisor starts it, routes to its inbox
//!   and drains its outbox into the router (checking `from`);
//! - **as a component**: [`component`] connects it over XEP-0114 to any
//!   XMPP server (Prosody, ejabberd, or another Switchboard).
//!
//! Services never see sessions or each other: they speak stanzas only.
//!
//! Map:
//!
//! - [`stanza`]: stanza kinds and errors as values, error replies (shared
//!   with the core);
//! - [`forms`]: XEP-0004 data forms — build, parse, validate a submission;
//! - [`adhoc`]: XEP-0050 ad-hoc commands — a registry of command nodes,
//!   multi-stage sessions, and the disco answers that list them;
//! - [`credentials`]: the key that seals secrets at rest, and the
//!   encrypted store of users' legacy-network registrations (in the
//!   service's [`ServiceStore`]);
//! - [`gateway`]: the XEP-0100 part of a transport — XEP-0077
//!   registration, `jabber:iq:gateway`, presence subscription with the
//!   service host, sign-on tracking, disco#info;
//! - [`files`]: [`files::FileShare`], where a service stores a file for
//!   XMPP users and gets a link to it (the upload service implements it);
//! - [`ask`]: asking a user a question by message (a data form plus a text
//!   prompt) and recognizing the answer;
//! - [`component`]: the connector that attaches a service to any XMPP
//!   server over XEP-0114, reconnecting with backoff;
//! - [`handshake`]: the XEP-0114 handshake digest, shared by the server's
//!   component listener and the component connector;
//! - [`metrics`]: the service's own gauges and counters, which the host
//!   renders on its metrics endpoint.
//! - [`time`]: XEP-0082 date-times with microseconds, for delays and
//!   archive filters (group chat's and the core's archives).

pub mod adhoc;
pub mod ask;
pub mod component;
pub mod credentials;
pub mod files;
pub mod forms;
pub mod gateway;
pub mod handshake;
pub mod metrics;
pub mod stanza;
pub mod time;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_xml::Element;
use tokio::sync::mpsc;

pub use switchboard_spool::store::ServiceStore;

/// How many stanzas may wait in a service's inbox or outbox. A service that
/// falls this far behind gets `remote-server-timeout` bounces instead of an
/// ever-growing queue.
pub const QUEUE_CAPACITY: usize = 1024;

/// A boxed, sendable future: what [`Service::run`] returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How the service presents itself in disco (XEP-0030 identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `gateway`, `directory`, `conference`, `component`, …
    pub category: String,
    /// `irc`, `user`, `text`, `generic`, …
    pub kind: String,
    /// Human-readable name ("IRC gateway").
    pub name: String,
}

/// The stanzas a service sends go here; the host (router or component
/// connection) delivers them.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Element>,
}

/// The far side of the outbox is gone (the server is shutting down, or the
/// component connection dropped and the service is being restarted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the service's connection to the server is closed")
    }
}

impl std::error::Error for Closed {}

impl Outbox {
    /// A connected outbox and the receiver its host drains.
    pub fn channel() -> (Outbox, mpsc::Receiver<Element>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        (Outbox { tx }, rx)
    }

    /// Sends a stanza, waiting while the host's queue is full.
    pub async fn send(&self, stanza: Element) -> Result<(), Closed> {
        self.tx.send(stanza).await.map_err(|_| Closed)
    }
}

/// Everything a running service gets from its host.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The service's hostname: every stanza it sends must be from it or
    /// from a JID at it.
    pub jid: String,
    pub out: Outbox,
    /// The service's own records (registrations, listings, rooms), in
    /// whatever storage the host chose; no other service's.
    pub store: ServiceStore,
    /// The key that seals secrets at rest (see [`credentials`]).
    pub key: Arc<credentials::SecretKey>,
    /// The `<service>` element from the config, for service-specific
    /// settings.
    pub config: Element,
    /// The admins to notify of events worth a human's attention.
    pub admins: Vec<switchboard_jid::Jid>,
    /// Where the service reports its own numbers (rooms, messages…); the
    /// host keeps a clone and renders them when its metrics are scraped.
    pub metrics: metrics::ServiceMetrics,
}

/// A kind of service (`directory`, `irc`, …). One value is shared by every
/// (re)start; [`Service::run`] is called again after a crash.
pub trait Service: Send + Sync + 'static {
    /// The disco identity, known before the service first runs.
    fn identity(&self) -> Identity;
    /// Runs until the inbox closes (shutdown) or the service gives up. A
    /// return or a panic while the host is up means a restart with backoff.
    fn run(&self, ctx: ServiceContext, inbox: mpsc::Receiver<Element>) -> BoxFuture;
}
