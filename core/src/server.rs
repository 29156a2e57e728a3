//! The composition of a running server: start-up from a [`Config`], reload
//! on HUP without dropping anyone, and orderly shutdown.
//!
//! Start-up builds each part and hands it exactly the handles it uses:
//!
//! ```text
//! settings snapshot ─┬─► account actors (+ storage, MOTD board)
//!                    ├─► routing table ◄─ core rows, IM rows, admin rows
//!                    │   IQ registry   ◄─ modules
//!                    ├─► router (table, registry, sessions, service slots)
//!                    ├─► admin seam (router, actors, storage, settings)
//!                    ├─► services under supervision (router, settings)
//!                    ├─► federation (its settings, the local domains,
//!                    │   the shutdown signal): routing rows, links
//!                    └─► listeners → connection drivers (router, settings,
//!                        storage, throttle, shutdown signal; s2s drivers:
//!                        router, federation)
//! ```
//!
//! Nothing keeps a pointer back to the server: the server owns the
//! handles, the shutdown trigger and the connection tracker, and that is
//! all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_config::Config;
use switchboard_spool::store::{BoxFuture, ServiceDataStore, Stores};
use switchboard_xml::Limits;
use tokio_rustls::TlsAcceptor;

use crate::admin::{Admin, AdminQueues};
use crate::im::{Accounts, ImContext};
use crate::lifecycle::{Shutdown, Tracker};
use crate::net::component::ComponentContext;
use crate::net::connection::C2sContext;
use crate::net::listener::{self, ListenerKind, Serve};
use crate::notices::MotdBoard;
use crate::routing::iq::{Registry, Scope, ServiceInfo};
use crate::routing::services::ServiceHandle;
use crate::routing::table::{Table, TableBuilder};
use crate::routing::Router;
use crate::s2s::incoming::S2sContext;
use crate::s2s::{Federation, S2sSettings};
use crate::services::{Provider, ServicePlan};
use crate::settings::{LiveSettings, Settings};
use crate::stream::{C2sSettings, StreamError};
use crate::throttle::Throttle;
use switchboard_service::credentials::SecretKey;
use switchboard_service::{Outbox, ServiceContext};

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

pub struct Server {
    config: Config,
    home: PathBuf,
    listeners: Vec<(ListenerKind, SocketAddr)>,
    router: Router,
    settings: Arc<LiveSettings>,
    registrations: Arc<Throttle>,
    admin: Arc<Admin>,
    shutdown: Shutdown,
    tracker: Tracker,
    /// Sessions that may be resumed; at shutdown the hibernating ones end
    /// like the others, so what waits for them goes to offline storage.
    resumptions: Arc<crate::net::resume::Resumptions>,
    federation: Arc<Federation>,
    /// What client connections work with; the web layer's WebSocket and
    /// BOSH sessions get the same.
    c2s: Option<Arc<C2sContext>>,
}

/// The handles the web layer (a separate crate, started by the
/// composition root after the server) works with: client sessions over
/// WebSocket run on the same context as TCP ones, the metrics endpoint
/// reads the same counters, the admin console calls the same seam.
#[derive(Clone)]
pub struct WebHandles {
    pub c2s: Arc<C2sContext>,
    pub scrape: crate::net::metrics::Scrape,
    pub admin: Arc<Admin>,
    pub settings: Arc<LiveSettings>,
    /// Every WebSocket connection holds a guard of this tracker, as TCP
    /// ones do: they count as connections and shutdown waits for them.
    pub connections: Tracker,
    pub shutdown: crate::lifecycle::ShutdownSignal,
}

/// The routing table and IQ registry of a server: the core's own rows,
/// the IM rows feeding `accounts`, the admin rows, and every built-in
/// module's IQ handlers; and the background work the features need, for
/// the caller to spawn. The server starts with exactly this; the routing
/// document's test checks it against `doc/stanza_routing.md`.
pub fn routing(
    accounts: &Arc<Accounts>,
    settings: &Arc<LiveSettings>,
    stores: &Stores,
    federation: &Arc<Federation>,
) -> (Table, Registry, AdminQueues, Vec<BoxFuture<'static, ()>>) {
    let mut t = TableBuilder::default();
    crate::routing::defaults::register(&mut t);
    crate::im::register(&mut t, accounts);
    crate::s2s::routes::register(&mut t, federation);
    let queues = crate::admin::register(&mut t, settings.clone());
    let mut iq = Registry::default();
    crate::modules::register(&mut iq);
    // Each host answers XEP-0050 commands (XEP-0133 administration); the
    // admin rows hand those IQs to their own task, so only the feature is
    // registered here.
    iq.feature(Scope::Server, switchboard_xml::ns::COMMANDS);
    let mut background = Vec::new();
    crate::features::register(&mut crate::features::Setup {
        table: &mut t,
        iq: &mut iq,
        stores,
        settings,
        accounts,
        background: &mut background,
    });
    (t.build(), iq, queues, background)
}

