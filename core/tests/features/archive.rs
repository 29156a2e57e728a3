//! The message archive (XEP-0313) with stanza ids (XEP-0359), preferences
//! (XEP-0441), paging (XEP-0059) and retractions (XEP-0424).

use switchboard_core::features::mam::NS;
use switchboard_spool::store::{ArchiveEntry, ArchiveQuery};
use switchboard_xml::{ns, Element};

use crate::same;
use crate::support::{env, error_condition, xml, Client, Env};

const SID: &str = "urn:xmpp:sid:0";
const RSM: &str = "http://jabber.org/protocol/rsm";

fn chat(to: &str, id: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", id)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// The ids of every `<stanza-id/>` by `by`.
fn ids_by(el: &Element, by: &str) -> Vec<String> {
    el.elements()
        .filter(|c| c.is("stanza-id", SID) && c.attr("by") == Some(by))
        .filter_map(|c| c.attr("id").map(str::to_string))
        .collect()
}

async fn archive(e: &Env, owner: &str) -> Vec<ArchiveEntry> {
    let q = ArchiveQuery {
        max: 10_000,
        ..ArchiveQuery::default()
    };
    e.stores
        .archive
        .query(owner, &q)
        .await
        .unwrap()
        .unwrap()
        .entries
}

fn query(inner: &str) -> Element {
    xml(&format!(
        "<query xmlns='urn:xmpp:mam:2' queryid='q'>{inner}</query>"
    ))
}

fn form(fields: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>urn:xmpp:mam:2</value></field>{fields}</x>"
    )
}

fn rsm(inner: &str) -> String {
    format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>")
}

/// Runs a query: the bodies of the results, in order, and the `<fin/>`.
async fn run(e: &Env, c: &mut Client, q: Element) -> (Vec<String>, Element) {
    let (results, answer) = e.iq(c, "set", None, q).await;
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "{}",
        answer.to_xml_string()
    );
    let bodies = results
        .iter()
        .map(|r| {
            let fwd = r
                .get_child("result", NS)
                .and_then(|x| x.get_child("forwarded", "urn:xmpp:forward:0"))
                .expect("a result");
            let m = fwd.get_child("message", ns::CLIENT).expect("the message");
            m.child_text("body", ns::CLIENT).unwrap_or_default()
        })
        .collect();
    (bodies, answer.get_child("fin", NS).expect("<fin/>").clone())
}

fn rsm_text(fin: &Element, name: &str) -> Option<String> {
    fin.get_child("set", RSM)?.child_text(name, RSM)
}

