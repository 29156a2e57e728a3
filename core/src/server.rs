//! The running server: shared state, start-up from a [`Config`], reload on
//! HUP without dropping anyone, and orderly shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use switchboard_config::Config;
use switchboard_spool::Storage;
use switchboard_xml::Limits;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::modules::{Registry, ServiceInfo};
use crate::net::listener::{self, ListenerKind};
use crate::router::Router;
use crate::router::ServiceHandle;
use crate::services::{Provider, ServicePlan};
use crate::stream::{C2sSettings, StreamError};
use crate::throttle::Throttle;
use switchboard_service::credentials::SecretKey;
use switchboard_service::{Outbox, ServiceContext};

/// State every connection shares.
pub struct Shared {
    pub router: Router,
    pub storage: Arc<dyn Storage>,
    /// `-D`: log every byte in and out (secrets masked).
    pub debug: bool,
    settings: RwLock<C2sSettings>,
    tls: RwLock<Option<TlsAcceptor>>,
    shutdown: watch::Sender<bool>,
    /// One clone per live connection; shutdown waits for them to go.
    connections: Arc<()>,
    /// In-band registrations per source address.
    pub registrations: Throttle,
    /// Per-host settings (admins, registration policy), reloadable.
    hosts: RwLock<Vec<switchboard_config::HostConfig>>,
    scram_iterations: std::sync::atomic::AtomicU32,
    /// External services: hostname → the secret its component proves
    /// (reloadable).
    components: RwLock<std::collections::HashMap<String, String>>,
    /// Messages of the day and the queue of changes to them.
    pub admin: crate::admin::AdminState,
    /// The counters (the router's own, shared), for the metrics endpoint
    /// and for code outside the router that counts.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    /// Settings for a new connection (a reload affects new connections).
    pub fn c2s_settings(&self) -> C2sSettings {
        self.settings.read().expect("settings lock").clone()
    }

    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.read().expect("tls lock").clone()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn connection_guard(&self) -> Arc<()> {
        self.connections.clone()
    }

    /// Whether `jid` (any resource) is an admin of `host`.
    pub fn is_admin(&self, host: &str, jid: &switchboard_jid::Jid) -> bool {
        let bare = jid.to_bare();
        self.hosts
            .read()
            .expect("hosts lock")
            .iter()
            .any(|h| h.name == host && h.admins.contains(&bare))
    }

    /// The admins of `host` (bare JIDs), as configured.
    pub fn admins(&self, host: &str) -> Vec<switchboard_jid::Jid> {
        self.hosts
            .read()
            .expect("hosts lock")
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.admins.clone())
            .unwrap_or_default()
    }

    /// The registration policy of a host.
    pub fn registration(&self, host: &str) -> switchboard_config::Registration {
        self.hosts
            .read()
            .expect("hosts lock")
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.registration)
            .unwrap_or(switchboard_config::Registration::Off)
    }

    /// The local host names.
    pub fn host_names(&self) -> Vec<String> {
        self.hosts
            .read()
            .expect("hosts lock")
            .iter()
            .map(|h| h.name.clone())
            .collect()
    }

    /// Every external service's hostname and secret, for a new component
    /// connection.
    pub fn component_secrets(&self) -> std::collections::HashMap<String, String> {
        self.components.read().expect("components lock").clone()
    }

    /// PBKDF2 iterations for new credentials (reloadable).
    pub fn scram_iterations(&self) -> u32 {
        self.scram_iterations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn live_connections(&self) -> usize {
        Arc::strong_count(&self.connections) - 1
    }

    /// The counters plus the gauges read now, for one scrape.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        self.metrics.snapshot(
            self.router.sessions.count(),
            self.live_connections(),
            self.router.service_gauges(),
        )
    }
}

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

pub struct Server {
    shared: Arc<Shared>,
    config: Config,
    home: PathBuf,
    listeners: Vec<(ListenerKind, SocketAddr)>,
}

fn settings_from(config: &Config, tls_available: bool) -> C2sSettings {
    C2sSettings {
        hosts: config.hosts.iter().map(|h| h.name.clone()).collect(),
        tls_available,
        tls_required: config.tls.required,
        limits: Limits {
            max_stanza_bytes: config.limits.max_stanza_bytes,
            ..Limits::default()
        },
        preauth_timeout: config.limits.preauth_timeout,
        keepalive: config.limits.keepalive,
        open_registration: config
            .hosts
            .iter()
            .filter(|h| h.registration == switchboard_config::Registration::Open)
            .map(|h| h.name.clone())
            .collect(),
    }
}

