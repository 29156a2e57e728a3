//! The client side of SCRAM (link/src/scram.rs, used by the transports,
//! `switchboard send` and the load generator) on arbitrary server
//! messages: no panic, and never a verified server without its
//! signature.
//!
//! Input: a byte of choices (bit 0: SHA-1), then server-first-message,
//! 0xFF, server-final-message. The client nonce is fixed
//! (`fyko+d2lbbFgONRv9qkxdawL`, RFC 5802's) so that the fuzzer can extend
//! it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::SEPARATOR;
use switchboard_link::scram::{ScramClient, ScramHash};

/// Iteration counts above this are skipped: the client's bound
/// (`MAX_ITERATIONS`, ten million) is unit-tested, and inputs that make it
/// run PBKDF2 that long only slow the search down.
const MAX_FUZZ_ITERATIONS: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let hash = if flags & 1 == 0 {
        ScramHash::Sha256
    } else {
        ScramHash::Sha1
    };
    let mut parts = rest.splitn(2, |b| *b == SEPARATOR);
    let first = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    let slow = std::str::from_utf8(first).is_ok_and(|t| {
        t.split(',')
            .filter_map(|p| p.strip_prefix("i="))
            .any(|i| i.parse::<u64>().is_ok_and(|i| i > MAX_FUZZ_ITERATIONS))
    });
    if slow {
        return;
    }
    let mut client = ScramClient::with_nonce(hash, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
        .expect("a valid password");
    client.initial();
    if client.challenge(first).is_ok() && client.finish(last).is_ok() {
        assert!(client.is_done());
    }
});
