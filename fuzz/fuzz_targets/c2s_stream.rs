//! The client stream machine over a TCP stream (`C2s::new`) fed arbitrary
//! bytes in arbitrary pieces, its lookups answered as the driver would
//! answer them: it must not panic, must not loop, must keep a deadline
//! while open, and a client must be able to read everything it sends.
//!
//! Input: a settings byte (bit 0: no TLS available, bit 1: TLS not
//! required), a split byte, then what the client sends.

#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use switchboard_core::stream::C2s;
use switchboard_fuzz::{c2s_settings, check_stream_output, run_c2s, split};

fuzz_target!(|data: &[u8]| {
    let [flags, seed, body @ ..] = data else {
        return;
    };
    let start = Instant::now();
    let mut m = C2s::new(c2s_settings(*flags), start, false, None);
    let sent = run_c2s(&mut m, start, &split(*seed, body));
    check_stream_output(&sent);
});
