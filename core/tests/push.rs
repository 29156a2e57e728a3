//! Push notifications (XEP-0357) through the routing table the server
//! builds (see `support`): alice enables an app server, which is a
//! service slot whose inbox the test reads; bob writes to her while she
//! is online, hibernating (XEP-0198) or offline, and the app server's
//! inbox shows which notifications went out. Where a test shows that a
//! notification did *not* go out, a later one that must go out is the
//! barrier: notifications leave in the order their messages were routed.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::routing::iq::ServiceInfo;
use switchboard_core::routing::services::ServiceHandle;
use switchboard_core::routing::table::{SessionEnd, SessionRef};
use switchboard_core::sessions::{Hibernating, Outbound};
use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, BoxFuture, StoreResult, Stores};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use support::{env, error_condition, Client, Env, HOST};

const PUSH: &str = "push.localhost";
const NS: &str = "urn:xmpp:push:0";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const WAIT: Duration = Duration::from_secs(10);

/// The app server stand-in: a service slot for `host` whose inbox the
/// test reads.
fn app_server(e: &Env, host: &str) -> mpsc::Receiver<Element> {
    let (tx, rx) = mpsc::channel(64);
    e.router.services().add(
        host.into(),
        ServiceHandle {
            info: ServiceInfo {
                jid: host.into(),
                name: "push".into(),
            },
            inbox: Some(tx),
            metrics: Default::default(),
        },
    );
    rx
}

/// Sends an IQ and waits for its answer (async handlers answer from a
/// task); what arrived before the answer is left in the outbox.
async fn ask(e: &Env, client: &mut Client, id: &str, payload: Element) -> Element {
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_child(payload);
    e.send(client, iq);
    let mut other = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, client.rx.recv()).await {
            Ok(Some(Outbound::Stanza(el))) if el.attr("id") == Some(id) => {
                assert!(
                    other.is_empty(),
                    "{} got {other:?} before its answer",
                    client.jid
                );
                return *el;
            }
            Ok(Some(Outbound::Stanza(el))) => other.push(el),
            other => panic!("{}: no answer to {id}: {other:?}", client.jid),
        }
    }
}

fn enable(service: &str, node: &str) -> Element {
    Element::new("enable", NS)
        .with_attr("jid", service)
        .with_attr("node", node)
}

fn with_secret(mut enable: Element, secret: &str) -> Element {
    let field = |var: &str, v: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(v))
    };
    enable.append_child(
        Element::new("x", ns::DATA_FORMS)
            .with_attr("type", "submit")
            .with_child(field(
                "FORM_TYPE",
                "http://jabber.org/protocol/pubsub#publish-options",
            ))
            .with_child(field("secret", secret)),
    );
    enable
}

fn disable(service: &str, node: Option<&str>) -> Element {
    let mut d = Element::new("disable", NS).with_attr("jid", service);
    if let Some(n) = node {
        d.set_attr("node", n);
    }
    d
}

async fn enabled(e: &Env, client: &mut Client, payload: Element) {
    let answer = ask(e, client, "en", payload).await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
}

fn chat(to: &str, id: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", id)
        .with_child(Element::new("body", ns::CLIENT).with_text(format!("secret text {id}")))
}

fn composing(to: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new(
            "composing",
            "http://jabber.org/protocol/chatstates",
        ))
}

