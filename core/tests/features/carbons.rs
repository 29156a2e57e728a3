//! Message carbons (XEP-0280): two devices of one user in sync.

use switchboard_core::features::carbons::NS;
use switchboard_xml::{ns, Element};

use crate::support::{env, msg, xml, Client, Env};
use crate::{all_same, same};

async fn enable(e: &Env, c: &mut Client) {
    let (before, answer) = e.iq(c, "set", None, Element::new("enable", NS)).await;
    assert!(before.is_empty(), "{before:?}");
    same(
        &answer,
        &format!(
            "<iq xmlns='jabber:client' type='result' id='iq-1' from='alice@localhost' to='{}'/>",
            c.jid
        ),
    );
}

fn chat(to: &str, id: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", id)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// Messages carry the archive's stanza-id; comparisons leave it out.
fn without_ids(mut el: Element) -> Element {
    el.children.retain(|n| match n {
        switchboard_xml::Node::Element(c) => c.ns != "urn:xmpp:sid:0",
        _ => true,
    });
    for c in el.elements_mut() {
        if let Some(f) = c.get_child_mut("forwarded", "urn:xmpp:forward:0") {
            for m in f.elements_mut() {
                m.children.retain(|n| match n {
                    switchboard_xml::Node::Element(c) => c.ns != "urn:xmpp:sid:0",
                    _ => true,
                });
            }
        }
    }
    el
}

#[tokio::test]
async fn two_devices_see_both_sides_of_a_conversation() {
    let e = env(&["alice", "bob"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(1)).await;
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let mut bob = e.start("bob@localhost/home", Some(0)).await;
    enable(&e, &mut desk).await;
    enable(&e, &mut phone).await;

    e.send(&bob, chat("alice@localhost/desk", "b1", "hi desk"));
    e.done(&bob).await;
    let got: Vec<Element> = desk.inbox().into_iter().map(without_ids).collect();
    all_same(
        &got,
        &[
            "<message xmlns='jabber:client' to='alice@localhost/desk' type='chat' id='b1' \
           from='bob@localhost/home'><body>hi desk</body></message>",
        ],
    );
    let got: Vec<Element> = phone.inbox().into_iter().map(without_ids).collect();
    all_same(
        &got,
        &["<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone' type='chat'>\
           <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
           <message xmlns='jabber:client' to='alice@localhost/desk' type='chat' id='b1' \
           from='bob@localhost/home'><body>hi desk</body></message></forwarded></received></message>"],
    );

    e.send(&desk, chat("bob@localhost", "a1", "hello bob"));
    e.done(&desk).await;
    assert_eq!(bob.inbox().len(), 1);
    assert!(desk.inbox().is_empty(), "no copy for the sender");
    let got: Vec<Element> = phone.inbox().into_iter().map(without_ids).collect();
    all_same(
        &got,
        &["<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone' type='chat'>\
           <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
           <message xmlns='jabber:client' to='bob@localhost' type='chat' id='a1' \
           from='alice@localhost/desk'><body>hello bob</body></message></forwarded></sent></message>"],
    );

    // To the bare JID: the highest priority (desk) gets it, the phone a copy.
    e.send(&bob, chat("alice@localhost", "b2", "hi you"));
    e.done(&bob).await;
    assert_eq!(desk.inbox().len(), 1);
    let copies = phone.inbox();
    assert_eq!(copies.len(), 1);
    assert!(copies[0].get_child("received", NS).is_some());
}

#[tokio::test]
async fn private_no_copy_and_disabled_sessions_get_no_copies() {
    let e = env(&["alice", "bob"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(0)).await;
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    enable(&e, &mut phone).await;

    let mut private = chat("alice@localhost/desk", "p1", "secret");
    private.append_child(Element::new("private", NS));
    e.send(&bob, private);
    e.done(&bob).await;
    let got = desk.inbox();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].get_child("private", NS).is_none(),
        "<private/> is removed before delivery (§8)"
    );
    let mut hinted = chat("alice@localhost/desk", "p2", "no copies");
    hinted.append_child(Element::new("no-copy", "urn:xmpp:hints"));
    e.send(&bob, hinted);
    e.done(&bob).await;
    assert_eq!(desk.inbox().len(), 1);
    assert!(phone.inbox().is_empty());

    // The desk never enabled carbons: the phone's messages are not copied
    // to it.
    e.send(&bob, chat("alice@localhost/phone", "p3", "to the phone"));
    e.done(&bob).await;
    assert_eq!(phone.inbox().len(), 1);
    assert!(desk.inbox().is_empty());

    // Disabled again: no more copies.
    let (_, answer) = e
        .iq(&mut phone, "set", None, Element::new("disable", NS))
        .await;
    assert_eq!(answer.attr("type"), Some("result"));
    e.send(&bob, chat("alice@localhost/desk", "p4", "still there?"));
    e.done(&bob).await;
    assert_eq!(desk.inbox().len(), 1);
    assert!(phone.inbox().is_empty());
}

#[tokio::test]
async fn room_messages_headlines_and_offline_messages_are_not_copied() {
    let e = env(&["alice", "bob"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(0)).await;
    let mut away = e.start("alice@localhost/away", Some(-1)).await;
    enable(&e, &mut away).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;

    // A private message from a room occupant carries the room's <x/>.
    let pm = xml(
        "<message xmlns='jabber:client' to='alice@localhost/desk' type='chat'>\
         <body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
    );
    e.send(&bob, pm);
    e.done(&bob).await;
    assert_eq!(desk.inbox().len(), 1);
    assert!(
        away.inbox().is_empty(),
        "a room's private message is not copied"
    );

    e.send(&bob, msg("alice@localhost", "headline"));
    e.done(&bob).await;
    assert_eq!(desk.inbox().len(), 1);
    assert!(away.inbox().is_empty(), "headlines are not copied");

    // With only the negative-priority resource left the message is stored
    // offline, and nobody gets a copy: it is delivered later, once.
    e.end(desk);
    e.send(&bob, chat("alice@localhost", "o1", "later"));
    e.done(&bob).await;
    assert!(away.inbox().is_empty());
    assert_eq!(e.offline_bodies("alice").await, ["later"]);
}

#[tokio::test]
async fn a_copy_for_a_session_that_ended_is_not_sent_on() {
    let e = env(&["alice", "bob"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(0)).await;
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    enable(&e, &mut desk).await;
    enable(&e, &mut phone).await;
    e.send(&bob, chat("alice@localhost/desk", "r1", "one"));
    e.done(&bob).await;
    // The phone goes before reading its copy: the copy is not delivered
    // elsewhere or stored, and the desk sees only the message itself.
    e.end(phone);
    let got = desk.inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("id"), Some("r1"));
    assert!(e.offline_bodies("alice").await.is_empty());
}
