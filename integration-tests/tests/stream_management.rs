//! Stream management (XEP-0198) as a phone sees it: acknowledgements in
//! both directions, a connection that drops and is resumed without losing
//! or repeating a message, a session that is not resumed in time and whose
//! messages wait offline, and the resumptions the server must refuse.
//!
//! The clients here are scripted byte by byte ([`RawClient`]) so that each
//! test decides exactly what it acknowledges and when its socket dies.
//! Dropping a `RawClient` closes its TCP connection without a stream close
//! or a TLS close_notify: what a phone losing its network looks like to
//! the server.

use std::time::Duration;

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};

const SM: &str = "urn:xmpp:sm:3";

/// A connection through STARTTLS and SASL, not yet bound; with the
/// features offered after authentication.
async fn authenticated(server: &TestServer, user: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    c.starttls(server.tls_config()).await.unwrap();
    let features = c.open_stream(HOST).await.unwrap();
    c.authenticate(&features, user, &format!("{user}-pw"))
        .await
        .unwrap();
    let features = c.open_stream(HOST).await.unwrap();
    (c, features)
}

/// `user`, bound to `resource`, with stream management enabled (and
/// resumable if `resume`); returns the `<enabled/>`.
async fn managed(
    server: &TestServer,
    user: &str,
    resource: &str,
    resume: bool,
) -> (RawClient, String) {
    let (mut c, features) = authenticated(server, user).await;
    c.bind(&features, resource).await.unwrap();
    let ask = if resume { " resume='true'" } else { "" };
    c.send(&format!("<enable xmlns='{SM}'{ask}/>"))
        .await
        .unwrap();
    let enabled = next(&mut c).await;
    assert_eq!(local_name(&enabled), "enabled", "{enabled}");
    (c, enabled)
}

/// The next top-level element, whitespace keepalives skipped.
async fn next(c: &mut RawClient) -> String {
    c.read_element(WAIT)
        .await
        .unwrap_or_else(|e| panic!("waiting for the next element: {e}"))
}

/// The next element, which must be a message with `id`.
async fn message(c: &mut RawClient, id: &str) -> String {
    let el = next(c).await;
    assert!(
        local_name(&el) == "message" && attr(&el, "id").as_deref() == Some(id),
        "expected message {id}, got {el}"
    );
    el
}

/// A ping round trip whose answer must be the very next stanza, and a
/// result: nothing else arrived before it.
async fn barrier(c: &mut RawClient) {
    let id = c.new_id("barrier");
    c.send(&format!(
        "<iq type='get' id='{id}' to='{HOST}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await
    .unwrap();
    let reply = next(c).await;
    assert!(
        attr(&reply, "id").as_deref() == Some(id.as_str())
            && attr(&reply, "type").as_deref() == Some("result"),
        "expected the answer to ping {id}, got {reply}"
    );
}

/// Sends a chat message from `c` to `to` and proves with a barrier that
/// the server took it without an error for the sender.
async fn send_chat(c: &mut RawClient, to: &str, id: &str) {
    c.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await
    .unwrap();
    barrier(c).await;
}

fn server() -> TestServer {
    ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

async fn bob(server: &TestServer) -> RawClient {
    RawClient::login(server.c2s(), server.tls_config(), "bob", "bob-pw", "desk")
        .await
        .unwrap()
}

#[tokio::test]
async fn acknowledgements_count_every_stanza_both_ways() {
    let server = server();
    let (mut alice, features) = authenticated(&server, "alice").await;
    assert!(
        features.contains(SM),
        "offered after authentication: {features}"
    );
    // XEP-0198 §3: not before a resource is bound.
    alice
        .send(&format!("<enable xmlns='{SM}'/>"))
        .await
        .unwrap();
    let refused = next(&mut alice).await;
    assert!(
        local_name(&refused) == "failed" && refused.contains("unexpected-request"),
        "{refused}"
    );
    alice.bind(&features, "phone").await.unwrap();
    alice
        .send(&format!("<enable xmlns='{SM}'/>"))
        .await
        .unwrap();
    let enabled = next(&mut alice).await;
    assert_eq!(local_name(&enabled), "enabled");
    assert_eq!(attr(&enabled, "id"), None, "not resumable unless asked");
    alice
        .send(&format!("<enable xmlns='{SM}'/>"))
        .await
        .unwrap();
    let twice = next(&mut alice).await;
    assert!(twice.contains("unexpected-request"), "{twice}");

    // Two pings the router answers and one stanza the stream itself
    // refuses (a malformed address): three handled, three answers.
    alice
        .send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice
        .send("<message to='a@b@c' id='bad'><body>x</body></message>")
        .await
        .unwrap();
    alice
        .send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice.send(&format!("<r xmlns='{SM}'/>")).await.unwrap();
    // The answers and the `<a/>` come in no particular order: `h` counts
    // what the server has handled (taken on), not what it has answered.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut alice).await);
    }
    let find = |pred: &dyn Fn(&String) -> bool| {
        got.iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("not among {got:?}"))
            .clone()
    };
    find(&|e| attr(e, "id").as_deref() == Some("p1") && e.contains("result"));
    find(&|e| attr(e, "id").as_deref() == Some("p2") && e.contains("result"));
    find(&|e| attr(e, "id").as_deref() == Some("bad") && e.contains("jid-malformed"));
    let a = find(&|e| local_name(e) == "a");
    assert_eq!(attr(&a, "h").as_deref(), Some("3"));
    alice
        .send(&format!("<a xmlns='{SM}' h='3'/>"))
        .await
        .unwrap();

    // Five messages unacknowledged: the server asks.
    let mut bob = bob(&server).await;
    for i in 1..=5 {
        send_chat(&mut bob, "alice@localhost/phone", &format!("m{i}")).await;
    }
    for i in 1..=5 {
        message(&mut alice, &format!("m{i}")).await;
    }
    let r = next(&mut alice).await;
    assert_eq!(local_name(&r), "r", "{r}");
    alice
        .send(&format!("<a xmlns='{SM}' h='8'/>"))
        .await
        .unwrap();
    // The session goes on.
    barrier(&mut alice).await;

    // Acknowledging more than was sent is a stream error (XEP-0198 §4).
    alice
        .send(&format!("<a xmlns='{SM}' h='100'/>"))
        .await
        .unwrap();
    let rest = alice.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("undefined-condition"), "{rest}");
    assert!(rest.contains("handled-count-too-high"), "{rest}");
    assert!(
        rest.contains("send-count='9'") || rest.contains("send-count=\"9\""),
        "{rest}"
    );
}

