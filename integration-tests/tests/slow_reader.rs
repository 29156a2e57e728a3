//! A client that stops reading while others keep sending to it: the server
//! disconnects it promptly (instead of holding its socket, its buffers and
//! its senders' stanzas), keeps serving everyone else, and every message is
//! accounted for: delivered (it reached the client's socket whole), stored
//! offline for its next session, or bounced to its sender — none lost.
//!
//! Over STARTTLS on purpose: with TLS a write can be taken into the TLS
//! layer's buffer and the flush be what blocks, which once kept a stalled
//! session open for the whole 60 s write timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

/// Whether `jid` is among the sessions the admin socket lists.
fn online(server: &TestServer, jid: &str) -> bool {
    let out = server.cli(&["users", "online"], None);
    assert!(out.status.success(), "{out}");
    out.stdout.lines().any(|l| l == jid)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_every_message_is_accounted_for() {
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
    // back to her (bounces) between batches so that she is not a slow
    // reader too.
    let body = "x".repeat(4000);
    let mut sent = Vec::new();
    let mut bounced = BTreeSet::new();
    let started = Instant::now();
    let mut gone_after = None;
    'sending: for round in 0..200 {
        for i in 0..50 {
            let id = format!("m{round}-{i}");
            alice
                .send(&format!(
                    "<message to='bob@localhost/stalled' type='chat' id='{id}'><body>{body}</body></message>"
                ))
                .await
                .expect("the server keeps reading alice");
            sent.push(id);
        }
        while let Ok(el) = alice.read_element(Duration::from_millis(5)).await {
            note_bounce(&el, &mut bounced);
        }
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

    // Everyone else is still served, and one more message goes to bob
    // after the drop.
    alice
        .send("<message to='bob@localhost' type='chat' id='after'><body>after the drop</body></message>")
        .await
        .unwrap();
    sent.push("after".into());
    alice
        .send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    loop {
        let el = alice
            .read_element(WAIT)
            .await
            .expect("alice is still served");
        if attr(&el, "id").as_deref() == Some("sync") {
            assert_eq!(attr(&el, "type").as_deref(), Some("result"), "{el}");
            break;
        }
        note_bounce(&el, &mut bounced);
    }

    // What reached bob's old socket whole: he reads it now.
    let old = bob.read_to_close(WAIT).await.unwrap_or_else(|e| match e {
        switchboard_integration_tests::RawError::Closed { received, .. } => received,
        other => panic!("bob's old connection: {other}"),
    });
    let delivered = ids_of_whole_messages(&old);

    // What waits offline: his next session gets it, before the answer to
    // a ping sent after the presence that releases it.
    let mut bob = RawClient::login(server.c2s(), tls, "bob", "bob-pw", "again")
        .await
        .expect("bob logs in again");
    bob.send("<presence/>").await.unwrap();
    bob.send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let mut offline = Vec::new();
    loop {
        let el = bob
            .read_element(WAIT)
            .await
            .expect("bob's offline messages");
        if attr(&el, "id").as_deref() == Some("done") {
            break;
        }
        if local_name(&el) == "message" {
            assert!(el.contains("urn:xmpp:delay"), "with a delay stamp");
            offline.push(attr(&el, "id").unwrap());
        }
    }
    let offline_set: BTreeSet<&String> = offline.iter().collect();
    assert_eq!(offline_set.len(), offline.len(), "nothing stored twice");
    // In the order alice sent them: what bob's outbox still held when the
    // server gave up on him comes before what was stored after.
    let position: std::collections::HashMap<&String, usize> =
        sent.iter().enumerate().map(|(i, id)| (id, i)).collect();
    let out_of_order: Vec<_> = offline
        .windows(2)
        .filter(|w| position[&w[0]] > position[&w[1]])
        .collect();
    assert!(
        out_of_order.is_empty(),
        "offline messages out of the order they were sent in: {:?}",
        &out_of_order[..out_of_order.len().min(5)]
    );
    let lost: Vec<&String> = sent
        .iter()
        .filter(|id| {
            !delivered.contains(*id) && !offline_set.contains(id) && !bounced.contains(*id)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} messages neither delivered ({}), stored ({}) nor bounced ({}): {:?}",
        lost.len(),
        sent.len(),
        delivered.len(),
        offline.len(),
        bounced.len(),
        &lost[..lost.len().min(20)]
    );
    // Offline storage has a quota (what did not fit went back to alice
    // with an error saying so, checked in note_bounce); some fit.
    assert!(!offline.is_empty(), "some messages waited offline");
}

/// Records the id of a message bounced to its sender.
fn note_bounce(el: &str, bounced: &mut BTreeSet<String>) {
    if local_name(el) == "message" && attr(el, "type").as_deref() == Some("error") {
        assert!(
            el.contains("resource-constraint"),
            "a bounce says the recipient's storage is full: {el}"
        );
        bounced.insert(attr(el, "id").expect("a bounce keeps the id"));
    }
}

/// The ids of the messages that arrived whole in `text`.
fn ids_of_whole_messages(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("<message ") {
        let Some(end) = rest[start..].find("</message>") else {
            break;
        };
        let el = &rest[start..start + end];
        if let Some(id) = attr(el, "id") {
            ids.insert(id);
        }
        rest = &rest[start + end..];
    }
    ids
}