#[tokio::test]
async fn a_chat_is_kept_in_both_archives_and_each_side_sees_its_own_ids() {
    let e = env(&["alice", "bob"]).await;
    let mut desk = e.start("alice@localhost/desk", Some(0)).await;
    let mut phone = e.start("alice@localhost/phone", Some(-1)).await;
    e.iq(
        &mut phone,
        "set",
        None,
        Element::new("enable", "urn:xmpp:carbons:2"),
    )
    .await;
    let mut bob = e.start("bob@localhost/home", Some(0)).await;

    // A stanza-id naming Alice's archive from anyone else is a forgery.
    let mut forged = chat("alice@localhost/desk", "b1", "hello");
    forged.append_child(
        Element::new("stanza-id", SID)
            .with_attr("by", "alice@localhost")
            .with_attr("id", "forged"),
    );
    e.send(&bob, forged);
    e.done(&bob).await;
    let got = desk.inbox();
    assert_eq!(got.len(), 1);
    let kept = archive(&e, "alice@localhost").await;
    assert_eq!(kept.len(), 1);
    assert_eq!(ids_by(&got[0], "alice@localhost"), [kept[0].id.clone()]);
    assert_eq!(kept[0].with, "bob@localhost/home");
    same(
        &kept[0].stanza,
        "<message xmlns='jabber:client' to='alice@localhost/desk' type='chat' id='b1' \
         from='bob@localhost/home'><body>hello</body></message>",
    );
    phone.inbox();

    e.send(&desk, chat("bob@localhost", "a1", "hi bob"));
    e.done(&desk).await;
    let alices = archive(&e, "alice@localhost").await;
    let bobs = archive(&e, "bob@localhost").await;
    assert_eq!(alices.len(), 2);
    assert_eq!(alices[1].with, "bob@localhost");
    let to_bob = bob.inbox();
    assert_eq!(to_bob.len(), 1);
    // Bob's archive has what he sent, then what he got.
    assert_eq!(bobs.len(), 2);
    assert_eq!(ids_by(&to_bob[0], "bob@localhost"), [bobs[1].id.clone()]);
    assert!(
        ids_by(&to_bob[0], "alice@localhost").is_empty(),
        "Alice's archive id stays with Alice"
    );
    let copy = phone.inbox();
    let sent = copy[0]
        .get_child("sent", "urn:xmpp:carbons:2")
        .and_then(|s| s.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", ns::CLIENT))
        .expect("a sent carbon");
    assert_eq!(ids_by(sent, "alice@localhost"), [alices[1].id.clone()]);
    // Both sides' queries find it.
    let (bodies, _) = run(&e, &mut bob, query("")).await;
    assert_eq!(bodies, ["hello", "hi bob"]);
}

#[tokio::test]
async fn a_new_device_fetches_history_page_by_page() {
    let e = env(&["alice", "bob"]).await;
    let _desk = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    for n in 1..=120 {
        e.send(
            &bob,
            chat("alice@localhost", &format!("b{n}"), &format!("n{n}")),
        );
    }
    e.done(&bob).await;
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let want = |r: std::ops::RangeInclusive<u32>| r.map(|n| format!("n{n}")).collect::<Vec<_>>();

    let (bodies, fin) = run(&e, &mut phone, query(&rsm("<max>50</max><before/>"))).await;
    assert_eq!(bodies, want(71..=120));
    assert_eq!(fin.attr("complete"), None);
    assert_eq!(rsm_text(&fin, "count").as_deref(), Some("120"));
    let first = fin
        .get_child("set", RSM)
        .unwrap()
        .get_child("first", RSM)
        .unwrap();
    assert_eq!(
        first.attr("index"),
        None,
        "no index on a page read backwards"
    );
    let first = first.text();

    let (bodies, fin) = run(
        &e,
        &mut phone,
        query(&rsm(&format!("<max>50</max><before>{first}</before>"))),
    )
    .await;
    assert_eq!(bodies, want(21..=70));
    let first = rsm_text(&fin, "first").unwrap();
    let (bodies, fin) = run(
        &e,
        &mut phone,
        query(&rsm(&format!("<max>50</max><before>{first}</before>"))),
    )
    .await;
    assert_eq!(bodies, want(1..=20));
    assert_eq!(fin.attr("complete"), Some("true"));

    // Forward from an id, and by index; past the end an empty page.
    let last = rsm_text(&fin, "last").unwrap();
    let (bodies, _) = run(
        &e,
        &mut phone,
        query(&rsm(&format!("<max>3</max><after>{last}</after>"))),
    )
    .await;
    assert_eq!(bodies, want(21..=23));
    let (bodies, fin) = run(
        &e,
        &mut phone,
        query(&rsm("<max>50</max><index>100</index>")),
    )
    .await;
    assert_eq!(bodies, want(101..=120));
    assert_eq!(fin.attr("complete"), Some("true"));
    let (bodies, fin) = run(
        &e,
        &mut phone,
        query(&rsm("<max>50</max><index>500</index>")),
    )
    .await;
    assert!(bodies.is_empty());
    same(
        &fin,
        "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'>\
         <count>120</count></set></fin>",
    );
    // Flipped: the same page, newest first.
    let (bodies, _) = run(
        &e,
        &mut phone,
        query(&format!("{}<flip-page/>", rsm("<max>3</max><before/>"))),
    )
    .await;
    assert_eq!(bodies, ["n120", "n119", "n118"]);
}

#[tokio::test]
async fn results_are_forwarded_with_their_delay_and_queryid() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    e.send(&bob, chat("alice@localhost", "b1", "kept"));
    e.done(&bob).await;
    alice.inbox();
    let kept = archive(&e, "alice@localhost").await;
    let (results, answer) = e.iq(&mut alice, "set", None, query("")).await;
    assert_eq!(results.len(), 1);
    same(
        &results[0],
        &format!(
            "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/desk'>\
             <result xmlns='urn:xmpp:mam:2' id='{id}' queryid='q'><forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='{stamp}'/><message xmlns='jabber:client' to='alice@localhost' \
             type='chat' id='b1' from='bob@localhost/home'><body>kept</body></message></forwarded></result></message>",
            id = kept[0].id,
            stamp = switchboard_service::time::stamp(kept[0].timestamp)
        ),
    );
    same(
        &answer,
        &format!(
            "<iq xmlns='jabber:client' type='result' id='iq-1' from='alice@localhost' to='alice@localhost/desk'>\
             <fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'>\
             <first index='0'>{id}</first><last>{id}</last><count>1</count></set></fin></iq>",
            id = kept[0].id
        ),
    );
}