#[tokio::test]
async fn a_resumed_session_gets_what_it_missed_once_and_in_order() {
    let server = server();
    let mut bob = bob(&server).await;
    let (mut alice, enabled) = managed(&server, "alice", "phone", true).await;
    let id = attr(&enabled, "id").expect("a resumption id");
    assert_eq!(attr(&enabled, "resume").as_deref(), Some("true"));
    assert_eq!(attr(&enabled, "max").as_deref(), Some("600"));

    for i in 1..=3 {
        send_chat(&mut bob, "alice@localhost/phone", &format!("m{i}")).await;
    }
    for i in 1..=3 {
        message(&mut alice, &format!("m{i}")).await;
    }
    // Alice handled one, and her network goes.
    alice
        .send(&format!("<a xmlns='{SM}' h='1'/>"))
        .await
        .unwrap();
    alice
        .send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let sync = next(&mut alice).await;
    assert_eq!(attr(&sync, "id").as_deref(), Some("sync"));
    drop(alice);
    server.wait_for_log(&["session hibernates", "alice@localhost"]);

    // Meanwhile the session is still there: bob's message waits for it.
    assert!(server
        .cli(&["users", "online"], None)
        .stdout
        .lines()
        .any(|l| l == "alice@localhost/phone"));
    send_chat(&mut bob, "alice@localhost/phone", "m4").await;

    let (mut alice, _) = authenticated(&server, "alice").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='1'/>"))
        .await
        .unwrap();
    let resumed = next(&mut alice).await;
    assert_eq!(local_name(&resumed), "resumed", "{resumed}");
    assert_eq!(attr(&resumed, "previd").as_deref(), Some(id.as_str()));
    // Alice had sent the server one stanza (the ping).
    assert_eq!(attr(&resumed, "h").as_deref(), Some("1"));
    // The sync ping's answer (the 4th stanza) and m2, m3 were never
    // acknowledged; m4 arrived while she was away.
    message(&mut alice, "m2").await;
    message(&mut alice, "m3").await;
    let again = next(&mut alice).await;
    assert_eq!(attr(&again, "id").as_deref(), Some("sync"), "{again}");
    message(&mut alice, "m4").await;
    alice
        .send(&format!("<a xmlns='{SM}' h='5'/>"))
        .await
        .unwrap();

    // The same session goes on: same full JID, both directions.
    alice
        .send("<message to='bob@localhost/desk' type='chat' id='back'><body>back</body></message>")
        .await
        .unwrap();
    let back = next(&mut bob).await;
    assert_eq!(
        attr(&back, "from").as_deref(),
        Some("alice@localhost/phone"),
        "{back}"
    );
    send_chat(&mut bob, "alice@localhost/phone", "m5").await;
    message(&mut alice, "m5").await;
    // Nothing else came.
    barrier(&mut alice).await;
}