/// The account actors' context: the stores of the kinds an account has.
fn im_context(stores: &Stores, settings: &Arc<LiveSettings>, motds: Arc<MotdBoard>) -> ImContext {
    ImContext {
        accounts: stores.accounts.clone(),
        rosters: stores.rosters.clone(),
        offline: stores.offline.clone(),
        data: stores.account_data.clone(),
        settings: settings.clone(),
        motds,
        gates: Default::default(),
        observers: Default::default(),
    }
}

/// A router built as [`Server::start`] builds it (the same table, account
/// actors and registry) over `stores`, without listeners, services or
/// admin tasks: for benchmarks and tests that drive routing directly. The
/// features' background work (an archive's writer) is spawned on the
/// current tokio runtime; called outside one, it does not run.
pub fn standalone_router(stores: &Stores, settings: Settings) -> Router {
    let hosts = settings.host_names();
    let settings = Arc::new(LiveSettings::new(settings));
    let accounts = Accounts::new(im_context(
        stores,
        &settings,
        Arc::new(MotdBoard::default()),
    ));
    let (table, iq, _admin_queues, background) =
        routing(&accounts, &settings, stores, &Federation::off());
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        for task in background {
            rt.spawn(task);
        }
    }
    Router::new(hosts, table, iq, Arc::default())
}

fn c2s_settings(config: &Config, tls_available: bool) -> C2sSettings {
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
        extensions: Default::default(),
        stream_management: true,
    }
}

/// The settings snapshot for a config.
fn settings_from(
    config: &Config,
    tls: Option<Acceptors>,
    component_secrets: std::collections::HashMap<String, String>,
) -> Settings {
    let (tls, https) = match tls {
        Some(a) => (Some(a.xmpp), Some(a.https)),
        None => (None, None),
    };
    Settings {
        hosts: config.hosts.clone(),
        c2s: c2s_settings(config, tls.is_some()),
        component_secrets,
        scram_iterations: config.limits.scram_iterations,
        auth_delay: config.auth_delay,
        tls,
        https,
        resume_timeout: config.limits.resume_timeout,
    }
}

/// The certificate, configured for XMPP (ALPN `xmpp-client`) and for
/// HTTPS (ALPN `http/1.1`).
struct Acceptors {
    xmpp: TlsAcceptor,
    https: TlsAcceptor,
}

/// The certificate as acceptors, and the identity federation presents.
fn load_tls(config: &Config, home: &Path) -> Result<(Acceptors, crate::tls::Identity), String> {
    let hosts: Vec<String> = config.hosts.iter().map(|h| h.name.clone()).collect();
    let (identity, info) = crate::tls::load_identity(
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
    let tls = crate::tls::server_config(identity.certs.clone(), identity.key.clone_key())?;
    let mut https = (*tls).clone();
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        Acceptors {
            xmpp: TlsAcceptor::from(tls),
            https: TlsAcceptor::from(Arc::new(https)),
        },
        identity,
    ))
}

/// The domains federation answers for: the hosts and every service
/// hostname (a remote user may address a room or a transport here).
fn federated_domains(config: &Config) -> Vec<String> {
    config
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .chain(config.services.iter().map(|s| s.id.clone()))
        .collect()
}

/// The federation settings for `config`, `None` without `<s2s>`.
fn s2s_settings(
    config: &Config,
    identity: &crate::tls::Identity,
    secret: &crate::stream::s2s::DialbackSecret,
) -> Result<Option<S2sSettings>, String> {
    let Some(s2s) = &config.s2s else {
        return Ok(None);
    };
    S2sSettings::new(s2s, &config.limits, identity, secret.clone()).map(Some)
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
    server: &Server,
    config: &Config,
    service_data: Arc<dyn ServiceDataStore>,
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
    let settings = server.settings.get();
    for plan in plans {
        let host = plan.config.id.clone();
        let metrics = switchboard_service::metrics::ServiceMetrics::default();
        server.router.services().add(
            host.clone(),
            ServiceHandle {
                info: ServiceInfo {
                    jid: host.clone(),
                    name: plan.display_name(),
                },
                inbox: None,
                metrics: metrics.clone(),
            },
        );
        let Provider::InProcess(service) = plan.provider else {
            continue;
        };
        let ctx = ServiceContext {
            jid: host.clone(),
            out: Outbox::channel().0,
            store: switchboard_service::ServiceStore::new(service_data.clone(), &host),
            key: key.clone(),
            config: plan.config.element.clone(),
            admins: crate::notices::admins::admins_for(&settings, &host),
            metrics,
        };
        tokio::spawn(crate::services::supervisor::supervise(
            server.router.clone(),
            server.settings.clone(),
            server.shutdown.signal(),
            service,
            ctx,
        ));
    }
    Ok(())
}