#[tokio::test]
async fn unknown_ids_and_malformed_queries_get_the_errors_xep_0313_names() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let mut bob = e.start("bob@localhost/home", Some(0)).await;
    e.send(&bob, chat("alice@localhost", "b1", "one"));
    e.done(&bob).await;
    alice.inbox();
    let (_, answer) = e
        .iq(
            &mut alice,
            "set",
            None,
            query(&rsm("<after>no-such-id</after>")),
        )
        .await;
    same(
        &answer,
        "<iq xmlns='jabber:client' type='error' id='iq-1' from='alice@localhost' to='alice@localhost/desk'>\
         <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>no message in the archive has the id 'no-such-id'</text>\
         </error></iq>",
    );
    let (_, answer) = e
        .iq(
            &mut alice,
            "set",
            None,
            query(&form("<field var='ids'><value>nope</value></field>")),
        )
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("item-not-found"));
    let (_, answer) = e
        .iq(
            &mut alice,
            "set",
            None,
            query(&form("<field var='start'><value>last week</value></field>")),
        )
        .await;
    same(
        &answer,
        "<iq xmlns='jabber:client' type='error' id='iq-3' from='alice@localhost' to='alice@localhost/desk'>\
         <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>'start' is not an XEP-0082 date-time: \"last week\"</text>\
         </error></iq>",
    );
    let (_, answer) = e
        .iq(
            &mut alice,
            "set",
            None,
            query(&form("<field var='fulltext'><value>x</value></field>")),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("feature-not-implemented")
    );
    let (_, answer) = e
        .iq(&mut bob, "set", Some("alice@localhost"), query(""))
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn the_form_and_the_metadata() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    let (_, form) = e
        .iq(&mut alice, "get", None, Element::new("query", NS))
        .await;
    same(
        form.get_child("query", NS).unwrap(),
        "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'>\
         <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
         <field var='with' type='jid-single'/><field var='start' type='text-single'/>\
         <field var='end' type='text-single'/><field var='before-id' type='text-single'/>\
         <field var='after-id' type='text-single'/><field var='ids' type='list-multi'>\
         <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate>\
         </field></x></query>",
    );
    let (_, meta) = e
        .iq(&mut alice, "get", None, Element::new("metadata", NS))
        .await;
    same(
        meta.get_child("metadata", NS).unwrap(),
        "<metadata xmlns='urn:xmpp:mam:2'/>",
    );
    for n in 1..=3 {
        e.send(&bob, chat("alice@localhost", &format!("b{n}"), "x"));
    }
    e.done(&bob).await;
    alice.inbox();
    let kept = archive(&e, "alice@localhost").await;
    let (_, meta) = e
        .iq(&mut alice, "get", None, Element::new("metadata", NS))
        .await;
    let stamp = |i: usize| switchboard_service::time::stamp(kept[i].timestamp);
    same(
        meta.get_child("metadata", NS).unwrap(),
        &format!(
            "<metadata xmlns='urn:xmpp:mam:2'><start id='{}' timestamp='{}'/><end id='{}' timestamp='{}'/></metadata>",
            kept[0].id,
            stamp(0),
            kept[2].id,
            stamp(2)
        ),
    );
}

