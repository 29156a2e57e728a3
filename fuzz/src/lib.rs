//! What the fuzz targets share: splitting one input into the pieces a
//! network would deliver it in, and the stand-in for the driver around
//! the client stream machine.
//!
//! A target's input starts with a byte or two of choices (how to split,
//! which settings); the rest is what the peer sends. The seed corpus in
//! `fuzz/seeds/<target>/` is written that way.

use std::time::{Duration, Instant};

use switchboard_core::sasl::scram::derive_with_salt;
use switchboard_core::stanza::{ErrorType, StanzaError};
use switchboard_core::stream::{Action, C2s, C2sSettings};
use switchboard_xml::{Limits, StreamParser};

/// Splits `data` into pieces whose lengths (1 to 32 bytes) come from a
/// small generator seeded with `seed`; seed 0 keeps it whole. The same
/// seed always splits the same way, so a crash reproduces.
pub fn split(seed: u8, data: &[u8]) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let mut state = seed;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = 1 + usize::from(state % 32);
        state = state.wrapping_mul(33).wrapping_add(7);
        let (now, later) = rest.split_at(len.min(rest.len()));
        out.push(now);
        rest = later;
    }
    out
}

/// The separator between WebSocket messages and between SCRAM messages
/// in an input: a byte that never occurs in UTF-8.
pub const SEPARATOR: u8 = 0xFF;

/// The settings a client stream starts with; `flags` picks whether TLS is
/// available and required.
pub fn c2s_settings(flags: u8) -> C2sSettings {
    C2sSettings {
        hosts: vec!["localhost".into(), "example.org".into()],
        tls_available: flags & 1 == 0,
        tls_required: flags & 2 == 0,
        limits: Limits::default(),
        preauth_timeout: Duration::from_secs(60),
        keepalive: Duration::from_secs(60),
        open_registration: vec!["localhost".into()],
    }
}

/// Carries out the machine's actions the way the driver would, answering
/// lookups from one account, `alice` / `secret`; returns the bytes it
/// sent, one entry per unit.
pub fn drain(m: &mut C2s) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut steps = 0u32;
    while let Some(action) = m.poll_action() {
        steps += 1;
        assert!(steps < 100_000, "the machine keeps producing actions");
        match action {
            Action::Send(bytes) => sent.push(bytes),
            Action::StartTls => m.tls_established(Some(vec![7; 32])),
            Action::LookupScram { user, hash, .. } => {
                // One iteration: PBKDF2 is not what is being tested.
                let cred = (user == "alice").then(|| derive_with_salt(hash, "secret", b"salt", 1));
                m.scram_credentials(cred);
            }
            Action::VerifyPlain { user, password, .. } => {
                m.plain_verified(&user, user == "alice" && password == "secret");
            }
            Action::Register { user, .. } => m.registered(if user == "alice" {
                Err(StanzaError::new("conflict", ErrorType::Cancel))
            } else {
                Ok(())
            }),
            Action::Bound(_) | Action::Stanza(..) | Action::Close => {}
        }
    }
    sent
}

/// Feeds `pieces` to `m` one by one (each one TCP read, or one WebSocket
/// message), a second apart, then lets an hour pass; returns every unit
/// the machine sent.
pub fn run_c2s(m: &mut C2s, start: Instant, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut sent = drain(m);
    for (i, piece) in pieces.iter().enumerate() {
        m.handle_input(piece);
        sent.extend(drain(m));
        let now = start + Duration::from_secs(i as u64 + 1);
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.handle_timeout(now);
            sent.extend(drain(m));
        }
    }
    m.handle_timeout(start + Duration::from_secs(3600));
    sent.extend(drain(m));
    assert!(
        m.is_closed() || m.poll_timeout().is_some(),
        "an open stream always has a deadline"
    );
    sent
}

/// Reads what a TCP stream machine sent as its client would: each stream
/// header starts a new stream (after STARTTLS and SASL the client reads a
/// fresh one), and everything must parse without an error.
pub fn check_stream_output(units: &[Vec<u8>]) {
    let mut client = StreamParser::new(Limits::default());
    for unit in units {
        if unit.starts_with(b"<?xml") || unit.starts_with(b"<stream:stream") {
            client.reset();
        }
        let fed = client.feed(unit);
        let mut result = fed.map(|()| None);
        while let Ok(Some(_)) = result {
            result = client.next_event().map(|e| e.map(|_| ()));
        }
        if let Err(e) = result {
            panic!(
                "the client cannot read what the server sent ({e}): {:?}",
                String::from_utf8_lossy(unit)
            );
        }
    }
}