impl Server {
    /// Loads TLS, builds the parts, binds every listener and starts
    /// accepting. Errors are complete sentences for the admin.
    pub async fn start(
        config: Config,
        home: &Path,
        stores: Stores,
        debug: bool,
        services: Vec<ServicePlan>,
    ) -> Result<Server, String> {
        let (tls, identity) = load_tls(&config, home)?;
        let hosts: Vec<String> = config.hosts.iter().map(|h| h.name.clone()).collect();
        let shutdown = Shutdown::new();
        let tracker = Tracker::default();
        let secret = crate::stream::s2s::DialbackSecret::generate();
        let federation = Federation::new(
            federated_domains(&config),
            s2s_settings(&config, &identity, &secret)?,
            secret,
            shutdown.signal(),
            tracker.clone(),
        );
        let metrics = Arc::new(crate::metrics::Metrics::default());
        // Every write the server makes is timed on its way through.
        let stores = crate::metered::metered(stores, metrics.clone());
        let settings = Arc::new(LiveSettings::new(settings_from(
            &config,
            Some(tls),
            external_secrets(&services),
        )));
        let motds = Arc::new(MotdBoard::default());
        crate::admin::load_motds(stores.host_data.as_ref(), &hosts, &motds).await?;
        let accounts = Accounts::new(im_context(&stores, &settings, motds.clone()));
        let (table, iq, queues, background) = routing(&accounts, &settings, &stores, &federation);
        for task in background {
            tokio::spawn(task);
        }
        let router = Router::new(hosts, table, iq, metrics);
        let admin = Arc::new(Admin::new(
            router.clone(),
            accounts,
            stores.accounts.clone(),
            stores.host_data.clone(),
            settings.clone(),
            motds,
            federation.clone(),
        ));
        crate::admin::start(&admin, queues);
        let registrations = Arc::new(Throttle::new(
            config.limits.registrations_per_address,
            config.limits.registration_window,
            config.limits.registration_allowlist.clone(),
        ));
        let mut server = Server {
            home: home.to_path_buf(),
            listeners: Vec::new(),
            router,
            settings,
            registrations,
            admin,
            shutdown,
            tracker,
            resumptions: crate::net::resume::Resumptions::new(),
            federation,
            c2s: None,
            config,
        };
        let config = server.config.clone();
        start_services(&server, &config, stores.service_data.clone(), services)?;
        let c2s = Arc::new(C2sContext {
            router: server.router.clone(),
            settings: server.settings.clone(),
            accounts: stores.accounts.clone(),
            registrations: server.registrations.clone(),
            resumptions: server.resumptions.clone(),
            fast: Arc::new(crate::fast::Fast::new(stores.account_data.clone())),
            auth_delays: Arc::default(),
            shutdown: server.shutdown.signal(),
            debug,
        });
        server.c2s = Some(c2s.clone());
        let component = Arc::new(ComponentContext {
            router: server.router.clone(),
            settings: server.settings.clone(),
            shutdown: server.shutdown.signal(),
            debug,
        });
        let s2s = Arc::new(S2sContext {
            federation: server.federation.clone(),
            router: server.router.clone(),
            shutdown: server.shutdown.signal(),
            debug,
        });
        let mut bound = Vec::new();
        for (kind, addrs) in [
            (ListenerKind::C2s, &config.listen.c2s),
            (ListenerKind::C2sTls, &config.listen.c2s_tls),
            (ListenerKind::Component, &config.listen.component),
            (ListenerKind::S2s, &config.listen.s2s),
            (ListenerKind::S2sTls, &config.listen.s2s_tls),
        ] {
            for addr in addrs {
                let l = listener::bind(*addr, kind).await?;
                let local = l.local_addr().map_err(|e| e.to_string())?;
                server.listeners.push((kind, local));
                bound.push((l, kind));
            }
        }
        for (l, kind) in bound {
            let serve = match kind {
                ListenerKind::Component => Serve::Component(component.clone()),
                ListenerKind::S2s | ListenerKind::S2sTls => Serve::S2s {
                    ctx: s2s.clone(),
                    direct_tls: kind == ListenerKind::S2sTls,
                },
                _ => Serve::C2s {
                    ctx: c2s.clone(),
                    direct_tls: kind == ListenerKind::C2sTls,
                },
            };
            tokio::spawn(listener::run(
                l,
                kind,
                serve,
                server.tracker.clone(),
                server.shutdown.signal(),
            ));
        }
        // Freed memory goes back to the system when a crowd leaves
        // (memory.rs says why glibc would keep it).
        let router = server.router.clone();
        let mut stop = server.shutdown.signal();
        tokio::spawn(crate::memory::run_trimmer(
            move || router.sessions().count(),
            async move { stop.wait().await },
        ));
        Ok(server)
    }

