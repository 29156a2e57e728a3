//! The load generator's TLS client: the link kit's pinning verifier,
//! trusting exactly the certificates of one PEM file (the server's
//! self-signed `HOME/etc/localhost.crt`).
//!
//! Pinning the certificate replaces path building, which a self-signed
//! certificate has no use for; the handshake signature is still verified,
//! so the server must hold the key. Validity dates are not checked: the
//! benchmark trusts a file it was given. Session resumption is disabled so
//! that every login is a full handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use switchboard_link::tls::{fingerprint_of, read_pem_certificates, Trust, TrustError};

/// A client configuration trusting exactly the certificates in the PEM
/// file `path`, without resumption.
pub fn client_config(path: &Path) -> Result<Arc<ClientConfig>, String> {
    let certs = read_pem_certificates(path).map_err(|e| match e {
        TrustError::Unreadable { error, .. } => format!("{}: {error}", path.display()),
        TrustError::NotPem { error, .. } => {
            format!("{}: not a PEM certificate file: {error}", path.display())
        }
        _ => format!("{}: no certificate in it", path.display()),
    })?;
    let pins = certs.iter().map(|c| fingerprint_of(c)).collect();
    let mut config = switchboard_link::tls::client_config(&Trust::Pinned(pins))
        .map_err(|e| format!("TLS setup: {e}"))?
        .config;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_in_every_error() {
        let dir = std::env::temp_dir().join(format!("sb-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = client_config(&empty).unwrap_err();
        assert_eq!(e, format!("{}: no certificate in it", empty.display()));
        let missing = dir.join("missing.pem");
        let e = client_config(&missing).unwrap_err();
        assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
        let good = dir.join("good.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(client_config(&good).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
