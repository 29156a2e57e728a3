//! The in-band registration limit (`registrations-per-address` on
//! `<limits>`) as a client on the server's own machine meets it: loopback
//! is on the default allow-list, so local scripts and test suites register
//! as many accounts as they need; with an allow-list that leaves loopback
//! out, the limit applies to it like to anyone (`resource-constraint`, type
//! `wait`), and a SIGHUP that puts loopback back lifts it.

use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};

const REGISTER_NS: &str = "jabber:iq:register";

/// The `<limits>` the tests use, with `extra` attributes added.
fn limits(extra: &str) -> String {
    format!(
        r#"<limits max-stanza-bytes="262144" preauth-timeout="60s" keepalive="60s" scram-iterations="4096" {extra}/>"#
    )
}

/// Registers `user` over a fresh connection from 127.0.0.1 (STARTTLS, no
/// login); returns the server's answer.
async fn register(server: &TestServer, user: &str) -> String {
    let mut c = RawClient::connect(server.c2s()).await.expect("connect");
    c.open_stream(HOST).await.expect("stream");
    c.starttls(server.tls_config()).await.expect("starttls");
    c.open_stream(HOST).await.expect("stream after TLS");
    let id = c.new_id("reg");
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='{REGISTER_NS}'><username>{user}</username><password>pw-{user}</password></query></iq>"
    ))
    .await
    .unwrap();
    c.read_id(&id, WAIT).await.expect("a registration answer")
}

#[track_caller]
fn assert_registered(answer: &str) {
    assert_eq!(attr(answer, "type").as_deref(), Some("result"), "{answer}");
}

#[track_caller]
fn assert_throttled(answer: &str) {
    assert_eq!(attr(answer, "type").as_deref(), Some("error"), "{answer}");
    assert!(
        answer.contains("<resource-constraint"),
        "resource-constraint: {answer}"
    );
    assert!(
        answer.contains(r#"type="wait""#),
        "an error to retry later: {answer}"
    );
}

fn users(server: &TestServer) -> String {
    let out = server.cli(&["user", "list", HOST], None);
    assert!(out.status.success(), "{out}");
    out.stdout
}

#[tokio::test]
async fn loopback_is_not_throttled_by_default() {
    // The default limit is 5 per address; loopback is exempt from it.
    let server = ServerBuilder::new().config(&limits("")).start();
    for i in 1..=8 {
        assert_registered(&register(&server, &format!("local{i}")).await);
    }
    let list = users(&server);
    for i in 1..=8 {
        assert!(list.contains(&format!("local{i}@{HOST}")), "{list}");
    }
}

#[tokio::test]
async fn an_allowlist_without_loopback_limits_it_until_a_reload_lists_it_again() {
    let limited = limits(r#"registrations-per-address="2" registration-allowlist="192.0.2.0/24""#);
    let server = ServerBuilder::new().config(&limited).start();
    assert_registered(&register(&server, "first").await);
    assert_registered(&register(&server, "second").await);
    assert_throttled(&register(&server, "third").await);
    assert!(!users(&server).contains("third@"), "refused, not created");

    // The admin puts loopback back on the list; SIGHUP applies it.
    let relaxed = limits(
        r#"registrations-per-address="2" registration-allowlist="192.0.2.0/24 127.0.0.0/8 ::1""#,
    );
    std::fs::write(
        server.config_path(),
        ServerBuilder::new().config(&relaxed).config_xml(),
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log(&["reloaded the config on SIGHUP"]);
    assert_registered(&register(&server, "third").await);
    assert!(users(&server).contains("third@"));
}
