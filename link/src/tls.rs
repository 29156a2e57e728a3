//! What an outgoing TLS link trusts, as a rustls `ClientConfig`: one set
//! of verifiers for every client in Switchboard.
//!
//! Four ways ([`Trust`]):
//!
//! - the operating system's trust store (`rustls-native-certs`), so a
//!   certificate from a public CA or a company CA installed system-wide
//!   works;
//! - a CA file: only the certificates in that PEM file are trust anchors
//!   (like curl's `--cacert`);
//! - pinned SHA-256 fingerprints: exactly these certificates, whatever
//!   their names and dates (the operator vouched for them);
//! - no check at all (`verify="false"`): still encrypted, but anyone on
//!   the path can read it.
//!
//! Against anchors, rustls's WebPKI verifier checks the chain and the
//! name; a pin or no check replaces only that step. Every verifier still
//! checks the handshake signature, so only the holder of the
//! certificate's private key passes.
//!
//! Whatever the outcome, the verifier records the fingerprint of the
//! certificate the server presented ([`Presented`]), so that a failure
//! can print it for the operator to compare and pin.
//!
//! Errors are values ([`TrustError`]): each caller words them for its
//! users (a command-line option, a config attribute).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use sha2::{Digest, Sha256};

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's trust store.
    System,
    /// Only the certificates in this PEM file, as trust anchors.
    CaFile(PathBuf),
    /// Exactly the certificates with these SHA-256 fingerprints.
    Pinned(Vec<[u8; 32]>),
    /// Any certificate.
    Off,
}

/// Why a [`Trust`] cannot become a client config.
#[derive(Debug)]
pub enum TrustError {
    /// The PEM file cannot be read.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid PEM.
    NotPem { path: PathBuf, error: String },
    /// A certificate in the CA file cannot be a trust anchor.
    NotAnAnchor { path: PathBuf, error: String },
    /// The file holds no certificate.
    Empty { path: PathBuf },
    /// rustls refused the configuration (no protocol version left).
    Setup(rustls::Error),
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            TrustError::NotPem { path, error } => {
                write!(f, "{} is not valid PEM: {error}", path.display())
            }
            TrustError::NotAnAnchor { path, error } => write!(
                f,
                "{} holds a certificate that cannot be a trust anchor: {error}",
                path.display()
            ),
            TrustError::Empty { path } => write!(f, "{} holds no certificate", path.display()),
            TrustError::Setup(e) => write!(f, "cannot set up TLS: {e}"),
        }
    }
}

impl std::error::Error for TrustError {}

/// The SHA-256 fingerprint of the certificate a server presented, once
/// the handshake got that far.
#[derive(Debug, Clone, Default)]
pub struct Presented(Arc<Mutex<Option<[u8; 32]>>>);

impl Presented {
    /// `AA:BB:…`, or `None` before any certificate was seen.
    pub fn fingerprint(&self) -> Option<String> {
        let seen = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.map(|d| format_fingerprint(&d))
    }

    fn record(&self, cert: &CertificateDer<'_>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sha256::digest(cert).into());
    }
}

/// A client config and where its verifier records what it saw.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: ClientConfig,
    pub presented: Presented,
}

/// Builds the client config for `trust`. The system store never fails
/// (an empty one trusts nothing, and the handshake then fails with the
/// presented fingerprint recorded); a CA file can.
pub fn client_config(trust: &Trust) -> Result<ClientTls, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let presented = Presented::default();
    let check = match trust {
        Trust::System => Check::anchors(system_roots(), &provider),
        Trust::CaFile(path) => Check::anchors(ca_file_roots(path)?, &provider),
        Trust::Pinned(pins) => Check::Pinned(pins.clone()),
        Trust::Off => Check::Off,
    };
    let verifier = Arc::new(Verifier {
        check,
        presented: presented.clone(),
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Setup)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(ClientTls { config, presented })
}

/// The certificates of a PEM file (at least one).
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let pem = std::fs::read(path).map_err(|error| TrustError::Unreadable {
        path: path.to_owned(),
        error,
    })?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::NotPem {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TrustError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The operating system's trust store, as rustls roots.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    // Unreadable files in the store are skipped: the certificates that did
    // load still count, and a server that needs a missing one fails with
    // its fingerprint recorded.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The certificates of a PEM file as trust anchors.
pub fn ca_file_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    for cert in read_pem_certificates(path)? {
        roots.add(cert).map_err(|e| TrustError::NotAnAnchor {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Parses a SHA-256 fingerprint: 64 hex digits, any case, with or without
/// `:` (or spaces, or dashes) between the bytes; a leading `sha256:` is
/// allowed. `None` for anything else (the caller says which option was
/// wrong).
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let trimmed = s.trim();
    let body = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    let hex: String = body
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
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

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint_of(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// How the certificate itself is judged; the handshake signature is
/// checked the same way for all.
#[derive(Debug)]
enum Check {
    /// Chain and name against anchors; `None` when there are none (rustls
    /// will not build a verifier without roots): every certificate is then
    /// of an unknown issuer.
    Anchors(Option<Arc<WebPkiServerVerifier>>),
    Pinned(Vec<[u8; 32]>),
    Off,
}

impl Check {
    fn anchors(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Check {
        if roots.is_empty() {
            return Check::Anchors(None);
        }
        Check::Anchors(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok(),
        )
    }
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    presented: Presented,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.presented.record(end_entity);
        match &self.check {
            Check::Anchors(Some(v)) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Check::Anchors(None) => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            Check::Off => Ok(ServerCertVerified::assertion()),
            Check::Pinned(pins) => {
                let got = fingerprint_of(end_entity);
                if pins.contains(&got) {
                    return Ok(ServerCertVerified::assertion());
                }
                let pinned = match pins.as_slice() {
                    [one] => format!("the pinned {}", format_fingerprint(one)),
                    _ => format!("one of the {} pinned", pins.len()),
                };
                // An I/O-style error carrying the sentence: rustls shows
                // the inner error's text, which is what the user reads.
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(std::io::Error::other(format!(
                        "the certificate's fingerprint {} is not {pinned}",
                        format_fingerprint(&got)
                    )))),
                )))
            }
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

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
