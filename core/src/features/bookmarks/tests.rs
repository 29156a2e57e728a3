//! Bookmarks seen the same through XEP-0402, XEP-0049 private XML and the
//! XEP-0048 PEP node, through the router as the server builds it.

use switchboard_spool::store::AccountRef;
use switchboard_xml::{ns, Element};

use super::convert::{LEGACY, NS};
use super::*;
use crate::features::pep::NS as PUBSUB;
use crate::features::test_support::{
    env, error_of, events, items, notified, publish, pubsub, with_options, Env, Session,
};

const PRIVATE: &str = "jabber:iq:private";

fn conference(name: &str, autojoin: bool) -> Element {
    let mut c = Element::new("conference", NS)
        .with_attr("name", name)
        .with_child(Element::new("nick", NS).with_text("JC"));
    if autojoin {
        c.set_attr("autojoin", "true");
    }
    c
}

/// XEP-0402 §3.3: what a client publishes.
fn add(room: &str, name: &str) -> Element {
    with_options(
        publish(NS, Some(room), conference(name, true)),
        &[
            ("pubsub#persist_items", "true"),
            ("pubsub#max_items", "max"),
            ("pubsub#send_last_published_item", "never"),
            ("pubsub#access_model", "whitelist"),
        ],
    )
}

fn legacy(rooms: &[(&str, &str)]) -> Element {
    let mut s = Element::new("storage", LEGACY);
    for (jid, name) in rooms {
        s.append_child(
            Element::new("conference", LEGACY)
                .with_attr("jid", *jid)
                .with_attr("name", *name)
                .with_attr("autojoin", "true")
                .with_child(Element::new("nick", LEGACY).with_text("JC")),
        );
    }
    s
}

fn private_set(storage: Element) -> Element {
    Element::new("query", PRIVATE).with_child(storage)
}

fn private_get() -> Element {
    Element::new("query", PRIVATE).with_child(Element::new("storage", LEGACY))
}

