//! TLS for server-to-server links, both ways, from the server's one
//! certificate ([`crate::tls::Identity`]):
//!
//! - incoming: a server config that asks the peer for its certificate
//!   (without requiring one: a peer without may still use dialback where
//!   allowed) and accepts whatever is presented, so that the handshake
//!   itself never decides; the stream machine asks [`Anchors`] about
//!   each domain the peer claims;
//! - outgoing: a client config that presents our certificate (for the
//!   peer's SASL EXTERNAL) and likewise lets the handshake through; the
//!   driver then checks the chain for the remote domain.
//!
//! Deciding after the handshake is what lets a policy fall back to
//! dialback for a peer whose certificate does not verify; every verdict
//! that matters is [`Anchors::verifies`]. The handshake signatures are
//! still checked, so a certificate is only ever credited to the holder of
//! its key.
//!
//! A certificate verifies for a domain when it chains to a trust anchor
//! (the system's store plus the configured `trust` file), is within its
//! dates, and names the domain as a DNS-ID (RFC 6125 §6.4, wildcards in
//! the leftmost label as rustls/webpki allow). SRV-IDs and XmppAddr
//! identifiers (RFC 7590 §3.3) are not checked: certificates with only
//! those are rare, and webpki does not read them. The serverAuth usage is
//! required of both sides' certificates, which is how XMPP servers use
//! them (public CAs no longer issue clientAuth).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::stream::s2s::CertCheck;
use crate::tls::Identity;

/// ALPN for direct TLS between servers (XEP-0368).
pub const ALPN: &[u8] = b"xmpp-server";

/// The trust anchors peers' certificates are checked against.
#[derive(Debug)]
pub struct Anchors {
    /// `None` when there is no anchor at all (nothing verifies).
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

impl Anchors {
    /// The system's store plus the certificates of `trust`, if given.
    pub fn load(trust: Option<&Path>, system: bool) -> Result<Anchors, String> {
        let mut roots = if system {
            switchboard_link::tls::system_roots()
        } else {
            RootCertStore::empty()
        };
        if let Some(path) = trust {
            let extra = switchboard_link::tls::ca_file_roots(path)
                .map_err(|e| format!("<s2s trust>: {e}"))?;
            roots.roots.extend(extra.roots);
        }
        Ok(Anchors::from_roots(roots))
    }

    pub fn from_roots(roots: RootCertStore) -> Anchors {
        if roots.is_empty() {
            return Anchors { verifier: None };
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .ok();
        Anchors { verifier }
    }

    /// Whether `chain` (end entity first) verifies for `domain` now.
    pub fn verifies(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool {
        let (Some(v), Some((end, intermediates))) = (&self.verifier, chain.split_first()) else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain.to_string()) else {
            return false;
        };
        v.verify_server_cert(end, intermediates, &name, &[], UnixTime::now())
            .is_ok()
    }

    /// Why `chain` does not verify for `domain`, for the log.
    pub fn explain(&self, chain: &[CertificateDer<'static>], domain: &str) -> String {
        let Some((end, intermediates)) = chain.split_first() else {
            return "no certificate was presented".into();
        };
        let Some(v) = &self.verifier else {
            return "there are no trust anchors".into();
        };
        let Ok(name) = ServerName::try_from(domain.to_string()) else {
            return format!("{domain} is not a DNS name");
        };
        match v.verify_server_cert(end, intermediates, &name, &[], UnixTime::now()) {
            Ok(_) => "it verifies".into(),
            Err(e) => e.to_string(),
        }
    }

    /// The machine's [`CertCheck`] over a presented chain.
    pub fn check(self: &Arc<Self>, chain: Vec<CertificateDer<'static>>) -> CertCheck {
        let anchors = self.clone();
        Box::new(move |domain| anchors.verifies(&chain, domain))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Both directions' TLS for links, and the anchors their peers are
/// checked against.
#[derive(Clone)]
pub struct S2sTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    pub anchors: Arc<Anchors>,
}

impl S2sTls {
    pub fn new(identity: &Identity, anchors: Anchors) -> Result<S2sTls, String> {
        let provider = provider();
        let err = |e: rustls::Error| format!("server-to-server TLS: {e}");
        let accept_any = Arc::new(AcceptAny(provider.clone()));
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(accept_any.clone())
            .with_single_cert(identity.certs.clone(), identity.key.clone_key())
            .map_err(err)?;
        // XEP-0368: direct TLS between servers announces "xmpp-server";
        // STARTTLS peers send no ALPN, which rustls accepts.
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .dangerous()
            .with_custom_certificate_verifier(accept_any)
            .with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())
            .map_err(err)?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(S2sTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            anchors: Arc::new(anchors),
        })
    }
}

/// Lets every certificate through the handshake (its signature still
/// checked); the verdict comes after, from [`Anchors`].
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl AcceptAny {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for AcceptAny {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a peer with a certificate should send it.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a certificate it issues for `names`, valid or expired.
    fn issue(names: &[&str], expired: bool) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        leaf.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
            leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (ca_cert.der().clone(), leaf.der().clone())
    }

    fn anchors(ca: &CertificateDer<'static>) -> Anchors {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        Anchors::from_roots(roots)
    }

    #[test]
    fn a_certificate_verifies_for_the_names_it_holds_under_a_trusted_ca() {
        let (ca, leaf) = issue(&["a.example", "*.a.example"], false);
        let a = anchors(&ca);
        let chain = vec![leaf];
        assert!(a.verifies(&chain, "a.example"));
        assert!(a.verifies(&chain, "conference.a.example"));
        assert!(!a.verifies(&chain, "b.example"));
        assert!(!a.verifies(&chain, "x.y.a.example"));
        assert!(
            a.explain(&chain, "b.example")
                .contains("not valid for name"),
            "{}",
            a.explain(&chain, "b.example")
        );
    }

    #[test]
    fn untrusted_expired_or_absent_certificates_do_not_verify() {
        let (ca, leaf) = issue(&["a.example"], false);
        let (other_ca, _) = issue(&["x.example"], false);
        assert!(!anchors(&other_ca).verifies(std::slice::from_ref(&leaf), "a.example"));
        let (ca2, old) = issue(&["a.example"], true);
        assert!(!anchors(&ca2).verifies(std::slice::from_ref(&old), "a.example"));
        assert!(anchors(&ca2)
            .explain(&[old], "a.example")
            .contains("xpired"));
        assert!(!anchors(&ca).verifies(&[], "a.example"));
        assert!(!Anchors::from_roots(RootCertStore::empty()).verifies(&[leaf], "a.example"));
    }
}
