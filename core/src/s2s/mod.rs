//! Federation: links to and from other XMPP servers (RFC 6120
//! server-to-server), so that users here reach users elsewhere and the
//! other way round.
//!
//! ```text
//! router: message/remote, presence/remote, iq/remote (routes.rs)
//!   └─► Federation::route ─► the link (local domain, remote domain)
//!         absent: a task is started (outgoing.rs): DNS (resolve.rs),
//!         TCP, TLS (certs.rs), the S2sOut machine; stanzas wait in its
//!         bounded queue and go in order once it is authenticated, or
//!         bounce (remote-server-not-found / -timeout) when it fails
//! listener ─► incoming.rs: the S2sIn machine; authenticated stanzas
//!   ─► Router::route_from_remote (their `from` must be the peer's domain)
//!   dialback claims are checked over an outgoing link to the claimed
//!   domain (Federation::verify)
//! ```
//!
//! [`Federation`] is the handle every part that needs federation gets:
//! the routing rows, the listeners' drivers, the admin seam (links now),
//! the metrics scrape. It holds the policy snapshot (swapped on reload),
//! the table of outgoing links (the link kit's connection table, one link
//! per pair of domains), recent failures (a domain that just failed is
//! not retried at once: the link kit's backoff says when), and the
//! register of live links for admins. With federation off (no `<s2s>`)
//! it routes nothing and the core's fallback answers
//! `remote-server-not-found`.
//!
//! Nothing waits here: handing a stanza to a link is a `try_send`, as
//! for sessions; a link that cannot keep up bounces with
//! `resource-constraint`.

pub mod certs;
pub mod incoming;
pub mod links;
mod outgoing;
pub mod resolve;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use switchboard_config::{LimitsConfig, PeerAddress, S2sConfig};
use switchboard_link::backoff::{Backoff, Jitter, Policy};
use switchboard_link::table::{ConnectionTable, Refused};
use switchboard_xml::{Element, Limits};
use tokio::sync::{mpsc, oneshot};

use crate::lifecycle::{ShutdownSignal, Tracker};
use crate::routing::stanza::Stanza;
use crate::routing::table::Flow;
use crate::routing::Router;
use crate::stanza::{ErrorType, StanzaError};
use crate::stream::s2s::{DialbackSecret, S2sPolicy, StanzaRate};
use crate::tls::Identity;
use certs::{Anchors, S2sTls};
use links::Registry;

/// Remote domains one local domain may have links to at once.
const LINKS_PER_DOMAIN: usize = 10_000;

/// A failed domain is not tried again for this long after its first
/// failure, doubling up to [`RETRY_MAX`]; meanwhile stanzas to it bounce
/// at once with the same error (as ejabberd's `s2s_max_retry_delay`).
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Whitespace keepalive on a quiet outgoing link.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// What a link's queue carries.
pub(crate) enum LinkRequest {
    /// A stanza for the remote domain; `retried` once it was handed back
    /// by a link that closed before sending it.
    Stanza { el: Element, retried: bool },
    /// A dialback question for the remote domain's server (we are the
    /// receiving server of an incoming stream that claimed it).
    Verify {
        id: String,
        key: String,
        answer: oneshot::Sender<bool>,
    },
}

/// The federation settings in force: the machines' policy and what the
/// drivers need. Swapped whole on reload.
pub struct S2sSettings {
    pub policy: Arc<S2sPolicy>,
    pub local_only: Vec<String>,
    pub connect: HashMap<String, PeerAddress>,
    pub max_queue: usize,
    pub tls: S2sTls,
    pub resolver: Arc<TokioResolver>,
}

impl S2sSettings {
    /// The settings for `config`, with the server's certificate and the
    /// dialback secret (kept across reloads).
    pub fn new(
        config: &S2sConfig,
        limits: &LimitsConfig,
        identity: &Identity,
        secret: DialbackSecret,
    ) -> Result<S2sSettings, String> {
        let anchors = Anchors::load(config.trust.as_deref(), true)?;
        let tls = S2sTls::new(identity, anchors)?;
        let resolver = resolve::resolver(config.resolver)?;
        Ok(S2sSettings {
            policy: Arc::new(S2sPolicy {
                secure_auth: config.secure_auth,
                dialback: config.dialback,
                limits: Limits {
                    max_stanza_bytes: limits.max_stanza_bytes,
                    ..Limits::default()
                },
                timeout: config.timeout,
                idle_timeout: config.idle_timeout,
                keepalive: KEEPALIVE,
                secret,
                allow: config.allow.clone(),
                deny: config.deny.clone(),
                stanza_rate: config.stanza_rate.map(|r| StanzaRate {
                    count: r.count,
                    per: r.per,
                }),
            }),
            local_only: config.local_only.clone(),
            connect: config
                .connect
                .iter()
                .map(|p| (p.domain.clone(), p.clone()))
                .collect(),
            max_queue: config.max_queue,
            tls,
            resolver: Arc::new(resolver),
        })
    }
}

