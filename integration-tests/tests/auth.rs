//! SASL against the real binary with scripted raw XML: the SCRAM
//! channel-binding flag (RFC 5802 §6) and its exact failure condition,
//! and the delays that slow password guessing down (`<auth-delay>`): per
//! source address, per account, never a lock-out, counted in the metrics.
//!
//! Whether an attempt waited is read from the metrics counter, which the
//! server bumps before it starts waiting, so "was not delayed" needs no
//! clock; how long a delayed attempt took is checked from below only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::Sha256;
use sasl::common::{ChannelBinding, Credentials};
use switchboard_integration_tests::raw::{inner_text, local_name, ns};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "auth-secret";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The loopback addresses the tests' clients come from.
const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A connection after STARTTLS and the restarted stream's header: ready
/// for SASL. Returns the client and the features it was offered.
async fn ready_for_sasl(server: &TestServer) -> (RawClient, String) {
    ready_for_sasl_from(server, HERE).await
}

/// [`ready_for_sasl`] from the source address `from`.
async fn ready_for_sasl_from(server: &TestServer, from: IpAddr) -> (RawClient, String) {
    let mut c = RawClient::connect_from(server.c2s(), from)
        .await
        .expect("connect");
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
    scram_sha256_with(c, user, PASSWORD, binding).await
}

async fn scram_sha256_with(
    c: &mut RawClient,
    user: &str,
    password: &str,
    binding: ChannelBinding,
) -> String {
    let creds = Credentials::default()
        .with_username(user)
        .with_password(password)
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

/// One SCRAM-SHA-256 attempt with `password`; how long the server took to
/// finish it, and whether it succeeded.
async fn attempt(c: &mut RawClient, user: &str, password: &str) -> (Duration, bool) {
    let start = Instant::now();
    let answer = scram_sha256_with(c, user, password, ChannelBinding::None).await;
    (start.elapsed(), local_name(&answer) == "success")
}

/// One PLAIN attempt, timed the same way.
async fn attempt_plain(c: &mut RawClient, user: &str, password: &str) -> (Duration, bool) {
    let creds = Credentials::default()
        .with_username(user)
        .with_password(password);
    let mut mech = Plain::from_credentials(creds).expect("PLAIN");
    let start = Instant::now();
    auth(c, "PLAIN", &mech.initial()).await;
    let answer = c.read_element(WAIT).await.expect("an answer");
    (start.elapsed(), local_name(&answer) == "success")
}

/// `switchboard_auth_delayed_total{by="…"}` right now.
async fn delayed(server: &TestServer, by: &str) -> f64 {
    let mut tcp = tokio::net::TcpStream::connect(server.listener("metrics"))
        .await
        .expect("connect to metrics");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the metrics endpoint answers")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let samples: HashMap<&str, f64> = text
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let key = format!("switchboard_auth_delayed_total{{by=\"{by}\"}}");
    *samples
        .get(key.as_str())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn delaying_server(auth_delay: &str) -> TestServer {
    ServerBuilder::new()
        .config(r#"<metrics addr="127.0.0.1:0"/>"#)
        .also(auth_delay)
        .user("alice@localhost", PASSWORD)
        .user("bob@localhost", PASSWORD)
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_from_one_address_are_answered_ever_more_slowly() {
    let server = delaying_server(
        r#"<auth-delay><address after="2" first="2s" max="4s"/><account max="0s"/></auth-delay>"#,
    );
    let by_address = |s| async move { delayed(s, "address").await };
    let (mut c, _) = ready_for_sasl(&server).await;
    // Two free failures.
    for _ in 0..2 {
        let (_, ok) = attempt(&mut c, "alice", "guess").await;
        assert!(!ok);
    }
    assert_eq!(by_address(&server).await, 0.0, "the first two do not wait");
    // The third waits the first delay (and closes the stream: three
    // failures per connection).
    let (took, ok) = attempt(&mut c, "alice", "guess").await;
    assert!(!ok);
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert_eq!(by_address(&server).await, 1.0);
    c.read_to_close(WAIT)
        .await
        .expect("closed after three failures");

    // A new connection from the same address does not start afresh: the
    // next attempt waits twice as long, the maximum.
    let (mut c, _) = ready_for_sasl(&server).await;
    let (took, ok) = attempt(&mut c, "bob", "guess").await;
    assert!(!ok);
    assert!(took >= Duration::from_secs(4), "took {took:?}");
    // The right password waits as well, so a guesser cannot tell success
    // by its speed; then it gets in (PLAIN is delayed the same way).
    let (took, ok) = attempt_plain(&mut c, "alice", PASSWORD).await;
    assert!(ok, "the right password still logs in");
    assert!(took >= Duration::from_secs(4), "took {took:?}");
    assert_eq!(by_address(&server).await, 3.0);

    // Another address is not held up by this one's failures.
    let (mut c, _) = ready_for_sasl_from(&server, ELSEWHERE).await;
    let (_, ok) = attempt(&mut c, "bob", PASSWORD).await;
    assert!(ok);
    assert_eq!(by_address(&server).await, 3.0, "not delayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_being_guessed_at_slows_its_owner_a_little_and_never_locks_them_out() {
    let server = delaying_server(
        r#"<auth-delay><address max="0s"/><account after="2" first="2s" max="2s"/></auth-delay>"#,
    );
    let (mut c, _) = ready_for_sasl(&server).await;
    for _ in 0..3 {
        let (_, ok) = attempt(&mut c, "alice", "guess").await;
        assert!(!ok);
    }
    assert_eq!(delayed(&server, "account").await, 1.0, "the third waited");

    // The owner, from another address, waits the account's short delay
    // and gets in: a pause, not a lock-out.
    let (mut c, _) = ready_for_sasl_from(&server, ELSEWHERE).await;
    let (took, ok) = attempt(&mut c, "alice", PASSWORD).await;
    assert!(ok, "the owner is never locked out");
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert_eq!(delayed(&server, "account").await, 2.0);

    // Other accounts are not slowed, from any address.
    let (mut c, _) = ready_for_sasl(&server).await;
    let (_, ok) = attempt(&mut c, "bob", PASSWORD).await;
    assert!(ok);
    assert_eq!(delayed(&server, "account").await, 2.0, "bob did not wait");
    assert_eq!(delayed(&server, "address").await, 0.0);
}
