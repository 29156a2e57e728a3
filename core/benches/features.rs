//! What the features cost on the routing path (issue 16's targets):
//!
//! - **chat**: a chat message between two online users, routed as in the
//!   router benchmark, with (a) plain routing: the table the server had
//!   before the features (core, IM and admin rows only), (b) every feature
//!   on and carbons enabled but both users' archive preferences `never`
//!   (what the rows cost without a write), (c) every feature on, carbons
//!   enabled, one device each (the archive keeps the message for both
//!   users), and (d) the same with a second carbons-enabled device each
//!   (two carbon copies per message). Criterion times the
//!   routing thread; before it, 20,000 messages of each variant are
//!   routed and the process's CPU time (all threads: the archive writers
//!   and the blocking pool's appends and fsyncs included) is divided by
//!   the count.
//! - **mam**: an archive query for the last 50 of 100,000 messages
//!   (`<set><max>50</max><before/></set>`), from the IQ entering the router
//!   to the `<fin/>` in the session's outbox, through the async handler,
//!   the writer's flush and the file store; 1,000 timed queries print
//!   their percentiles first.
//!
//! `cargo bench -p switchboard-core --bench features` (add `-- --quick`
//! for a short run). The spool is a temporary directory: set `TMPDIR` to
//! put it on the disk to measure.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard_core::im::{Accounts, ImContext};
use switchboard_core::lifecycle::Tracker;
use switchboard_core::queue;
use switchboard_core::routing::iq::Registry;
use switchboard_core::routing::table::{SessionRef, TableBuilder};
use switchboard_core::routing::Router;
use switchboard_core::sessions::{Outbound, SessionShared, OUTBOX_CAPACITY};
use switchboard_core::settings::{LiveSettings, Settings};
use switchboard_jid::Jid;
use switchboard_spool::store::{ArchiveEntry, Stores};
use switchboard_xml::{ns, Element};

/// The router the server had before features: core, IM and admin rows.
fn plain_router(stores: &Stores) -> Router {
    let settings = Settings::for_hosts(&["localhost"]);
    let hosts = settings.host_names();
    let live = Arc::new(LiveSettings::new(settings));
    let accounts = Accounts::new(ImContext {
        accounts: stores.accounts.clone(),
        rosters: stores.rosters.clone(),
        offline: stores.offline.clone(),
        data: stores.account_data.clone(),
        settings: live.clone(),
        motds: Arc::default(),
        gates: Default::default(),
        observers: Default::default(),
    });
    let mut t = TableBuilder::default();
    switchboard_core::routing::defaults::register(&mut t);
    switchboard_core::im::register(&mut t, &accounts);
    let _admin = switchboard_core::admin::register(&mut t, live);
    let mut iq = Registry::default();
    switchboard_core::modules::register(&mut iq);
    Router::new(hosts, t.build(), iq, Arc::default())
}

/// A bound, available session, its hooks run first when `start` says so.
struct Session {
    jid: Jid,
    id: u64,
    pending: Tracker,
    rx: queue::Receiver<Outbound>,
}

fn session(rt: &tokio::runtime::Runtime, r: &Router, jid: &str, start: bool) -> Session {
    let jid = Jid::parse(jid).expect("valid JID");
    let (tx, rx) = queue::channel(OUTBOX_CAPACITY);
    let shared = Arc::new(SessionShared::default());
    let id = r.sessions().new_id();
    let pending = Tracker::default();
    if start {
        let s = SessionRef {
            jid: jid.clone(),
            id,
            tx: tx.clone(),
            shared: shared.clone(),
            pending: pending.clone(),
        };
        rt.block_on(r.session_started(&s));
    }
    r.sessions().bind(&jid, id, tx, shared);
    r.sessions()
        .set_presence(&jid, Some(Element::new("presence", ns::CLIENT)));
    Session {
        jid,
        id,
        pending,
        rx,
    }
}

