//! Blocking (XEP-0191): a spammer the user blocks.

use switchboard_integration_tests::raw::attr;

use crate::{assert_error, assert_result, bare, chat, message_with, online, start};

const BLOCKING: &str = "urn:xmpp:blocking";

#[tokio::test]
async fn a_blocked_spammer_reaches_the_user_neither_online_nor_offline() {
    let server = start(&["alice", "spammer"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut phone = online(&server, "alice", "phone", 0).await;
    let mut spammer = online(&server, "spammer", "bot", 0).await;
    alice.sync_account().await;
    alice.take_all(|e| e.starts_with("<presence"));
    phone.sync_account().await;
    phone.take_all(|e| e.starts_with("<presence"));

    let list = phone
        .iq("get", None, &format!("<blocklist xmlns='{BLOCKING}'/>"))
        .await;
    assert!(
        list.contains(&format!("<blocklist xmlns=\"{BLOCKING}\"/>")),
        "{list}"
    );
    let r = alice
        .iq(
            "set",
            None,
            &format!("<block xmlns='{BLOCKING}'><item jid='spammer@localhost'/></block>"),
        )
        .await;
    assert_result(&r);
    let push = phone
        .expect("the block push", |e: &str| {
            e.starts_with("<iq") && e.contains(&format!("<block xmlns=\"{BLOCKING}\">"))
        })
        .await;
    assert_eq!(attr(&push, "type").as_deref(), Some("set"));
    assert!(push.contains("<item jid=\"spammer@localhost\"/>"));
    phone
        .send(&format!(
            "<iq type='result' id='{}'/>",
            attr(&push, "id").unwrap()
        ))
        .await;

    // Online: refused as if Alice were not there.
    chat(&mut spammer, &bare("alice"), "s1", "buy now").await;
    let e = spammer
        .expect("an error", |e: &str| attr(e, "id").as_deref() == Some("s1"))
        .await;
    assert_error(&e, "service-unavailable");
    // Alice writing to the spammer is refused with <blocked/>.
    chat(&mut alice, &bare("spammer"), "a1", "stop it").await;
    let e = alice
        .expect("the refusal", |e: &str| {
            attr(e, "id").as_deref() == Some("a1")
        })
        .await;
    assert_error(&e, "not-acceptable");
    assert!(
        e.contains("<blocked xmlns=\"urn:xmpp:blocking:errors\"/>"),
        "{e}"
    );

    // Offline: nothing is stored for later.
    alice.close(&server).await;
    phone.close(&server).await;
    chat(&mut spammer, &bare("alice"), "s2", "still buying?").await;
    spammer.sync_account_of(&bare("alice")).await;
    let e = spammer
        .expect("an error", |e: &str| attr(e, "id").as_deref() == Some("s2"))
        .await;
    assert_error(&e, "service-unavailable");
    spammer.barrier().await;
    let mut alice = online(&server, "alice", "desk", 0).await;
    alice.account_barrier().await;

    // Unblocked, the spammer gets through again.
    let r = alice
        .iq("set", None, &format!("<unblock xmlns='{BLOCKING}'/>"))
        .await;
    assert_result(&r);
    chat(&mut spammer, &bare("alice"), "s3", "hello again").await;
    alice
        .expect("the message", message_with("hello again"))
        .await;
    spammer.sync().await;
    alice.barrier().await;
}
