//! TLS for client streams: loading the configured certificate, or making a
//! self-signed one on first run, and the rustls server configuration.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

/// Where the certificate came from, for the start-up log.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub cert_path: PathBuf,
    pub generated: bool,
    /// SHA-256 of the leaf certificate, colon-separated hex, so users can
    /// compare it with what their client shows for a self-signed cert.
    pub fingerprint: String,
}

/// Loads `cert`/`key` when configured; otherwise uses (or first makes) a
/// self-signed certificate for `hosts` at `etc/<first host>.crt|.key`.
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    hosts: &[String],
    etc: &Path,
) -> Result<(Arc<ServerConfig>, CertInfo), String> {
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf(), false),
        _ => {
            let first = hosts.first().map(String::as_str).unwrap_or("localhost");
            let c = etc.join(format!("{first}.crt"));
            let k = etc.join(format!("{first}.key"));
            let made = if c.exists() && k.exists() {
                false
            } else {
                generate(hosts, &c, &k)?;
                true
            };
            (c, k, made)
        }
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let fingerprint = fingerprint(&certs[0]);
    let config = server_config(certs, key)?;
    Ok((
        config,
        CertInfo {
            cert_path,
            generated,
            fingerprint,
        },
    ))
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not work together: {e}"))?;
    // XEP-0368 direct TLS clients announce "xmpp-client"; STARTTLS clients
    // send no ALPN at all, which rustls accepts.
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Ok(Arc::new(config))
}

fn generate(hosts: &[String], cert_path: &Path, key_path: &Path) -> Result<(), String> {
    let names: Vec<String> = if hosts.is_empty() {
        vec!["localhost".into()]
    } else {
        hosts.to_vec()
    };
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("generating a certificate: {e}"))?;
    if let Some(dir) = cert_path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(key_path, certified.key_pair.serialize_pem().as_bytes())?;
    fs::write(cert_path, certified.cert.pem())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(())
}

/// Writes a file only the server's user can read (the private key).
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate found (expected PEM \"BEGIN CERTIFICATE\")",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| format!("{}: not a PEM key file: {e}", path.display()))?
        .ok_or_else(|| {
            format!(
                "{}: no private key found (expected PEM \"BEGIN PRIVATE KEY\")",
                path.display()
            )
        })
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The RFC 9266 `tls-exporter` channel binding of a server connection, or
/// `None` unless TLS 1.3 was negotiated (on 1.2 it is only safe with the
/// extended master secret, which we cannot confirm through rustls' API).
pub fn channel_binding(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut out = vec![0u8; 32];
    conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(out)
}
