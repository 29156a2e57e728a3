//! Two (or more) `switchboard` processes federating on loopback, for the
//! server-to-server tests: a private CA made in the test, certificates it
//! issues (or self-signed ones, or expired ones), each server's s2s
//! listener on an address of its own in 127.0.0.0/8, and `<connect>`
//! entries telling each where the others are, or a name server of the
//! test's ([`crate::dns`]) answering SRV and A records.
//!
//! Every server here has `<s2s trust>` pointing at the test CA, and a
//! timeout short enough for the failure tests and long enough for a
//! loaded CI machine.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::server::ServerBuilder;

/// A certificate authority made for one test.
pub struct Ca {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// How a server's certificate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// Issued by the test CA for the server's names.
    Valid,
    /// Issued by the test CA, but long expired.
    Expired,
    /// Issued by the test CA for another name.
    WrongName,
    /// Self-signed (the server's own first-run certificate).
    SelfSigned,
}

impl Default for Ca {
    fn default() -> Self {
        Self::new()
    }
}

impl Ca {
    pub fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "Switchboard federation test CA");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { key, cert }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) {
        fs::write(path, self.pem()).expect("write the CA certificate");
    }

    /// A certificate and key (PEM) for `names`, as `kind` says.
    pub fn issue(&self, names: &[&str], kind: CertKind) -> (String, String) {
        let names: Vec<String> = match kind {
            CertKind::WrongName => vec!["someone-else.test".into()],
            _ => names.iter().map(|n| n.to_string()).collect(),
        };
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(names.clone()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if kind == CertKind::Expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = if kind == CertKind::SelfSigned {
            params.self_signed(&key).expect("self-signed certificate")
        } else {
            params
                .signed_by(&key, &self.cert, &self.key)
                .expect("issued certificate")
        };
        (cert.pem(), key.serialize_pem())
    }

    /// A rustls client config that trusts this CA (for clients logging in
    /// to a server whose certificate it issued), presenting no
    /// certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client_config_with(None)
    }

    /// A rustls client config trusting this CA and presenting `identity`
    /// (certificate and key PEM) when asked: a raw peer server.
    pub fn client_config_with(&self, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.der().clone())
            .expect("the CA is an anchor");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = rustls_pemfile::certs(&mut cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("PEM certificate");
                let key = rustls_pemfile::private_key(&mut key.as_bytes())
                    .expect("PEM key")
                    .expect("a key");
                builder
                    .with_client_auth_cert(certs, key)
                    .expect("client certificate")
            }
        };
        Arc::new(config)
    }
}

/// An address of loopback no other test picks (127.x.y.z, x > 0) with a
/// port the kernel just handed out there (free at that moment), for a
/// server's s2s listener.
pub fn loopback_addr() -> SocketAddr {
    let mut b = [0u8; 3];
    getrandom(&mut b);
    let ip = Ipv4Addr::new(127, 1 + b[0] % 250, b[1], 1 + b[2] % 250);
    let probe = std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .expect("a port on a loopback address");
    probe.local_addr().expect("the probe's address")
}

fn getrandom(out: &mut [u8]) {
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .expect("/dev/urandom");
}

/// One federating server to be started: its domain, the names its
/// certificate carries, its s2s address and policy.
pub struct Peer {
    pub domain: String,
    /// Group chat services at these hostnames (also named in the
    /// certificate).
    pub services: Vec<String>,
    /// Other names in the certificate (services the test configures
    /// itself).
    pub cert_names: Vec<String>,
    pub s2s: SocketAddr,
    /// A direct-TLS s2s listener (XEP-0368), if any.
    pub direct: Option<SocketAddr>,
    /// The name server to ask (`<s2s resolver>`), if not the system's.
    pub resolver: Option<SocketAddr>,
    pub cert: CertKind,
    /// Attributes for `<s2s …>` (besides trust, timeout).
    pub policy: String,
    pub timeout: &'static str,
}

impl Peer {
    pub fn new(domain: &str) -> Peer {
        Peer {
            domain: domain.to_owned(),
            services: Vec::new(),
            cert_names: Vec::new(),
            s2s: loopback_addr(),
            direct: None,
            resolver: None,
            cert: CertKind::Valid,
            policy: String::new(),
            timeout: "10s",
        }
    }

    /// A builder for this server: its host, certificate, listeners and
    /// `<s2s>` with a `<connect>` for each of `others` (domain, address,
    /// and `direct` for a direct-TLS port).
    pub fn builder(&self, ca: &Ca, others: &[(&str, SocketAddr, bool)]) -> ServerBuilder {
        let mut names: Vec<&str> = vec![&self.domain];
        names.extend(self.services.iter().map(String::as_str));
        names.extend(self.cert_names.iter().map(String::as_str));
        let cert = (self.cert != CertKind::SelfSigned).then(|| ca.issue(&names, self.cert));
        let ca_pem = ca.pem();
        let domain = self.domain.clone();
        let connects: String = others
            .iter()
            .map(|(d, a, direct)| {
                let tls = if *direct { " tls=\"direct\"" } else { "" };
                format!("<connect domain=\"{d}\" addr=\"{a}\"{tls}/>")
            })
            .collect();
        let direct = self
            .direct
            .map(|a| format!("<s2s-tls addr=\"{a}\"/>"))
            .unwrap_or_default();
        let resolver = self
            .resolver
            .map(|a| format!(" resolver=\"{a}\""))
            .unwrap_or_default();
        let mut b = ServerBuilder::new()
            .config(&format!(
                "<host name=\"{domain}\"><registration>open</registration></host>"
            ))
            .config(&format!(
                "<listen><c2s addr=\"127.0.0.1:0\"/><s2s addr=\"{}\"/>{direct}</listen>",
                self.s2s
            ))
            .config(&format!(
                "<s2s trust=\"etc/ca.pem\" timeout=\"{}\"{resolver} {}>{connects}</s2s>",
                self.timeout, self.policy
            ))
            .prepare(move |home: &Path| {
                fs::write(home.join("etc/ca.pem"), ca_pem).expect("write the CA");
            });
        for service in &self.services {
            b = b.config(&format!("<service id=\"{service}\" type=\"muc\"/>"));
        }
        // Without a certificate of the test's, the server makes its own
        // self-signed one for its hosts on first run.
        if let Some((cert, key)) = cert {
            b = b
                .config(r#"<tls cert="etc/server.crt" key="etc/server.key" required="true"/>"#)
                .prepare(move |home: &Path| {
                    fs::write(home.join("etc/server.crt"), cert).expect("write the cert");
                    fs::write(home.join("etc/server.key"), key).expect("write the key");
                });
        }
        b
    }

    /// Where a client of this server finds the certificate to trust: the
    /// CA's, or the self-signed one the server made.
    pub fn self_signed_path(home: &Path, domain: &str) -> PathBuf {
        home.join("etc").join(format!("{domain}.crt"))
    }
}