/// The rooms (jid, name) of a private XML answer.
fn private_rooms(reply: &Element) -> Vec<(String, String)> {
    let storage = reply
        .first_element()
        .unwrap()
        .get_child("storage", LEGACY)
        .unwrap();
    storage
        .elements()
        .map(|c| {
            (
                c.attr("jid").unwrap_or_default().to_owned(),
                c.attr("name").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The (id, name) of the XEP-0402 items of a pubsub answer.
fn native_rooms(reply: &Element) -> Vec<(String, String)> {
    reply
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .elements()
        .map(|i| {
            (
                i.attr("id").unwrap().to_owned(),
                i.first_element()
                    .unwrap()
                    .attr("name")
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn answer(e: &Env, s: &mut Session, ty: &str, payload: Element) -> (Element, Vec<Element>) {
    let (reply, before) = e.iq(s, ty, None, payload).await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        reply.to_xml_string()
    );
    (reply, before)
}

#[tokio::test]
async fn bookmarks_published_through_pep_are_read_through_private_xml() {
    let e = env(&["alice"]).await;
    let mut pep_client = notified(&e, "alice@localhost/new", &[NS]).await;
    let mut old_client = notified(&e, "alice@localhost/old", &[]).await;
    let (_, got) = answer(
        &e,
        &mut pep_client,
        "set",
        add("play@muc.localhost", "The Play"),
    )
    .await;
    assert_eq!(
        events(&got),
        [(NS.to_string(), vec!["play@muc.localhost".to_string()])]
    );
    answer(
        &e,
        &mut pep_client,
        "set",
        add("orchard@muc.localhost", "The Orchard"),
    )
    .await;
    let (reply, _) = answer(&e, &mut old_client, "get", private_get()).await;
    assert_eq!(
        private_rooms(&reply),
        pairs(&[
            ("play@muc.localhost", "The Play"),
            ("orchard@muc.localhost", "The Orchard")
        ])
    );
    let retract = pubsub(
        Element::new("retract", PUBSUB)
            .with_attr("node", NS)
            .with_attr("notify", "true")
            .with_child(Element::new("item", PUBSUB).with_attr("id", "play@muc.localhost")),
    );
    answer(&e, &mut pep_client, "set", retract).await;
    let (reply, _) = answer(&e, &mut old_client, "get", private_get()).await;
    assert_eq!(
        private_rooms(&reply),
        pairs(&[("orchard@muc.localhost", "The Orchard")])
    );
    // The XEP-0048 PEP node says the same (XEP-0411).
    let (reply, _) = answer(&e, &mut old_client, "get", items(LEGACY)).await;
    let storage = reply
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap();
    let storage = storage.first_element().unwrap();
    assert_eq!(storage.elements().count(), 1);
    assert_eq!(
        storage.first_element().unwrap().attr("jid"),
        Some("orchard@muc.localhost")
    );
}

#[tokio::test]
async fn bookmarks_set_through_private_xml_are_read_and_notified_through_pep() {
    let e = env(&["alice"]).await;
    let mut pep_client = notified(&e, "alice@localhost/new", &[NS]).await;
    let mut old_client = notified(&e, "alice@localhost/old", &[]).await;
    answer(
        &e,
        &mut old_client,
        "set",
        private_set(legacy(&[
            ("a@muc.localhost", "A"),
            ("b@muc.localhost", "B"),
        ])),
    )
    .await;
    let got = e.settle(&mut pep_client, "alice@localhost").await;
    assert_eq!(
        events(&got),
        [(
            NS.to_string(),
            vec!["a@muc.localhost".to_string(), "b@muc.localhost".to_string()]
        )]
    );
    let (reply, _) = answer(&e, &mut pep_client, "get", items(NS)).await;
    assert_eq!(
        native_rooms(&reply),
        pairs(&[("a@muc.localhost", "A"), ("b@muc.localhost", "B")])
    );

    // The whole list again with one renamed and one removed: only those
    // two are notified.
    answer(
        &e,
        &mut old_client,
        "set",
        private_set(legacy(&[
            ("a@muc.localhost", "A"),
            ("c@muc.localhost", "C"),
        ])),
    )
    .await;
    let got = e.settle(&mut pep_client, "alice@localhost").await;
    assert_eq!(
        events(&got),
        [
            (NS.to_string(), vec!["c@muc.localhost".to_string()]),
            (NS.to_string(), vec!["retract:b@muc.localhost".to_string()])
        ]
    );
    let (reply, _) = answer(&e, &mut pep_client, "get", items(NS)).await;
    assert_eq!(
        native_rooms(&reply),
        pairs(&[("a@muc.localhost", "A"), ("c@muc.localhost", "C")])
    );
}

#[tokio::test]
async fn a_nonsense_room_jid_is_refused_and_nothing_changes() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/new", &[NS]).await;
    answer(&e, &mut a, "set", add("play@muc.localhost", "The Play")).await;
    for bad in ["muc.localhost", "play@muc.localhost/nick", "not a jid@"] {
        let (reply, before) = e.iq(&mut a, "set", None, add(bad, "Bad")).await;
        assert_eq!(
            error_of(&reply),
            ("bad-request".into(), Some("invalid-payload".into())),
            "{bad}"
        );
        assert!(events(&before).is_empty());
    }
    let wrong = publish(
        NS,
        Some("x@muc.localhost"),
        Element::new("room", "urn:other"),
    );
    let (reply, _) = e.iq(&mut a, "set", None, wrong).await;
    assert_eq!(
        error_of(&reply),
        ("bad-request".into(), Some("invalid-payload".into()))
    );
    let (reply, _) = answer(&e, &mut a, "get", private_get()).await;
    assert_eq!(
        private_rooms(&reply),
        pairs(&[("play@muc.localhost", "The Play")])
    );
    let (reply, _) = answer(&e, &mut a, "get", items(NS)).await;
    assert_eq!(
        native_rooms(&reply),
        pairs(&[("play@muc.localhost", "The Play")])
    );
}

#[tokio::test]
async fn bookmarks_only_in_private_xml_are_there_through_pep() {
    let e = env(&["alice"]).await;
    let stored =
        Element::new("private", ns::SPOOL).with_child(legacy(&[("old@muc.localhost", "Old")]));
    e.stores
        .account_data
        .put(&AccountRef::new("localhost", "alice"), stored)
        .await
        .unwrap();
    let mut a = notified(&e, "alice@localhost/new", &[]).await;
    let (reply, _) = answer(&e, &mut a, "get", items(NS)).await;
    assert_eq!(native_rooms(&reply), pairs(&[("old@muc.localhost", "Old")]));
    // Made with the configuration XEP-0402 asks for: the preconditions of
    // a client's next publish hold.
    answer(&e, &mut a, "set", add("new@muc.localhost", "New")).await;
}

#[tokio::test]
async fn extensions_survive_an_edit_through_private_xml() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/new", &[]).await;
    let ext = Element::new("extensions", NS)
        .with_child(Element::new("state", "urn:example:client").with_attr("minimized", "true"));
    let mut c = conference("A", true);
    c.append_child(ext.clone());
    answer(&e, &mut a, "set", publish(NS, Some("a@muc.localhost"), c)).await;
    answer(
        &e,
        &mut a,
        "set",
        private_set(legacy(&[("a@muc.localhost", "A renamed")])),
    )
    .await;
    let (reply, _) = answer(&e, &mut a, "get", items(NS)).await;
    let conf = reply
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap();
    assert_eq!(conf.attr("name"), Some("A renamed"));
    assert_eq!(conf.get_child("extensions", NS), Some(&ext));
}

#[tokio::test]
async fn the_xep_0048_pep_node_feeds_the_others() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/new", &[NS]).await;
    let (_, _) = answer(
        &e,
        &mut a,
        "set",
        publish(LEGACY, Some("current"), legacy(&[("x@muc.localhost", "X")])),
    )
    .await;
    let got = e.settle(&mut a, "alice@localhost").await;
    let _ = got;
    let (reply, _) = answer(&e, &mut a, "get", items(NS)).await;
    assert_eq!(native_rooms(&reply), pairs(&[("x@muc.localhost", "X")]));
    let (reply, _) = answer(&e, &mut a, "get", private_get()).await;
    assert_eq!(private_rooms(&reply), pairs(&[("x@muc.localhost", "X")]));
    let (reply, _) = e
        .iq(
            &mut a,
            "set",
            None,
            publish(LEGACY, Some("current"), Element::new("other", "urn:x")),
        )
        .await;
    assert_eq!(
        error_of(&reply),
        ("bad-request".into(), Some("invalid-payload".into()))
    );
}

#[tokio::test]
async fn the_account_shows_the_compatibility_features() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/new", &[]).await;
    let (reply, _) = e
        .iq(
            &mut a,
            "get",
            Some("alice@localhost"),
            Element::new("query", ns::DISCO_INFO),
        )
        .await;
    let q = reply.first_element().unwrap();
    for f in [COMPAT, COMPAT_PEP, CONVERSION] {
        assert!(q.elements().any(|x| x.attr("var") == Some(f)), "{f}");
    }
}
