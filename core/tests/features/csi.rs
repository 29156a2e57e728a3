//! Client state indication (XEP-0352) as the nonzas set it.

use switchboard_core::features::csi::{CsiFilter, NS};
use switchboard_xml::{ns, Element};

use crate::support::env;

#[tokio::test]
async fn the_feature_is_offered_and_the_nonzas_switch_the_filter() {
    let e = env(&["alice", "bob"]).await;
    let ext = e.router.table().extensions().clone();
    assert!(ext.features.iter().any(|f| f.is("csi", NS)));
    assert!(ext.nonza_namespaces.contains(&NS));

    let mut alice = e.start("alice@localhost/phone", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    let session = e.session_ref(&alice);
    assert!(e.router.nonza(&session, Element::new("inactive", NS)));
    let filter = alice.shared.ext.get::<CsiFilter>().expect("installed");
    assert!(!filter.is_active());
    let f = alice
        .shared
        .ext
        .filter()
        .expect("the session's outbound filter");

    // What bob sends passes the filter as the connection would pass it.
    let typing = Element::new("message", ns::CLIENT)
        .with_attr("to", "alice@localhost/phone")
        .with_attr("type", "chat")
        .with_child(Element::new(
            "composing",
            "http://jabber.org/protocol/chatstates",
        ));
    e.send(&bob, typing);
    let mut out = Vec::new();
    for el in alice.inbox() {
        f.outgoing(el, &mut out);
    }
    assert!(out.is_empty(), "a chat state waits");
    assert!(e.router.nonza(&session, Element::new("active", NS)));
    f.release(&mut out);
    assert_eq!(out.len(), 1, "<active/> lets it go");
    assert!(filter.is_active());
}
