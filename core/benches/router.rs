//! criterion micro-benchmark of routing a chat message between two bound
//! sessions: `Router::route_client` with a message from one full JID to
//! another, through classification, the routing table's hooks and the
//! `try_send` into the recipient's outbox, which the benchmark empties as
//! a connection would. The router is the server's own (same table, same
//! actors) over an empty spool; sessions are plain channels, as in the
//! router's unit tests, so no socket, TLS or XML is involved.
//!
//! `cargo bench -p switchboard-core --bench router` (add `-- --quick` for a
//! short run).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use switchboard_core::queue;
use switchboard_core::routing::Router;
use switchboard_core::sessions::{Outbound, OUTBOX_CAPACITY};
use switchboard_core::settings::Settings;
use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

/// Binds `jid` as an available session; returns its id and outbox.
fn online(r: &Router, jid: &str) -> (u64, queue::Receiver<Outbound>) {
    let jid = Jid::parse(jid).expect("valid JID");
    let (tx, rx) = queue::channel(OUTBOX_CAPACITY);
    let id = r.sessions().new_id();
    r.sessions().bind(&jid, id, tx, Arc::default());
    r.sessions()
        .set_presence(&jid, Some(Element::new("presence", ns::CLIENT)));
    (id, rx)
}

fn message(to: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", "alice@localhost/desk")
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", "a8f3c2d1-5e6b-4c7a-9d0e-1f2a3b4c5d6e")
        .with_child(
            Element::new("body", ns::CLIENT)
                .with_text("Hello there, this is a typical 64-byte chat message body & more"),
        )
        .with_child(Element::new(
            "active",
            "http://jabber.org/protocol/chatstates",
        ))
}

fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("router");
    for (name, to) in [
        ("message_full_jid", "bob@localhost/phone"),
        ("message_bare_jid", "bob@localhost"),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stores = switchboard_spool::store::file::FileStores::open(dir.path()).expect("a spool");
        let r = switchboard_core::server::standalone_router(
            &stores,
            Settings::for_hosts(&["localhost"]),
        );
        let (alice_id, mut alice) = online(&r, "alice@localhost/desk");
        let (_, mut bob) = online(&r, "bob@localhost/phone");
        let from = Jid::parse("alice@localhost/desk").expect("valid JID");
        let pending = switchboard_core::lifecycle::Tracker::default();
        let template = message(to);
        g.bench_function(name, |b| {
            b.iter_batched(
                || template.clone(),
                |m| {
                    // The stream machine parses `to` before routing; it is
                    // measured here, as the old `route` parsed it too.
                    let to = Jid::parse(black_box(to)).expect("valid JID");
                    r.route_client(alice_id, &pending, &from, Some(to), black_box(m));
                    match bob.try_recv() {
                        Ok(Outbound::Stanza(el)) => black_box(el),
                        _ => panic!("the message was not delivered"),
                    }
                },
                BatchSize::SmallInput,
            )
        });
        assert!(
            alice.try_recv().is_err(),
            "no error came back to the sender"
        );
    }
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