fn load_tls(config: &Config, home: &Path) -> Result<TlsAcceptor, String> {
    let hosts: Vec<String> = config.hosts.iter().map(|h| h.name.clone()).collect();
    let (tls, info) = crate::tls::load_or_generate(
        config.tls.cert.as_deref(),
        config.tls.key.as_deref(),
        &hosts,
        &home.join("etc"),
    )?;
    if info.generated {
        tracing::warn!(
            cert = %info.cert_path.display(),
            "generated a self-signed certificate; clients will ask to trust it: SHA-256 fingerprint {} (SHA-1 {})",
            info.fingerprint,
            info.fingerprint_sha1
        );
    } else {
        tracing::info!(
            cert = %info.cert_path.display(),
            "certificate SHA-256 fingerprint {} (SHA-1 {})",
            info.fingerprint,
            info.fingerprint_sha1
        );
    }
    Ok(TlsAcceptor::from(tls))
}

/// Hostname → secret of the external services among `plans`.
fn external_secrets(plans: &[ServicePlan]) -> std::collections::HashMap<String, String> {
    plans
        .iter()
        .filter_map(|p| match &p.provider {
            Provider::External { secret } => Some((p.config.id.clone(), secret.clone())),
            Provider::InProcess(_) => None,
        })
        .collect()
}

/// Gives every configured service its router slot and starts the
/// in-process ones under supervision. External slots stay empty until
/// their component connects.
fn start_services(
    shared: &Arc<Shared>,
    config: &Config,
    plans: Vec<ServicePlan>,
) -> Result<(), String> {
    let needs_key = plans
        .iter()
        .any(|p| matches!(p.provider, Provider::InProcess(_)));
    let key = if needs_key {
        Arc::new(SecretKey::load_or_generate(&config.credentials_key)?)
    } else {
        Arc::new(SecretKey::generate())
    };
    for plan in plans {
        let host = plan.config.id.clone();
        shared.router.add_service(
            host.clone(),
            ServiceHandle {
                info: ServiceInfo {
                    jid: host.clone(),
                    name: plan.display_name(),
                },
                inbox: None,
            },
        );
        let Provider::InProcess(service) = plan.provider else {
            continue;
        };
        let data_dir = config
            .spool
            .dir
            .join(switchboard_spool::filename::encode_name(&host));
        create_private_dir(&data_dir)?;
        let ctx = ServiceContext {
            jid: host.clone(),
            out: Outbox::channel().0,
            data_dir,
            key: key.clone(),
            config: plan.config.element.clone(),
            admins: crate::admin::notify::hosts_for(shared, &host)
                .iter()
                .flat_map(|h| shared.admins(h))
                .collect(),
        };
        tokio::spawn(crate::services::supervisor::supervise(
            shared.clone(),
            service,
            ctx,
        ));
    }
    Ok(())
}

/// A directory only the server's user may enter (0700).
fn create_private_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    }
    Ok(())
}

