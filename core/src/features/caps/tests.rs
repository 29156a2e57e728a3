//! Entity capabilities through the router as the server builds it: what a
//! client is asked, what the server believes, and for whom.

use switchboard_xml::{ns, Element};

use super::verify;
use super::*;
use crate::features::test_support::{env, Env, Session};

const NODE: &str = "https://client.example/caps";

/// A disco#info answer listing `features` (and one identity).
fn info(features: &[&str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "client")
            .with_attr("type", "pc")
            .with_attr("name", "Test"),
    );
    for f in features {
        q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

/// The `ver` of `info(features)`.
fn ver_of(features: &[&str]) -> String {
    let s = verify::ver_string(&info(features)).unwrap();
    verify::hash("sha-1", s.as_bytes()).unwrap()
}

fn c(hash: Option<&str>, ver: &str) -> Element {
    let mut c = Element::new("c", NS)
        .with_attr("node", NODE)
        .with_attr("ver", ver);
    if let Some(h) = hash {
        c.set_attr("hash", h);
    }
    c
}

/// Sends available presence with `c` and returns the capabilities query
/// the server sent, if it sent one.
async fn present(e: &Env, s: &mut Session, c: Element) -> Option<Element> {
    let got = e.available(s, vec![c]).await;
    let mut queries = got.into_iter().filter(|el| el.name == "iq");
    let q = queries.next();
    assert!(queries.next().is_none(), "one query at most");
    q
}

/// Answers a capabilities query as the client would.
fn answer(e: &Env, s: &Session, query: &Element, payload: Element) {
    let mut q = payload;
    if let Some(node) = query.first_element().and_then(|q| q.attr("node")) {
        q.set_attr("node", node);
    }
    e.send(
        s,
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", query.attr("id").unwrap())
            .with_attr("to", query.attr("from").unwrap())
            .with_child(q),
    );
}

fn entry(e: &Env, s: &Session) -> SessionEntry {
    e.router.sessions().get(&s.jid).unwrap()
}

#[tokio::test]
async fn a_verified_ver_is_asked_once_and_shared() {
    let e = env(&["alice", "bob"]).await;
    let features = [
        "urn:xmpp:avatar:metadata+notify",
        "http://jabber.org/protocol/caps",
    ];
    let ver = ver_of(&features);
    let mut a = e.bind("alice@localhost/phone").await;
    let query = present(&e, &mut a, c(Some("sha-1"), &ver))
        .await
        .expect("asked");
    assert_eq!(query.attr("type"), Some("get"));
    assert_eq!(query.attr("from"), Some("localhost"));
    assert_eq!(query.attr("to"), Some("alice@localhost/phone"));
    let node = format!("{NODE}#{ver}");
    assert_eq!(
        query.first_element().unwrap().attr("node"),
        Some(node.as_str())
    );
    answer(&e, &a, &query, info(&features));
    e.settle(&mut a, "alice@localhost").await;
    assert!(e
        .handles
        .caps
        .supports(&entry(&e, &a), "urn:xmpp:avatar:metadata+notify"));
    assert_eq!(e.handles.caps.cached(), 1);

    // Another user's client with the same ver is not asked again.
    let mut b = e.bind("bob@localhost/laptop").await;
    assert!(present(&e, &mut b, c(Some("sha-1"), &ver)).await.is_none());
    assert!(e
        .handles
        .caps
        .supports(&entry(&e, &b), "urn:xmpp:avatar:metadata+notify"));
}

#[tokio::test]
async fn an_answer_that_does_not_match_its_ver_is_believed_for_that_session_only() {
    let e = env(&["alice", "mallory"]).await;
    let honest = ["urn:xmpp:avatar:metadata+notify"];
    let ver = ver_of(&honest);
    // Mallory advertises the honest client's ver but answers otherwise.
    let mut m = e.bind("mallory@localhost/x").await;
    let query = present(&e, &mut m, c(Some("sha-1"), &ver)).await.unwrap();
    answer(&e, &m, &query, info(&["urn:evil+notify"]));
    e.settle(&mut m, "mallory@localhost").await;
    assert!(e.handles.caps.supports(&entry(&e, &m), "urn:evil+notify"));
    assert_eq!(e.handles.caps.cached(), 0, "not cached");

    // Alice's client with that ver is asked itself, and believed.
    let mut a = e.bind("alice@localhost/phone").await;
    let query = present(&e, &mut a, c(Some("sha-1"), &ver))
        .await
        .expect("asked");
    answer(&e, &a, &query, info(&honest));
    e.settle(&mut a, "alice@localhost").await;
    assert!(e
        .handles
        .caps
        .supports(&entry(&e, &a), "urn:xmpp:avatar:metadata+notify"));
    assert!(!e.handles.caps.supports(&entry(&e, &a), "urn:evil+notify"));
    assert_eq!(e.handles.caps.cached(), 1);
}

#[tokio::test]
async fn another_entity_cannot_answer_for_a_session() {
    let e = env(&["alice", "mallory"]).await;
    let features = ["urn:a+notify"];
    let mut a = e.bind("alice@localhost/phone").await;
    let query = present(&e, &mut a, c(Some("sha-1"), &ver_of(&features)))
        .await
        .unwrap();
    let mut m = e.bind("mallory@localhost/x").await;
    answer(&e, &m, &query, info(&features));
    let got = e.settle(&mut m, "mallory@localhost").await;
    assert!(got.is_empty(), "no error to mallory either: {got:?}");
    assert!(e.handles.caps.features(&entry(&e, &a)).is_none());
    assert_eq!(e.handles.caps.cached(), 0);
    // Alice's own answer still counts.
    answer(&e, &a, &query, info(&features));
    e.settle(&mut a, "alice@localhost").await;
    assert!(e.handles.caps.supports(&entry(&e, &a), "urn:a+notify"));
}

#[tokio::test]
async fn legacy_and_unknown_hashes_are_asked_per_session() {
    let e = env(&["alice", "bob"]).await;
    let mut a = e.bind("alice@localhost/old").await;
    let query = present(&e, &mut a, c(None, "1.0")).await.expect("asked");
    answer(&e, &a, &query, info(&["urn:x+notify"]));
    e.settle(&mut a, "alice@localhost").await;
    assert!(e.handles.caps.supports(&entry(&e, &a), "urn:x+notify"));
    let mut b = e.bind("bob@localhost/odd").await;
    let query = present(&e, &mut b, c(Some("md5"), "abc"))
        .await
        .expect("asked");
    answer(&e, &b, &query, info(&["urn:y+notify"]));
    e.settle(&mut b, "bob@localhost").await;
    assert!(e.handles.caps.supports(&entry(&e, &b), "urn:y+notify"));
    assert_eq!(e.handles.caps.cached(), 0);
}

#[tokio::test]
async fn malformed_caps_are_ignored_and_the_presence_goes_on_unchanged() {
    let e = env(&["alice"]).await;
    let mut a = e.bind("alice@localhost/phone").await;
    let bad = Element::new("c", NS)
        .with_attr("hash", "sha-1")
        .with_attr("node", NODE);
    let got = e.available(&mut a, vec![bad.clone()]).await;
    assert_eq!(got.len(), 1, "only the presence itself: {got:?}");
    assert_eq!(got[0].name, "presence");
    assert_eq!(got[0].get_child("c", NS), Some(&bad));
    assert!(e.handles.caps.features(&entry(&e, &a)).is_none());
}

#[tokio::test]
async fn an_ill_formed_answer_is_not_believed() {
    let e = env(&["alice"]).await;
    let features = ["urn:a+notify"];
    let mut a = e.bind("alice@localhost/phone").await;
    let query = present(&e, &mut a, c(Some("sha-1"), &ver_of(&features)))
        .await
        .unwrap();
    let twice = info(&["urn:a+notify", "urn:a+notify"]);
    answer(&e, &a, &query, twice);
    e.settle(&mut a, "alice@localhost").await;
    assert!(e.handles.caps.features(&entry(&e, &a)).is_none());
    assert_eq!(e.handles.caps.cached(), 0);
}

/// XEP-0115 §6.3: the server's own capabilities, per host, in the stream
/// features after authentication, and its `node#ver` answered.
#[tokio::test]
async fn the_server_advertises_its_own_capabilities() {
    let e = env(&["alice"]).await;
    let ext = e.router.table().extensions();
    let (host, c) = ext
        .host_features
        .iter()
        .find(|(_, f)| f.is("c", NS))
        .unwrap();
    assert_eq!(host, "localhost");
    assert_eq!(c.attr("hash"), Some("sha-1"));
    assert_eq!(c.attr("node"), Some(SERVER_NODE));
    let info = crate::modules::disco::server_info(e.router.iq(), "localhost");
    let s = verify::ver_string(&info).unwrap();
    assert_eq!(
        c.attr("ver"),
        verify::hash("sha-1", s.as_bytes()).as_deref()
    );
    assert!(info
        .elements()
        .any(|f| f.is("feature", ns::DISCO_INFO) && f.attr("var") == Some(NS)));
    let mut a = e.bind("alice@localhost/phone").await;
    let node = format!("{SERVER_NODE}#{}", c.attr("ver").unwrap());
    let (reply, _) = e
        .iq(
            &mut a,
            "get",
            Some("localhost"),
            Element::new("query", ns::DISCO_INFO).with_attr("node", node.clone()),
        )
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    let q = reply.first_element().unwrap();
    assert_eq!(q.attr("node"), Some(node.as_str()));
    let mut again = q.clone();
    again.remove_attr("node");
    assert_eq!(verify::ver_string(&again).unwrap(), s);
}
