//! TLS to IRC servers: what the transport trusts, as a rustls
//! `ClientConfig` per allowed server.
//!
//! By default the system's trust store; a server with `ca-file="…"` (an
//! absolute path to PEM certificates, for a private IRC network) trusts
//! only those. Certificates are checked against the server's name as
//! configured (`host=`), an IP address included.
//!
//! Two per-server alternatives ([`Verify`]), each a rustls
//! `ServerCertVerifier` that still verifies the handshake signature (so
//! only the holder of the certificate's private key passes):
//! `fingerprint="…"` accepts exactly the certificate with that SHA-256
//! fingerprint, whatever its name and dates; `verify="false"` accepts any
//! certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use sha2::{Digest, Sha256};

use crate::config::Verify;

/// Parses a SHA-256 fingerprint: 64 hex digits, any case, with or without
/// `:` (or spaces) between the bytes; a leading `sha256:` is allowed.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let trimmed = s.trim();
    let body = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    let hex: String = body
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    let bad = || {
        format!("fingerprint=\"{s}\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    };
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `AA:BB:…`.
pub fn format_fingerprint(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The client config for one server, checking certificates as `verify`
/// says; errors are sentences for the admin.
pub fn config_for(ca_file: Option<&Path>, verify: &Verify) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = match verify {
        Verify::Roots => return client_config(ca_file),
        Verify::Fingerprint(pin) => Unchecked {
            pin: Some(*pin),
            provider: provider.clone(),
        },
        Verify::Off => Unchecked {
            pin: None,
            provider: provider.clone(),
        },
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A verifier that skips the certificate chain: it accepts the one
/// certificate whose fingerprint is `pin`, or any with no pin. The
/// handshake signature is verified all the same.
#[derive(Debug)]
struct Unchecked {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == pin {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(std::io::Error::other(format!(
                "the certificate's fingerprint {} is not the pinned {}",
                format_fingerprint(&got),
                format_fingerprint(&pin)
            )))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client config for one server checked against trust anchors;
/// errors are sentences for the admin.
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

    #[test]
    fn fingerprints_parse_and_pins_decide() {
        let fp = parse_fingerprint(&format!("sha256:{}", "0a".repeat(32))).unwrap();
        assert_eq!(fp, [0x0a; 32]);
        assert!(parse_fingerprint("zz").is_err());
        let cert = CertificateDer::from(vec![1u8, 2, 3]);
        let digest: [u8; 32] = Sha256::digest([1u8, 2, 3]).into();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let name = ServerName::try_from("localhost").unwrap();
        let check = |pin| {
            Unchecked {
                pin,
                provider: provider.clone(),
            }
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        };
        assert!(check(Some(digest)).is_ok());
        let e = check(Some([0; 32])).unwrap_err().to_string();
        assert!(e.contains("not the pinned"), "{e}");
        assert!(check(None).is_ok());
        assert!(config_for(None, &Verify::Off).is_ok());
    }
}