impl Server {
    /// Loads TLS, binds every listener and starts accepting. Errors are
    /// complete sentences for the admin.
    pub async fn start(
        config: Config,
        home: &Path,
        storage: Arc<dyn Storage>,
        debug: bool,
        services: Vec<ServicePlan>,
    ) -> Result<Server, String> {
        let tls = load_tls(&config, home)?;
        let hosts = config.hosts.iter().map(|h| h.name.clone()).collect();
        let (shutdown, _) = watch::channel(false);
        let router = Router::new(hosts, Registry::builtin());
        let metrics = router.metrics.clone();
        // Every spool write the server makes is timed on its way through.
        let storage: Arc<dyn Storage> = Arc::new(crate::metrics::MeteredStorage::new(
            storage,
            metrics.clone(),
        ));
        let shared = Arc::new(Shared {
            router,
            storage,
            debug,
            settings: RwLock::new(settings_from(&config, true)),
            tls: RwLock::new(Some(tls)),
            shutdown,
            connections: Arc::new(()),
            registrations: Throttle::new(
                config.limits.registrations_per_address,
                config.limits.registration_window,
                config.limits.registration_allowlist.clone(),
            ),
            scram_iterations: config.limits.scram_iterations.into(),
            hosts: RwLock::new(config.hosts.clone()),
            components: RwLock::new(external_secrets(&services)),
            admin: Default::default(),
            metrics,
        });
        shared.router.attach(&shared);
        crate::admin::start(&shared, &shared.c2s_settings().hosts).await?;
        start_services(&shared, &config, services)?;
        let mut bound = Vec::new();
        let mut listeners = Vec::new();
        for (kind, addrs) in [
            (ListenerKind::C2s, &config.listen.c2s),
            (ListenerKind::C2sTls, &config.listen.c2s_tls),
            (ListenerKind::Component, &config.listen.component),
        ] {
            for addr in addrs {
                let l = listener::bind(*addr, kind).await?;
                let local = l.local_addr().map_err(|e| e.to_string())?;
                listeners.push((kind, local));
                bound.push((l, kind));
            }
        }
        for (l, kind) in bound {
            tokio::spawn(listener::run(l, kind, shared.clone()));
        }
        if let Some(addr) = config.metrics {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "the metrics endpoint on {addr} is not on loopback: it has no \
                     authentication, so firewall it to the scraper"
                );
            }
            let l = crate::net::metrics::bind(addr).await?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            listeners.push((ListenerKind::Metrics, local));
            tokio::spawn(crate::net::metrics::run(l, shared.clone()));
        }
        Ok(Server {
            shared,
            config,
            home: home.to_path_buf(),
            listeners,
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn listeners(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.listeners
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Applies a re-read config without dropping any connection (SIGHUP).
    /// Settings for new connections, TLS certificates and limits apply at
    /// once; listeners, hosts and the spool location need a restart.
    pub fn reload(&mut self, new: Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let old = &self.config;
        if new.listen != old.listen {
            report.needs_restart.push("listen addresses".into());
        }
        let host_names = |c: &Config| c.hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
        if host_names(&new) != host_names(old) {
            report.needs_restart.push("the list of hosts".into());
        }
        if new.spool != old.spool {
            report.needs_restart.push("the spool directory".into());
        }
        if new.log != old.log {
            report
                .needs_restart
                .push("the log file location or level".into());
        }
        let service_ids = |c: &Config| {
            c.services
                .iter()
                .map(|s| (s.id.clone(), s.kind.clone()))
                .collect::<Vec<_>>()
        };
        if service_ids(&new) != service_ids(old) {
            report
                .needs_restart
                .push("the list of services or their types".into());
        } else if new.services != old.services {
            let secrets: std::collections::HashMap<String, String> = new
                .services
                .iter()
                .filter(|s| s.kind == "external")
                .filter_map(|s| Some((s.id.clone(), s.secret.clone()?)))
                .collect();
            *self.shared.components.write().expect("components lock") = secrets;
            report.applied.push(
                "external component secrets (for new component connections; \
                 other service settings need a restart)"
                    .into(),
            );
        }
        if new.metrics != old.metrics {
            report.needs_restart.push("the metrics address".into());
        }
        if new.pidfile != old.pidfile {
            report.needs_restart.push("the pidfile location".into());
        }
        if new.hosts != old.hosts && host_names(&new) == host_names(old) {
            report
                .applied
                .push("host settings (admins, registration)".into());
        }
        if new.limits != old.limits || new.tls.required != old.tls.required {
            report
                .applied
                .push("limits and TLS policy for new connections".into());
        }
        // Certificates are re-read on every reload so that a renewed
        // certificate at the same path is picked up.
        match load_tls(&new, &self.home) {
            Ok(acceptor) => {
                *self.shared.tls.write().expect("tls lock") = Some(acceptor);
                report.applied.push("TLS certificate re-read".into());
            }
            Err(e) => report
                .needs_restart
                .push(format!("TLS (kept the old certificate: {e})")),
        }
        let hosts_unchanged = host_names(&new) == host_names(old);
        let mut settings = settings_from(&new, true);
        if !hosts_unchanged {
            settings.hosts = host_names(old);
        }
        *self.shared.settings.write().expect("settings lock") = settings;
        if host_names(&new) == host_names(old) {
            *self.shared.hosts.write().expect("hosts lock") = new.hosts.clone();
        }
        self.shared.registrations.reconfigure(
            new.limits.registrations_per_address,
            new.limits.registration_window,
            new.limits.registration_allowlist.clone(),
        );
        self.shared.scram_iterations.store(
            new.limits.scram_iterations,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.config = new;
        report
    }

    /// Closes every stream with `system-shutdown` and waits (bounded) for
    /// the connections to flush and go.
    pub async fn shutdown(self) {
        self.shared
            .router
            .close_all(&StreamError::new("system-shutdown"));
        let _ = self.shared.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.shared.live_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
