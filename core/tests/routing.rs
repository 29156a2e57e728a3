//! Router rules, driven through the routing table the server builds (see
//! `support`): sessions are plain channels, so each test sees exactly what
//! every resource would receive.

mod support;

use std::sync::Arc;

use switchboard_core::routing::table::SessionEnd;
use switchboard_core::sessions::Outbound;
use switchboard_xml::{ns, Element};

use support::{env, error_condition, msg};

#[tokio::test]
async fn bare_jid_messages_go_to_the_highest_non_negative_priority() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let mut b1 = e.online("bob@localhost/desk", Some(5));
    let mut b2 = e.online("bob@localhost/phone", Some(1));
    let mut b3 = e.online("bob@localhost/away", Some(-1));
    e.send(&alice, msg("bob@localhost", "chat"));
    assert_eq!(b1.inbox().len(), 1);
    assert!(b2.inbox().is_empty());
    assert!(b3.inbox().is_empty());
    assert!(alice.inbox().is_empty(), "no error for a delivered message");
}

#[tokio::test]
async fn headlines_to_a_bare_jid_go_to_every_non_negative_resource() {
    let e = env(&["alice", "bob"]).await;
    let alice = e.online("alice@localhost/a", Some(0));
    let mut b1 = e.online("bob@localhost/desk", Some(5));
    let mut b2 = e.online("bob@localhost/phone", Some(0));
    let mut b3 = e.online("bob@localhost/away", Some(-1));
    e.send(&alice, msg("bob@localhost", "headline"));
    assert_eq!(
        (b1.inbox().len(), b2.inbox().len(), b3.inbox().len()),
        (1, 1, 0)
    );
}

/// With only a negative-priority resource the message is stored offline
/// for the account (no error); for an account that does not exist the
/// sender gets `service-unavailable` from its bare JID.
#[tokio::test]
async fn without_an_available_resource_a_message_is_stored_or_refused() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let mut b = e.online("bob@localhost/away", Some(-1));
    e.send(&alice, msg("bob@localhost", "chat"));
    let before = e.settle(&mut alice, "bob@localhost").await;
    assert!(before.is_empty(), "no error: {before:?}");
    assert!(b.inbox().is_empty());
    assert_eq!(e.offline_bodies("bob").await, ["hi"], "stored offline");

    e.send(&alice, msg("nobody@localhost", "chat"));
    let back = e.settle(&mut alice, "nobody@localhost").await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].attr("type"), Some("error"));
    assert_eq!(back[0].attr("from"), Some("nobody@localhost"));
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn chat_to_an_absent_resource_falls_back_to_the_bare_jid() {
    let e = env(&["alice", "bob"]).await;
    let alice = e.online("alice@localhost/a", Some(0));
    let mut b = e.online("bob@localhost/desk", Some(0));
    e.send(&alice, msg("bob@localhost/gone", "chat"));
    let got = b.inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].attr("to"),
        Some("bob@localhost/gone"),
        "the stanza is not rewritten"
    );
}

