//! PEP through the router as the server builds it: exact stanzas and
//! errors, what is stored, and who is notified (and who is not).

use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_xml::{ns, Element};

use super::config::NODE_CONFIG;
use super::*;
use crate::features::test_support::{
    caps_of, env, error_of, events, items, notified, notified_presence, publish, pubsub,
    with_options, Env, Session,
};

const TUNE: &str = "http://jabber.org/protocol/tune";
const ALICE: &str = "alice@localhost";

fn tune(title: &str) -> Element {
    Element::new("tune", TUNE).with_child(Element::new("title", TUNE).with_text(title))
}

fn owner(child: Element) -> Element {
    Element::new("pubsub", NS_OWNER).with_child(child)
}

fn ids_of(reply: &Element) -> Vec<String> {
    reply
        .first_element()
        .and_then(|p| p.first_element())
        .map(|i| {
            i.elements()
                .map(|i| i.attr("id").unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn ok(e: &Env, s: &mut Session, ty: &str, payload: Element) -> Element {
    let (reply, _) = e.iq(s, ty, None, payload).await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        reply.to_xml_string()
    );
    reply
}

async fn refused(
    e: &Env,
    s: &mut Session,
    ty: &str,
    to: Option<&str>,
    payload: Element,
) -> (String, Option<String>) {
    let (reply, before) = e.iq(s, ty, to, payload).await;
    assert_eq!(
        reply.attr("type"),
        Some("error"),
        "{}",
        reply.to_xml_string()
    );
    assert!(
        events(&before).is_empty(),
        "a refused request notifies no one: {before:?}"
    );
    error_of(&reply)
}

#[tokio::test]
async fn a_publish_creates_the_node_and_notifies_who_asked_for_it() {
    let e = env(&["alice", "bob", "carol", "dave"]).await;
    e.befriend("alice", "bob").await;
    e.befriend("alice", "carol").await;
    let mut a = notified(&e, "alice@localhost/phone", &[TUNE]).await;
    let mut a2 = notified(&e, "alice@localhost/desk", &[]).await;
    let mut b = notified(&e, "bob@localhost/pc", &[TUNE]).await;
    let mut c = notified(&e, "carol@localhost/pc", &["urn:other"]).await;
    let mut d = notified(&e, "dave@localhost/pc", &[TUNE]).await;

    let (reply, got) = e
        .iq(
            &mut a,
            "set",
            None,
            publish(TUNE, Some("t1"), tune("Finzi")),
        )
        .await;
    assert_eq!(
        reply.first_element().unwrap().to_xml_string(),
        pubsub(
            Element::new("publish", NS)
                .with_attr("node", TUNE)
                .with_child(Element::new("item", NS).with_attr("id", "t1"))
        )
        .to_xml_string()
    );
    assert_eq!(events(&got), [(TUNE.to_string(), vec!["t1".to_string()])]);
    let m = got.iter().find(|m| m.name == "message").unwrap();
    assert_eq!(m.attr("from"), Some(ALICE));
    assert_eq!(m.attr("to"), Some("alice@localhost/phone"));
    let item = m
        .get_child("event", NS_EVENT)
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap();
    assert_eq!(item.first_element(), Some(&tune("Finzi")));

    let got = e.settle(&mut b, "bob@localhost").await;
    assert_eq!(events(&got), [(TUNE.to_string(), vec!["t1".to_string()])]);
    // A contact is told which resource published (XEP-0163 §4.3.1).
    let addresses = got[0]
        .get_child("addresses", "http://jabber.org/protocol/address")
        .unwrap();
    assert_eq!(
        addresses.first_element().unwrap().attr("jid"),
        Some("alice@localhost/phone")
    );

    // No +notify for the node, no notification; no subscription, none either.
    for (s, own) in [
        (&mut a2, ALICE),
        (&mut c, "carol@localhost"),
        (&mut d, "dave@localhost"),
    ] {
        let got = e.settle(s, own).await;
        assert!(events(&got).is_empty(), "{}: {got:?}", s.jid);
    }

    // The item is stored, and a contact reads it.
    let (reply, _) = e.iq(&mut b, "get", Some(ALICE), items(TUNE)).await;
    assert_eq!(ids_of(&reply), ["t1"]);
    // A stranger may not (the default access model is presence).
    assert_eq!(
        refused(&e, &mut d, "get", Some(ALICE), items(TUNE)).await,
        (
            "not-authorized".into(),
            Some("presence-subscription-required".into())
        )
    );
}

#[tokio::test]
async fn publish_options_set_the_configuration_and_then_must_match_it() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &["urn:private"]).await;
    let mut b = notified(&e, "bob@localhost/pc", &["urn:private"]).await;
    let private = [
        ("pubsub#persist_items", "true"),
        ("pubsub#access_model", "whitelist"),
    ];
    let (_, got) = e
        .iq(
            &mut a,
            "set",
            None,
            with_options(
                publish("urn:private", Some("one"), tune("secret")),
                &private,
            ),
        )
        .await;
    assert_eq!(events(&got).len(), 1, "the owner is notified");
    assert!(
        events(&e.settle(&mut b, "bob@localhost").await).is_empty(),
        "a contact is not"
    );
    assert_eq!(
        refused(&e, &mut b, "get", Some(ALICE), items("urn:private")).await,
        ("not-allowed".into(), Some("closed-node".into()))
    );

    // Options that conflict with the node's configuration: refused, and
    // nothing is stored.
    let (reply, got) = e
        .iq(
            &mut a,
            "set",
            None,
            with_options(
                publish("urn:private", Some("two"), tune("leak")),
                &[("pubsub#access_model", "presence")],
            ),
        )
        .await;
    assert_eq!(
        error_of(&reply),
        ("conflict".into(), Some("precondition-not-met".into()))
    );
    assert!(events(&got).is_empty());
    let (reply, _) = e.iq(&mut a, "get", None, items("urn:private")).await;
    assert_eq!(ids_of(&reply), ["one"]);
    // The same options again: accepted.
    ok(
        &e,
        &mut a,
        "set",
        with_options(publish("urn:private", Some("two"), tune("x")), &private),
    )
    .await;
}

#[tokio::test]
async fn bad_publications_get_the_xeps_errors_and_change_nothing() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[TUNE]).await;
    let mut b = notified(&e, "bob@localhost/pc", &[TUNE]).await;
    ok(&e, &mut a, "set", publish(TUNE, Some("t1"), tune("kept"))).await;
    a.inbox();
    e.settle(&mut b, "bob@localhost").await;

    let big = Element::new("tune", TUNE).with_text("x".repeat(MAX_ITEM_BYTES));
    let two = Element::new("item", NS)
        .with_child(tune("a"))
        .with_child(tune("b"));
    let cases: Vec<(Element, (&str, Option<&str>))> = vec![
        (
            publish(TUNE, Some("t2"), big),
            ("not-acceptable", Some("payload-too-big")),
        ),
        (
            pubsub(
                Element::new("publish", NS)
                    .with_attr("node", TUNE)
                    .with_child(two),
            ),
            ("bad-request", Some("invalid-payload")),
        ),
        (
            pubsub(
                Element::new("publish", NS)
                    .with_attr("node", TUNE)
                    .with_child(Element::new("item", NS)),
            ),
            ("bad-request", Some("payload-required")),
        ),
        (
            pubsub(Element::new("publish", NS).with_attr("node", TUNE)),
            ("bad-request", Some("item-required")),
        ),
        (
            pubsub(
                Element::new("publish", NS)
                    .with_child(Element::new("item", NS).with_child(tune("a"))),
            ),
            ("bad-request", Some("nodeid-required")),
        ),
    ];
    for (request, (defined, app)) in cases {
        assert_eq!(
            refused(&e, &mut a, "set", None, request).await,
            (defined.to_string(), app.map(str::to_string))
        );
    }
    // Only the owner publishes.
    assert_eq!(
        refused(
            &e,
            &mut b,
            "set",
            Some(ALICE),
            publish(TUNE, Some("t9"), tune("b"))
        )
        .await,
        ("forbidden".into(), None)
    );
    let (reply, _) = e.iq(&mut a, "get", None, items(TUNE)).await;
    assert_eq!(ids_of(&reply), ["t1"]);
    assert!(events(&e.settle(&mut a, ALICE).await).is_empty());
    assert!(events(&e.settle(&mut b, "bob@localhost").await).is_empty());
}

