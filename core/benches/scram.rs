//! criterion micro-benchmarks of the server's SCRAM code
//! (`switchboard_core::sasl::scram`): one whole SCRAM-SHA-256 exchange at
//! 4,096 iterations (client-first, credentials, client-final with the proof
//! check and the server signature), which is what a login costs the server
//! in SASL since the spool stores salted keys; and, for comparison, the
//! PBKDF2 derivation at 4,096 iterations that account creation and PLAIN
//! pay (and that a client pays once per account).
//!
//! The client side is computed here with the `hmac`/`sha2` crates from a
//! salted password derived once; its share of each iteration is two HMACs
//! and a hash.
//!
//! `cargo bench -p switchboard-core --bench scram` (add `-- --quick`).

use std::hint::black_box;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchboard_core::sasl::scram::derive_with_salt;
use switchboard_core::sasl::{ScramHash, ScramServer, ScramStep};

const ITERATIONS: u32 = 4096;
const PASSWORD: &str = "pw";
const SALT: &[u8] = b"0123456789abcdef";

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The client's keys from the salted password (derived once).
struct ClientKeys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
}

fn client_keys() -> ClientKeys {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(PASSWORD.as_bytes(), SALT, ITERATIONS, &mut salted);
    let client_key = hmac256(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key).to_vec();
    ClientKeys {
        client_key,
        stored_key,
    }
}

/// One exchange, as the stream machine drives it.
fn exchange(keys: &ClientKeys, cred: &switchboard_spool::ScramCredential) {
    let first_bare = "n=user0,r=rOprNGfwEbeRWgbNEkqO";
    let mut server = ScramServer::new(ScramHash::Sha256, false, None, false);
    match server.client_first(format!("n,,{first_bare}").as_bytes()) {
        Ok(ScramStep::NeedCredentials { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let server_first = match server.credentials(Some(cred.clone())) {
        Ok(ScramStep::Challenge(c)) => String::from_utf8(c).expect("UTF-8"),
        other => panic!("unexpected {other:?}"),
    };
    let nonce = server_first
        .split(',')
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .expect("nonce");
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac256(&keys.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let client_final = format!("{without_proof},p={}", B64.encode(proof));
    match server.client_final(client_final.as_bytes()) {
        Ok(ScramStep::Success { server_final, .. }) => {
            black_box(server_final);
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn scram(c: &mut Criterion) {
    let cred = derive_with_salt(ScramHash::Sha256, PASSWORD, SALT, ITERATIONS);
    let keys = client_keys();
    let mut g = c.benchmark_group("scram");
    g.bench_function("sha256_exchange_4096", |b| {
        b.iter(|| exchange(&keys, black_box(&cred)))
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