/// A pair of domains that failed: until when stanzas to it bounce at once.
struct Failed {
    backoff: Backoff,
    until: Instant,
    error: StanzaError,
}

/// The federation handle.
pub struct Federation {
    settings: RwLock<Option<Arc<S2sSettings>>>,
    /// The domains we answer for: hosts and service hostnames.
    local: Arc<[String]>,
    secret: DialbackSecret,
    links: Mutex<ConnectionTable<LinkRequest>>,
    failed: Mutex<HashMap<(String, String), Failed>>,
    registry: Registry,
    shutdown: ShutdownSignal,
    tracker: Tracker,
}

impl Federation {
    /// Federation for `local` domains with `settings` (`None`: off).
    pub fn new(
        local: Vec<String>,
        settings: Option<S2sSettings>,
        secret: DialbackSecret,
        shutdown: ShutdownSignal,
        tracker: Tracker,
    ) -> Arc<Federation> {
        Arc::new(Federation {
            settings: RwLock::new(settings.map(Arc::new)),
            local: local.into(),
            secret,
            links: Mutex::new(ConnectionTable::new(LINKS_PER_DOMAIN)),
            failed: Mutex::new(HashMap::new()),
            registry: Registry::default(),
            shutdown,
            tracker,
        })
    }

    /// Federation off: every stanza to another domain goes to the core's
    /// fallback (for tests and benchmarks that route directly).
    pub fn off() -> Arc<Federation> {
        let shutdown = crate::lifecycle::Shutdown::new();
        Federation::new(
            Vec::new(),
            None,
            DialbackSecret::generate(),
            shutdown.signal(),
            Tracker::default(),
        )
    }

    /// The settings in force, `None` with federation off.
    pub fn settings(&self) -> Option<Arc<S2sSettings>> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_on(&self) -> bool {
        self.settings().is_some()
    }

