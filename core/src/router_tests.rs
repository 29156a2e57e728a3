//! Router rules, driven directly: sessions are plain channels, so each
//! test sees exactly what every resource would receive.

use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};
use tokio::sync::Notify;

use crate::queue;

use super::Router;
use crate::modules::Registry;
use crate::sessions::{Outbound, OUTBOX_CAPACITY};

struct Client {
    rx: queue::Receiver<Outbound>,
    kill: Arc<Notify>,
}

impl Client {
    fn inbox(&mut self) -> Vec<Element> {
        let mut v = Vec::new();
        while let Ok(Outbound::Stanza(el)) = self.rx.try_recv() {
            v.push(*el);
        }
        v
    }
}

fn router() -> Router {
    Router::new(vec!["localhost".into()], Registry::builtin())
}

/// Binds `jid` with an optional presence priority.
fn online(r: &Router, jid: &str, priority: Option<i8>) -> Client {
    online_with_capacity(r, jid, priority, OUTBOX_CAPACITY)
}

fn online_with_capacity(r: &Router, jid: &str, priority: Option<i8>, cap: usize) -> Client {
    let jid = Jid::parse(jid).unwrap();
    let (tx, rx) = queue::channel(cap);
    let kill = Arc::new(Notify::new());
    r.sessions.bind(&jid, r.sessions.new_id(), tx, kill.clone());
    let presence = priority.map(|p| {
        Element::new("presence", ns::CLIENT)
            .with_child(Element::new("priority", ns::CLIENT).with_text(p.to_string()))
    });
    r.sessions.set_presence(&jid, presence);
    Client { rx, kill }
}

fn msg(from: &str, to: &str, kind: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", kind)
        .with_attr("id", "m1")
        .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
}

fn error_condition(el: &Element) -> Option<String> {
    let e = el.get_child("error", &el.ns)?;
    e.elements()
        .find(|c| c.ns == ns::STANZAS)
        .map(|c| c.name.clone())
}

#[test]
fn bare_jid_messages_go_to_the_highest_non_negative_priority() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let mut b1 = online(&r, "bob@localhost/desk", Some(5));
    let mut b2 = online(&r, "bob@localhost/phone", Some(1));
    let mut b3 = online(&r, "bob@localhost/away", Some(-1));
    r.route(msg("alice@localhost/a", "bob@localhost", "chat"));
    assert_eq!(b1.inbox().len(), 1);
    assert!(b2.inbox().is_empty());
    assert!(b3.inbox().is_empty());
    assert!(alice.inbox().is_empty(), "no error for a delivered message");
}

#[test]
fn headlines_to_a_bare_jid_go_to_every_non_negative_resource() {
    let r = router();
    let _alice = online(&r, "alice@localhost/a", Some(0));
    let mut b1 = online(&r, "bob@localhost/desk", Some(5));
    let mut b2 = online(&r, "bob@localhost/phone", Some(0));
    let mut b3 = online(&r, "bob@localhost/away", Some(-1));
    r.route(msg("alice@localhost/a", "bob@localhost", "headline"));
    assert_eq!(
        (b1.inbox().len(), b2.inbox().len(), b3.inbox().len()),
        (1, 1, 0)
    );
}