/// The node a notification publishes to, checking its shape on the way:
/// an IQ set from alice's bare JID with the summary form and nothing of
/// the message in it.
fn node_of(n: &Element) -> String {
    assert_eq!(n.name, "iq");
    assert_eq!(n.attr("type"), Some("set"));
    assert_eq!(n.attr("from"), Some("alice@localhost"));
    assert!(n.attr("id").is_some());
    let text = n.to_xml_string();
    assert!(!text.contains("secret text"), "no body: {text}");
    assert!(!text.contains("bob@"), "no sender: {text}");
    let publish = n
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .unwrap_or_else(|| panic!("not a publish: {text}"));
    let form = publish
        .get_child("item", PUBSUB)
        .and_then(|i| i.get_child("notification", NS))
        .and_then(|n| n.get_child("x", ns::DATA_FORMS))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let fields: Vec<(String, String)> = form
        .elements()
        .map(|f| {
            (
                f.attr("var").unwrap_or_default().to_string(),
                f.child_text("value", ns::DATA_FORMS).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("FORM_TYPE".to_string(), "urn:xmpp:push:summary".to_string()),
            ("message-count".to_string(), "1".to_string())
        ]
    );
    publish.attr("node").unwrap_or_default().to_string()
}

/// The nodes of the notifications waiting in the app server's inbox now.
fn published(rx: &mut mpsc::Receiver<Element>) -> Vec<String> {
    let mut v = Vec::new();
    while let Ok(n) = rx.try_recv() {
        v.push(node_of(&n));
    }
    v
}

/// The next notification, waiting for it (one sent from a task, after a
/// store read).
async fn next_notification(rx: &mut mpsc::Receiver<Element>) -> Element {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a notification")
        .expect("the inbox is open")
}

/// Alice's session goes away without a trace (as when her connection
/// closed without stream management).
fn offline(e: &Env, client: &Client) {
    e.router.sessions().unbind(&client.jid, client.id);
}

fn hibernate(client: &Client) {
    client.shared.ext.set(Arc::new(Hibernating));
}

#[tokio::test]
async fn the_account_offers_push_and_only_its_owner_may_enable() {
    let e = env(&["alice", "bob"]).await;
    let _push = app_server(&e, PUSH);
    let mut alice = e.online("alice@localhost/phone", Some(0));
    let disco = Element::new("iq", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_attr("type", "get")
        .with_attr("id", "d")
        .with_child(Element::new("query", ns::DISCO_INFO));
    e.send(&alice, disco);
    let info = alice.inbox().remove(0);
    let features: Vec<&str> = info
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .elements()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(features.contains(&NS), "{features:?}");

    let mut bob = e.online("bob@localhost/desk", Some(0));
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_attr("type", "set")
        .with_attr("id", "x")
        .with_child(enable(PUSH, "n"));
    e.send(&bob, iq);
    let answer = tokio::time::timeout(WAIT, bob.rx.recv()).await.unwrap();
    let Some(Outbound::Stanza(answer)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn enable_refuses_a_missing_or_bad_jid_and_services_out_of_reach() {
    let e = env(&["alice"]).await;
    let _push = app_server(&e, PUSH);
    let mut alice = e.online("alice@localhost/phone", Some(0));
    let cases = [
        (
            Element::new("enable", NS).with_attr("node", "n"),
            "bad-request",
        ),
        (enable("not a jid@", "n"), "bad-request"),
        (enable("alice@localhost", "n"), "bad-request"),
        (disable("", None), "bad-request"),
        // No federation: a push service at another domain can never be
        // reached, so the enable fails at once.
        (enable("push.example.net", "n"), "remote-server-not-found"),
        (
            with_secret(enable(PUSH, "n"), "s").with_child(Element::new("x", "urn:example")),
            "",
        ),
    ];
    for (i, (payload, condition)) in cases.into_iter().enumerate() {
        let answer = ask(&e, &mut alice, &format!("e{i}"), payload).await;
        match condition {
            "" => assert_eq!(answer.attr("type"), Some("result")),
            c => assert_eq!(error_condition(&answer).as_deref(), Some(c), "case {i}"),
        }
    }
    let refused = ask(&e, &mut alice, "r", enable("push.example.net", "n")).await;
    let text = refused
        .get_child("error", ns::CLIENT)
        .and_then(|e| e.child_text("text", ns::STANZAS))
        .unwrap();
    assert!(text.contains("push.example.net"), "{text}");
    assert_eq!(
        refused.get_child("error", ns::CLIENT).unwrap().attr("type"),
        Some("cancel")
    );
}

/// Offline (no session: offline storage) and hibernating (every target
/// session hibernates) notify; an online session does not; neither does
/// a chat state alone. Each registration gets one notification per
/// message, with its publish options.
#[tokio::test]
async fn messages_that_reach_no_live_device_notify_each_registration() {
    let e = env(&["alice", "bob"]).await;
    let mut push = app_server(&e, PUSH);
    let mut alice = e.online("alice@localhost/phone", Some(0));
    let bob = e.online("bob@localhost/desk", Some(0));
    enabled(&e, &mut alice, with_secret(enable(PUSH, "a"), "s3cr3t")).await;
    enabled(&e, &mut alice, enable(PUSH, "b")).await;

    // Online: delivered, nobody notified.
    e.send(&bob, chat("alice@localhost", "m1"));
    e.send(&bob, chat("alice@localhost/phone", "m2"));
    assert_eq!(alice.inbox().len(), 2);

    // Hibernating: both registrations, once per message, bare or full.
    hibernate(&alice);
    e.send(&bob, chat("alice@localhost", "m3"));
    let first = push.try_recv().unwrap();
    assert_eq!(node_of(&first), "a");
    let options = first
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish-options", PUBSUB))
        .expect("the stored publish options")
        .to_xml_string();
    assert!(options.contains("s3cr3t"), "{options}");
    assert_eq!(published(&mut push), ["b"], "m1 and m2 notified nothing");
    e.send(&bob, composing("alice@localhost"));
    e.send(&bob, chat("alice@localhost/phone", "m4"));
    assert_eq!(
        published(&mut push),
        ["a", "b"],
        "the chat state notified nothing"
    );

    // Offline: stored, and notified.
    offline(&e, &alice);
    e.send(&bob, chat("alice@localhost", "m5"));
    e.send(&bob, chat("alice@localhost/gone", "m6"));
    assert_eq!(published(&mut push), ["a", "b", "a", "b"]);
    let mut bob = bob;
    e.settle(&mut bob, "alice@localhost").await;
    assert_eq!(e.offline_ids("alice").await, ["m5", "m6"]);
}

/// A message to a bare JID that reaches one connected session among
/// hibernating ones reaches a device: nobody is notified. Headlines,
/// errors and group chat to a bare JID (which is refused) never notify.
#[tokio::test]
async fn one_live_target_is_enough_and_some_messages_never_notify() {
    let e = env(&["alice", "bob"]).await;
    let mut push = app_server(&e, PUSH);
    let mut phone = e.online("alice@localhost/phone", Some(0));
    let desk = e.online("alice@localhost/desk", Some(0));
    let bob = e.online("bob@localhost/desk", Some(0));
    enabled(&e, &mut phone, enable(PUSH, "a")).await;
    hibernate(&phone);
    e.send(&bob, chat("alice@localhost", "both"));
    let mut headline = chat("alice@localhost/phone", "h");
    headline.set_attr("type", "headline");
    e.send(&bob, headline);
    let mut groupchat = chat("alice@localhost", "g");
    groupchat.set_attr("type", "groupchat");
    e.send(&bob, groupchat);
    // The desk session sets a lower priority: the phone, hibernating,
    // is now the only target of a bare JID.
    e.router.sessions().set_presence(
        &desk.jid,
        Some(
            Element::new("presence", ns::CLIENT)
                .with_child(Element::new("priority", ns::CLIENT).with_text("-1")),
        ),
    );
    e.send(&bob, chat("alice@localhost", "barrier"));
    assert_eq!(published(&mut push), ["a"], "only the last message");
}

/// The same (jid, node) again replaces its options, and with nothing
/// changed is not written again (clients enable on every connect).
/// Disable removes one node or every node of a service. Registrations
/// are stored: a server started again over the same storage notifies
/// them (read from the store on a task, the first time).
#[tokio::test]
async fn registrations_are_replaced_removed_and_stored() {
    let e = env(&["alice", "bob"]).await;
    let puts = Arc::new(AtomicUsize::new(0));
    let counted = counting(&e.stores, &puts);
    let e = e.restarted(counted);
    let mut push = app_server(&e, PUSH);
    let mut alice = e.online("alice@localhost/phone", Some(0));
    enabled(&e, &mut alice, with_secret(enable(PUSH, "a"), "one")).await;
    enabled(&e, &mut alice, with_secret(enable(PUSH, "a"), "one")).await;
    assert_eq!(
        puts.load(Ordering::SeqCst),
        1,
        "the same again: not written"
    );
    enabled(&e, &mut alice, with_secret(enable(PUSH, "a"), "two")).await;
    enabled(&e, &mut alice, enable(PUSH, "b")).await;
    enabled(&e, &mut alice, enable(PUSH, "c")).await;
    assert_eq!(puts.load(Ordering::SeqCst), 4);
    enabled(&e, &mut alice, disable(PUSH, Some("c"))).await;
    enabled(&e, &mut alice, disable("other.localhost", None)).await;
    assert_eq!(
        puts.load(Ordering::SeqCst),
        5,
        "disabling nothing writes nothing"
    );

    let bob = e.online("bob@localhost/desk", Some(0));
    offline(&e, &alice);
    e.send(&bob, chat("alice@localhost", "m1"));
    let sent: Vec<Element> = std::iter::from_fn(|| push.try_recv().ok()).collect();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].to_xml_string().contains("two"), "replaced options");
    assert_eq!(node_of(&sent[1]), "b");

    // Started again over the same storage.
    let stores = e.stores.clone();
    let again = e.restarted(stores);
    let mut push = app_server(&again, PUSH);
    let bob = again.online("bob@localhost/desk", Some(0));
    again.send(&bob, chat("alice@localhost", "m2"));
    let first = next_notification(&mut push).await;
    assert_eq!(node_of(&first), "a");
    assert!(first.to_xml_string().contains("two"));
    assert_eq!(node_of(&next_notification(&mut push).await), "b");

    // Disabling every node of the service leaves nothing stored.
    let mut alice = again.online("alice@localhost/phone", Some(0));
    enabled(&again, &mut alice, disable(PUSH, None)).await;
    let doc = again
        .stores
        .account_data
        .get(&AccountRef::new(HOST, "alice"), "push")
        .await
        .unwrap();
    assert_eq!(doc, None);
    offline(&again, &alice);
    again.send(&bob, chat("alice@localhost", "m3"));
    assert!(published(&mut push).is_empty());
}

/// An error of type cancel (or auth) from the app server disables that
/// registration at once and in storage; an error of type wait does not,
/// nor does an error that is not from the service the notification went
/// to.
#[tokio::test]
async fn an_app_server_error_of_type_cancel_disables_the_registration() {
    let e = env(&["alice", "bob"]).await;
    let mut push = app_server(&e, PUSH);
    let _other = app_server(&e, "other.localhost");
    let mut alice = e.online("alice@localhost/phone", Some(0));
    let bob = e.online("bob@localhost/desk", Some(0));
    enabled(&e, &mut alice, enable(PUSH, "a")).await;
    enabled(&e, &mut alice, enable(PUSH, "b")).await;
    offline(&e, &alice);

    let answer = |n: &Element, from: &str, kind: Option<&str>| {
        let mut reply = Element::new("iq", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", "alice@localhost")
            .with_attr("id", n.attr("id").unwrap())
            .with_attr("type", if kind.is_some() { "error" } else { "result" });
        if let Some(k) = kind {
            reply.append_child(
                Element::new("error", ns::CLIENT)
                    .with_attr("type", k)
                    .with_child(Element::new("item-not-found", ns::STANZAS)),
            );
        }
        reply
    };

    e.send(&bob, chat("alice@localhost", "m1"));
    let (a, b) = (push.try_recv().unwrap(), push.try_recv().unwrap());
    assert_eq!((node_of(&a).as_str(), node_of(&b).as_str()), ("a", "b"));
    // Not from the service it went to: ignored.
    let spoofed = answer(&a, "other.localhost", Some("cancel"));
    e.router
        .route_from_service("other.localhost", spoofed)
        .unwrap();
    // Transient: kept.
    e.router
        .route_from_service(PUSH, answer(&b, PUSH, Some("wait")))
        .unwrap();
    e.send(&bob, chat("alice@localhost", "m2"));
    assert_eq!(published(&mut push), ["a", "b"]);

    e.send(&bob, chat("alice@localhost", "m3"));
    let (a, b) = (push.try_recv().unwrap(), push.try_recv().unwrap());
    e.router
        .route_from_service(PUSH, answer(&a, PUSH, Some("cancel")))
        .unwrap();
    e.router
        .route_from_service(PUSH, answer(&b, PUSH, None))
        .unwrap();
    e.send(&bob, chat("alice@localhost", "m4"));
    assert_eq!(published(&mut push), ["b"], "a is disabled at once");

    // And in storage (written by a task): only b is left.
    let alice_ref = AccountRef::new(HOST, "alice");
    let mut stored = String::new();
    for _ in 0..200 {
        stored = e
            .stores
            .account_data
            .get(&alice_ref, "push")
            .await
            .unwrap()
            .map(|d| d.to_xml_string())
            .unwrap_or_default();
        if !stored.contains("node=\"a\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !stored.contains("node=\"a\"") && stored.contains("node=\"b\""),
        "{stored}"
    );
}

/// What a session leaves behind when it ends goes to offline storage
/// (redelivered): one notification per registration for all of it, when
/// the session's end is reported.
#[tokio::test]
async fn messages_left_behind_by_an_ended_session_notify_once() {
    let e = env(&["alice", "bob"]).await;
    let mut push = app_server(&e, PUSH);
    let mut alice = e.online("alice@localhost/phone", Some(0));
    let mut bob = e.online("bob@localhost/desk", Some(0));
    enabled(&e, &mut alice, enable(PUSH, "a")).await;
    for id in ["m1", "m2", "m3"] {
        e.send(&bob, chat("alice@localhost", id));
    }
    e.send(&bob, composing("alice@localhost"));
    // Her connection ends before writing them (what `BoundSession::end`
    // does): given up on, the outbox handed back to her account's actor,
    // which redelivers it and then reports the end.
    assert!(e.router.give_up(Some(&alice.jid), alice.id, &alice.shared));
    let end = SessionEnd {
        jid: alice.jid.clone(),
        presence: None,
        status: None,
        directed: Vec::new(),
    };
    e.router
        .hand_back(&alice.shared, Vec::new(), &mut alice.rx, end);
    e.settle(&mut bob, "alice@localhost").await;
    assert_eq!(published(&mut push), ["a"], "one, not one per message");
    assert_eq!(e.offline_ids("alice").await, ["m1", "m2", "m3"]);
    // Another session's end (or this one's again) notifies nothing more.
    e.router.session_ended(SessionEnd {
        jid: Jid::parse("alice@localhost/other").unwrap(),
        presence: None,
        status: None,
        directed: Vec::new(),
    });
    e.send(&bob, chat("alice@localhost", "barrier"));
    assert_eq!(published(&mut push), ["a"], "only the barrier's");
}

/// A connection that dies may have taken messages with it (written to a
/// dead socket, never acknowledged): when its session starts to
/// hibernate, one notification per registration if any of them matters
/// and no other device of the account is connected and available.
#[tokio::test]
async fn a_session_that_hibernates_with_unacknowledged_messages_notifies_once() {
    let e = env(&["alice", "bob"]).await;
    let mut push = app_server(&e, PUSH);
    let mut phone = e.online("alice@localhost/phone", Some(0));
    enabled(&e, &mut phone, enable(PUSH, "a")).await;
    enabled(&e, &mut phone, enable(PUSH, "b")).await;
    let session = SessionRef {
        jid: phone.jid.clone(),
        id: phone.id,
        tx: switchboard_core::queue::channel(1).0,
        shared: phone.shared.clone(),
        pending: Default::default(),
    };
    let (m1, m2) = (
        chat("alice@localhost", "m1"),
        chat("alice@localhost/phone", "m2"),
    );
    let state = composing("alice@localhost");
    let presence = Element::new("presence", ns::CLIENT).with_attr("from", "bob@localhost/desk");

    // Another device is there (available, connected): it has them.
    let desk = e.online("alice@localhost/desk", Some(0));
    hibernate(&phone);
    e.router.session_hibernates(&session, &[&m1, &m2]);
    // The other device is gone: nothing that matters is no news either.
    offline(&e, &desk);
    e.router.session_hibernates(&session, &[&state, &presence]);
    e.router.session_hibernates(&session, &[]);
    // Two messages that matter: one notification per registration.
    e.router
        .session_hibernates(&session, &[&presence, &m1, &state, &m2]);
    assert_eq!(published(&mut push), ["a", "b"]);
}

/// An account-data store that counts writes, over another.
struct Counting {
    inner: Arc<dyn AccountDataStore>,
    puts: Arc<AtomicUsize>,
}

impl AccountDataStore for Counting {
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>> {
        self.inner.get(account, key)
    }

    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>> {
        if doc.name == "push" {
            self.puts.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.put(account, doc)
    }

    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.inner.remove(account, key)
    }
}

fn counting(stores: &Stores, puts: &Arc<AtomicUsize>) -> Stores {
    Stores {
        account_data: Arc::new(Counting {
            inner: stores.account_data.clone(),
            puts: puts.clone(),
        }),
        ..stores.clone()
    }
}
