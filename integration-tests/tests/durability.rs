//! An answer means the message is safe: when the server answers a client's
//! ping, or acknowledges its stanzas with XEP-0198, every message the client
//! sent before it has been delivered or written to disk. The server is
//! killed with SIGKILL (no shutdown, no flush) the moment the answer
//! arrives, started again on the same home, and every one of those
//! messages must be waiting for its (offline) recipient, once and in
//! order.

use std::time::Duration;

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

const MESSAGES: usize = 50;

fn builder(home: &std::path::Path) -> ServerBuilder {
    ServerBuilder::new().home(home)
}

async fn alice(server: &TestServer) -> RawClient {
    RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        "desk",
    )
    .await
    .unwrap()
}

/// Sends `MESSAGES` chat messages to the offline bob, in one write each
/// batch of ten so that most of them are still in flight when the answer
/// is asked for.
async fn send_to_bob(alice: &mut RawClient, prefix: &str) {
    for batch in 0..MESSAGES / 10 {
        let mut text = String::new();
        for i in batch * 10..batch * 10 + 10 {
            text.push_str(&format!(
                "<message to='bob@localhost' type='chat' id='{prefix}{i}'><body>{prefix} {i}</body></message>"
            ));
        }
        alice.send(&text).await.unwrap();
    }
}

/// Kills the server without warning, starts it again on the same home, and
/// returns the ids of the messages bob finds waiting.
async fn kill_restart_and_collect(mut server: TestServer, home: &std::path::Path) -> Vec<String> {
    server.signal(libc::SIGKILL);
    server
        .wait_exit(WAIT)
        .expect("the server dies at once on SIGKILL");
    let server = builder(home).start();
    let mut bob = RawClient::login(server.c2s(), server.tls_config(), "bob", "bob-pw", "phone")
        .await
        .unwrap();
    bob.send("<presence/>").await.unwrap();
    bob.send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let mut ids = Vec::new();
    loop {
        let el = bob.read_element(WAIT).await.unwrap();
        match local_name(&el).as_str() {
            "message" => ids.push(attr(&el, "id").unwrap()),
            "iq" if attr(&el, "id").as_deref() == Some("done") => break,
            _ => {}
        }
    }
    ids
}

fn expected(prefix: &str) -> Vec<String> {
    (0..MESSAGES).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn messages_before_an_answered_ping_survive_sigkill() {
    let home = tempfile::tempdir().unwrap();
    let server = builder(home.path())
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = alice(&server).await;
    send_to_bob(&mut alice, "p").await;
    alice
        .send("<iq type='get' id='safe' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let answer = alice.read_element(WAIT).await.unwrap();
    assert_eq!(attr(&answer, "id").as_deref(), Some("safe"), "{answer}");
    let ids = kill_restart_and_collect(server, home.path()).await;
    assert_eq!(ids, expected("p"));
}

#[tokio::test]
async fn messages_a_stream_management_ack_counts_survive_sigkill() {
    let home = tempfile::tempdir().unwrap();
    let server = builder(home.path())
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = alice(&server).await;
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    let enabled = alice.read_element(WAIT).await.unwrap();
    assert_eq!(local_name(&enabled), "enabled", "{enabled}");
    send_to_bob(&mut alice, "s").await;
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    let a = alice.read_element(Duration::from_secs(30)).await.unwrap();
    assert_eq!(local_name(&a), "a", "{a}");
    assert_eq!(attr(&a, "h"), Some(MESSAGES.to_string()));
    let ids = kill_restart_and_collect(server, home.path()).await;
    assert_eq!(ids, expected("s"));
}

/// A control for the two tests above: they would notice a server that
/// answers before storing. Without the ping the server is killed as soon
/// as the last message is written to the socket, and this test only
/// checks that whatever survived is a prefix, in order, with no copies —
/// so that a torn or duplicated log would fail here too.
#[tokio::test]
async fn whatever_survives_a_kill_without_an_answer_is_an_ordered_prefix() {
    let home = tempfile::tempdir().unwrap();
    let server = builder(home.path())
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = alice(&server).await;
    send_to_bob(&mut alice, "k").await;
    let ids = kill_restart_and_collect(server, home.path()).await;
    assert_eq!(ids, expected("k")[..ids.len()].to_vec());
}
