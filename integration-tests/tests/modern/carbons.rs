//! Message carbons (XEP-0280): a desk and a phone in sync.

use switchboard_integration_tests::raw::attr;

use crate::{assert_result, bare, chat, message_with, online, start};

#[tokio::test]
async fn two_devices_stay_in_sync() {
    let server = start(&["alice", "bob"]);
    let mut desk = online(&server, "alice", "desk", 1).await;
    let mut phone = online(&server, "alice", "phone", 0).await;
    let mut bob = online(&server, "bob", "home", 0).await;
    for c in [&mut desk, &mut phone] {
        let r = c
            .iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>")
            .await;
        assert_result(&r);
        assert_eq!(attr(&r, "from").as_deref(), Some("alice@localhost"));
    }
    // The other device's presence came too (through the account's actor);
    // not what this test is about.
    for c in [&mut desk, &mut phone] {
        c.sync_account().await;
        c.take_all(|e| e.starts_with("<presence"));
    }

    // Bob writes to Alice: the desk (highest priority) gets it, the phone
    // a <received/> copy.
    chat(&mut bob, &bare("alice"), "b1", "lunch?").await;
    desk.expect("bob's message", message_with("lunch?")).await;
    let copy = phone
        .expect("a received carbon", message_with("lunch?"))
        .await;
    assert_eq!(attr(&copy, "from").as_deref(), Some("alice@localhost"));
    assert_eq!(attr(&copy, "to").as_deref(), Some("alice@localhost/phone"));
    assert!(copy.contains(
        "<received xmlns=\"urn:xmpp:carbons:2\"><forwarded xmlns=\"urn:xmpp:forward:0\">"
    ));

    // Alice answers from the phone: Bob gets it, the desk a <sent/> copy.
    chat(&mut phone, &bare("bob"), "a1", "yes, at noon").await;
    bob.expect("alice's answer", message_with("yes, at noon"))
        .await;
    let sent = desk
        .expect("a sent carbon", message_with("yes, at noon"))
        .await;
    assert!(sent.contains("<sent xmlns=\"urn:xmpp:carbons:2\">"));

    // A private message is not copied.
    phone
        .send(&format!(
            "<message to='{}' type='chat' id='a2'><body>just us</body>\
             <private xmlns='urn:xmpp:carbons:2'/></message>",
            bare("bob")
        ))
        .await;
    let got = bob
        .expect("the private message", message_with("just us"))
        .await;
    assert!(!got.contains("private"), "<private/> is removed: {got}");
    phone.sync().await;
    bob.barrier().await;
    desk.barrier().await;
    phone.barrier().await;
}
