//! TLS for client streams: loading the configured certificate, or making a
//! self-signed one on first run, and the rustls server configuration. The
//! same certificate and key ([`Identity`]) serve server-to-server links
//! (`crate::s2s::certs` builds their configurations from it).

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
    /// SHA-1 of the same, which some clients (profanity) show instead.
    pub fingerprint_sha1: String,
}

/// The server's certificate chain and private key, as loaded.
#[derive(Debug)]
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Loads `cert`/`key` when configured; otherwise uses (or first makes) a
/// self-signed certificate for `hosts` at `etc/<first host>.crt|.key`.
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    hosts: &[String],
    etc: &Path,
) -> Result<(Arc<ServerConfig>, CertInfo), String> {
    let (identity, info) = load_identity(cert, key, hosts, etc)?;
    let config = server_config(identity.certs, identity.key)?;
    Ok((config, info))
}

/// [`load_or_generate`]'s certificate and key themselves.
pub fn load_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    hosts: &[String],
    etc: &Path,
) -> Result<(Identity, CertInfo), String> {
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
    let fingerprint = hex_colons(&Sha256::digest(certs[0].as_ref()));
    let fingerprint_sha1 = hex_colons(&sha1::Sha1::digest(certs[0].as_ref()));
    Ok((
        Identity { certs, key },
        CertInfo {
            cert_path,
            generated,
            fingerprint,
            fingerprint_sha1,
        },
    ))
}

/// The rustls configuration client connections are served with.
pub fn server_config(
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
    let err = |e: rcgen::Error| format!("generating a certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(err)?;
    // What a client shows when asking the user to trust the certificate:
    // the host it is for, and who made it.
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, names[0].clone());
    dn.push(rcgen::DnType::OrganizationName, "Switchboard (self-signed)");
    params.distinguished_name = dn;
    // Valid from the start of last year for ten years: old enough for a
    // client whose clock is a little behind, short enough to be plausible.
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    if let Some(dir) = cert_path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(key_path, key.serialize_pem().as_bytes())?;
    fs::write(cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(())
}

/// The current UTC year, from the system clock.
fn current_year() -> i32 {
    crate::time::civil_from_days((crate::time::unix_now() / 86_400) as i64).0 as i32
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

fn hex_colons(digest: &[u8]) -> String {
    digest
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_comes_from_the_clock() {
        let y = current_year();
        assert!((2024..2200).contains(&y), "{y}");
    }

    #[test]
    fn a_generated_certificate_names_the_hosts_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["example.org".to_string(), "chat.example.org".to_string()];
        let (_, info) = load_or_generate(None, None, &hosts, dir.path()).unwrap();
        assert!(info.generated);
        assert_eq!(info.cert_path, dir.path().join("example.org.crt"));
        assert_eq!(info.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(info.fingerprint_sha1.len(), 20 * 3 - 1);
        let key_mode = std::fs::metadata(dir.path().join("example.org.key")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
            0o600
        );
        // The second start reuses it.
        let (_, again) = load_or_generate(None, None, &hosts, dir.path()).unwrap();
        assert!(!again.generated);
        assert_eq!(again.fingerprint, info.fingerprint);
    }

    #[test]
    fn a_configured_certificate_is_used_as_is() {
        let made = tempfile::tempdir().unwrap();
        let hosts = vec!["example.org".to_string()];
        let (_, first) = load_or_generate(None, None, &hosts, made.path()).unwrap();
        let etc = tempfile::tempdir().unwrap();
        let cert = made.path().join("example.org.crt");
        let key = made.path().join("example.org.key");
        let (_, info) = load_or_generate(Some(&cert), Some(&key), &hosts, etc.path()).unwrap();
        assert!(!info.generated);
        assert_eq!(info.fingerprint, first.fingerprint);
        assert!(
            std::fs::read_dir(etc.path()).unwrap().next().is_none(),
            "nothing generated"
        );
    }

    #[test]
    fn a_missing_or_wrong_certificate_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let err = load_or_generate(Some(&missing), Some(&missing), &[], dir.path()).unwrap_err();
        assert!(
            err.contains("nope.crt") && err.contains("No such file"),
            "{err}"
        );
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = load_or_generate(Some(&junk), Some(&junk), &[], dir.path()).unwrap_err();
        assert!(err.contains("no certificate found"), "{err}");
    }
}
