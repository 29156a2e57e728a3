//! What the client trusts, in the words of its command line: the
//! verifiers themselves are the link kit's ([`switchboard_link::tls`]).
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
//! `--server`, which may be an address. Whatever the outcome, the
//! fingerprint of the certificate the server presented is recorded, so
//! that a failure can print it for the operator to compare and pin.

use std::sync::Arc;

use rustls::{CertificateError, ClientConfig};
use switchboard_link::tls::{client_config, Presented, TrustError};

pub use switchboard_link::tls::{format_fingerprint, Trust};

use crate::error::Failure;

/// A client config and where its verifier records what it saw.
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    /// The presented certificate's SHA-256 fingerprint, once seen.
    pub presented: Presented,
    /// Whether a fingerprint was pinned (changes the failure advice).
    pub pinned: bool,
}

/// Parses `--fingerprint`: 64 hex digits, any case, with or without `:`
/// (or spaces) between the bytes; a leading `sha256:` is allowed.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    switchboard_link::tls::parse_fingerprint(s).ok_or_else(|| {
        format!("--fingerprint {s:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed, e.g. as in the server's log)")
    })
}

/// Builds the client config for `trust`. Reading `--ca-file` can fail
/// (exit 64); the system store never does (an empty one simply trusts
/// nothing, and the handshake then fails with the fingerprint printed).
pub fn setup(trust: &Trust) -> Result<TlsSetup, Failure> {
    let tls = client_config(trust).map_err(|e| match e {
        TrustError::Unreadable { path, error } => Failure::Usage(format!(
            "cannot read the --ca-file {}: {error}",
            path.display()
        )),
        TrustError::NotPem { path, error } => Failure::Usage(format!(
            "--ca-file {} is not valid PEM: {error}",
            path.display()
        )),
        TrustError::NotAnAnchor { path, error } => Failure::Usage(format!(
            "--ca-file {} holds a certificate that cannot be a trust anchor: {error}",
            path.display()
        )),
        TrustError::Empty { path } => Failure::Usage(format!(
            "--ca-file {} holds no PEM certificate",
            path.display()
        )),
        TrustError::Setup(e) => Failure::Tls {
            reason: format!("cannot set up TLS: {e}"),
            fingerprint: None,
            pinned: false,
        },
    })?;
    Ok(TlsSetup {
        config: Arc::new(tls.config),
        presented: tls.presented,
        pinned: matches!(trust, Trust::Pinned(_)),
    })
}

/// Turns a failed handshake into a [`Failure::Tls`] with the presented
/// fingerprint and words an operator understands.
pub fn handshake_failure(setup: &TlsSetup, domain: &str, err: &std::io::Error) -> Failure {
    let fingerprint = setup.presented.fingerprint();
    let reason = match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            // The pinning verifier's only refusal.
            CertificateError::Other(_) if setup.pinned => {
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
    fn a_bad_fingerprint_names_the_option() {
        let e = parse_fingerprint("AB:CD").unwrap_err();
        assert!(
            e.starts_with("--fingerprint \"AB:CD\" is not a SHA-256"),
            "{e}"
        );
        assert_eq!(parse_fingerprint(&"ab".repeat(32)), Ok([0xAB; 32]));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("sb-notify-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let Err(e) = setup(&Trust::CaFile(missing.clone())) else {
            panic!("a missing file must fail")
        };
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read the --ca-file {}", missing.display())),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let Err(e) = setup(&Trust::CaFile(empty.clone())) else {
            panic!("a file without certificates must fail")
        };
        assert_eq!(
            e.to_string(),
            format!("--ca-file {} holds no PEM certificate.", empty.display())
        );
        let good = dir.join("good.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(setup(&Trust::CaFile(good)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_system_store_and_pins_always_build() {
        assert!(!setup(&Trust::System).unwrap().pinned);
        assert!(setup(&Trust::Pinned(vec![[0; 32]])).unwrap().pinned);
    }
}
