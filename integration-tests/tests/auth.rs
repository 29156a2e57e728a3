//! SASL against the real binary with scripted raw XML: the SCRAM
//! channel-binding flag (RFC 5802 §6) and its exact failure condition.

use base64::Engine as _;
use sasl::client::mechanisms::Scram;
use sasl::client::Mechanism;
use sasl::common::scram::Sha256;
use sasl::common::{ChannelBinding, Credentials};
use switchboard_integration_tests::raw::{inner_text, local_name, ns};
use switchboard_integration_tests::{RawClient, TestServer, HOST, WAIT};

const PASSWORD: &str = "auth-secret";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A connection after STARTTLS and the restarted stream's header: ready
/// for SASL. Returns the client and the features it was offered.
async fn ready_for_sasl(server: &TestServer) -> (RawClient, String) {
    let mut c = RawClient::connect(server.c2s()).await.expect("connect");
    c.open_stream(HOST).await.expect("stream");
    c.starttls(server.tls_config()).await.expect("STARTTLS");
    let features = c.open_stream(HOST).await.expect("features after TLS");
    (c, features)
}

/// Sends `<auth/>` with this mechanism and client-first message.
async fn auth(c: &mut RawClient, mechanism: &str, first: &[u8]) {
    c.send(&format!(
        "<auth xmlns='{}' mechanism='{mechanism}'>{}</auth>",
        ns::SASL,
        B64.encode(first)
    ))
    .await
    .expect("send <auth/>");
}

/// Runs SCRAM-SHA-256 (not -PLUS) with the GS2 flag `binding` says, to
/// its end; returns the server's last element.
async fn scram_sha256(c: &mut RawClient, user: &str, binding: ChannelBinding) -> String {
    let creds = Credentials::default()
        .with_username(user)
        .with_password(PASSWORD)
        .with_channel_binding(binding);
    let mut mech = Scram::<Sha256>::from_credentials(creds).expect("SCRAM");
    auth(c, "SCRAM-SHA-256", &mech.initial()).await;
    loop {
        let el = c.read_element(WAIT).await.expect("a SASL answer");
        if local_name(&el) != "challenge" {
            return el;
        }
        let data = B64.decode(inner_text(&el).trim()).expect("base64");
        let response = mech.response(&data).expect("a SCRAM response");
        c.send(&format!(
            "<response xmlns='{}'>{}</response>",
            ns::SASL,
            B64.encode(response)
        ))
        .await
        .expect("send <response/>");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_y_flag_while_plus_is_offered_is_not_authorized() {
    let server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let (mut c, features) = ready_for_sasl(&server).await;
    assert!(
        features.contains(">SCRAM-SHA-256-PLUS<"),
        "TLS 1.3 offers -PLUS: {features}"
    );
    // The client says it could bind but believes the server cannot: the
    // -PLUS mechanisms were stripped on the way (RFC 5802 §6).
    let answer = scram_sha256(&mut c, "alice", ChannelBinding::Unsupported).await;
    assert_eq!(local_name(&answer), "failure", "{answer}");
    assert!(answer.contains("<not-authorized/>"), "{answer}");
    assert!(!answer.contains("encryption-required"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_tried_plus_with_tls_unique_may_fall_back_with_the_y_flag() {
    let server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let (mut c, _) = ready_for_sasl(&server).await;
    // slixmpp before 1.8.5 asks for tls-unique, undefined over TLS 1.3.
    auth(
        &mut c,
        "SCRAM-SHA-256-PLUS",
        b"p=tls-unique,,n=alice,r=abcdef",
    )
    .await;
    let answer = c.read_element(WAIT).await.expect("an answer");
    assert!(answer.contains("<malformed-request/>"), "{answer}");
    let answer = scram_sha256(&mut c, "alice", ChannelBinding::Unsupported).await;
    assert_eq!(local_name(&answer), "success", "{answer}");
}