    /// New settings for links set up from now on (reload). Turning
    /// federation on or off needs a restart; this keeps it as it is.
    pub fn reconfigure(&self, settings: S2sSettings) {
        let mut slot = self.settings.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            *slot = Some(Arc::new(settings));
        }
    }

    /// The secret dialback keys are made from (kept across reloads).
    pub fn secret(&self) -> &DialbackSecret {
        &self.secret
    }

    /// The domains this server answers for.
    pub fn local(&self) -> &Arc<[String]> {
        &self.local
    }

    /// The register of live links.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.clone()
    }

    pub(crate) fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// A stanza to another domain, from the routing table: onto the link
    /// from its sender's domain to its addressee's. With federation off
    /// the stanza goes on to the next hook (the fallback's
    /// `remote-server-not-found`).
    pub fn route(self: &Arc<Self>, router: &Router, s: Stanza) -> Flow {
        let Some(settings) = self.settings() else {
            return Flow::Next(s);
        };
        let local = s.from.domain().to_string();
        let remote = s.to.domain().to_string();
        if !self.local.contains(&local) {
            // Only our own domains' stanzas leave through our links; a
            // stanza that came from elsewhere is never relayed.
            router.bounce(
                &s.el,
                StanzaError::not_allowed()
                    .with_text("this server relays nothing between other servers"),
            );
            return Flow::Done;
        }
        if !settings.policy.allows(&remote) {
            router.bounce(
                &s.el,
                StanzaError::not_allowed()
                    .with_text(format!("this server does not federate with {remote}")),
            );
            return Flow::Done;
        }
        let ticket = s.ticket();
        self.hand(
            router,
            &settings,
            &local,
            &remote,
            LinkRequest::Stanza {
                el: s.el,
                retried: false,
            },
        );
        // Handed to a link (or bounced): the sender's work is done; what
        // happens over there is the other server's business.
        drop(ticket);
        Flow::Done
    }

    /// Asks the server of `remote` (over the link from `local`) whether a
    /// dialback key is its own; `false` on any failure or after the set-up
    /// timeout.
    pub async fn verify(
        self: &Arc<Self>,
        router: &Router,
        local: &str,
        remote: &str,
        id: String,
        key: String,
    ) -> bool {
        let Some(settings) = self.settings() else {
            return false;
        };
        let (answer, rx) = oneshot::channel();
        self.hand(
            router,
            &settings,
            local,
            remote,
            LinkRequest::Verify { id, key, answer },
        );
        matches!(
            tokio::time::timeout(settings.policy.timeout, rx).await,
            Ok(Ok(true))
        )
    }

    /// Hands a request to the link of (`local`, `remote`), starting one
    /// if there is none; bounces what cannot be taken.
    pub(crate) fn hand(
        self: &Arc<Self>,
        router: &Router,
        settings: &Arc<S2sSettings>,
        local: &str,
        remote: &str,
        req: LinkRequest,
    ) {
        let mut table = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let req = match table.hand(local, remote, req) {
            Ok(()) => return,
            Err(Refused::Busy(req)) => {
                drop(table);
                let err = StanzaError::new("resource-constraint", ErrorType::Wait).with_text(
                    format!("the link to {remote} is too far behind; try again later"),
                );
                return refuse(router, req, err);
            }
            Err(Refused::Absent(req)) => req,
        };
        if let Some(err) = self.recently_failed(local, remote) {
            drop(table);
            return refuse(router, req, err);
        }
        if self.shutdown.is_raised() {
            drop(table);
            return refuse(router, req, StanzaError::service_unavailable());
        }
        if table.make_room(local).is_err() {
            drop(table);
            let err = StanzaError::new("resource-constraint", ErrorType::Wait)
                .with_text("this server has too many links open");
            return refuse(router, req, err);
        }
        // The queue only has to absorb a burst while the link task is
        // busy; the task itself holds up to max-queue waiting stanzas.
        let (tx, rx) = mpsc::channel(settings.max_queue);
        let _ = tx.try_send(req);
        table.insert(local, remote, tx);
        drop(table);
        let link = outgoing::Link::new(
            self.clone(),
            router.clone(),
            settings.clone(),
            local.to_string(),
            remote.to_string(),
        );
        tokio::spawn(link.run(rx));
    }

    /// The error to bounce with while (`local`, `remote`) is backing off.
    fn recently_failed(&self, local: &str, remote: &str) -> Option<StanzaError> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let f = failed.get(&(local.to_string(), remote.to_string()))?;
        (Instant::now() < f.until).then(|| f.error.clone())
    }

    /// A link failed before it was set up: bounce at once for a while.
    pub(crate) fn note_failure(&self, local: &str, remote: &str, error: &StanzaError) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let f = failed
            .entry((local.to_string(), remote.to_string()))
            .or_insert_with(|| Failed {
                backoff: Backoff::new(Policy {
                    first: RETRY_FIRST,
                    max: RETRY_MAX,
                    attempts: None,
                    jitter: Jitter::EQUAL,
                }),
                until: Instant::now(),
                error: error.clone(),
            });
        let delay = f.backoff.failed().unwrap_or(RETRY_MAX);
        f.until = Instant::now() + delay;
        f.error = error.clone();
    }

    /// A link was set up: its domain is fine again.
    pub(crate) fn note_success(&self, local: &str, remote: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.remove(&(local.to_string(), remote.to_string()));
    }

    /// The link task of (`local`, `remote`) ended: it is forgotten
    /// unless a newer one took its place.
    pub(crate) fn link_ended(&self, local: &str, remote: &str) {
        let mut table = self.links.lock().unwrap_or_else(|e| e.into_inner());
        table.ended(local, remote);
    }
}

/// Answers a request that no link will carry.
pub(crate) fn refuse(router: &Router, req: LinkRequest, err: StanzaError) {
    match req {
        LinkRequest::Stanza { el, .. } => router.bounce(&el, err),
        LinkRequest::Verify { answer, .. } => {
            let _ = answer.send(false);
        }
    }
}

/// The local-only services' check, shared by the routing rows.
pub(crate) fn local_only(settings: &S2sSettings, service: &str) -> bool {
    settings.local_only.iter().any(|s| s == service)
}
