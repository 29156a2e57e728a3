//! Avatars through the router as the server builds it: a vCard photo
//! becomes the PEP avatar and the presence hash, a PEP avatar becomes the
//! vCard photo, bad avatars are refused.

use switchboard_xml::{ns, Element};

use super::*;
use crate::features::test_support::{
    env, error_of, events, items, notified, publish, Env, Session,
};

/// A tiny "image" and what the server makes of it.
fn image(text: &str) -> Photo {
    let vcard = photo::with_photo(
        Element::new("vCard", vcard::NS),
        Some(&Photo {
            mime: "image/png".into(),
            bytes: text.as_bytes().to_vec(),
            hash: String::new(),
        }),
    );
    Photo::of_vcard(&vcard).unwrap()
}

fn vcard_with(p: Option<&Photo>) -> Element {
    let base = Element::new("vCard", vcard::NS)
        .with_child(Element::new("FN", vcard::NS).with_text("Alice"));
    photo::with_photo(base, p)
}

/// The photo hash in a presence: `Some("")` for an empty `<photo/>`.
fn hash_in(p: &Element) -> Option<String> {
    p.get_child("x", NS_UPDATE)?
        .get_child("photo", NS_UPDATE)
        .map(Element::text)
}

/// The presence from `from` among `got`, the latest first: a probe's
/// answer from before may still arrive among them.
fn presence_from<'a>(got: &'a [Element], from: &str) -> Vec<&'a Element> {
    got.iter()
        .rev()
        .filter(|p| p.name == "presence" && p.attr("from") == Some(from))
        .collect()
}

async fn set_vcard(e: &Env, s: &mut Session, vcard: Element) -> Vec<Element> {
    let (reply, before) = e.iq(s, "set", None, vcard).await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        reply.to_xml_string()
    );
    before
}

#[test]
fn the_hash_goes_in_as_xep_0398_says() {
    let with = |x: Option<Element>| {
        let mut p = Element::new("presence", ns::CLIENT);
        if let Some(x) = x {
            p.append_child(x);
        }
        p
    };
    let mut p = with(None);
    inject(&mut p, Some("abc"));
    assert_eq!(hash_in(&p).as_deref(), Some("abc"));
    let mut p = with(None);
    inject(&mut p, None);
    assert_eq!(hash_in(&p).as_deref(), Some(""));
    // An empty <x/> is overwritten, an empty <photo/> is left alone, and
    // another hash is replaced.
    let mut p = with(Some(Element::new("x", NS_UPDATE)));
    inject(&mut p, Some("abc"));
    assert_eq!(hash_in(&p).as_deref(), Some("abc"));
    let empty = Element::new("x", NS_UPDATE).with_child(Element::new("photo", NS_UPDATE));
    let mut p = with(Some(empty.clone()));
    inject(&mut p, Some("abc"));
    assert_eq!(p.get_child("x", NS_UPDATE), Some(&empty));
    let mut p = with(Some(
        Element::new("x", NS_UPDATE).with_child(Element::new("photo", NS_UPDATE).with_text("old")),
    ));
    inject(&mut p, Some("abc"));
    assert_eq!(hash_in(&p).as_deref(), Some("abc"));
    assert_eq!(p.elements().count(), 1);
}

