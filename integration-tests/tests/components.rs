//! External components (XEP-0114) attached to the real binary, driven by a
//! scripted component over a raw socket: the handshake and its failures,
//! routing both ways, `from` checking, one connection per hostname, what
//! users see while a component is away, and the admin's notice.
//!
//! Real third-party components (a slixmpp component and biboumi) are run
//! against the server by `.ci/run` (see `peers/`).

use std::net::SocketAddr;

use sha1::{Digest, Sha1};
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, RawClient, ServerBuilder, TestServer, WAIT};

const SECRET: &str = "component-secret-42";
const COMPONENT: &str = "gw.localhost";

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

/// alice@localhost/desk, online.
async fn alice(server: &TestServer) -> Client {
    let mut c = Client::login(server, "alice", "alice-pw", "desk").await;
    c.available(0, "").await;
    c
}

/// A stanza whose text contains `part`.
fn containing(part: &str) -> impl Fn(&str) -> bool + '_ {
    move |e: &str| e.contains(part)
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
        .await;
    let got = comp.read_until("hello legacy", WAIT).await.unwrap();
    assert!(got.contains(r#"from="alice@localhost/desk""#), "{got}");
    // The component sees its own namespace, not jabber:client.
    assert!(!got.contains("jabber:client"), "{got}");

    comp.send(&format!(
        "<message from='bob%irc.example@{COMPONENT}' to='alice@localhost/desk' type='chat'><body>hi back</body></message>"
    ))
    .await
    .unwrap();
    let got = alice.expect("bob's answer", containing("hi back")).await;
    assert!(
        got.contains(&format!(r#"from="bob%irc.example@{COMPONENT}""#)),
        "{got}"
    );
    alice.barrier().await;
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
        .await;
    let iq = comp.read_until("jabber:iq:version", WAIT).await.unwrap();
    assert_eq!(attr(&iq, "id").as_deref(), Some("v1"), "{iq}");
    comp.send(&format!(
        "<iq type='result' id='v1' from='{COMPONENT}' to='alice@localhost/desk'>\
         <query xmlns='jabber:iq:version'><name>gw</name></query></iq>"
    ))
    .await
    .unwrap();
    let reply = alice
        .expect("the component's answer", |e| {
            attr(e, "id").as_deref() == Some("v1")
        })
        .await;
    assert_eq!(attr(&reply, "type").as_deref(), Some("result"));
    assert!(reply.contains("<name>gw</name>"), "{reply}");
    alice.barrier().await;
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
        .await;
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
    // The component's connection has finished with the forgery (it closed
    // the stream over it); had it been routed to alice, it would be in
    // her session's queue before the answer to her ping.
    alice.barrier().await;
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
        .await;
    let err = alice
        .expect("the bounce", |e| attr(e, "id").as_deref() == Some("early"))
        .await;
    assert_eq!(attr(&err, "type").as_deref(), Some("error"), "{err}");
    assert!(err.contains("remote-server-timeout"), "{err}");

    // Connected, then gone: the server logs the departure once it has
    // emptied the component's slot.
    let (mut comp, _) = attach(server.listener("component"), COMPONENT, SECRET).await;
    comp.send("</stream:stream>").await.unwrap();
    comp.read_to_close(WAIT).await.unwrap();
    server.wait_for_log(&["component disconnected", COMPONENT]);
    alice
        .send(&format!(
            "<iq type='get' id='late' to='{COMPONENT}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let err = alice
        .expect("the bounce", |e| attr(e, "id").as_deref() == Some("late"))
        .await;
    assert!(err.contains("remote-server-timeout"), "{err}");
    alice.barrier().await;

    // The admin finds the notice (stored offline, delivered at login).
    let mut boss = Client::login(&server, "boss", "boss-pw", "phone").await;
    boss.available(0, "").await;
    let notice = boss.expect("the notice", containing("disconnected")).await;
    assert!(notice.contains(COMPONENT), "{notice}");
    boss.account_barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_lists_the_component_in_disco_items() {
    let server = server();
    let mut alice = alice(&server).await;
    let items = alice
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert!(items.contains(&format!(r#"jid="{COMPONENT}""#)), "{items}");
    assert!(items.contains(r#"name="Test gateway""#), "{items}");
}
