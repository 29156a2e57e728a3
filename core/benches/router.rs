//! criterion micro-benchmark of routing a chat message between two bound
//! sessions: `Router::route` with a message from one full JID to another,
//! through address classification, `from` checks and the `try_send` into
//! the recipient's outbox, which the benchmark empties as a connection
//! would. Sessions are plain channels, as in the router's unit tests
//! (`core/src/router_tests.rs`), so no socket, TLS or XML is involved.
//!
//! `cargo bench -p switchboard-core --bench router` (add `-- --quick` for a
//! short run).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use switchboard_core::modules::Registry;
use switchboard_core::queue;
use switchboard_core::router::Router;
use switchboard_core::sessions::{Outbound, OUTBOX_CAPACITY};
use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};
use tokio::sync::Notify;

/// Binds `jid` as an available session; returns its outbox.
fn online(r: &Router, jid: &str) -> queue::Receiver<Outbound> {
    let jid = Jid::parse(jid).expect("valid JID");
    let (tx, rx) = queue::channel(OUTBOX_CAPACITY);
    r.sessions
        .bind(&jid, r.sessions.new_id(), tx, Arc::new(Notify::new()));
    r.sessions
        .set_presence(&jid, Some(Element::new("presence", ns::CLIENT)));
    rx
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
        let r = Router::new(vec!["localhost".into()], Registry::builtin());
        let mut alice = online(&r, "alice@localhost/desk");
        let mut bob = online(&r, "bob@localhost/phone");
        let template = message(to);
        g.bench_function(name, |b| {
            b.iter_batched(
                || template.clone(),
                |m| {
                    r.route(black_box(m));
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
