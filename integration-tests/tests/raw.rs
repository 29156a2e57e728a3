//! Scripted edge cases at the XML level with [`RawClient`]: what the
//! server offers before and after TLS, how it refuses malformed or hostile
//! stream openings (each with the RFC 6120 stream error a client would
//! show), stanza size limits, the pre-authentication timeout, and the
//! generated certificate.

use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::{local_name, ns, stream_header};
use switchboard_integration_tests::{RawClient, TestServer, HOST, WAIT};

const PASSWORD: &str = "raw-secret";

/// Opens a TCP connection, sends `opening` as the very first bytes, and
/// returns everything the server says until it hangs up.
async fn reply_to_opening(server: &TestServer, opening: &str) -> String {
    let mut c = RawClient::connect(server.c2s()).await.expect("connect");
    c.send(opening).await.expect("send the opening");
    c.read_to_close(WAIT)
        .await
        .unwrap_or_else(|e| panic!("the server should close the stream: {e}"))
}

fn assert_stream_error(reply: &str, condition: &str) {
    let error_at = reply
        .find("<stream:error")
        .unwrap_or_else(|| panic!("no <stream:error> in {reply:?}"));
    let error = &reply[error_at..];
    assert!(
        error.contains(&format!("<{condition}")),
        "expected <{condition}/> in the stream error: {reply:?}"
    );
    assert!(
        error.contains("urn:ietf:params:xml:ns:xmpp-streams"),
        "the condition is in the xmpp-streams namespace: {reply:?}"
    );
    assert!(
        reply.contains("</stream:stream>"),
        "the stream is closed: {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_tls_only_required_starttls_is_offered() {
    let server = TestServer::start(&[]);
    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    let features = c.open_stream(HOST).await.expect("stream features");
    assert!(features.contains("<starttls"), "{features}");
    assert!(features.contains(ns::TLS), "{features}");
    assert!(
        features.contains("<required"),
        "STARTTLS is mandatory: {features}"
    );
    assert!(
        !features.contains("<mechanisms"),
        "no SASL before TLS: {features}"
    );
    assert!(
        !features.contains(ns::BIND),
        "no bind before TLS: {features}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_auth_before_starttls_is_refused() {
    let server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    // PLAIN: "\0alice\0raw-secret", which would be correct credentials.
    c.send(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>AGFsaWNlAHJhdy1zZWNyZXQ=</auth>",
        ns::SASL
    ))
    .await
    .unwrap();
    let answer = c.read_element(WAIT).await.expect("an answer to <auth/>");
    assert_ne!(
        local_name(&answer),
        "success",
        "authenticated in the clear: {answer}"
    );
    match local_name(&answer).as_str() {
        "failure" => assert!(
            answer.contains("encryption-required"),
            "SASL failure should say encryption-required: {answer}"
        ),
        "error" => assert!(
            answer.contains("policy-violation")
                || answer.contains("not-authorized")
                || answer.contains("encryption-required"),
            "stream error for auth before TLS: {answer}"
        ),
        _ => panic!("expected a SASL failure or a stream error, got {answer}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_verifies_against_the_generated_certificate() {
    let server = TestServer::start(&[]);
    let cert = std::fs::read_to_string(server.cert_path()).expect("HOME/etc/localhost.crt");
    assert!(
        cert.contains("-----BEGIN CERTIFICATE-----"),
        "PEM certificate"
    );
    assert!(
        server.home().join("etc/localhost.key").is_file(),
        "the key sits beside it"
    );

    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    c.starttls(server.tls_config())
        .await
        .expect("TLS verifies as `localhost` against the generated certificate");
    let features = c.open_stream(HOST).await.expect("features after TLS");
    assert!(features.contains("<mechanisms"), "{features}");
    assert!(features.contains(">SCRAM-SHA-256<"), "{features}");
    assert!(!features.contains("<starttls"), "{features}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_offers_features_straight_away() {
    let server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let mut c = RawClient::connect_tls(server.c2s_tls(), server.tls_config())
        .await
        .expect("direct TLS handshake");
    let features = c.open_stream(HOST).await.expect("features");
    assert!(features.contains("<mechanisms"), "SASL at once: {features}");
    assert!(
        !features.contains("<starttls"),
        "no STARTTLS inside TLS: {features}"
    );

    c.authenticate(&features, "alice", PASSWORD)
        .await
        .expect("SASL");
    let features = c.open_stream(HOST).await.unwrap();
    let jid = c.bind(&features, "direct").await.expect("bind");
    assert_eq!(jid, "alice@localhost/direct");
    let pong = c.ping(HOST).await.unwrap();
    assert_eq!(
        switchboard_integration_tests::raw::attr(&pong, "type").as_deref(),
        Some("result"),
        "{pong}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctype_is_restricted_xml() {
    let server = TestServer::start(&[]);
    let opening = format!(
        "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]>{}",
        &stream_header(HOST)["<?xml version='1.0'?>".len()..]
    );
    let reply = reply_to_opening(&server, &opening).await;
    assert_stream_error(&reply, "restricted-xml");
}

/// The stream header without its XML declaration.
fn bare_header() -> String {
    stream_header(HOST)["<?xml version='1.0'?>".len()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_encoding_other_than_utf8_is_unsupported_encoding() {
    let server = TestServer::start(&[]);
    let opening = format!(
        "<?xml version='1.0' encoding='ISO-8859-1'?>{}",
        bare_header()
    );
    let reply = reply_to_opening(&server, &opening).await;
    assert_stream_error(&reply, "unsupported-encoding");
    assert!(
        reply.contains("ISO-8859-1"),
        "the text says which encoding: {reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf16_streams_are_unsupported_encoding_in_either_byte_order() {
    let server = TestServer::start(&[]);
    for big_endian in [true, false] {
        let mut opening: Vec<u8> = Vec::new();
        for unit in std::iter::once(0xFEFF).chain(stream_header(HOST).encode_utf16()) {
            opening.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        let mut c = RawClient::connect(server.c2s()).await.expect("connect");
        c.send_bytes(&opening).await.expect("send the opening");
        let reply = c.read_to_close(WAIT).await.expect("the server closes");
        assert_stream_error(&reply, "unsupported-encoding");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_declared_in_any_case_is_accepted() {
    let server = TestServer::start(&[]);
    for decl in [
        "<?xml version='1.0' encoding='UTF-8'?>",
        "<?xml version='1.0' encoding='utf-8'?>",
        "",
    ] {
        let mut c = RawClient::connect(server.c2s()).await.expect("connect");
        c.send(&format!("{decl}{}", bare_header())).await.unwrap();
        c.read_stream_header(WAIT).await.expect("a stream header");
        let features = c.read_element(WAIT).await.expect("features");
        assert!(features.contains("<starttls"), "{decl}: {features}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_stream_namespace_is_invalid_namespace() {
    let server = TestServer::start(&[]);
    let opening = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='http://example.com/not-streams' to='{HOST}' version='1.0'>",
        ns::CLIENT
    );
    let reply = reply_to_opening(&server, &opening).await;
    assert_stream_error(&reply, "invalid-namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_is_unsupported_version() {
    let server = TestServer::start(&[]);
    // The stream's version attribute only; the XML declaration stays 1.0.
    let opening = stream_header(HOST).replace(
        &format!("to='{HOST}' version='1.0'"),
        &format!("to='{HOST}' version='2.0'"),
    );
    assert!(opening.contains("version='2.0'"), "{opening}");
    let reply = reply_to_opening(&server, &opening).await;
    assert_stream_error(&reply, "unsupported-version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_to_host_is_host_unknown() {
    let server = TestServer::start(&[]);
    let reply = reply_to_opening(&server, &stream_header("not-served.example")).await;
    assert_stream_error(&reply, "host-unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_stanza_is_policy_violation() {
    let server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    server.add_user("bob@localhost", PASSWORD);
    let mut c = RawClient::login(server.c2s(), server.tls_config(), "alice", PASSWORD, "big")
        .await
        .expect("login");

    // 300 KiB of body against a 256 KiB limit.
    let mut stanza = String::from("<message to='bob@localhost' type='chat'><body>");
    stanza.push_str(&"x".repeat(300 * 1024));
    stanza.push_str("</body></message>");
    c.send_watching(stanza.as_bytes(), 16 * 1024, "policy-violation")
        .await;
    let reply = c
        .read_to_close(WAIT)
        .await
        .unwrap_or_else(|e| panic!("the server should close the stream: {e}"));
    assert_stream_error(&reply, "policy-violation");

    // The server itself is fine.
    let mut other = RawClient::login(server.c2s(), server.tls_config(), "bob", PASSWORD, "after")
        .await
        .expect("another login after the flood");
    let pong = other.ping(HOST).await.unwrap();
    assert!(
        pong.contains("type='result'") || pong.contains("type=\"result\""),
        "{pong}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_unauthenticated_connections_are_dropped_after_preauth_timeout() {
    let server = TestServer::start(&[
        r#"<limits max-stanza-bytes="262144" preauth-timeout="2s" keepalive="60s" scram-iterations="4096"/>"#,
    ]);
    server.add_user("alice@localhost", PASSWORD);
    let addr = server.c2s();
    let tls = server.tls_config();

    // Three connections side by side: one says nothing at all, one opens
    // a stream and then idles, one logs in and idles past the timeout.
    let silent = async {
        let start = Instant::now();
        let mut c = RawClient::connect(addr).await.unwrap();
        let r = c.read_to_close(WAIT).await;
        (start.elapsed(), r)
    };
    let opened = async {
        let start = Instant::now();
        let mut c = RawClient::connect(addr).await.unwrap();
        c.open_stream(HOST).await.unwrap();
        let r = c.read_to_close(WAIT).await;
        (start.elapsed(), r)
    };
    let authed = async {
        let mut c = RawClient::login(addr, tls.clone(), "alice", PASSWORD, "idle")
            .await
            .expect("login");
        tokio::time::sleep(Duration::from_secs(4)).await;
        c.ping(HOST).await
    };
    let ((t1, r1), (t2, r2), pong) = tokio::join!(silent, opened, authed);

    for (what, t, r) in [("silent", t1, r1), ("stream opened", t2, r2)] {
        let text = r.unwrap_or_else(|e| panic!("{what}: not disconnected: {e}"));
        assert!(
            t >= Duration::from_millis(1500) && t <= Duration::from_secs(15),
            "{what}: disconnected after {t:?} with a 2 s pre-auth timeout ({text:?})"
        );
    }
    let pong = pong.expect("an authenticated session outlives the pre-auth timeout");
    assert!(pong.contains("result"), "{pong}");
}