#[tokio::test]
async fn a_vcard_photo_becomes_the_pep_avatar_and_the_presence_hash() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[NS_METADATA]).await;
    let mut b = notified(&e, "bob@localhost/pc", &[NS_METADATA]).await;
    let p = image("a picture");
    let got = set_vcard(&e, &mut a, vcard_with(Some(&p))).await;
    assert_eq!(
        events(&got),
        [(NS_METADATA.to_string(), vec![p.hash.clone()])]
    );
    // Bob is told of the new avatar, and sees the hash in alice's presence.
    let got = e.settle(&mut b, "bob@localhost").await;
    assert_eq!(
        events(&got),
        [(NS_METADATA.to_string(), vec![p.hash.clone()])]
    );
    let presence = presence_from(&got, "alice@localhost/phone");
    assert_eq!(hash_in(presence[0]), Some(p.hash.clone()), "{got:?}");
    // The image is on the data node, under its hash.
    let (reply, _) = e
        .iq(&mut b, "get", Some("alice@localhost"), items(NS_DATA))
        .await;
    let item = reply
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap();
    assert_eq!(item.attr("id"), Some(p.hash.as_str()));
    assert_eq!(item.first_element().unwrap().text(), p.base64());
    // Alice's next presence carries it even though her client says nothing.
    e.send(
        &a,
        Element::new("presence", ns::CLIENT).with_attr("to", "bob@localhost"),
    );
    let got = e.settle(&mut b, "bob@localhost").await;
    assert_eq!(
        hash_in(presence_from(&got, "alice@localhost/phone")[0]),
        Some(p.hash.clone())
    );

    // The same vCard again: nothing new.
    let got = set_vcard(&e, &mut a, vcard_with(Some(&p))).await;
    assert!(events(&got).is_empty());
    // No photo: empty metadata, and an empty <photo/>.
    let got = set_vcard(&e, &mut a, vcard_with(None)).await;
    assert_eq!(
        events(&got),
        [(NS_METADATA.to_string(), vec!["current".to_string()])]
    );
    let got = e.settle(&mut b, "bob@localhost").await;
    assert_eq!(
        hash_in(presence_from(&got, "alice@localhost/phone")[0]).as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn a_pep_avatar_becomes_the_vcard_photo() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    let mut b = notified(&e, "bob@localhost/pc", &[]).await;
    set_vcard(&e, &mut a, vcard_with(None)).await;
    let p = image("another picture");
    let (reply, _) = e
        .iq(
            &mut a,
            "set",
            None,
            publish(
                NS_DATA,
                Some(&p.hash),
                Element::new("data", NS_DATA).with_text(p.base64()),
            ),
        )
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    let (reply, _) = e
        .iq(
            &mut a,
            "set",
            None,
            publish(
                NS_METADATA,
                Some(&p.hash),
                Element::new("metadata", NS_METADATA).with_child(p.info()),
            ),
        )
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    // Anyone reading the vCard sees the photo, the rest kept.
    let (reply, got) = e
        .iq(
            &mut b,
            "get",
            Some("alice@localhost"),
            Element::new("vCard", vcard::NS),
        )
        .await;
    let card = reply.first_element().unwrap();
    assert_eq!(Photo::of_vcard(card).map(|x| x.hash), Some(p.hash.clone()));
    assert_eq!(card.child_text("FN", vcard::NS).as_deref(), Some("Alice"));
    // Alice's presence went out again with the new hash.
    assert_eq!(
        hash_in(presence_from(&got, "alice@localhost/phone")[0]),
        Some(p.hash.clone())
    );
}

#[tokio::test]
async fn a_session_starts_knowing_the_avatar() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    let p = image("picture");
    set_vcard(&e, &mut a, vcard_with(Some(&p))).await;
    let mut b = notified(&e, "bob@localhost/pc", &[]).await;
    let mut a2 = e.bind("alice@localhost/desk").await;
    e.send(&a2, Element::new("presence", ns::CLIENT));
    let got = e.settle(&mut b, "bob@localhost").await;
    assert_eq!(
        hash_in(presence_from(&got, "alice@localhost/desk")[0]),
        Some(p.hash.clone())
    );
    e.settle(&mut a2, "alice@localhost").await;
}

#[tokio::test]
async fn bad_avatars_are_refused_and_nothing_changes() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/phone", &[NS_METADATA, NS_DATA]).await;
    let p = image("picture");
    let cases = [
        publish(
            NS_DATA,
            Some("0000"),
            Element::new("data", NS_DATA).with_text(p.base64()),
        ),
        publish(
            NS_DATA,
            Some(&p.hash),
            Element::new("data", NS_DATA).with_text("not base64!"),
        ),
        publish(NS_DATA, Some(&p.hash), Element::new("image", "urn:other")),
        publish(
            NS_METADATA,
            Some(&p.hash),
            Element::new("metadata", NS_METADATA)
                .with_child(Element::new("info", NS_METADATA).with_attr("id", "x")),
        ),
    ];
    for request in cases {
        let (reply, before) = e.iq(&mut a, "set", None, request).await;
        assert_eq!(
            error_of(&reply),
            ("bad-request".into(), Some("invalid-payload".into()))
        );
        assert!(events(&before).is_empty());
    }
    for node in [NS_DATA, NS_METADATA] {
        let (reply, _) = e.iq(&mut a, "get", None, items(node)).await;
        assert_eq!(error_of(&reply).0, "item-not-found");
    }
}
