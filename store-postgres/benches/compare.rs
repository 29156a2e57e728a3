//! PostgreSQL against the file spool, on the same machine, through the
//! async storage interface as the server uses it:
//!
//! - **logins**: account lookups (`credentials`, what each login reads)
//!   per second over 2,000 accounts, one caller and 16 at once;
//! - **offline store**: single-message appends per second, each durable
//!   on return, one caller and 16 at once (distinct accounts);
//! - **archive query**: one owner with 100,000 entries; the last 50, 50
//!   before the middle, the last 50 with one partner (1 in 20): median
//!   and 99th percentile of 300 queries each.
//!
//! The PostgreSQL cluster is a scratch one with `fsync` on, in a
//! temporary directory on the same file system as the spool's, its
//! statistics gathered after the load (as autovacuum would).
//! `cargo bench -p switchboard-store-postgres --bench compare`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, ArchiveEntry, ArchiveQuery, Stores};
use switchboard_store_postgres::scratch::{Options, ScratchCluster};
use switchboard_store_postgres::PgStores;
use switchboard_xml::{ns, Element};

const ACCOUNTS: usize = 2_000;
const OWNER: &str = "alice@example.org";
const ENTRIES: u64 = 100_000;

fn account(i: usize) -> AccountRef {
    AccountRef::new("example.org", format!("user{i}"))
}

fn cred() -> switchboard_spool::ScramCredential {
    switchboard_spool::ScramCredential {
        hash: "SHA-256".into(),
        salt: vec![7; 16],
        iterations: 4096,
        stored_key: vec![1; 32],
        server_key: vec![2; 32],
    }
}

fn message(n: usize) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", "bob@example.org/phone")
        .with_attr("type", "chat")
        .with_attr("id", format!("m{n}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!(
            "message number {n}: a line of ordinary chat, long enough to be typical"
        )))
}

fn entry(n: u64) -> ArchiveEntry {
    let with = format!("contact{}@example.org", n % 20);
    ArchiveEntry {
        id: format!("{n:016x}-5e6b-4c7a-9d0e"),
        timestamp: 1_700_000_000_000_000 + n * 1_000_000,
        with: format!("{with}/phone"),
        stanza: message(n as usize).with_attr("to", OWNER),
    }
}

async fn fill(s: &Stores) {
    for i in 0..ACCOUNTS {
        s.accounts.create(&account(i), vec![cred()]).await.unwrap();
    }
    let all: Vec<ArchiveEntry> = (0..ENTRIES).map(entry).collect();
    for chunk in all.chunks(1000) {
        s.archive.append_batch(OWNER, chunk).await.unwrap();
    }
}

/// Runs `per_task` calls of `f` in each of `tasks` tasks; calls/s.
async fn rate<F, Fut>(tasks: usize, per_task: usize, f: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    f(t, i).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / start.elapsed().as_secs_f64()
}

async fn latency(s: &Stores, q: &ArchiveQuery) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let page = s.archive.query(OWNER, q).await.unwrap().unwrap();
        times.push(t.elapsed());
        assert_eq!(page.entries.len(), 50);
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

async fn measure(name: &str, s: Stores, after_fill: impl FnOnce()) {
    let t = Instant::now();
    fill(&s).await;
    println!("{name}: filled in {:.1} s", t.elapsed().as_secs_f64());
    after_fill();
    for tasks in [1, 16] {
        let st = s.clone();
        let r = rate(tasks, 4_000 / tasks, move |t, i| {
            let st = st.clone();
            async move {
                let a = account((t * 7919 + i * 104_729) % ACCOUNTS);
                assert!(st.accounts.credentials(&a).await.unwrap().is_some());
            }
        })
        .await;
        println!("{name}: logins (credential lookups), {tasks:>2} at once: {r:>8.0} /s");
    }
    for tasks in [1, 16] {
        let st = s.clone();
        let per = if tasks == 1 { 300 } else { 60 };
        let r = rate(tasks, per, move |t, i| {
            let st = st.clone();
            async move {
                st.offline.append(&account(t), &message(i)).await.unwrap();
            }
        })
        .await;
        println!("{name}: offline appends (durable),  {tasks:>2} at once: {r:>8.0} /s");
    }
    let last = ArchiveQuery {
        max: 50,
        from_end: true,
        ..Default::default()
    };
    let middle = ArchiveQuery {
        before_id: Some(entry(ENTRIES / 2).id),
        ..last.clone()
    };
    let partner = ArchiveQuery {
        with: Some("contact7@example.org".into()),
        ..last.clone()
    };
    for (what, q) in [
        ("last 50", &last),
        ("50 before the middle", &middle),
        ("last 50 with one partner", &partner),
    ] {
        let (p50, p99) = latency(&s, q).await;
        println!(
            "{name}: archive {what:<26} p50 {:>7.2} ms  p99 {:>7.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // of the kind and wants no benchmark run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(measure(
        "spool",
        FileStores::open(dir.path().join("spool")).unwrap(),
        || {},
    ));
    let cluster = ScratchCluster::start(Options { fsync: true });
    let url = cluster.database();
    let pg = rt.block_on(PgStores::open(&url, 16)).unwrap();
    // The statistics autovacuum would gather shortly after a bulk load;
    // without them the planner does not know the archive is large.
    let analyze = || cluster.psql(ScratchCluster::name_of(&url), "VACUUM ANALYZE");
    rt.block_on(measure("postgres", pg.stores(), analyze));
}
