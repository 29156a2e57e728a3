//! criterion benchmark of the file backend's message archive at the
//! target size: one owner with 100,000 archived messages (about 420 bytes
//! each, twenty partners), queried through the async interface as the
//! core will (the blocking pool included). The target is the last 50 in
//! under 10 ms at the 99th percentile; before criterion's runs, 1,000
//! timed queries of each kind print their percentiles.
//!
//! - `last 50`: the newest page (RSM `<before/>`), the index warm;
//! - `50 before the middle`: paging back from an id half-way through;
//! - `last 50 with one partner`: a `with` filter matching 1 in 20;
//! - `cold open, last 50`: a new backend (a restarted server): the index
//!   built from the log, then the page.
//!
//! `cargo bench -p switchboard-spool --bench archive_query` (add
//! `-- --quick` for a short run). Filling the archive (100,000 fsynced
//! appends) takes a while on a real disk; set `TMPDIR` to a tmpfs to
//! shorten it (the queries read from the page cache either way).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{ArchiveEntry, ArchiveQuery, Stores};
use switchboard_xml::{ns, Element};

const OWNER: &str = "alice@example.org";
const ENTRIES: u64 = 100_000;

fn entry(n: u64) -> ArchiveEntry {
    let with = format!("contact{}@example.org", n % 20);
    ArchiveEntry {
        id: format!("{n:016x}-5e6b-4c7a-9d0e"),
        timestamp: 1_700_000_000_000_000 + n * 1_000_000,
        with: format!("{with}/phone"),
        stanza: Element::new("message", ns::CLIENT)
            .with_attr("from", format!("{with}/phone"))
            .with_attr("to", "alice@example.org/desk")
            .with_attr("type", "chat")
            .with_attr("id", format!("{n:016x}"))
            .with_child(Element::new("body", ns::CLIENT).with_text(format!(
                "message number {n}: a line of ordinary chat, long enough to be typical"
            )))
            .with_child(
                Element::new("stanza-id", "urn:xmpp:sid:0")
                    .with_attr("by", OWNER)
                    .with_attr("id", format!("{n:016x}-5e6b-4c7a-9d0e")),
            ),
    }
}

fn filled(rt: &tokio::runtime::Runtime, root: &std::path::Path) -> Stores {
    let stores = FileStores::open(root).expect("open the spool");
    rt.block_on(async {
        for n in 0..ENTRIES {
            stores
                .archive
                .append(OWNER, &entry(n))
                .await
                .expect("append");
        }
    });
    stores
}

fn last(max: usize) -> ArchiveQuery {
    ArchiveQuery {
        max,
        from_end: true,
        ..Default::default()
    }
}

fn queries() -> Vec<(&'static str, ArchiveQuery)> {
    vec![
        ("last 50", last(50)),
        (
            "50 before the middle",
            ArchiveQuery {
                before_id: Some(entry(ENTRIES / 2).id),
                ..last(50)
            },
        ),
        (
            "last 50 with one partner",
            ArchiveQuery {
                with: Some("contact7@example.org".into()),
                ..last(50)
            },
        ),
    ]
}

fn run(rt: &tokio::runtime::Runtime, stores: &Stores, q: &ArchiveQuery) -> usize {
    rt.block_on(stores.archive.query(OWNER, q))
        .expect("query")
        .expect("known ids")
        .entries
        .len()
}

fn percentiles(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "{name}: p50 {:?}, p99 {:?}, max {:?} ({} queries)",
        at(0.50),
        at(0.99),
        times[times.len() - 1],
        times.len()
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("spool");
    let started = Instant::now();
    let stores = filled(&rt, &root);
    eprintln!("filled {ENTRIES} entries in {:?}", started.elapsed());

    for (name, q) in queries() {
        assert_eq!(run(&rt, &stores, &q), 50);
        let times = (0..1000)
            .map(|_| {
                let t = Instant::now();
                black_box(run(&rt, &stores, &q));
                t.elapsed()
            })
            .collect();
        percentiles(name, times);
    }
    let cold: Vec<Duration> = (0..20)
        .map(|_| {
            let fresh = FileStores::open(&root).expect("open");
            let t = Instant::now();
            black_box(run(&rt, &fresh, &last(50)));
            t.elapsed()
        })
        .collect();
    percentiles("cold open, last 50", cold);

    let mut group = c.benchmark_group("archive of 100,000");
    for (name, q) in queries() {
        group.bench_function(name, |b| b.iter(|| black_box(run(&rt, &stores, &q))));
    }
    group.sample_size(10);
    group.bench_function("cold open, last 50", |b| {
        b.iter_with_setup(
            || FileStores::open(&root).expect("open"),
            |fresh| black_box(run(&rt, &fresh, &last(50))),
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
