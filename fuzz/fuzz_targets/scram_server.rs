//! The server side of SCRAM (core/src/sasl/scram.rs) on arbitrary client
//! messages: no panic, and never a success without the password.
//!
//! Input: a byte of choices (bit 0: SHA-1, bit 1: -PLUS, bit 2: TLS
//! channel binding available, bit 3: -PLUS advertised, bit 4: the user
//! exists), then client-first-message, 0xFF, client-final-message. The
//! server's nonce is random, so `@NONCE@` in the final message is replaced
//! with the nonce the server sent: the fuzzer can then reach the proof.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::sasl::scram::{derive_with_salt, ScramHash, ScramServer, ScramStep};
use switchboard_fuzz::SEPARATOR;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let hash = if flags & 1 == 0 {
        ScramHash::Sha256
    } else {
        ScramHash::Sha1
    };
    let cb = (flags & 4 != 0).then(|| vec![7u8; 32]);
    let mut server = ScramServer::new(hash, flags & 2 != 0, cb, flags & 8 != 0);
    let mut parts = rest.splitn(2, |b| *b == SEPARATOR);
    let first = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    let Ok(ScramStep::NeedCredentials { .. }) = server.client_first(first) else {
        return;
    };
    let cred = (flags & 16 != 0).then(|| derive_with_salt(hash, "pencil", b"salt", 1));
    let Ok(ScramStep::Challenge(challenge)) = server.credentials(cred) else {
        return;
    };
    let challenge = String::from_utf8(challenge).expect("the challenge is UTF-8");
    let nonce = challenge
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .expect("the challenge has a nonce");
    let mut last = last.to_vec();
    if let Some(at) = last.windows(7).position(|w| w == b"@NONCE@") {
        last.splice(at..at + 7, nonce.bytes());
    }
    if let Ok(ScramStep::Success { .. }) = server.client_final(&last) {
        // The fuzzer does not know the salted password; a success means
        // the proof check let something through.
        panic!(
            "SCRAM succeeded without the password: {:?}",
            String::from_utf8_lossy(&last)
        );
    }
});
