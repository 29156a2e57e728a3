//! What the client trusts, as a rustls `ClientConfig`.
//!
//! Three ways, one per run:
//!
//! - the operating system's trust store (the default), so a certificate
//!   from a public CA or from a company CA installed system-wide works;
//! - `--ca-file PEM`: only the certificates in that file are trusted (like
//!   curl's `--cacert`), e.g. a company CA, or a self-signed server
//!   certificate that is not marked as a CA;
//! - `--fingerprint`: exactly one certificate, by the SHA-256 of its DER
//!   encoding (the fingerprint Switchboard logs at start-up). Name and
//!   validity dates are not checked then: the operator vouched for this
//!   very certificate. The handshake signature is still verified, so only
//!   the holder of its private key passes.
//!
//! Names are checked against the account's domain (RFC 7590), not against
//! `--server`, which may be an address.
//!
//! Whatever the outcome, the verifier records the fingerprint of the
//! certificate the server presented, so that a failure can print it for
//! the operator to compare and pin.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

use crate::error::Failure;

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's trust store.
    System,
    /// Only the certificates in this PEM file.
    CaFile(std::path::PathBuf),
    /// Exactly the certificate with this SHA-256 fingerprint.
    Fingerprint([u8; 32]),
}

/// A client config and where its verifier records what it saw.
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    /// The presented certificate's SHA-256 fingerprint, once seen.
    pub presented: Arc<Mutex<Option<String>>>,
    /// Whether a fingerprint was pinned (changes the failure advice).
    pub pinned: bool,
}

/// `AA:BB:…`, as Switchboard's log prints it.
pub fn format_fingerprint(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

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
        format!("--fingerprint {s:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed, e.g. as in the server's log)")
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

/// The SHA-256 fingerprint of a DER certificate, formatted.
pub fn fingerprint_of(cert: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(cert))
}

/// Builds the client config for `trust`. Reading `--ca-file` can fail
/// (exit 64); the system store never does (an empty one simply trusts
/// nothing, and the handshake then fails with the fingerprint printed).
pub fn setup(trust: &Trust) -> Result<TlsSetup, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let presented = Arc::new(Mutex::new(None));
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Fingerprint(pin) => Arc::new(Pinned {
            pin: *pin,
            presented: presented.clone(),
            provider: provider.clone(),
        }),
        Trust::System => Arc::new(Recording::new(system_roots(), &provider, &presented)),
        Trust::CaFile(path) => {
            Arc::new(Recording::new(ca_file_roots(path)?, &provider, &presented))
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Tls {
            reason: format!("cannot set up TLS: {e}"),
            fingerprint: None,
            pinned: false,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsSetup {
        config: Arc::new(config),
        presented,
        pinned: matches!(trust, Trust::Fingerprint(_)),
    })
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    // Unreadable files in the store are skipped: the certificates that did
    // load still count, and a server that needs a missing one fails with
    // its fingerprint printed.
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, Failure> {
    let pem = std::fs::read(path).map_err(|e| {
        Failure::Usage(format!("cannot read the --ca-file {}: {e}", path.display()))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| {
            Failure::Usage(format!(
                "--ca-file {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            Failure::Usage(format!(
                "--ca-file {} holds a certificate that cannot be a trust anchor: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Failure::Usage(format!(
            "--ca-file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// WebPKI verification against a root store, recording the fingerprint.
#[derive(Debug)]
struct Recording {
    /// `None` when the store is empty (rustls refuses to build a verifier
    /// without roots): every certificate is then of an unknown issuer.
    inner: Option<Arc<WebPkiServerVerifier>>,
    presented: Arc<Mutex<Option<String>>>,
    provider: Arc<CryptoProvider>,
}

impl Recording {
    fn new(
        roots: RootCertStore,
        provider: &Arc<CryptoProvider>,
        presented: &Arc<Mutex<Option<String>>>,
    ) -> Recording {
        let inner = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        Recording {
            inner,
            presented: presented.clone(),
            provider: provider.clone(),
        }
    }
}

fn record(slot: &Mutex<Option<String>>, cert: &CertificateDer<'_>) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(fingerprint_of(cert));
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        record(&self.presented, end_entity);
        match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
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

/// Accepts exactly the pinned certificate.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    presented: Arc<Mutex<Option<String>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        record(&self.presented, end_entity);
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
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

/// Turns a failed handshake into a [`Failure::Tls`] with the presented
/// fingerprint and words an operator understands.
pub fn handshake_failure(setup: &TlsSetup, domain: &str, err: &std::io::Error) -> Failure {
    let fingerprint = setup.presented.lock().ok().and_then(|s| s.clone());
    let reason = match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::ApplicationVerificationFailure if setup.pinned => {
                "the server's certificate does not match the pinned --fingerprint".to_owned()
            }
            // BadSignature: a trusted certificate has the issuer's name but
            // did not sign this one (e.g. two self-signed `CN=localhost`).
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server's certificate is not signed by an authority this client trusts (self-signed?)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for {domain}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".to_owned()
            }
            other => format!("the server's certificate was refused ({other:?})"),
        },
        Some(other) => other.to_string(),
        None if matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ) =>
        {
            "the server closed the connection during the TLS handshake".to_owned()
        }
        None => err.to_string(),
    };
    Failure::Tls {
        reason,
        fingerprint,
        pinned: setup.pinned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_usual_spellings() {
        let colons = "AB:".repeat(31) + "CD";
        let want = {
            let mut a = [0xABu8; 32];
            a[31] = 0xCD;
            a
        };
        assert_eq!(parse_fingerprint(&colons), Ok(want));
        assert_eq!(parse_fingerprint(&colons.to_lowercase()), Ok(want));
        assert_eq!(parse_fingerprint(&colons.replace(':', "")), Ok(want));
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", colons.replace(':', ""))),
            Ok(want)
        );
        assert_eq!(format_fingerprint(&want), colons);
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"ZZ".repeat(32)).is_err());
        // A SHA-1 fingerprint (20 bytes) is refused, not silently padded.
        assert!(parse_fingerprint("AB:".repeat(20).trim_end_matches(':')).is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("sb-notify-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let Err(e) = setup(&Trust::CaFile(missing)) else {
            panic!("a missing file must fail")
        };
        assert_eq!(e.exit_code(), 64);
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let Err(e) = setup(&Trust::CaFile(empty)) else {
            panic!("a file without certificates must fail")
        };
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let good = dir.join("good.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(setup(&Trust::CaFile(good)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_system_store_and_pins_always_build() {
        assert!(!setup(&Trust::System).unwrap().pinned);
        assert!(setup(&Trust::Fingerprint([0; 32])).unwrap().pinned);
    }
}
