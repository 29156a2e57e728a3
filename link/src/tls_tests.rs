//! The verifiers in real handshakes: a rustls client and server exchange
//! bytes in memory, no socket.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConnection, ServerConfig, ServerConnection};

use super::*;

struct Server {
    config: Arc<ServerConfig>,
    der: Vec<u8>,
    pem: String,
}

fn server(names: &[&str]) -> Server {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let der = ck.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der.clone())], key)
            .unwrap();
    Server {
        config: Arc::new(config),
        der,
        pem: ck.cert.pem(),
    }
}

/// Runs a handshake to `name`; the client's error if it fails.
fn handshake(tls: &ClientTls, server: &Server, name: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut c = ClientConnection::new(Arc::new(tls.config.clone()), name)?;
    let mut s = ServerConnection::new(server.config.clone()).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            // The server's own complaints (an alert from the client) are
            // not what these tests look at.
            let _ = s.process_new_packets();
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-link-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_pin_accepts_its_certificate_whatever_the_name() {
    let srv = server(&["irc.example.net"]);
    let tls = client_config(&Trust::Pinned(vec![fingerprint_of(&srv.der)])).unwrap();
    assert_eq!(tls.presented.fingerprint(), None);
    handshake(&tls, &srv, "elsewhere.example.org").unwrap();
    assert_eq!(
        tls.presented.fingerprint(),
        Some(format_fingerprint(&fingerprint_of(&srv.der)))
    );
}

#[test]
fn a_wrong_pin_is_refused_with_both_fingerprints() {
    let srv = server(&["localhost"]);
    let tls = client_config(&Trust::Pinned(vec![[0xAB; 32]])).unwrap();
    let e = handshake(&tls, &srv, "localhost").unwrap_err().to_string();
    let got = format_fingerprint(&fingerprint_of(&srv.der));
    assert!(
        e.contains(&format!(
            "the certificate's fingerprint {got} is not the pinned AB:AB:"
        )),
        "{e}"
    );
    // The operator can pin what was presented.
    assert_eq!(tls.presented.fingerprint(), Some(got));
    let tls = client_config(&Trust::Pinned(vec![[1; 32], [2; 32]])).unwrap();
    let e = handshake(&tls, &srv, "localhost").unwrap_err().to_string();
    assert!(e.contains("is not one of the 2 pinned"), "{e}");
}

#[test]
fn no_check_accepts_any_certificate() {
    let srv = server(&["somewhere"]);
    let tls = client_config(&Trust::Off).unwrap();
    handshake(&tls, &srv, "localhost").unwrap();
}

#[test]
fn a_ca_file_trusts_its_certificates_for_their_names_only() {
    let dir = temp_dir("ca");
    let srv = server(&["localhost"]);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &srv.pem).unwrap();
    let tls = client_config(&Trust::CaFile(ca.clone())).unwrap();
    handshake(&tls, &srv, "localhost").unwrap();
    let e = handshake(&tls, &srv, "other.example").unwrap_err();
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{e:?}"
    );
    // Another server with the same name is not signed by the file's.
    let other = server(&["localhost"]);
    let e = handshake(&tls, &other, "localhost").unwrap_err();
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::BadSignature | CertificateError::UnknownIssuer
            )
        ),
        "{e:?}"
    );
    assert_eq!(
        tls.presented.fingerprint(),
        Some(format_fingerprint(&fingerprint_of(&other.der)))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_ca_files_are_errors_that_name_the_file() {
    let dir = temp_dir("bad");
    let missing = dir.join("missing.pem");
    let e = client_config(&Trust::CaFile(missing.clone())).unwrap_err();
    assert!(matches!(e, TrustError::Unreadable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = client_config(&Trust::CaFile(empty.clone())).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{} holds no certificate", empty.display())
    );
    let broken = dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = client_config(&Trust::CaFile(broken)).unwrap_err();
    assert!(matches!(e, TrustError::NotPem { .. }), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_system_store_always_builds() {
    assert!(client_config(&Trust::System).is_ok());
}

#[test]
fn fingerprints_parse_in_the_usual_spellings() {
    let colons = "AB:".repeat(31) + "CD";
    let want = {
        let mut a = [0xABu8; 32];
        a[31] = 0xCD;
        a
    };
    assert_eq!(parse_fingerprint(&colons), Some(want));
    assert_eq!(parse_fingerprint(&colons.to_lowercase()), Some(want));
    assert_eq!(parse_fingerprint(&colons.replace(':', "")), Some(want));
    assert_eq!(parse_fingerprint(&colons.replace(':', " ")), Some(want));
    assert_eq!(
        parse_fingerprint(&format!("sha256:{}", colons.replace(':', ""))),
        Some(want)
    );
    assert_eq!(format_fingerprint(&want), colons);
    assert_eq!(parse_fingerprint("AB:CD"), None);
    assert_eq!(parse_fingerprint(&"ZZ".repeat(32)), None);
    // A SHA-1 fingerprint (20 bytes) is refused, not silently padded.
    assert_eq!(
        parse_fingerprint("AB:".repeat(20).trim_end_matches(':')),
        None
    );
}
