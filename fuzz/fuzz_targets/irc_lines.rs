//! The IRC session machine (transports/irc/src/session/) on arbitrary
//! bytes from the server, in arbitrary pieces: line framing, parsing and
//! every handler behind them must not panic or loop, whatever the server
//! says, before or after sign-on, with a room joined or not.
//!
//! Input: a byte of choices (bit 0: join #chan first, bit 1: write a
//! private message first, bit 2: this is the default server), a split
//! byte, then what the server sends.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::split;
use switchboard_irc::config::Flood;
use switchboard_irc::session::{Event, Params, Session, ToIrc};
use switchboard_irc::signon::Profile;

fn pump(s: &mut Session, now: Instant) {
    let mut steps = 0u32;
    while s.poll_transmit(now).is_some() {
        steps += 1;
        assert!(steps < 100_000, "the session keeps writing lines");
    }
    while let Some(e) = s.poll_event() {
        steps += 1;
        assert!(steps < 200_000, "the session keeps producing events");
        if let Event::End = e {
            let _ = s.finish(Vec::new());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, seed, body @ ..] = data else {
        return;
    };
    let start = Instant::now();
    let params = Params {
        service_host: "irc.localhost".into(),
        user: "alice@localhost".into(),
        server: "irc.example.net".into(),
        default: flags & 4 != 0,
        nick: "alice".into(),
        flood: Flood::default(),
        profile: Profile::default(),
    };
    let mut s = Session::new(params, start);
    if flags & 1 != 0 {
        s.handle_request(
            ToIrc::Join {
                channel: "#chan".into(),
                nick: "alice".into(),
                full: "alice@localhost/one".into(),
                short: false,
                key: (flags & 8 != 0).then(|| "sekrit".into()),
            },
            start,
        );
    }
    if flags & 2 != 0 {
        s.handle_request(
            ToIrc::Private {
                nick: "bob".into(),
                full: "alice@localhost/one".into(),
                body: "hello".into(),
                room: (flags & 16 != 0).then(|| "#chan".into()),
            },
            start,
        );
    }
    pump(&mut s, start);
    s.handle_dialing(start);
    s.handle_connected(start);
    pump(&mut s, start);
    let mut now = start;
    for piece in split(*seed, body) {
        now += Duration::from_millis(250);
        s.handle_input(piece, now);
        pump(&mut s, now);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
            pump(&mut s, now);
        }
    }
    s.handle_eof(now + Duration::from_secs(1));
    pump(&mut s, now + Duration::from_secs(1));
});