#[tokio::test]
async fn retract_items_max_items_configure_purge_and_delete() {
    let e = env(&["alice", "bob"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &["urn:list"]).await;
    let mut b = notified(&e, "bob@localhost/pc", &["urn:list"]).await;
    ok(
        &e,
        &mut a,
        "set",
        with_options(
            publish("urn:list", Some("1"), tune("one")),
            &[("pubsub#max_items", "3")],
        ),
    )
    .await;
    for id in ["2", "3", "4"] {
        ok(&e, &mut a, "set", publish("urn:list", Some(id), tune(id))).await;
    }
    // The oldest went: three are kept.
    let (reply, _) = e.iq(&mut a, "get", None, items("urn:list")).await;
    assert_eq!(ids_of(&reply), ["2", "3", "4"]);
    let newest = pubsub(
        Element::new("items", NS)
            .with_attr("node", "urn:list")
            .with_attr("max_items", "1"),
    );
    assert_eq!(
        ids_of(&e.iq(&mut b, "get", Some(ALICE), newest).await.0),
        ["4"]
    );
    let by_id = pubsub(
        Element::new("items", NS)
            .with_attr("node", "urn:list")
            .with_child(Element::new("item", NS).with_attr("id", "3"))
            .with_child(Element::new("item", NS).with_attr("id", "nope")),
    );
    assert_eq!(
        ids_of(&e.iq(&mut b, "get", Some(ALICE), by_id).await.0),
        ["3"]
    );
    a.inbox();
    e.settle(&mut b, "bob@localhost").await;

    // Retract: notified with notify='true'.
    let retract = |id: &str| {
        pubsub(
            Element::new("retract", NS)
                .with_attr("node", "urn:list")
                .with_attr("notify", "true")
                .with_child(Element::new("item", NS).with_attr("id", id)),
        )
    };
    ok(&e, &mut a, "set", retract("2")).await;
    assert_eq!(
        events(&e.settle(&mut b, "bob@localhost").await),
        [("urn:list".to_string(), vec!["retract:2".to_string()])]
    );
    assert_eq!(
        refused(&e, &mut a, "set", None, retract("2")).await,
        ("item-not-found".into(), None)
    );
    assert_eq!(
        refused(&e, &mut b, "set", Some(ALICE), retract("3")).await,
        ("forbidden".into(), None)
    );

    // Configuration: read, change, and a lower max_items applies at once.
    let (reply, _) = e
        .iq(
            &mut a,
            "get",
            None,
            owner(Element::new("configure", NS_OWNER).with_attr("node", "urn:list")),
        )
        .await;
    let form = reply
        .first_element()
        .unwrap()
        .first_element()
        .unwrap()
        .first_element()
        .unwrap();
    let form = Form::parse(form).unwrap();
    assert_eq!(form.value("pubsub#max_items"), Some("3"));
    assert_eq!(form.value("pubsub#access_model"), Some("presence"));
    let submit = Form::new(FormKind::Submit)
        .with_field(Field::form_type(NODE_CONFIG))
        .with_field(Field::new("pubsub#max_items", FieldKind::TextSingle).with_value("1"));
    ok(
        &e,
        &mut a,
        "set",
        owner(
            Element::new("configure", NS_OWNER)
                .with_attr("node", "urn:list")
                .with_child(submit.to_element()),
        ),
    )
    .await;
    assert_eq!(
        ids_of(&e.iq(&mut a, "get", None, items("urn:list")).await.0),
        ["4"]
    );
    let bad = Form::new(FormKind::Submit)
        .with_field(Field::form_type(NODE_CONFIG))
        .with_field(
            Field::new("pubsub#access_model", FieldKind::TextSingle).with_value("authorize"),
        );
    assert_eq!(
        refused(
            &e,
            &mut a,
            "set",
            None,
            owner(
                Element::new("configure", NS_OWNER)
                    .with_attr("node", "urn:list")
                    .with_child(bad.to_element())
            )
        )
        .await,
        ("not-acceptable".into(), None)
    );

    // Purge, then delete: both notified.
    e.settle(&mut b, "bob@localhost").await;
    ok(
        &e,
        &mut a,
        "set",
        owner(Element::new("purge", NS_OWNER).with_attr("node", "urn:list")),
    )
    .await;
    ok(
        &e,
        &mut a,
        "set",
        owner(Element::new("delete", NS_OWNER).with_attr("node", "urn:list")),
    )
    .await;
    assert_eq!(
        events(&e.settle(&mut b, "bob@localhost").await),
        [
            ("urn:list".to_string(), vec!["purge".to_string()]),
            ("urn:list".to_string(), vec!["delete".to_string()])
        ]
    );
    assert_eq!(
        refused(&e, &mut a, "get", None, items("urn:list")).await,
        ("item-not-found".into(), None)
    );
    assert_eq!(
        refused(
            &e,
            &mut a,
            "set",
            None,
            owner(Element::new("delete", NS_OWNER).with_attr("node", "urn:list"))
        )
        .await,
        ("item-not-found".into(), None)
    );
}

#[tokio::test]
async fn the_last_item_reaches_a_resource_that_becomes_available() {
    let e = env(&["alice", "bob", "carol"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    ok(&e, &mut a, "set", publish(TUNE, Some("old"), tune("old"))).await;
    ok(&e, &mut a, "set", publish(TUNE, Some("new"), tune("new"))).await;

    // Bob comes online interested: he gets the newest item, stamped.
    let mut b = e.bind("bob@localhost/pc").await;
    let b_presence = notified_presence(&e, &mut b, &[TUNE]).await;
    let got = [b_presence, e.settle(&mut b, ALICE).await].concat();
    assert_eq!(events(&got), [(TUNE.to_string(), vec!["new".to_string()])]);
    let m = got.iter().find(|m| m.name == "message").unwrap();
    assert_eq!(
        m.get_child("delay", ns::DELAY).unwrap().attr("from"),
        Some(ALICE)
    );

    // Alice's own new resource too; carol, no contact, gets nothing.
    let mut a2 = e.bind("alice@localhost/desk").await;
    let got = notified_presence(&e, &mut a2, &[TUNE]).await;
    let got = [got, e.settle(&mut a2, ALICE).await].concat();
    assert_eq!(events(&got), [(TUNE.to_string(), vec!["new".to_string()])]);
    let mut c = e.bind("carol@localhost/pc").await;
    let got = notified_presence(&e, &mut c, &[TUNE]).await;
    let got = [got, e.settle(&mut c, ALICE).await].concat();
    assert!(events(&got).is_empty(), "{got:?}");

    // A later presence of the same session is no initial presence.
    let got = e.available(&mut b, vec![caps_of(&[TUNE])]).await;
    let got = [got, e.settle(&mut b, ALICE).await].concat();
    assert!(events(&got).is_empty(), "{got:?}");
}

#[tokio::test]
async fn the_roster_access_model_follows_groups() {
    let e = env(&["alice", "bob", "carol"]).await;
    e.subscribe_in("alice", "bob", "both", &["Family"]).await;
    e.subscribe_in("alice", "carol", "both", &["Work"]).await;
    e.subscribe("bob", "alice", "both").await;
    e.subscribe("carol", "alice", "both").await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    let mut b = notified(&e, "bob@localhost/pc", &["urn:family"]).await;
    let mut c = notified(&e, "carol@localhost/pc", &["urn:family"]).await;
    let create = Element::new("pubsub", NS)
        .with_child(Element::new("create", NS).with_attr("node", "urn:family"))
        .with_child(
            Element::new("configure", NS).with_child(
                Form::new(FormKind::Submit)
                    .with_field(Field::form_type(NODE_CONFIG))
                    .with_field(
                        Field::new("pubsub#access_model", FieldKind::ListSingle)
                            .with_value("roster"),
                    )
                    .with_field(
                        Field::new("pubsub#roster_groups_allowed", FieldKind::ListMulti)
                            .with_value("Family"),
                    )
                    .to_element(),
            ),
        );
    ok(&e, &mut a, "set", create.clone()).await;
    assert_eq!(
        refused(&e, &mut a, "set", None, create).await,
        ("conflict".into(), None)
    );
    ok(
        &e,
        &mut a,
        "set",
        publish("urn:family", Some("f"), tune("f")),
    )
    .await;
    assert_eq!(events(&e.settle(&mut b, "bob@localhost").await).len(), 1);
    assert!(events(&e.settle(&mut c, "carol@localhost").await).is_empty());
    assert_eq!(
        refused(&e, &mut c, "get", Some(ALICE), items("urn:family")).await,
        ("not-authorized".into(), Some("not-in-roster-group".into()))
    );
}

#[tokio::test]
async fn disco_shows_pep_on_the_account_and_only_visible_nodes() {
    let e = env(&["alice", "bob", "dave"]).await;
    e.befriend("alice", "bob").await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    let mut b = notified(&e, "bob@localhost/pc", &[]).await;
    let mut d = notified(&e, "dave@localhost/pc", &[]).await;
    ok(&e, &mut a, "set", publish(TUNE, None, tune("t"))).await;
    ok(
        &e,
        &mut a,
        "set",
        with_options(
            publish("urn:secret", None, tune("s")),
            &[("pubsub#access_model", "whitelist")],
        ),
    )
    .await;
    ok(
        &e,
        &mut a,
        "set",
        with_options(
            publish("urn:open", None, tune("o")),
            &[("pubsub#access_model", "open")],
        ),
    )
    .await;
    let info = Element::new("query", ns::DISCO_INFO);
    for s in [&mut a, &mut b] {
        let (reply, _) = e.iq(s, "get", Some(ALICE), info.clone()).await;
        let q = reply.first_element().unwrap();
        let ids: Vec<(&str, &str)> = q
            .elements()
            .filter(|i| i.name == "identity")
            .map(|i| (i.attr("category").unwrap(), i.attr("type").unwrap()))
            .collect();
        assert_eq!(
            ids,
            [("account", "registered"), ("pubsub", "pep")],
            "{}",
            s.jid
        );
        assert!(q
            .elements()
            .any(|f| f.attr("var") == Some("http://jabber.org/protocol/pubsub#publish-options")));
    }
    assert_eq!(
        refused(&e, &mut d, "get", Some(ALICE), info).await,
        ("service-unavailable".into(), None)
    );
    let nodes = |reply: &Element| -> Vec<String> {
        reply
            .first_element()
            .unwrap()
            .elements()
            .map(|i| i.attr("node").unwrap().to_owned())
            .collect()
    };
    let list = Element::new("query", ns::DISCO_ITEMS);
    assert_eq!(
        nodes(&e.iq(&mut a, "get", None, list.clone()).await.0),
        [TUNE, "urn:secret", "urn:open"]
    );
    assert_eq!(
        nodes(&e.iq(&mut b, "get", Some(ALICE), list).await.0),
        [TUNE, "urn:open"]
    );
    // A node one may not see is as if it did not exist; an open one is
    // visible to anyone who names it.
    let node_info = |n: &str| Element::new("query", ns::DISCO_INFO).with_attr("node", n);
    assert_eq!(
        refused(&e, &mut b, "get", Some(ALICE), node_info("urn:secret")).await,
        ("item-not-found".into(), None)
    );
    let (reply, _) = e
        .iq(&mut d, "get", Some(ALICE), node_info("urn:open"))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
}

#[tokio::test]
async fn unknown_accounts_unsupported_use_cases_and_the_node_limit() {
    let e = env(&["alice"]).await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    assert_eq!(
        refused(&e, &mut a, "get", Some("nobody@localhost"), items(TUNE)).await,
        ("service-unavailable".into(), None)
    );
    assert_eq!(
        refused(
            &e,
            &mut a,
            "set",
            Some("nobody@localhost"),
            pubsub(
                Element::new("subscribe", NS)
                    .with_attr("node", TUNE)
                    .with_attr("jid", "alice@localhost")
            )
        )
        .await,
        ("service-unavailable".into(), None)
    );
    let (reply, _) = e
        .iq(
            &mut a,
            "set",
            None,
            owner(
                Element::new("affiliations", NS_OWNER)
                    .with_attr("node", TUNE)
                    .with_child(
                        Element::new("affiliation", NS_OWNER)
                            .with_attr("jid", "bob@localhost")
                            .with_attr("affiliation", "publisher"),
                    ),
            ),
        )
        .await;
    assert_eq!(
        error_of(&reply),
        ("feature-not-implemented".into(), Some("unsupported".into()))
    );
    let unsupported = reply
        .get_child("error", ns::CLIENT)
        .unwrap()
        .elements()
        .last()
        .unwrap();
    assert_eq!(unsupported.attr("feature"), Some("modify-affiliations"));
    for i in 0..MAX_NODES {
        ok(
            &e,
            &mut a,
            "set",
            publish(&format!("urn:n{i}"), None, tune("x")),
        )
        .await;
    }
    assert_eq!(
        refused(
            &e,
            &mut a,
            "set",
            None,
            publish("urn:one-too-many", None, tune("x"))
        )
        .await,
        ("policy-violation".into(), None)
    );
}

fn subscribe(node: &str, jid: &str) -> Element {
    pubsub(
        Element::new("subscribe", NS)
            .with_attr("node", node)
            .with_attr("jid", jid),
    )
}

fn unsubscribe(node: &str, jid: &str) -> Element {
    pubsub(
        Element::new("unsubscribe", NS)
            .with_attr("node", node)
            .with_attr("jid", jid),
    )
}

#[tokio::test]
async fn explicit_subscriptions_follow_the_access_model() {
    let e = env(&["alice", "dave"]).await;
    let mut a = notified(&e, "alice@localhost/phone", &[]).await;
    let mut d = notified(&e, "dave@localhost/pc", &[]).await;
    ok(
        &e,
        &mut a,
        "set",
        with_options(
            publish("urn:blog", Some("p1"), tune("first")),
            &[("pubsub#access_model", "open"), ("pubsub#max_items", "10")],
        ),
    )
    .await;
    ok(&e, &mut a, "set", publish(TUNE, Some("t1"), tune("t"))).await;

    // A stranger subscribes to the open node: the answer, then the last
    // item at once.
    let (reply, got) = e
        .iq(
            &mut d,
            "set",
            Some(ALICE),
            subscribe("urn:blog", "dave@localhost"),
        )
        .await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        reply.to_xml_string()
    );
    let sub = reply.first_element().unwrap().first_element().unwrap();
    assert_eq!(sub.attr("subscription"), Some("subscribed"));
    let got = [got, e.settle(&mut d, ALICE).await].concat();
    assert_eq!(
        events(&got),
        [("urn:blog".to_string(), vec!["p1".to_string()])]
    );
    // Notified of what follows, without any capabilities.
    ok(
        &e,
        &mut a,
        "set",
        publish("urn:blog", Some("p2"), tune("second")),
    )
    .await;
    assert_eq!(
        events(&e.settle(&mut d, "dave@localhost").await),
        [("urn:blog".to_string(), vec!["p2".to_string()])]
    );
    let (reply, _) = e
        .iq(
            &mut d,
            "get",
            Some(ALICE),
            pubsub(Element::new("subscriptions", NS)),
        )
        .await;
    assert_eq!(
        reply
            .first_element()
            .unwrap()
            .first_element()
            .unwrap()
            .elements()
            .count(),
        1
    );
    let (reply, _) = e
        .iq(
            &mut a,
            "get",
            None,
            owner(Element::new("subscriptions", NS_OWNER).with_attr("node", "urn:blog")),
        )
        .await;
    let list = reply.first_element().unwrap().first_element().unwrap();
    assert_eq!(
        list.first_element().unwrap().attr("jid"),
        Some("dave@localhost")
    );

    // Not the presence node, nor someone else's JID.
    assert_eq!(
        refused(
            &e,
            &mut d,
            "set",
            Some(ALICE),
            subscribe(TUNE, "dave@localhost")
        )
        .await,
        (
            "not-authorized".into(),
            Some("presence-subscription-required".into())
        )
    );
    assert_eq!(
        refused(
            &e,
            &mut d,
            "set",
            Some(ALICE),
            subscribe("urn:blog", "alice@localhost")
        )
        .await,
        ("bad-request".into(), Some("invalid-jid".into()))
    );

    // Unsubscribed, nothing more arrives.
    let (reply, _) = e
        .iq(
            &mut d,
            "set",
            Some(ALICE),
            unsubscribe("urn:blog", "dave@localhost"),
        )
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(
        refused(
            &e,
            &mut d,
            "set",
            Some(ALICE),
            unsubscribe("urn:blog", "dave@localhost")
        )
        .await,
        ("unexpected-request".into(), Some("not-subscribed".into()))
    );
    ok(
        &e,
        &mut a,
        "set",
        publish("urn:blog", Some("p3"), tune("third")),
    )
    .await;
    assert!(events(&e.settle(&mut d, "dave@localhost").await).is_empty());
}