#[test]
fn only_negative_priority_or_nobody_online_bounces_service_unavailable() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let mut b = online(&r, "bob@localhost/away", Some(-1));
    r.route(msg("alice@localhost/a", "bob@localhost", "chat"));
    assert!(b.inbox().is_empty());
    let back = alice.inbox();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].attr("type"), Some("error"));
    assert_eq!(back[0].attr("from"), Some("bob@localhost"));
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("service-unavailable")
    );
    r.route(msg("alice@localhost/a", "nobody@localhost", "chat"));
    assert_eq!(
        error_condition(&alice.inbox()[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn chat_to_an_absent_resource_falls_back_to_the_bare_jid() {
    let r = router();
    let _alice = online(&r, "alice@localhost/a", Some(0));
    let mut b = online(&r, "bob@localhost/desk", Some(0));
    r.route(msg("alice@localhost/a", "bob@localhost/gone", "chat"));
    let got = b.inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].attr("to"),
        Some("bob@localhost/gone"),
        "the stanza is not rewritten"
    );
}

#[test]
fn headline_and_iq_to_an_absent_resource() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let mut b = online(&r, "bob@localhost/desk", Some(0));
    r.route(msg("alice@localhost/a", "bob@localhost/gone", "headline"));
    assert!(
        b.inbox().is_empty() && alice.inbox().is_empty(),
        "dropped silently"
    );
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("from", "alice@localhost/a")
        .with_attr("to", "bob@localhost/gone")
        .with_attr("type", "get")
        .with_attr("id", "q1")
        .with_child(Element::new("query", "jabber:iq:version"));
    r.route(iq);
    assert_eq!(
        error_condition(&alice.inbox()[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn errors_are_never_answered_with_errors() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    r.route(msg("alice@localhost/a", "nobody@localhost", "error"));
    r.route(msg(
        "alice@localhost/a",
        "someone@elsewhere.example",
        "error",
    ));
    let result = Element::new("iq", ns::CLIENT)
        .with_attr("from", "alice@localhost/a")
        .with_attr("to", "localhost")
        .with_attr("type", "result")
        .with_attr("id", "r");
    r.route(result);
    assert!(alice.inbox().is_empty());
}

#[test]
fn other_domains_get_remote_server_not_found() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    r.route(msg(
        "alice@localhost/a",
        "someone@elsewhere.example",
        "chat",
    ));
    let back = alice.inbox();
    assert_eq!(
        error_condition(&back[0]).as_deref(),
        Some("remote-server-not-found")
    );
    assert_eq!(back[0].attr("from"), Some("someone@elsewhere.example"));
}

#[test]
fn presence_probes_never_reach_clients() {
    let r = router();
    let _alice = online(&r, "alice@localhost/a", Some(0));
    let mut b = online(&r, "bob@localhost/desk", Some(0));
    let probe = Element::new("presence", ns::CLIENT)
        .with_attr("from", "alice@localhost/a")
        .with_attr("to", "bob@localhost")
        .with_attr("type", "probe");
    r.route(probe);
    assert!(b.inbox().is_empty());
}

#[test]
fn account_disco_answers_the_owner_only() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let disco = |to: &str| {
        Element::new("iq", ns::CLIENT)
            .with_attr("from", "alice@localhost/a")
            .with_attr("to", to)
            .with_attr("type", "get")
            .with_attr("id", "d")
            .with_child(Element::new("query", ns::DISCO_INFO))
    };
    r.route(disco("alice@localhost"));
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
    r.route(disco("bob@localhost"));
    assert_eq!(
        error_condition(&alice.inbox()[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn a_session_that_does_not_read_is_told_to_close_and_the_sender_is_not_blocked() {
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let slow = online_with_capacity(&r, "bob@localhost/slow", Some(0), 2);
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let k = slow.kill.clone();
        let flag = killed.clone();
        let waiter = tokio::spawn(async move {
            k.notified().await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        tokio::task::yield_now().await;
        // Routing returns at once however full the outbox is.
        for _ in 0..10 {
            r.route(msg("alice@localhost/a", "bob@localhost/slow", "chat"));
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    });
    assert!(killed.load(std::sync::atomic::Ordering::SeqCst));
    // The 8 that did not fit come back to the sender as errors.
    let back = alice.inbox();
    assert_eq!(back.len(), 8);
    assert!(back
        .iter()
        .all(|e| error_condition(e).as_deref() == Some("resource-constraint")));
}

/// The scrape-time service gauges: a slot with a live inbox is up and its
/// depth is what waits in it; a slot without one is down; stanzas the
/// inbox took count as out, and a refused one as an error.
#[test]
fn service_gauges_and_counters_follow_the_slots() {
    use crate::modules::ServiceInfo;
    use crate::router::ServiceHandle;
    let r = router();
    let mut alice = online(&r, "alice@localhost/a", Some(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    for (host, inbox) in [("users.localhost", Some(tx)), ("irc.localhost", None)] {
        r.add_service(
            host.into(),
            ServiceHandle {
                info: ServiceInfo {
                    jid: host.into(),
                    name: host.into(),
                },
                inbox,
            },
        );
    }
    r.route(msg("alice@localhost/a", "users.localhost", "chat"));
    r.route(msg("alice@localhost/a", "users.localhost", "chat"));
    r.route(msg("alice@localhost/a", "irc.localhost", "chat"));
    let g = r.service_gauges();
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
    assert_eq!(r.service_gauges()[1].queue_depth, 1);

    let s = r.metrics.snapshot(0, 0, Vec::new());
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
