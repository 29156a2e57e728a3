//! The settings a running server reads and a reload (SIGHUP) may change,
//! as one immutable snapshot.
//!
//! Live subsystems (the router, the account actors, the throttles) are not
//! in here: they are handles of their own. What is here is plain data —
//! each host's admins and registration policy, the stream settings for new
//! connections, the component secrets, the PBKDF2 iteration count, the
//! delays after failed logins, the TLS acceptor — and a reload swaps the whole snapshot at once, so a reader
//! never sees half of an old config and half of a new one. Readers take an
//! `Arc` to the snapshot current when they start (a new connection keeps
//! the settings it started with).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use switchboard_config::{AuthDelayConfig, HostConfig, Registration};
use switchboard_jid::Jid;
use tokio_rustls::TlsAcceptor;

use crate::stream::C2sSettings;

/// One snapshot of the reloadable settings.
#[derive(Clone)]
pub struct Settings {
    /// Per-host settings (admins, registration policy).
    pub hosts: Vec<HostConfig>,
    /// Settings for new client connections.
    pub c2s: C2sSettings,
    /// External services: hostname → the secret its component proves.
    pub component_secrets: HashMap<String, String>,
    /// PBKDF2 iterations for new credentials.
    pub scram_iterations: u32,
    /// How failed authentications slow the next attempts down.
    pub auth_delay: AuthDelayConfig,
    /// The certificate for new TLS connections (`None` without one).
    pub tls: Option<TlsAcceptor>,
    /// The same certificate for the HTTPS listeners (ALPN `http/1.1`
    /// instead of XEP-0368's `xmpp-client`).
    pub https: Option<TlsAcceptor>,
    /// The longest a session may wait to be resumed (XEP-0198).
    pub resume_timeout: std::time::Duration,
}

impl Settings {
    /// Defaults for `hosts` with no admins and registration off, no TLS:
    /// for tests and benchmarks that drive the router directly.
    pub fn for_hosts(hosts: &[&str]) -> Settings {
        Settings {
            hosts: hosts
                .iter()
                .map(|h| HostConfig {
                    name: h.to_string(),
                    admins: Vec::new(),
                    registration: Registration::Off,
                    archive: switchboard_config::defaults::ARCHIVE,
                    contacts: Vec::new(),
                })
                .collect(),
            c2s: C2sSettings {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                tls_available: false,
                tls_required: false,
                limits: switchboard_xml::Limits::default(),
                preauth_timeout: std::time::Duration::from_secs(30),
                keepalive: std::time::Duration::from_secs(300),
                open_registration: Vec::new(),
                extensions: Default::default(),
                stream_management: true,
            },
            component_secrets: HashMap::new(),
            scram_iterations: 4096,
            auth_delay: AuthDelayConfig::default(),
            tls: None,
            https: None,
            resume_timeout: std::time::Duration::from_secs(600),
        }
    }

    /// Whether `jid` (any resource) is an admin of `host`.
    pub fn is_admin(&self, host: &str, jid: &Jid) -> bool {
        let bare = jid.to_bare();
        self.hosts
            .iter()
            .any(|h| h.name == host && h.admins.contains(&bare))
    }

    /// The admins of `host` (bare JIDs), as configured.
    pub fn admins(&self, host: &str) -> &[Jid] {
        self.hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.admins.as_slice())
            .unwrap_or_default()
    }

    /// The registration policy of a host (`Off` for an unknown one).
    pub fn registration(&self, host: &str) -> Registration {
        self.hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.registration)
            .unwrap_or(Registration::Off)
    }

    /// The local host names, in config order.
    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }
}

/// The current snapshot, swapped whole by a reload.
pub struct LiveSettings {
    current: RwLock<Arc<Settings>>,
}

impl LiveSettings {
    pub fn new(settings: Settings) -> LiveSettings {
        LiveSettings {
            current: RwLock::new(Arc::new(settings)),
        }
    }

    /// The snapshot current now.
    pub fn get(&self) -> Arc<Settings> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `settings` current for every reader from now on.
    pub fn replace(&self, settings: Settings) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}