impl Session {
    /// Routes `el` as the session's connection would: `from` stamped
    /// first. A request without it would be answered to nobody, and the
    /// benchmark would wait for that answer for ever.
    fn send(&self, r: &Router, mut el: Element) {
        el.set_attr("from", self.jid.to_string());
        let to = el.attr("to").map(|t| Jid::parse(t).expect("valid JID"));
        r.route_client(self.id, &self.pending, &self.jid, to, el);
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Ok(Outbound::Stanza(el)) = self.rx.try_recv() {
            black_box(el);
            n += 1;
        }
        n
    }

    /// Waits for the answer to IQ `id`.
    async fn answer(&mut self, id: &str) -> Element {
        loop {
            match self.rx.recv().await {
                Some(Outbound::Stanza(el)) if el.attr("id") == Some(id) => return *el,
                Some(_) => {}
                None => panic!("outbox closed"),
            }
        }
    }
}

fn enable_carbons(rt: &tokio::runtime::Runtime, r: &Router, s: &mut Session) {
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", "carbons")
        .with_child(Element::new("enable", "urn:xmpp:carbons:2"));
    s.send(r, iq);
    let answer = rt.block_on(s.answer("carbons"));
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "{}",
        answer.to_xml_string()
    );
}

fn set_prefs(rt: &tokio::runtime::Runtime, r: &Router, s: &mut Session, default: &str) {
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", "prefs")
        .with_child(Element::new("prefs", "urn:xmpp:mam:2").with_attr("default", default));
    s.send(r, iq);
    let answer = rt.block_on(s.answer("prefs"));
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "{}",
        answer.to_xml_string()
    );
}