#[tokio::test]
async fn preferences_choose_what_is_kept() {
    let e = env(&["alice", "bob", "carol"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    let carol = e.start("carol@localhost/home", Some(0)).await;
    let (_, prefs) = e
        .iq(&mut alice, "get", None, Element::new("prefs", NS))
        .await;
    same(
        prefs.get_child("prefs", NS).unwrap(),
        "<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>",
    );
    let set = xml(
        "<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>bob@localhost</jid></always><never/></prefs>",
    );
    let (_, answer) = e.iq(&mut alice, "set", None, set.clone()).await;
    same(answer.get_child("prefs", NS).unwrap(), &set.to_xml_string());
    e.send(&bob, chat("alice@localhost", "b1", "from bob"));
    e.send(&carol, chat("alice@localhost", "c1", "from carol"));
    e.done(&bob).await;
    e.done(&carol).await;
    let got = alice.inbox();
    assert_eq!(got.len(), 2);
    assert_eq!(
        ids_by(&got[0], "alice@localhost").len(),
        1,
        "kept: it has an id"
    );
    assert!(
        ids_by(&got[1], "alice@localhost").is_empty(),
        "not kept: no id"
    );
    let kept = archive(&e, "alice@localhost").await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].with, "bob@localhost/home");

    // Roster: kept once Carol is in the roster (a roster set, through the
    // account's actor).
    let set = xml("<prefs xmlns='urn:xmpp:mam:2' default='roster'/>");
    e.iq(&mut alice, "set", None, set).await;
    e.send(&carol, chat("alice@localhost", "c2", "not yet"));
    e.done(&carol).await;
    let add = xml("<query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query>");
    e.iq(&mut alice, "set", None, add).await;
    e.send(&carol, chat("alice@localhost", "c3", "now"));
    e.done(&carol).await;
    let kept: Vec<String> = archive(&e, "alice@localhost")
        .await
        .iter()
        .map(|k| k.stanza.child_text("body", ns::CLIENT).unwrap_or_default())
        .collect();
    assert_eq!(kept, ["from bob", "now"]);
    // Stored: a new session finds them.
    let mut phone = e.start("alice@localhost/phone", Some(0)).await;
    let (_, prefs) = e
        .iq(&mut phone, "get", None, Element::new("prefs", NS))
        .await;
    assert_eq!(
        prefs.get_child("prefs", NS).unwrap().attr("default"),
        Some("roster")
    );
}

#[tokio::test]
async fn hints_and_chat_states_are_not_kept() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    let mut m = chat("alice@localhost", "b1", "forget me");
    m.append_child(Element::new("no-permanent-store", "urn:xmpp:hints"));
    e.send(&bob, m);
    let typing = Element::new("message", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_attr("type", "chat")
        .with_child(Element::new(
            "composing",
            "http://jabber.org/protocol/chatstates",
        ));
    e.send(&bob, typing);
    e.done(&bob).await;
    let got = alice.inbox();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| ids_by(m, "alice@localhost").is_empty()));
    assert!(archive(&e, "alice@localhost").await.is_empty());
}