#[tokio::test]
async fn a_session_not_resumed_in_time_ends_and_its_messages_wait_offline() {
    let server = ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .config(r#"<limits resume-timeout="1s"/>"#)
        .start();
    let mut bob = bob(&server).await;
    let (mut alice, enabled) = managed(&server, "alice", "phone", true).await;
    let id = attr(&enabled, "id").unwrap();
    assert_eq!(
        attr(&enabled, "max").as_deref(),
        Some("1"),
        "the server's limit"
    );
    send_chat(&mut bob, "alice@localhost/phone", "m1").await;
    send_chat(&mut bob, "alice@localhost/phone", "m2").await;
    message(&mut alice, "m1").await;
    drop(alice);
    server.wait_for_log(&["hibernation ended; the session ends"]);
    server.wait_for_log(&["session ended", "alice@localhost/phone"]);
    send_chat(&mut bob, "alice@localhost/phone", "m3").await;

    // Too late to resume.
    let (mut alice, features) = authenticated(&server, "alice").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await
        .unwrap();
    let failed = next(&mut alice).await;
    assert!(
        local_name(&failed) == "failed" && failed.contains("item-not-found"),
        "{failed}"
    );
    // The client binds afresh on the same stream and finds every message
    // (the unacknowledged m1 too) in offline storage, each once.
    alice.bind(&features, "phone").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    alice
        .send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    // Offline messages come before the answer to a ping sent after the
    // presence that releases them; so would a copy.
    let mut ids = Vec::new();
    loop {
        let el = next(&mut alice).await;
        match local_name(&el).as_str() {
            "message" => ids.push(attr(&el, "id").unwrap()),
            "iq" if attr(&el, "id").as_deref() == Some("done") => break,
            _ => {}
        }
    }
    assert_eq!(ids, ["m1", "m2", "m3"]);
}

#[tokio::test]
async fn resumption_is_refused_when_it_must_be() {
    let server = server();

    // An id nobody was given; afterwards the stream binds as usual.
    let (mut c, features) = authenticated(&server, "alice").await;
    c.send(&format!("<resume xmlns='{SM}' previd='made-up' h='0'/>"))
        .await
        .unwrap();
    let failed = next(&mut c).await;
    assert!(failed.contains("item-not-found"), "{failed}");
    c.bind(&features, "other").await.unwrap();
    // Once bound, there is nothing to resume into.
    c.send(&format!("<resume xmlns='{SM}' previd='made-up' h='0'/>"))
        .await
        .unwrap();
    let failed = next(&mut c).await;
    assert!(failed.contains("unexpected-request"), "{failed}");
    drop(c);

    // Another account's session.
    let (alice, enabled) = managed(&server, "alice", "phone", true).await;
    let id = attr(&enabled, "id").unwrap();
    drop(alice);
    server.wait_for_log(&["session hibernates", "alice@localhost"]);
    let (mut mallory, _) = authenticated(&server, "bob").await;
    mallory
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await
        .unwrap();
    let failed = next(&mut mallory).await;
    assert!(failed.contains("item-not-found"), "{failed}");
    // It is still alice's to resume.
    let (mut alice, _) = authenticated(&server, "alice").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await
        .unwrap();
    let resumed = next(&mut alice).await;
    assert_eq!(local_name(&resumed), "resumed", "{resumed}");

    // A session closed cleanly is over: its id resumes nothing.
    alice.send("</stream:stream>").await.unwrap();
    alice.read_to_close(WAIT).await.unwrap();
    server.wait_for_log(&["session ended", "alice@localhost/phone"]);
    let (mut alice, _) = authenticated(&server, "alice").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await
        .unwrap();
    let failed = next(&mut alice).await;
    assert!(failed.contains("item-not-found"), "{failed}");
}

#[tokio::test]
async fn resuming_while_the_old_connection_looks_alive_takes_the_session_over() {
    let server = server();
    let mut bob = bob(&server).await;
    let (mut old, enabled) = managed(&server, "alice", "phone", true).await;
    let id = attr(&enabled, "id").unwrap();
    send_chat(&mut bob, "alice@localhost/phone", "m1").await;
    message(&mut old, "m1").await;

    // The phone moved networks; the server has not noticed the old socket
    // is dead (here it is not even dead).
    let (mut new, _) = authenticated(&server, "alice").await;
    new.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await
        .unwrap();
    let resumed = next(&mut new).await;
    assert_eq!(local_name(&resumed), "resumed", "{resumed}");
    message(&mut new, "m1").await;
    let rest = old.read_to_close(Duration::from_secs(10)).await.unwrap();
    assert!(
        rest.contains("conflict"),
        "the old connection is told why: {rest}"
    );

    send_chat(&mut bob, "alice@localhost/phone", "m2").await;
    message(&mut new, "m2").await;
    barrier(&mut new).await;
}

#[tokio::test]
async fn a_flood_of_ack_requests_is_answered_in_order_and_troubles_nobody_else() {
    let server = server();
    let mut bob = bob(&server).await;
    let (mut alice, _) = managed(&server, "alice", "phone", false).await;
    const FLOOD: usize = 2000;
    alice
        .send(&format!("<r xmlns='{SM}'/>").repeat(FLOOD))
        .await
        .unwrap();
    // Everyone else is served meanwhile.
    send_chat(&mut bob, "alice@localhost/phone", "m1").await;
    let mut acks = 0;
    let mut got_message = false;
    while acks < FLOOD || !got_message {
        let el = next(&mut alice).await;
        match local_name(&el).as_str() {
            "a" => {
                // Nothing of alice's was handled yet: every answer says 0.
                assert_eq!(attr(&el, "h").as_deref(), Some("0"), "{el}");
                acks += 1;
            }
            "message" => got_message = true,
            other => panic!("unexpected <{other}/>: {el}"),
        }
    }
    barrier(&mut alice).await;
}