/// Opens a file spool in `dir` with the accounts the benchmarks use, so
/// what they store (archive preferences, archives) is stored as for real
/// users.
fn spool(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Stores {
    let stores = switchboard_spool::store::file::FileStores::open(dir).expect("a spool");
    for user in ["alice", "bob"] {
        rt.block_on(switchboard_core::accounts::create(
            stores.accounts.as_ref(),
            "localhost",
            user,
            "pw".into(),
            16,
        ))
        .expect("an account");
    }
    stores
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

/// User plus system CPU time of the whole process.
fn cpu_time() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    // SAFETY: initialised by getrusage (or left zeroed).
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Chat {
    name: &'static str,
    router: Router,
    alice: Session,
    others: Vec<Session>,
    _dir: tempfile::TempDir,
}

fn chat_setups(rt: &tokio::runtime::Runtime) -> Vec<Chat> {
    let mut out = Vec::new();
    for (name, features, devices, archive) in [
        ("plain routing", false, 1, false),
        (
            "every feature, archiving off, one device each",
            true,
            1,
            false,
        ),
        ("carbons and archive, one device each", true, 1, true),
        ("carbons and archive, two devices each", true, 2, true),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stores = spool(rt, dir.path());
        let _guard = rt.enter();
        let router = if features {
            switchboard_core::server::standalone_router(
                &stores,
                Settings::for_hosts(&["localhost"]),
            )
        } else {
            plain_router(&stores)
        };
        let mut alice = session(rt, &router, "alice@localhost/desk", features);
        let mut others = vec![session(rt, &router, "bob@localhost/phone", features)];
        if devices == 2 {
            others.push(session(rt, &router, "alice@localhost/phone", features));
            others.push(session(rt, &router, "bob@localhost/desk", features));
        }
        if features {
            enable_carbons(rt, &router, &mut alice);
            for s in &mut others {
                enable_carbons(rt, &router, s);
            }
        }
        if features && !archive {
            set_prefs(rt, &router, &mut alice, "never");
            for s in &mut others {
                set_prefs(rt, &router, s, "never");
            }
        }
        out.push(Chat {
            name,
            router,
            alice,
            others,
            _dir: dir,
        });
    }
    out
}

fn chat(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut setups = chat_setups(&rt);
    const N: u32 = 20_000;
    let mut plain = None;
    for s in &mut setups {
        let _guard = rt.enter();
        let template = message("bob@localhost/phone");
        let before = cpu_time();
        let wall = Instant::now();
        for _ in 0..N {
            s.alice.send(&s.router, template.clone());
            for o in &mut s.others {
                o.drain();
            }
        }
        // Until every archive write is durable.
        rt.block_on(s.alice.pending.drained());
        let cpu = (cpu_time() - before) / N;
        let wall = wall.elapsed() / N;
        let ratio = match plain {
            None => {
                plain = Some(cpu);
                String::new()
            }
            Some(p) => format!(
                ", {:.2}× plain routing",
                cpu.as_nanos() as f64 / p.as_nanos() as f64
            ),
        };
        println!(
            "chat: {}: {:?} CPU per message (all threads), {:?} wall{}",
            s.name, cpu, wall, ratio
        );
    }
    let mut g = c.benchmark_group("chat");
    for s in &mut setups {
        let _guard = rt.enter();
        let template = message("bob@localhost/phone");
        g.bench_function(s.name, |b| {
            b.iter(|| {
                s.alice.send(&s.router, black_box(template.clone()));
                let mut got = 0;
                for o in &mut s.others {
                    got += o.drain();
                }
                assert!(got > 0, "the message was not delivered");
            })
        });
        rt.block_on(s.alice.pending.drained());
    }
    g.finish();
}

const ENTRIES: u64 = 100_000;

fn entry(n: u64) -> ArchiveEntry {
    let with = format!("contact{}@localhost", n % 20);
    let mut stanza = Element::new("message", ns::CLIENT)
        .with_attr("from", format!("{with}/phone"))
        .with_attr("to", "alice@localhost/desk")
        .with_attr("type", "chat")
        .with_attr("id", format!("{n:016x}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!(
            "message number {n}: a line of ordinary chat, long enough to be typical"
        )));
    stanza.append_child(Element::new(
        "active",
        "http://jabber.org/protocol/chatstates",
    ));
    ArchiveEntry {
        id: format!("{n:016x}-5e6b-4c7a"),
        timestamp: 1_700_000_000_000_000 + n * 1_000_000,
        with: format!("{with}/phone"),
        stanza,
    }
}

fn mam(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stores = spool(&rt, dir.path());
    rt.block_on(async {
        let mut n = 0;
        while n < ENTRIES {
            let batch: Vec<ArchiveEntry> = (n..(n + 1000).min(ENTRIES)).map(entry).collect();
            stores
                .archive
                .append_batch("alice@localhost", &batch)
                .await
                .expect("append");
            n += batch.len() as u64;
        }
    });
    let _guard = rt.enter();
    let router =
        switchboard_core::server::standalone_router(&stores, Settings::for_hosts(&["localhost"]));
    let mut alice = session(&rt, &router, "alice@localhost/desk", true);
    let mut n = 0u64;
    let mut query = |alice: &mut Session| -> Element {
        n += 1;
        let id = format!("q{n}");
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(
                Element::new("query", "urn:xmpp:mam:2").with_child(
                    Element::new("set", "http://jabber.org/protocol/rsm")
                        .with_child(
                            Element::new("max", "http://jabber.org/protocol/rsm").with_text("50"),
                        )
                        .with_child(Element::new("before", "http://jabber.org/protocol/rsm")),
                ),
            );
        alice.send(&router, iq);
        let fin = rt.block_on(alice.answer(&id));
        assert_eq!(fin.attr("type"), Some("result"), "{}", fin.to_xml_string());
        fin
    };
    // The first query builds the index from the log (a restarted server).
    let cold = Instant::now();
    query(&mut alice);
    println!(
        "mam: first query (the index read from the log): {:?}",
        cold.elapsed()
    );
    let mut times: Vec<Duration> = (0..1000)
        .map(|_| {
            let t = Instant::now();
            black_box(query(&mut alice));
            t.elapsed()
        })
        .collect();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "mam: last 50 of {ENTRIES}: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        p(0.50),
        p(0.90),
        p(0.99),
        times[times.len() - 1]
    );
    let mut g = c.benchmark_group("mam");
    g.bench_function("last 50 of 100,000", |b| {
        b.iter(|| black_box(query(&mut alice)))
    });
    g.finish();
}

criterion_group!(benches, chat, mam);
criterion_main!(benches);
