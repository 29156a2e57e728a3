//! The published exchanges replayed from the client's side, and the ways a
//! server can get them wrong.

use super::*;

/// Replays an RFC example from the client's side.
fn replay(
    hash: ScramHash,
    nonce: &str,
    client_first: &str,
    server_first: &str,
    client_final: &str,
    server_final: &str,
) {
    let mut c = ScramClient::with_nonce(hash, "user", "pencil", nonce).unwrap();
    assert_eq!(String::from_utf8(c.initial()).unwrap(), client_first);
    let answer = c.challenge(server_first.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(answer).unwrap(), client_final);
    assert!(!c.is_done());
    c.finish(server_final.as_bytes()).unwrap();
    assert!(c.is_done());
}

const SHA256_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const SHA256_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
     p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

#[test]
fn rfc5802_scram_sha1_example() {
    replay(
        ScramHash::Sha1,
        "fyko+d2lbbFgONRv9qkxdawL",
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    );
}

#[test]
fn rfc7677_scram_sha256_example() {
    replay(
        ScramHash::Sha256,
        "rOprNGfwEbeRWgbNEkqO",
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        SHA256_FIRST,
        SHA256_FINAL,
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    );
}

#[test]
fn a_shared_cache_derives_each_users_keys_once_and_changes_nothing_on_the_wire() {
    let cache = Arc::new(KeyCache::default());
    for _ in 0..3 {
        let mut c =
            ScramClient::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
                .unwrap()
                .with_cache(cache.clone());
        c.initial();
        let answer = c.challenge(SHA256_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(answer).unwrap(), SHA256_FINAL);
        c.finish(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }
    assert_eq!(cache.len(), 1);
    // Another hash is another entry.
    let mut c = ScramClient::with_nonce(
        ScramHash::Sha1,
        "user",
        "pencil",
        "fyko+d2lbbFgONRv9qkxdawL",
    )
    .unwrap()
    .with_cache(cache.clone());
    c.initial();
    c.challenge(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        .unwrap();
    c.finish(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
    assert_eq!(cache.len(), 2);
}

fn after_first_step() -> ScramClient {
    let mut c =
        ScramClient::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
            .unwrap();
    c.initial();
    c.challenge(SHA256_FIRST.as_bytes()).unwrap();
    c
}

#[test]
fn a_wrong_server_signature_is_refused() {
    let mut c = after_first_step();
    // The RFC 5802 (SHA-1) verifier: well-formed, but not this exchange's.
    assert_eq!(
        c.finish(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
        Err(SaslError::BadServerSignature)
    );
    assert!(!c.is_done());
    assert_eq!(
        SaslError::BadServerSignature.to_string(),
        "the server's SCRAM signature is wrong, so it does not know this account's password"
    );
    let mut c = after_first_step();
    assert_eq!(
        c.finish(b"e=invalid-proof"),
        Err(SaslError::ServerError("invalid-proof".into()))
    );
}

#[test]
fn success_before_the_proof_is_refused() {
    let mut c = ScramClient::with_nonce(ScramHash::Sha1, "user", "pencil", "abc").unwrap();
    c.initial();
    assert!(matches!(
        c.finish(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
        Err(SaslError::Malformed(_))
    ));
}

#[test]
fn bad_server_first_messages_are_refused() {
    for first in [
        "r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",
        // Exactly our nonce: the server added nothing.
        "r=fyko,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fykoX,s=QSXCR+Q6sek8bf92,i=0",
        "r=fykoX,s=QSXCR+Q6sek8bf92,i=99999999",
        "r=fykoX,s=***,i=4096",
        "r=fykoX,i=4096",
        "m=ext,r=fykoX,s=QSXCR+Q6sek8bf92,i=4096",
    ] {
        let mut c = ScramClient::with_nonce(ScramHash::Sha1, "user", "pencil", "fyko").unwrap();
        c.initial();
        assert!(
            matches!(c.challenge(first.as_bytes()), Err(SaslError::Malformed(_))),
            "{first}"
        );
    }
}

#[test]
fn usernames_are_escaped_and_nonces_are_random() {
    let mut c = ScramClient::new(ScramHash::Sha256, "a,b=c", "pw").unwrap();
    let first = String::from_utf8(c.initial()).unwrap();
    assert!(first.starts_with("n,,n=a=2Cb=3Dc,r="), "{first}");
    let mut d = ScramClient::new(ScramHash::Sha256, "a", "pw").unwrap();
    let other = String::from_utf8(d.initial()).unwrap();
    assert_ne!(first.rsplit("r=").next(), other.rsplit("r=").next());
}

#[test]
fn plain_and_password_preparation() {
    assert_eq!(plain_message("", "bot", "s3cret"), b"\0bot\0s3cret");
    assert_eq!(
        plain_message("romeo", "romeo", "s3cret"),
        b"romeo\0romeo\0s3cret"
    );
    assert_eq!(prepare_password(""), Err(SaslError::BadPassword));
    // OpaqueString maps non-ASCII spaces to ASCII space.
    assert_eq!(prepare_password("a\u{00A0}b").unwrap(), "a b");
    assert!(ScramClient::new(ScramHash::Sha1, "u", "").is_err());
}

#[test]
fn mechanisms_are_chosen_best_first() {
    assert_eq!(
        Mechanism::choose(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]),
        Some(Mechanism::ScramSha256)
    );
    assert_eq!(
        Mechanism::choose(["PLAIN", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]),
        Some(Mechanism::ScramSha1)
    );
    // -PLUS alone is not usable without channel binding.
    assert_eq!(
        Mechanism::choose(["SCRAM-SHA-256-PLUS", "PLAIN"]),
        Some(Mechanism::Plain)
    );
    assert_eq!(Mechanism::choose(["EXTERNAL", "DIGEST-MD5"]), None);
    assert_eq!(ScramHash::parse("SHA-1"), Ok(ScramHash::Sha1));
    assert_eq!(ScramHash::parse("scram-sha-256"), Ok(ScramHash::Sha256));
    assert!(ScramHash::parse("md5")
        .unwrap_err()
        .contains("sha-1, sha-256"));
}