#[tokio::test]
async fn headline_and_iq_to_an_absent_resource() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let mut b = e.online("bob@localhost/desk", Some(0));
    e.send(&alice, msg("bob@localhost/gone", "headline"));
    assert!(
        b.inbox().is_empty() && alice.inbox().is_empty(),
        "dropped silently"
    );
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("to", "bob@localhost/gone")
        .with_attr("type", "get")
        .with_attr("id", "q1")
        .with_child(Element::new("query", "jabber:iq:version"));
    e.send(&alice, iq);
    assert_eq!(
        error_condition(&alice.inbox()[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn errors_are_never_answered_with_errors() {
    let e = env(&["alice"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    e.send(&alice, msg("nobody@localhost", "error"));
    e.send(&alice, msg("someone@elsewhere.example", "error"));
    let result = Element::new("iq", ns::CLIENT)
        .with_attr("to", "localhost")
        .with_attr("type", "result")
        .with_attr("id", "r");
    e.send(&alice, result);
    let got = e.settle(&mut alice, "nobody@localhost").await;
    // The barrier itself is refused (no such account); nothing else came.
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn other_domains_get_remote_server_not_found() {
    let e = env(&["alice"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    e.send(&alice, msg("someone@elsewhere.example", "chat"));
    let back = alice.inbox();
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("remote-server-not-found")
    );
    assert_eq!(back[0].attr("from"), Some("someone@elsewhere.example"));
}

#[tokio::test]
async fn presence_probes_from_clients_never_reach_anyone() {
    let e = env(&["alice", "bob"]).await;
    let alice = e.online("alice@localhost/a", Some(0));
    let mut b = e.online("bob@localhost/desk", Some(0));
    let probe = Element::new("presence", ns::CLIENT)
        .with_attr("to", "bob@localhost")
        .with_attr("type", "probe");
    e.send(&alice, probe);
    let got = e.settle(&mut b, "bob@localhost").await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn account_disco_info_answers_the_owner_only_and_items_are_empty_for_all() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let disco = |to: &str| {
        Element::new("iq", ns::CLIENT)
            .with_attr("to", to)
            .with_attr("type", "get")
            .with_attr("id", "d")
            .with_child(Element::new("query", ns::DISCO_INFO))
    };
    e.send(&alice, disco("alice@localhost"));
    let own = alice.inbox().remove(0);
    assert_eq!(own.attr("type"), Some("result"));
    let id = own
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .get_child("identity", ns::DISCO_INFO)
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("account"), Some("registered"))
    );
    // Someone who does not see bob's presence gets what an account that
    // does not exist would give (bob's actor answers: PEP, which knows
    // the roster, takes others' disco of an account).
    e.send(&alice, disco("bob@localhost"));
    let got = e.settle(&mut alice, "bob@localhost").await;
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
    // XEP-0030 §8: disco#items to a bare JID is an empty result for
    // anyone, whether the account exists or not.
    for to in ["bob@localhost", "nobody@localhost"] {
        let items = Element::new("iq", ns::CLIENT)
            .with_attr("to", to)
            .with_attr("type", "get")
            .with_attr("id", "i")
            .with_child(Element::new("query", ns::DISCO_ITEMS));
        e.send(&alice, items);
        // PEP answers disco#items to an account from its actor.
        let got = e.settle(&mut alice, to).await.remove(0);
        assert_eq!(got.attr("type"), Some("result"), "{to}: {got:?}");
        assert_eq!(
            got.get_child("query", ns::DISCO_ITEMS)
                .map(|q| q.elements().count()),
            Some(0)
        );
    }
}

/// A session whose outbox overflows is given up on at once: told to
/// close and out of the session table, so nothing more is handed to it;
/// what was still in its outbox (handed back when its connection ends),
/// the stanza that did not fit and everything after it go to offline
/// storage, in the order they were sent, even what was stored while the
/// connection was still closing. The sender is never blocked and gets no
/// error: nothing is lost.
#[tokio::test]
async fn a_session_that_does_not_read_is_given_up_on_and_nothing_sent_to_it_is_lost() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let slow = e.online_with_capacity("bob@localhost/slow", Some(0), 2);
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = slow.shared.clone();
    let flag = killed.clone();
    let waiter = tokio::spawn(async move {
        k.kill.notified().await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    tokio::task::yield_now().await;
    // Routing returns at once however full the outbox is.
    let sent: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for id in &sent {
        let mut m = msg("bob@localhost/slow", "chat");
        m.set_attr("id", id.as_str());
        e.send(&alice, m);
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(killed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(slow.shared.given_up());
    assert!(
        e.router.sessions().get(&slow.jid).is_none(),
        "out of the session table at once"
    );
    // Bob's connection has not ended yet: what is sent to him meanwhile
    // goes to offline storage, behind what his outbox still holds.
    let mut later = Vec::new();
    for i in 10..15 {
        let mut m = msg("bob@localhost", "chat");
        m.set_attr("id", format!("m{i}"));
        later.push(format!("m{i}"));
        e.send(&alice, m);
    }
    // (Alice's next IQ would be answered only once they are stored, so
    // after bob's connection has ended: her ticket waits at bob's place.)
    // The connection ends and hands its outbox back.
    e.end(slow);
    let before = e.settle(&mut alice, "bob@localhost").await;
    assert!(before.is_empty(), "no error for any message: {before:?}");
    let all: Vec<String> = sent.into_iter().chain(later).collect();
    assert_eq!(
        e.offline_ids("bob").await,
        all,
        "all fifteen stored once, in the order they were sent"
    );
}

/// A session that ends on its own (its socket died, its hibernation ran
/// out) hands back what it had not written ahead of anything sent to its
/// account once it left the session table, and its end is reported after
/// that.
#[tokio::test]
async fn what_an_ended_session_did_not_write_is_stored_before_what_came_after() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let mut bob = e.online("bob@localhost/phone", Some(0));
    for i in 0..3 {
        let mut m = msg("bob@localhost", "chat");
        m.set_attr("id", format!("m{i}"));
        e.send(&alice, m);
    }
    // Given up on: out of the table, the outbox not yet collected.
    assert!(e.router.give_up(Some(&bob.jid), bob.id, &bob.shared));
    assert!(
        !e.router.give_up(Some(&bob.jid), bob.id, &bob.shared),
        "once"
    );
    for i in 3..6 {
        let mut m = msg("bob@localhost", "chat");
        m.set_attr("id", format!("m{i}"));
        e.send(&alice, m);
    }
    // What the client was written and did not acknowledge comes first.
    let Ok(Outbound::Stanza(written)) = bob.rx.try_recv() else {
        panic!("m0 was queued for bob");
    };
    assert_eq!(written.attr("id"), Some("m0"));
    let end = SessionEnd {
        jid: bob.jid.clone(),
        presence: None,
        status: None,
        directed: Vec::new(),
    };
    e.router
        .hand_back(&bob.shared, vec![*written], &mut bob.rx, end);
    e.settle(&mut alice, "bob@localhost").await;
    assert_eq!(
        e.offline_ids("bob").await,
        ["m0", "m1", "m2", "m3", "m4", "m5"]
    );
}

/// An IQ request queued for a session that ended gets
/// `service-unavailable` back, so its sender does not wait for ever.
#[tokio::test]
async fn a_request_to_a_session_that_ended_is_answered() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let mut bob = e.online("bob@localhost/b", Some(0));
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("to", "bob@localhost/b")
        .with_attr("type", "get")
        .with_attr("id", "v1")
        .with_child(Element::new("query", "jabber:iq:version"));
    e.send(&alice, iq);
    e.router.sessions().unbind(&bob.jid, bob.id);
    bob.rx.close();
    e.router.take_back(&mut bob.rx);
    let back = alice.inbox();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].attr("id"), Some("v1"));
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("service-unavailable")
    );
}

/// Work a client's stanza starts is counted for its session until it is
/// done: a message stored offline holds the session's tracker until the
/// store is durable, which is what lets the connection answer its next IQ
/// only afterwards.
#[tokio::test]
async fn work_for_a_clients_stanza_is_counted_until_it_is_done() {
    let e = env(&["alice", "bob"]).await;
    let mut alice = e.online("alice@localhost/a", Some(0));
    e.send(&alice, msg("bob@localhost", "chat"));
    assert_eq!(alice.pending.live(), 1, "the offline store is pending");
    tokio::time::timeout(std::time::Duration::from_secs(10), alice.pending.drained())
        .await
        .expect("the store finishes");
    assert_eq!(
        e.offline_bodies("bob").await,
        ["hi"],
        "stored before the count dropped"
    );
    // A message to an online resource starts no work.
    let _b = e.online("bob@localhost/b", Some(0));
    e.send(&alice, msg("bob@localhost", "chat"));
    assert_eq!(alice.pending.live(), 0);
    assert!(alice.inbox().is_empty());
}

/// The scrape-time service gauges: a slot with a live inbox is up and its
/// depth is what waits in it; a slot without one is down; stanzas the
/// inbox took count as out, and a refused one as an error.
#[tokio::test]
async fn service_gauges_and_counters_follow_the_slots() {
    use switchboard_core::routing::iq::ServiceInfo;
    use switchboard_core::routing::services::ServiceHandle;
    let e = env(&["alice"]).await;
    let r = &e.router;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    for (host, inbox) in [("users.localhost", Some(tx)), ("irc.localhost", None)] {
        r.services().add(
            host.into(),
            ServiceHandle {
                info: ServiceInfo {
                    jid: host.into(),
                    name: host.into(),
                },
                inbox,
                metrics: Default::default(),
            },
        );
    }
    e.send(&alice, msg("users.localhost", "chat"));
    e.send(&alice, msg("users.localhost", "chat"));
    e.send(&alice, msg("irc.localhost", "chat"));
    let g = r.services().gauges();
    assert_eq!(g.len(), 2);
    assert_eq!(
        (g[0].host.as_str(), g[0].up, g[0].queue_depth),
        ("irc.localhost", false, 0)
    );
    assert_eq!(
        (g[1].host.as_str(), g[1].up, g[1].queue_depth),
        ("users.localhost", true, 2)
    );
    rx.try_recv().unwrap();
    assert_eq!(r.services().gauges()[1].queue_depth, 1);

    let s = r.metrics().snapshot(0, 0, Vec::new());
    assert_eq!(s.stanzas_in, [3, 0, 0]);
    // Two into the inbox; the bounce to alice is counted when her
    // connection writes it, which no connection does here.
    assert_eq!(s.stanzas_out, [2, 0, 0]);
    assert_eq!(s.stanza_errors, 1);
    assert_eq!(
        error_condition(&alice.inbox()[0]).as_deref(),
        Some("remote-server-timeout")
    );
}

/// A service is addressed by hostname: a stanza to a JID at it goes into
/// its inbox whatever the local part, and a service may only send from
/// its own hostname.
#[tokio::test]
async fn services_are_reached_by_hostname_and_speak_only_for_it() {
    use switchboard_core::routing::iq::ServiceInfo;
    use switchboard_core::routing::services::ServiceHandle;
    let e = env(&["alice"]).await;
    let r = &e.router;
    let mut alice = e.online("alice@localhost/a", Some(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    r.services().add(
        "irc.localhost".into(),
        ServiceHandle {
            info: ServiceInfo {
                jid: "irc.localhost".into(),
                name: "IRC".into(),
            },
            inbox: Some(tx),
            metrics: Default::default(),
        },
    );
    e.send(&alice, msg("#chan%irc.example@irc.localhost/nick", "chat"));
    let got = rx.try_recv().unwrap();
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
    let reply = |from: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", "alice@localhost/a")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
    };
    assert_eq!(
        r.route_from_service("irc.localhost", reply("#chan%irc.example@irc.localhost/x")),
        Ok(())
    );
    assert_eq!(alice.inbox().len(), 1);
    assert_eq!(
        r.route_from_service("irc.localhost", reply("bob@localhost")),
        Err("invalid-from")
    );
    assert!(alice.inbox().is_empty());
}

/// `doc/stanza_routing.md` lists every row of the table the server builds,
/// in order: event, priority and module must match exactly.
#[tokio::test]
async fn routing_document_matches_the_table() {
    let e = env(&[]).await;
    let registered: Vec<String> = e
        .router
        .table()
        .rows()
        .into_iter()
        .map(|r| format!("{} {} {}", r.event, r.priority, r.module))
        .collect();
    let doc = include_str!("../../doc/stanza_routing.md");
    let documented: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            format!("{} {} {}", cells[1].trim_matches('`'), cells[2], cells[3])
        })
        .collect();
    assert_eq!(
        documented, registered,
        "doc/stanza_routing.md and the routing table disagree; update the document's rows"
    );
}

/// An async IQ handler (one that waits for a store) answers from a task
/// of its own, and the sender's session counts it as unfinished work
/// until the answer is queued, so the session's next IQ waits for it.
#[tokio::test]
async fn async_iq_handlers_answer_later_and_hold_the_session() {
    use switchboard_core::routing::iq::{IqKey, IqType, Registry, Scope};
    use switchboard_core::routing::table::TableBuilder;
    use tokio::sync::oneshot;
    let (release, released) = oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    let mut t = TableBuilder::default();
    switchboard_core::routing::defaults::register(&mut t);
    let mut iq = Registry::default();
    iq.handle_async(
        IqKey {
            name: "query",
            ns: "urn:example:slow",
            kind: IqType::Get,
        },
        Scope::Server,
        move |_call| {
            let wait = released.lock().unwrap().take();
            Box::pin(async move {
                if let Some(w) = wait {
                    let _ = w.await;
                }
                Ok(Some(
                    Element::new("query", "urn:example:slow").with_text("done"),
                ))
            })
        },
    );
    let router = switchboard_core::routing::Router::new(
        vec!["localhost".into()],
        t.build(),
        iq,
        Arc::default(),
    );
    let jid = switchboard_jid::Jid::parse("alice@localhost/a").unwrap();
    let (tx, mut rx) = switchboard_core::queue::channel(16);
    let id = router.sessions().new_id();
    router.sessions().bind(&jid, id, tx, Arc::default());
    let pending = switchboard_core::lifecycle::Tracker::default();
    let ask = Element::new("iq", ns::CLIENT)
        .with_attr("from", "alice@localhost/a")
        .with_attr("to", "localhost")
        .with_attr("type", "get")
        .with_attr("id", "s1")
        .with_child(Element::new("query", "urn:example:slow"));
    router.route_client(
        id,
        &pending,
        &jid,
        Some(switchboard_jid::Jid::parse("localhost").unwrap()),
        ask,
    );
    assert_eq!(pending.live(), 1, "the session waits for the handler");
    assert!(rx.try_recv().is_err(), "not answered yet");
    release.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), pending.drained())
        .await
        .unwrap();
    let Ok(switchboard_core::sessions::Outbound::Stanza(reply)) = rx.try_recv() else {
        panic!("answered once the work was done");
    };
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("id"), Some("s1"));
    assert_eq!(reply.first_element().unwrap().text(), "done");
}
