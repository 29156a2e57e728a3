//! Blocking (XEP-0191): the list, its pushes, and a blocked spammer who
//! reaches the user neither online nor offline.

use switchboard_core::features::blocking::NS;
use switchboard_spool::store::{AccountRef, StoredItem, StoredRoster};
use switchboard_xml::{ns, Element};

use crate::support::{env, error_condition, msg, Client, Env};
use crate::{all_same, same};

fn items(name: &str, jids: &[&str]) -> Element {
    jids.iter().fold(Element::new(name, NS), |el, j| {
        el.with_child(Element::new("item", NS).with_attr("jid", *j))
    })
}

async fn ask_list(e: &Env, c: &mut Client) -> Element {
    let (before, answer) = e.iq(c, "get", None, Element::new("blocklist", NS)).await;
    assert!(before.is_empty(), "{before:?}");
    answer
}

/// Gives `user` a roster item `contact` with this subscription.
async fn roster_item(e: &Env, user: &str, contact: &str, subscription: &str) {
    let roster = StoredRoster {
        ver: 1,
        items: vec![StoredItem {
            jid: contact.into(),
            name: None,
            subscription: subscription.into(),
            ask: false,
            approved: false,
            added: true,
            groups: vec![],
        }],
        pending: vec![],
    };
    e.stores
        .rosters
        .save(&AccountRef::new("localhost", user), &roster)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_list_is_read_changed_and_pushed_to_interested_resources() {
    let e = env(&["alice"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(0)).await;
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let mut other = e.start("alice@localhost/other", Some(0)).await;
    let answer = ask_list(&e, &mut desk).await;
    same(
        &answer,
        "<iq xmlns='jabber:client' type='result' id='iq-1' from='alice@localhost' to='alice@localhost/desk'>\
         <blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    ask_list(&e, &mut phone).await;

    let (_, answer) = e
        .iq(
            &mut desk,
            "set",
            None,
            items("block", &["spam@localhost", "evil.example"]),
        )
        .await;
    assert_eq!(answer.attr("type"), Some("result"));
    let pushes = phone.inbox();
    assert_eq!(pushes.len(), 1);
    let push_id = pushes[0].attr("id").unwrap().to_string();
    same(
        &pushes[0],
        &format!(
            "<iq xmlns='jabber:client' type='set' id='{push_id}' to='alice@localhost/phone'>\
             <block xmlns='urn:xmpp:blocking'><item jid='spam@localhost'/><item jid='evil.example'/></block></iq>"
        ),
    );
    assert!(other.inbox().is_empty(), "it never asked for the list");
    let answer = ask_list(&e, &mut other).await;
    same(
        answer.get_child("blocklist", NS).unwrap(),
        "<blocklist xmlns='urn:xmpp:blocking'><item jid='spam@localhost'/><item jid='evil.example'/></blocklist>",
    );

    let (_, answer) = e
        .iq(&mut phone, "set", None, items("unblock", &["evil.example"]))
        .await;
    assert_eq!(answer.attr("type"), Some("result"));
    for c in [&mut desk, &mut other] {
        let got = c.inbox();
        assert_eq!(got.len(), 1, "{got:?}");
        same(
            got[0].get_child("unblock", NS).unwrap(),
            "<unblock xmlns='urn:xmpp:blocking'><item jid='evil.example'/></unblock>",
        );
    }
    let (_, answer) = e
        .iq(&mut desk, "set", None, Element::new("unblock", NS))
        .await;
    assert_eq!(answer.attr("type"), Some("result"));
    same(
        phone.inbox()[0].get_child("unblock", NS).unwrap(),
        "<unblock xmlns='urn:xmpp:blocking'/>",
    );
    other.inbox();
    let answer = ask_list(&e, &mut desk).await;
    same(
        answer.get_child("blocklist", NS).unwrap(),
        "<blocklist xmlns='urn:xmpp:blocking'/>",
    );
}

#[tokio::test]
async fn bad_requests_get_exact_errors() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let (_, answer) = e
        .iq(&mut alice, "set", None, Element::new("block", NS))
        .await;
    same(
        &answer,
        "<iq xmlns='jabber:client' type='error' id='iq-1' from='alice@localhost' to='alice@localhost/desk'>\
         <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>&lt;block/&gt; needs at least one &lt;item/&gt;</text>\
         </error></iq>",
    );
    let (_, answer) = e
        .iq(&mut alice, "set", None, items("block", &["a@b@c"]))
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("jid-malformed"));
    let (_, answer) = e
        .iq(
            &mut alice,
            "get",
            Some("bob@localhost"),
            Element::new("blocklist", NS),
        )
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn a_blocked_spammer_reaches_the_user_neither_online_nor_offline() {
    let e = env(&["alice", "spam"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let mut spam = e.start("spam@localhost/bot", Some(0)).await;
    e.iq(&mut alice, "set", None, items("block", &["spam@localhost"]))
        .await;

    e.send(&spam, msg("alice@localhost", "chat"));
    e.send(&spam, msg("alice@localhost/desk", "chat"));
    let (back, pong) = e
        .iq(
            &mut spam,
            "get",
            Some("alice@localhost/desk"),
            Element::new("ping", "urn:xmpp:ping"),
        )
        .await;
    all_same(
        &back,
        &[
            "<message xmlns='jabber:client' id='m1' from='alice@localhost' to='spam@localhost/bot' type='error'>\
             <body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></message>",
            "<message xmlns='jabber:client' id='m1' from='alice@localhost/desk' to='spam@localhost/bot' type='error'>\
             <body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></message>",
        ],
    );
    assert_eq!(
        error_condition(&pong).as_deref(),
        Some("service-unavailable")
    );
    let presence = Element::new("presence", ns::CLIENT).with_attr("to", "alice@localhost/desk");
    e.send(&spam, presence);
    assert!(alice.inbox().is_empty(), "nothing from the spammer arrives");

    // Alice sends to the spammer: refused with <blocked/>.
    e.send(&alice, msg("spam@localhost", "chat"));
    all_same(
        &alice.inbox(),
        &["<message xmlns='jabber:client' id='m1' from='spam@localhost' to='alice@localhost/desk' type='error'>\
           <body>hi</body><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
           <blocked xmlns='urn:xmpp:blocking:errors'/></error></message>"],
    );
    assert!(spam.inbox().is_empty());

    // Offline, the actor's gate refuses it and nothing is stored.
    e.end(alice);
    e.send(&spam, msg("alice@localhost", "chat"));
    let back = e.settle(&mut spam, "alice@localhost").await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("service-unavailable")
    );
    assert!(e.offline_bodies("alice").await.is_empty());
    // A subscription request is dropped without a word.
    let sub = Element::new("presence", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_attr("type", "subscribe");
    e.send(&spam, sub);
    assert!(e.settle(&mut spam, "alice@localhost").await.is_empty());
}

#[tokio::test]
async fn a_newly_blocked_contact_sees_the_user_go_and_then_nothing() {
    let e = env(&["alice", "bob"]).await;
    roster_item(&e, "alice", "bob@localhost", "both").await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let mut bob = e.start("bob@localhost/home", Some(0)).await;
    e.iq(&mut alice, "set", None, items("block", &["bob@localhost"]))
        .await;
    all_same(
        &bob.inbox(),
        &["<presence xmlns='jabber:client' type='unavailable' from='alice@localhost/desk' to='bob@localhost'/>"],
    );
    // Presence the server sends for Alice (a broadcast) is dropped too.
    let p = Element::new("presence", ns::CLIENT)
        .with_attr("from", "alice@localhost/desk")
        .with_attr("to", "bob@localhost");
    e.router.route(p);
    assert!(bob.inbox().is_empty());

    // Unblocked, Bob sees her current presence again.
    e.iq(
        &mut alice,
        "set",
        None,
        items("unblock", &["bob@localhost"]),
    )
    .await;
    let got = bob.inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].name, "presence");
    assert_eq!(got[0].attr("type"), None);
    assert_eq!(got[0].attr("from"), Some("alice@localhost/desk"));
}
