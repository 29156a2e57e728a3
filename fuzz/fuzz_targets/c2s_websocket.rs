//! The client stream machine over RFC 7395 WebSocket framing
//! (`C2s::with_framing`), fed arbitrary messages: it must not panic or
//! loop, and every unit it sends must be one complete XML document, as a
//! WebSocket message must be.
//!
//! Input: a settings byte (bit 0: no TLS available, bit 1: TLS not
//! required), then the messages, separated by 0xFF bytes.

#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use switchboard_core::stream::{C2s, Framing};
use switchboard_fuzz::{c2s_settings, run_c2s, SEPARATOR};
use switchboard_xml::{parse_document, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    // A WebSocket runs inside HTTPS: secure from the start.
    let mut m = C2s::with_framing(
        c2s_settings(flags),
        start,
        Framing::WebSocket,
        true,
        Some(vec![9; 32]),
    );
    let messages: Vec<&[u8]> = body.split(|b| *b == SEPARATOR).collect();
    for unit in run_c2s(&mut m, start, &messages) {
        if let Err(e) = parse_document(&unit, Limits::default()) {
            panic!(
                "sent a message that is not one XML element ({e}): {:?}",
                String::from_utf8_lossy(&unit)
            );
        }
    }
});
