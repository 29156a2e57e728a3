//! criterion micro-benchmarks of the server's SCRAM code
//! (`switchboard_core::sasl::scram`): one whole SCRAM-SHA-256 exchange at
//! 4,096 iterations (client-first, credentials, client-final with the proof
//! check and the server signature), which is what a login costs the server
//! in SASL since the spool stores salted keys; and, for comparison, the
//! PBKDF2 derivation at 4,096 iterations that account creation and PLAIN
//! pay (and that a client pays once per account).
//!
//! The client side is the link kit's SCRAM client (the one notify and the
//! load generator use) with a key cache, so its keys are derived once; its
//! share of each iteration is two HMACs, a hash and message formatting.
//!
//! `cargo bench -p switchboard-core --bench scram` (add `-- --quick`).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard_core::sasl::scram::derive_with_salt;
use switchboard_core::sasl::{ScramHash, ScramServer, ScramStep};
use switchboard_link::scram::{KeyCache, ScramClient};

const ITERATIONS: u32 = 4096;
const PASSWORD: &str = "pw";
const SALT: &[u8] = b"0123456789abcdef";

/// One exchange, as the stream machine drives it.
fn exchange(cache: &Arc<KeyCache>, cred: &switchboard_spool::ScramCredential) {
    let mut client = ScramClient::new(
        switchboard_link::scram::ScramHash::Sha256,
        "user0",
        PASSWORD,
    )
    .expect("a usable password")
    .with_cache(cache.clone());
    let mut server = ScramServer::new(ScramHash::Sha256, false, None, false);
    match server.client_first(&client.initial()) {
        Ok(ScramStep::NeedCredentials { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let server_first = match server.credentials(Some(cred.clone())) {
        Ok(ScramStep::Challenge(c)) => c,
        other => panic!("unexpected {other:?}"),
    };
    let client_final = client.challenge(&server_first).expect("a valid challenge");
    match server.client_final(&client_final) {
        Ok(ScramStep::Success { server_final, .. }) => {
            client
                .finish(&server_final)
                .expect("the server's signature");
            black_box(server_final);
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn scram(c: &mut Criterion) {
    let cred = derive_with_salt(ScramHash::Sha256, PASSWORD, SALT, ITERATIONS);
    let cache = Arc::new(KeyCache::default());
    let mut g = c.benchmark_group("scram");
    g.bench_function("sha256_exchange_4096", |b| {
        b.iter(|| exchange(&cache, black_box(&cred)))
    });
    g.sample_size(20);
    g.bench_function("sha256_pbkdf2_4096", |b| {
        b.iter(|| {
            black_box(derive_with_salt(
                ScramHash::Sha256,
                black_box(PASSWORD),
                SALT,
                ITERATIONS,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, scram);
criterion_main!(benches);
