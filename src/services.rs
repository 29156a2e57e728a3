//! The service kinds this binary can run, and turning the config's
//! `<service>` elements into plans for the core.
//!
//! A new in-process kind is one line in [`KINDS`]: its `type=` name and a
//! constructor that reads (and checks) its own `<service>` element and
//! takes the stores it needs from [`Backends`].

use std::sync::{Arc, Mutex};

use switchboard_config::{Config, ServiceConfig};
use switchboard_core::services::{Provider, ServicePlan};
use switchboard_service::Service;
use switchboard_spool::store::{ArchiveStore, BlobStore, ServiceDataStore, ServiceStore, Stores};
use switchboard_upload::Uploads;

/// The storage services are given, chosen once for the whole process.
#[derive(Clone)]
pub struct Backends {
    pub service_data: Arc<dyn ServiceDataStore>,
    pub archive: Arc<dyn ArchiveStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// The upload services built, for the web side, which serves their
    /// files (it and the service share one [`Uploads`] each).
    pub uploads: Arc<Mutex<Vec<Arc<Uploads>>>>,
}

impl Backends {
    /// The stores of the backend the server runs on.
    pub fn from_stores(stores: &Stores) -> Backends {
        Backends {
            service_data: stores.service_data.clone(),
            archive: stores.archive.clone(),
            blobs: stores.blobs.clone(),
            uploads: Arc::default(),
        }
    }

    /// In-memory stores, for checking the config without touching the
    /// spool (`check-config`, and before the server starts).
    pub fn for_checking() -> Backends {
        Backends::from_stores(&switchboard_spool::store::memory::MemoryStores::new())
    }
}

/// A constructor for an in-process service kind. Errors are sentences
/// about the `<service>` element; the caller adds file:line:col.
type Constructor = fn(&ServiceConfig, &Backends) -> Result<Arc<dyn Service>, String>;

/// The in-process service kinds, by `type=`.
const KINDS: &[(&str, Constructor)] = &[
    ("directory", directory),
    ("irc", irc),
    ("matrix", matrix),
    ("muc", muc),
    ("upload", upload),
];

fn upload(s: &ServiceConfig, b: &Backends) -> Result<Arc<dyn Service>, String> {
    let settings = switchboard_upload::UploadSettings::from_config(&s.id, &s.element)?;
    let shared = Uploads::new(&s.id, settings, b.blobs.clone());
    b.uploads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(shared.clone());
    Ok(Arc::new(switchboard_upload::UploadService::new(shared)))
}

fn directory(s: &ServiceConfig, _: &Backends) -> Result<Arc<dyn Service>, String> {
    Ok(Arc::new(switchboard_directory::Directory::from_config(
        &s.id, &s.element,
    )?))
}

fn irc(s: &ServiceConfig, _: &Backends) -> Result<Arc<dyn Service>, String> {
    Ok(Arc::new(switchboard_irc::IrcTransport::from_config(
        &s.element,
    )?))
}

/// The Matrix transport, with the server's upload service (the one
/// serving the transport's own domain, else the first) to keep files
/// from Matrix in: upload services are built before any other kind.
fn matrix(s: &ServiceConfig, b: &Backends) -> Result<Arc<dyn Service>, String> {
    Ok(Arc::new(matrix_transport(s, b)?))
}

fn matrix_transport(
    s: &ServiceConfig,
    b: &Backends,
) -> Result<switchboard_matrix::MatrixTransport, String> {
    let mut t = switchboard_matrix::MatrixTransport::from_config(&s.element)?;
    let uploads = b.uploads.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let parent = s.id.split_once('.').map(|(_, p)| p).unwrap_or_default();
    let share = uploads
        .iter()
        .find(|u| u.settings.domains.iter().any(|d| d == parent))
        .or(uploads.first());
    if let Some(u) = share {
        let files: Arc<dyn switchboard_service::files::FileShare> = u.clone();
        t = t.with_files(files);
    }
    Ok(t)
}

fn muc(s: &ServiceConfig, b: &Backends) -> Result<Arc<dyn Service>, String> {
    Ok(Arc::new(switchboard_muc::MucService::from_config(
        &s.id,
        &s.element,
        ServiceStore::new(b.service_data.clone(), &s.id),
        b.archive.clone(),
    )?))
}

/// The names accepted in `type=`, for error messages.
fn known() -> String {
    let mut names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
    names.push("external");
    names.join(", ")
}

/// One plan per configured service, or the first problem as
/// `file:line:col: message`.
pub fn plans(config: &Config, backends: &Backends) -> Result<Vec<ServicePlan>, String> {
    // Upload services first, so that services that keep files in one
    // (the Matrix transport) find it whatever the config's order; the
    // plans keep the config's order.
    let mut plans: Vec<Option<ServicePlan>> = config.services.iter().map(|_| None).collect();
    for first in [true, false] {
        for (i, s) in config.services.iter().enumerate() {
            if (s.kind == "upload") == first {
                plans[i] = Some(plan(config, s, backends)?);
            }
        }
    }
    Ok(plans.into_iter().flatten().collect())
}

/// Builds the in-process service of kind `kind` for `s` (used by
/// `switchboard component`, where the kind may differ from `type=`).
pub fn build(
    kind: &str,
    s: &ServiceConfig,
    backends: &Backends,
) -> Result<Arc<dyn Service>, String> {
    let Some((_, make)) = KINDS.iter().find(|(n, _)| *n == kind) else {
        return Err(format!(
            "unknown service type \"{kind}\"; this build can run: {}",
            KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ));
    };
    make(s, backends)
}

fn plan(config: &Config, s: &ServiceConfig, backends: &Backends) -> Result<ServicePlan, String> {
    let at = |msg: String| {
        format!(
            "{}:{}:{}: {msg}",
            config.source, s.element.span.line, s.element.span.col
        )
    };
    let provider = if s.kind == "external" {
        Provider::External {
            // The config parser refuses an external service without one.
            secret: s.secret.clone().unwrap_or_default(),
        }
    } else {
        let Some((_, make)) = KINDS.iter().find(|(n, _)| *n == s.kind) else {
            return Err(at(format!(
                "unknown service type \"{}\" for <service id=\"{}\">; this build knows: {}",
                s.kind,
                s.id,
                known()
            )));
        };
        Provider::InProcess(make(s, backends).map_err(at)?)
    };
    Ok(ServicePlan {
        config: s.clone(),
        provider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_services_are_built_first_and_the_plans_keep_the_config_order() {
        let text = r#"<switchboard>
  <host name="example.org"/>
  <service id="matrix.example.org" type="matrix"/>
  <service id="upload.example.org" type="upload"/>
  <service id="conference.example.org" type="muc"/>
</switchboard>"#;
        let config =
            switchboard_config::parse(text, "test.xml", std::path::Path::new("/")).unwrap();
        let backends = Backends::for_checking();
        let plans = plans(&config, &backends).unwrap();
        let ids: Vec<&str> = plans.iter().map(|p| p.config.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "matrix.example.org",
                "upload.example.org",
                "conference.example.org"
            ]
        );
        assert_eq!(backends.uploads.lock().unwrap().len(), 1);
        // The transport declared before the upload service still got it.
        let s = config.services.iter().find(|s| s.kind == "matrix").unwrap();
        let with = switchboard_matrix::MatrixTransport::from_config(&s.element).unwrap();
        assert!(!with.keeps_files());
        assert!(matrix_transport(s, &backends).unwrap().keeps_files());
        assert!(!matrix_transport(s, &Backends::for_checking())
            .unwrap()
            .keeps_files());
    }
}
