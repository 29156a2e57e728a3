//! `switchboard component ID`: runs one service kind as a separate process
//! attached over XEP-0114 to any XMPP server, reconnecting as needed,
//! until SIGTERM or SIGINT.
//!
//! The service's settings come from the `<service id="ID">` element of the
//! config when there is one; its data (registrations, directory entries)
//! live in the home's spool, through the file storage backend, as they
//! would in-process, sealed with the same credentials key.

use std::sync::Arc;

use switchboard_config::{Config, ServiceConfig};
use switchboard_service::component::{self, ConnectOptions};
use switchboard_service::credentials::SecretKey;
use switchboard_service::{Outbox, ServiceContext, ServiceStore};
use switchboard_spool::store::file::FileStores;
use switchboard_xml::Element;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ComponentArgs;

/// Where the secret is read from, in order of preference.
const SECRET_ENV: &str = "SWITCHBOARD_COMPONENT_SECRET";

/// Runs the component; errors are sentences for the admin.
pub fn run(args: ComponentArgs, config: &Config) -> Result<(), String> {
    let id = switchboard_jid::normalize_domain(&args.id)
        .map_err(|e| format!("invalid component hostname \"{}\": {e}", args.id))?;
    let declared = config.services.iter().find(|s| s.id == id);
    let kind = match (&args.kind, declared) {
        (Some(k), _) => k.clone(),
        (None, Some(s)) if s.kind != "external" => s.kind.clone(),
        _ => {
            return Err(format!(
                "say which service to run: --type KIND (no <service id=\"{id}\"> with a \
                 built-in type in {})",
                config.source
            ))
        }
    };
    let secret = secret(&args, declared)?;
    let service_config = declared.cloned().unwrap_or_else(|| ServiceConfig {
        id: id.clone(),
        kind: kind.clone(),
        secret: None,
        element: Element::new("service", "").with_attr("id", id.clone()),
    });
    let stores = FileStores::open(&config.spool.dir)
        .map_err(|e| format!("cannot open the spool {}: {e}", config.spool.dir.display()))?;
    let backends = crate::services::Backends::from_stores(&stores);
    let service = crate::services::build(&kind, &service_config, &backends)?;
    let key = SecretKey::load_or_generate(&config.credentials_key)?;
    let ctx = ServiceContext {
        jid: id.clone(),
        out: Outbox::channel().0,
        store: ServiceStore::new(stores.service_data, &id),
        key: Arc::new(key),
        config: service_config.element.clone(),
        admins: Vec::new(),
        // A component process has no metrics endpoint: nobody reads these.
        metrics: Default::default(),
    };
    let mut opts = ConnectOptions::new(args.server.clone(), secret);
    opts.keepalive = std::time::Duration::from_secs(args.keepalive);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(switchboard_core::memory::BLOCKING_THREADS)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tracing::info!(component = %id, kind = %kind, server = %opts.server, "starting the component");
        let task = tokio::spawn(component::run(service, ctx, opts, stopped));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        Ok(())
    })
}

fn secret(args: &ComponentArgs, declared: Option<&ServiceConfig>) -> Result<String, String> {
    if let Ok(s) = std::env::var(SECRET_ENV) {
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(path) = &args.secret_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_string();
        if line.is_empty() {
            return Err(format!("the secret file {} is empty", path.display()));
        }
        return Ok(line);
    }
    if let Some(s) = declared.and_then(|d| d.secret.clone()) {
        return Ok(s);
    }
    Err(format!(
        "no component secret: set ${SECRET_ENV}, pass --secret-file FILE, or give the \
         <service> a secret= in the config"
    ))
}
