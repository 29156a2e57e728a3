//! Client state indication (XEP-0352): a phone that goes inactive is
//! spared presence and typing notifications until a message comes or it is
//! active again; nothing is lost or reordered.

use switchboard_integration_tests::raw::{attr, local_name, RawClient};
use switchboard_integration_tests::{Client, HOST};

use crate::{chat, message_with, online, password, start};

#[tokio::test]
async fn a_phone_goes_inactive_and_active_again() {
    let server = start(&["alice", "bob", "carol"]);
    // Alice logs in by hand to see the stream features after login.
    let mut raw = RawClient::connect(server.c2s()).await.unwrap();
    raw.open_stream(HOST).await.unwrap();
    raw.starttls(server.tls_config()).await.unwrap();
    let features = raw.open_stream(HOST).await.unwrap();
    raw.authenticate(&features, "alice", &password("alice"))
        .await
        .unwrap();
    let features = raw.open_stream(HOST).await.unwrap();
    assert!(
        features.contains("<csi xmlns=\"urn:xmpp:csi:0\"/>"),
        "{features}"
    );
    raw.bind(&features, "phone").await.unwrap();
    let mut phone = Client::from_raw(raw);
    phone
        .iq("get", None, "<query xmlns='jabber:iq:roster'/>")
        .await;
    phone.available(0, "").await;
    let mut bob = online(&server, "bob", "home", 0).await;
    let mut carol = online(&server, "carol", "home", 0).await;

    phone.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    // The server has taken <inactive/> once the phone's ping is answered
    // (nothing is held yet, so the answer lets nothing go).
    phone.barrier().await;
    // Directed presence twice from Bob (only the latest is kept), Carol
    // typing: all held. (No barrier from here on: like any stanza that
    // matters, its answer would let them go.)
    // Each sender's round trip puts its stanza in the phone's queue before
    // the next one is sent.
    bob.send("<presence to='alice@localhost/phone'><show>away</show></presence>")
        .await;
    bob.sync().await;
    carol
        .send("<message to='alice@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    carol.sync().await;
    bob.send("<presence to='alice@localhost/phone'><show>xa</show></presence>")
        .await;
    bob.sync().await;

    // A message with a body comes at once, after what was held, in order;
    // Bob's first presence was superseded and never comes.
    chat(&mut carol, "alice@localhost/phone", "c1", "are you there?").await;
    let got = phone
        .expect_in_order(&[
            ("carol typing", &|e: &str| e.contains("<composing")),
            ("bob's latest presence", &|e: &str| {
                local_name(e) == "presence" && e.contains("<show>xa</show>")
            }),
            ("carol's message", &message_with("are you there?")),
        ])
        .await;
    assert_eq!(got.len(), 3);
    phone.barrier().await;

    // Held again, then let go by <active/>.
    carol
        .send("<message to='alice@localhost/phone' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    carol.sync().await;
    phone.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    let p = phone
        .expect("carol's paused", |e: &str| e.contains("<paused"))
        .await;
    assert_eq!(attr(&p, "from").as_deref(), Some("carol@localhost/home"));
    // Active: presence is not held any more.
    bob.send("<presence to='alice@localhost/phone'/>").await;
    phone
        .expect("bob's presence", |e: &str| {
            local_name(e) == "presence" && attr(e, "from").as_deref() == Some("bob@localhost/home")
        })
        .await;
    phone.barrier().await;
}

#[tokio::test]
async fn what_an_inactive_session_holds_is_not_lost_when_it_ends() {
    let server = start(&["alice", "bob"]);
    let mut phone = online(&server, "alice", "phone", 0).await;
    let mut bob = online(&server, "bob", "home", 0).await;
    phone.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    phone.barrier().await;
    // A chat state only: held. The phone then goes away without reading.
    bob.send("<message to='alice@localhost' type='chat' id='t1'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    bob.sync().await;
    phone.close(&server).await;
    // It went on as for an absent resource: stored offline, and the next
    // session gets it.
    bob.sync_account_of("alice@localhost").await;
    let mut desk = online(&server, "alice", "desk", 0).await;
    desk.expect("the held message", |e: &str| e.contains("<gone"))
        .await;
    desk.account_barrier().await;
}