    /// The handles the web layer needs (see [`WebHandles`]).
    pub fn web_handles(&self) -> WebHandles {
        WebHandles {
            c2s: self.c2s.clone().expect("set by Server::start"),
            scrape: crate::net::metrics::Scrape {
                router: self.router.clone(),
                connections: self.tracker.clone(),
                federation: self.federation.clone(),
            },
            admin: self.admin.clone(),
            settings: self.settings.clone(),
            connections: self.tracker.clone(),
            shutdown: self.shutdown.signal(),
        }
    }

    /// The addresses actually bound (useful with port 0).
    pub fn listeners(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.listeners
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Federation: its links and settings.
    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// The admin seam, for the admin socket.
    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    /// The live connections, for tests and the metrics gauge.
    pub fn live_connections(&self) -> usize {
        self.tracker.live()
    }

    /// Applies a re-read config without dropping any connection (SIGHUP).
    /// Settings for new connections, TLS certificates and limits apply at
    /// once; listeners, hosts, the spool location and the storage backend
    /// need a restart.
    pub fn reload(&mut self, new: Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let old = &self.config;
        let mut next = (*self.settings.get()).clone();
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
        if new.storage != old.storage {
            report.needs_restart.push("the storage backend".into());
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
            next.component_secrets = secrets;
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
        if new.auth_delay != old.auth_delay {
            report.applied.push("delays after failed logins".into());
        }
        let contacts = |c: &Config| {
            c.hosts
                .iter()
                .map(|h| h.contacts.clone())
                .collect::<Vec<_>>()
        };
        if contacts(&new) != contacts(old) {
            // They are part of each host's disco#info, and so of the
            // capabilities hash (XEP-0115) computed once at start-up.
            report
                .needs_restart
                .push("contact addresses (XEP-0157)".into());
        }
        if new.limits != old.limits || new.tls.required != old.tls.required {
            report
                .applied
                .push("limits and TLS policy for new connections".into());
        }
        // Certificates are re-read on every reload so that a renewed
        // certificate at the same path is picked up.
        let identity = match load_tls(&new, &self.home) {
            Ok((acceptors, identity)) => {
                next.tls = Some(acceptors.xmpp);
                next.https = Some(acceptors.https);
                report.applied.push("TLS certificate re-read".into());
                Some(identity)
            }
            Err(e) => {
                report
                    .needs_restart
                    .push(format!("TLS (kept the old certificate: {e})"));
                None
            }
        };
        if new.s2s.is_some() != old.s2s.is_some() {
            report
                .needs_restart
                .push("turning federation (<s2s>) on or off".into());
        } else if let (Some(identity), Some(_)) = (&identity, &new.s2s) {
            match s2s_settings(&new, identity, self.federation.secret()) {
                Ok(Some(s)) => {
                    self.federation.reconfigure(s);
                    report
                        .applied
                        .push("federation policy and certificate for new links".into());
                }
                Ok(None) => {}
                Err(e) => report
                    .needs_restart
                    .push(format!("federation (kept the old settings: {e})")),
            }
        }
        // The list of hosts needs a restart: until then the old one stays,
        // and so do the old hosts' settings.
        let hosts_unchanged = host_names(&new) == host_names(old);
        let mut c2s = c2s_settings(&new, next.tls.is_some());
        if !hosts_unchanged {
            c2s.hosts = host_names(old);
        } else {
            next.hosts = new.hosts.clone();
        }
        next.c2s = c2s;
        next.scram_iterations = new.limits.scram_iterations;
        next.auth_delay = new.auth_delay;
        self.settings.replace(next);
        self.registrations.reconfigure(
            new.limits.registrations_per_address,
            new.limits.registration_window,
            new.limits.registration_allowlist.clone(),
        );
        self.config = new;
        report
    }

    /// Closes every stream with `system-shutdown` and waits (bounded) for
    /// the connections to flush and go.
    pub async fn shutdown(self) {
        self.router.close_all(&StreamError::new("system-shutdown"));
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.drained()).await;
        // Connections that died before went into hibernation; nobody will
        // resume them now.
        self.resumptions.end_all(&self.router);
    }
}
