//! External components (XEP-0114) attached to the real binary, driven by a
//! scripted component over a raw socket: the handshake and its failures,
//! routing both ways, `from` checking, one connection per hostname, what
//! users see while a component is away, and the admin's notice.
//!
//! Real third-party components (a slixmpp component and biboumi) are run
//! against the server by `.ci/run` (see `peers/`).

use std::net::SocketAddr;
use std::time::Duration;

use sha1::{Digest, Sha1};
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

const SECRET: &str = "component-secret-42";
const COMPONENT: &str = "gw.localhost";
const QUIET: Duration = Duration::from_millis(400);

fn server() -> TestServer {
    ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>"#)
        .config(r#"<host name="localhost"><admin>boss@localhost</admin><registration>open</registration></host>"#)
        .also(&format!(
            r#"<service id="{COMPONENT}" type="external" secret="{SECRET}" name="Test gateway"/>"#
        ))
        .user("alice@localhost", "alice-pw")
        .user("boss@localhost", "boss-pw")
        .start()
}

fn handshake_digest(id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(id.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens a component stream to `host` and sends the handshake for
/// `secret`; returns the connection and the server's answer.
async fn attach(addr: SocketAddr, host: &str, secret: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{host}'>"
    ))
    .await
    .unwrap();
    let header = c.read_stream_header(WAIT).await.unwrap();
    let id = header
        .split(" id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the server's header has an id")
        .to_string();
    c.send(&format!(
        "<handshake>{}</handshake>",
        handshake_digest(&id, secret)
    ))
    .await
    .unwrap();
    let answer = c.read_element(WAIT).await.unwrap();
    (c, answer)
}

async fn alice(server: &TestServer) -> RawClient {
    let mut c = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        "desk",
    )
    .await
    .unwrap();
    c.send("<presence/>").await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_through_a_component() {
    let server = server();
    let (mut comp, answer) = attach(server.listener("component"), COMPONENT, SECRET).await;
    assert_eq!(answer, "<handshake/>");
    let mut alice = alice(&server).await;

    alice
        .send(&format!(
            "<message to='bob%irc.example@{COMPONENT}' type='chat' id='m1'><body>hello legacy</body></message>"
        ))
        .await
        .unwrap();
    let got = comp.read_until("hello legacy", WAIT).await.unwrap();
    assert!(got.contains(r#"from="alice@localhost/desk""#), "{got}");
    // The component sees its own namespace, not jabber:client.
    assert!(!got.contains("jabber:client"), "{got}");

    comp.send(&format!(
        "<message from='bob%irc.example@{COMPONENT}' to='alice@localhost/desk' type='chat'><body>hi back</body></message>"
    ))
    .await
    .unwrap();
    let got = alice.read_until("hi back", WAIT).await.unwrap();
    assert!(
        got.contains(&format!(r#"from="bob%irc.example@{COMPONENT}""#)),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_round_trip_to_a_component() {
    let server = server();
    let (mut comp, _) = attach(server.listener("component"), COMPONENT, SECRET).await;
    let mut alice = alice(&server).await;
    alice
        .send(&format!(
            "<iq type='get' id='v1' to='{COMPONENT}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await
        .unwrap();
    let iq = comp.read_until("jabber:iq:version", WAIT).await.unwrap();
    assert_eq!(attr(&iq, "id").as_deref(), Some("v1"), "{iq}");
    comp.send(&format!(
        "<iq type='result' id='v1' from='{COMPONENT}' to='alice@localhost/desk'>\
         <query xmlns='jabber:iq:version'><name>gw</name></query></iq>"
    ))
    .await
    .unwrap();
    let reply = alice.read_id("v1", WAIT).await.unwrap();
    assert_eq!(attr(&reply, "type").as_deref(), Some("result"));
    assert!(reply.contains("<name>gw</name>"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_not_authorized() {
    let server = server();
    let (mut comp, answer) = attach(server.listener("component"), COMPONENT, "guess").await;
    assert_eq!(local_name(&answer), "error", "{answer}");
    assert!(answer.contains("not-authorized"), "{answer}");
    comp.read_to_close(WAIT).await.unwrap();
    // The slot stays free: the right secret still works.
    let (_comp, answer) = attach(server.listener("component"), COMPONENT, SECRET).await;
    assert_eq!(answer, "<handshake/>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_hostname_is_host_unknown() {
    let server = server();
    let mut c = RawClient::connect(server.listener("component"))
        .await
        .unwrap();
    c.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='nope.localhost'>",
    )
    .await
    .unwrap();
    let rest = c.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("host-unknown"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_for_the_same_hostname_gets_conflict() {
    let server = server();
    let (mut first, _) = attach(server.listener("component"), COMPONENT, SECRET).await;
    let (_second, answer) = attach(server.listener("component"), COMPONENT, SECRET).await;
    assert!(answer.contains("conflict"), "{answer}");
    // The first connection still works.
    let mut alice = alice(&server).await;
    alice
        .send(&format!(
            "<message to='{COMPONENT}'><body>still there?</body></message>"
        ))
        .await
        .unwrap();
    first.read_until("still there?", WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_speak_for_a_local_user() {
    let server = server();
    let (mut comp, _) = attach(server.listener("component"), COMPONENT, SECRET).await;
    let mut alice = alice(&server).await;
    comp.send(
        "<message from='boss@localhost' to='alice@localhost/desk'><body>forged</body></message>",
    )
    .await
    .unwrap();
    let rest = comp.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("invalid-from"), "{rest}");
    assert!(alice.read_until("forged", QUIET).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_component_is_away_users_get_remote_server_timeout_and_admins_a_notice() {
    let server = server();
    let mut alice = alice(&server).await;
    // Never connected yet.
    alice
        .send(&format!(
            "<message to='x@{COMPONENT}' id='early'><body>anyone?</body></message>"
        ))
        .await
        .unwrap();
    let err = alice.read_id("early", WAIT).await.unwrap();
    assert_eq!(attr(&err, "type").as_deref(), Some("error"), "{err}");
    assert!(err.contains("remote-server-timeout"), "{err}");

    // Connected, then gone.
    let (mut comp, _) = attach(server.listener("component"), COMPONENT, SECRET).await;
    comp.send("</stream:stream>").await.unwrap();
    comp.read_to_close(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice
        .send(&format!(
            "<iq type='get' id='late' to='{COMPONENT}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await
        .unwrap();
    let err = alice.read_id("late", WAIT).await.unwrap();
    assert!(err.contains("remote-server-timeout"), "{err}");

    // The admin finds the notice (stored offline, delivered at login).
    let mut boss = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "boss",
        "boss-pw",
        "phone",
    )
    .await
    .unwrap();
    boss.send("<presence/>").await.unwrap();
    let notice = boss.read_until("disconnected", WAIT).await.unwrap();
    assert!(notice.contains(COMPONENT), "{notice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_lists_the_component_in_disco_items() {
    let server = server();
    let mut alice = alice(&server).await;
    alice
        .send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await
        .unwrap();
    let items = alice.read_id("items", WAIT).await.unwrap();
    assert!(items.contains(&format!(r#"jid="{COMPONENT}""#)), "{items}");
    assert!(items.contains(r#"name="Test gateway""#), "{items}");
}