#[tokio::test]
async fn offline_messages_are_delivered_once_and_sit_in_the_archive() {
    let e = env(&["alice", "bob"]).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    e.send(&bob, chat("alice@localhost", "b1", "while you were out"));
    e.send(&bob, chat("alice@localhost", "b2", "and again"));
    e.done(&bob).await;
    let kept = archive(&e, "alice@localhost").await;
    assert_eq!(kept.len(), 2);
    assert_eq!(
        e.offline_bodies("alice").await,
        ["while you were out", "and again"]
    );

    let mut alice = e.start("alice@localhost/desk", None).await;
    e.send(&alice, Element::new("presence", ns::CLIENT));
    let got = e.settle(&mut alice, "alice@localhost").await;
    let delivered: Vec<&Element> = got.iter().filter(|s| s.name == "message").collect();
    assert_eq!(delivered.len(), 2, "{got:?}");
    for (m, k) in delivered.iter().zip(&kept) {
        assert_eq!(ids_by(m, "alice@localhost"), std::slice::from_ref(&k.id));
        assert!(m.get_child("delay", ns::DELAY).is_some());
    }
    assert!(e.offline_bodies("alice").await.is_empty());
    assert_eq!(archive(&e, "alice@localhost").await.len(), 2, "kept once");
}

/// A session given up on before it wrote what it was sent: those
/// messages, and one sent to the account while its connection was still
/// closing, wait offline in the order they were sent, and each sits in the
/// archive once (kept on the way to the session, not again when stored).
#[tokio::test]
async fn messages_a_session_left_behind_are_stored_in_order_and_archived_once() {
    let e = env(&["alice", "bob"]).await;
    let mut bob = e.start("bob@localhost/home", Some(0)).await;
    let alice = e.start("alice@localhost/desk", Some(0)).await;
    e.send(&bob, chat("alice@localhost", "b1", "one"));
    e.send(&bob, chat("alice@localhost", "b2", "two"));
    e.done(&bob).await;
    assert!(e.router.give_up(Some(&alice.jid), alice.id, &alice.shared));
    e.send(&bob, chat("alice@localhost", "b3", "three"));
    e.end(alice);
    e.settle(&mut bob, "alice@localhost").await;
    e.done(&bob).await;
    assert_eq!(e.offline_bodies("alice").await, ["one", "two", "three"]);
    let kept: Vec<String> = archive(&e, "alice@localhost")
        .await
        .iter()
        .map(|k| k.stanza.child_text("body", ns::CLIENT).unwrap_or_default())
        .collect();
    assert_eq!(kept, ["one", "two", "three"], "each kept once");
}

#[tokio::test]
async fn a_retraction_leaves_a_tombstone() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.start("alice@localhost/desk", Some(0)).await;
    let bob = e.start("bob@localhost/home", Some(0)).await;
    let mut oops = chat("alice@localhost", "b1", "wrong window");
    oops.append_child(Element::new("origin-id", SID).with_attr("id", "o-1"));
    e.send(&bob, oops);
    let retract = xml(
        "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='b2'>\
         <retract xmlns='urn:xmpp:message-retract:1' id='o-1'/>\
         <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>\
         <body>This person attempted to retract a previous message, but it's unsupported by your client.</body>\
         <store xmlns='urn:xmpp:hints'/></message>",
    );
    e.send(&bob, retract);
    e.done(&bob).await;
    alice.inbox();
    let (results, _) = e.iq(&mut alice, "set", None, query("")).await;
    assert_eq!(results.len(), 2);
    let kept = archive(&e, "alice@localhost").await;
    let stamp = kept[0]
        .stanza
        .get_child("retracted", "urn:xmpp:message-retract:1")
        .and_then(|r| r.attr("stamp"))
        .expect("a tombstone")
        .to_string();
    same(
        &kept[0].stanza,
        &format!(
            "<message xmlns='jabber:client' from='bob@localhost/home' to='alice@localhost' type='chat' id='b1'>\
             <retracted xmlns='urn:xmpp:message-retract:1' stamp='{stamp}'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>"
        ),
    );
    assert!(kept[1]
        .stanza
        .get_child("retract", "urn:xmpp:message-retract:1")
        .is_some());
}
