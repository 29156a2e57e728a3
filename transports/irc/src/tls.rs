//! TLS to IRC servers: what the transport trusts, as a rustls
//! `ClientConfig` per allowed server.
//!
//! By default the system's trust store; a server with `ca-file="…"` (an
//! absolute path to PEM certificates, for a private IRC network) trusts
//! only those. Certificates are checked against the server's name as
//! configured (`host=`), an IP address included.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// The client config for one server; errors are sentences for the admin.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca_file {
        None => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read ca-file {}: {e}", path.display()))?;
            let mut roots = RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert =
                    cert.map_err(|e| format!("ca-file {} is not valid PEM: {e}", path.display()))?;
                roots.add(cert).map_err(|e| {
                    format!(
                        "ca-file {} holds a certificate that cannot be a trust anchor: {e}",
                        path.display()
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(format!("ca-file {} holds no certificate", path.display()));
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_a_sentence() {
        let dir = std::env::temp_dir().join(format!("sb-irc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = client_config(Some(&dir.join("missing.pem"))).unwrap_err();
        assert!(e.contains("cannot read ca-file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(client_config(None).is_ok());
    }
}
