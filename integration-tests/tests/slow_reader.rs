//! A client that stops reading while others keep sending to it: the server
//! disconnects it promptly (instead of holding its socket, its buffers and
//! its senders' stanzas), keeps serving everyone else, and what arrives for
//! the account afterwards is stored offline, not lost.
//!
//! Over STARTTLS on purpose: with TLS a write can be taken into the TLS
//! layer's buffer and the flush be what blocks, which once kept a stalled
//! session open for the whole 60 s write timeout.

use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};

/// Whether `jid` is among the sessions the admin socket lists.
fn online(server: &TestServer, jid: &str) -> bool {
    let out = server.cli(&["users", "online"], None);
    assert!(out.status.success(), "{out}");
    out.stdout.lines().any(|l| l == jid)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_later_messages_wait_offline() {
    let server = ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let tls = server.tls_config();
    let mut bob = RawClient::login(server.c2s(), tls.clone(), "bob", "bob-pw", "stalled")
        .await
        .expect("bob logs in");
    bob.send("<presence/>").await.unwrap();
    let mut alice = RawClient::login(server.c2s(), tls.clone(), "alice", "alice-pw", "desk")
        .await
        .expect("alice logs in");
    assert!(online(&server, "bob@localhost/stalled"));

    // From here on bob reads nothing. Alice sends 4 KB messages until the
    // server has dropped bob's session (at most 40 MB: far more than the
    // socket buffers and bob's outbox hold together), reading what comes
    // back to her between batches so that she is not a slow reader too.
    let body = "x".repeat(4000);
    let started = Instant::now();
    let mut gone_after = None;
    'sending: for round in 0..200 {
        for i in 0..50 {
            alice
                .send(&format!(
                    "<message to='bob@localhost/stalled' type='chat' id='m{round}-{i}'><body>{body}</body></message>"
                ))
                .await
                .expect("the server keeps reading alice");
        }
        while alice.read_element(Duration::from_millis(5)).await.is_ok() {}
        if !online(&server, "bob@localhost/stalled") {
            gone_after = Some(started.elapsed());
            break 'sending;
        }
    }
    let gone_after = gone_after.unwrap_or_else(|| {
        panic!(
            "bob's session is still bound after {:?} of not reading\n{}",
            started.elapsed(),
            server.diagnostics()
        )
    });
    // The write timeout for a client that reads slowly is 60 s; a client
    // the router gave up on must not wait for it.
    assert!(
        gone_after < Duration::from_secs(30),
        "bob was disconnected only after {gone_after:?}"
    );
    assert!(
        server
            .log_text()
            .contains("outbox full: disconnecting a session that does not read"),
        "the reason is logged\n{}",
        server.diagnostics()
    );

    // Everyone else is still served.
    let pong = alice.ping(HOST).await.expect("alice is still served");
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");

    // A message for bob now waits offline and reaches his next session.
    while alice.read_element(Duration::from_millis(5)).await.is_ok() {}
    alice
        .send("<message to='bob@localhost' type='chat' id='after'><body>after the drop</body></message>")
        .await
        .unwrap();
    let pong = alice.ping(HOST).await.expect("alice is still served");
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");
    drop(bob);
    let mut bob = RawClient::login(server.c2s(), tls, "bob", "bob-pw", "again")
        .await
        .expect("bob logs in again");
    bob.send("<presence/>").await.unwrap();
    bob.read_until("after the drop", WAIT)
        .await
        .expect("the message sent after the drop is delivered from offline storage");
    let rest = bob.read_until("</message>", WAIT).await.unwrap();
    assert!(
        rest.contains("urn:xmpp:delay"),
        "with a delay stamp: {rest}"
    );
}
