//! Black-box test harness for the `switchboard` binary.
//!
//! The tests in `tests/` drive the real server process the way an operator
//! and real clients would: a fresh temporary home per test, a config file
//! written there, the binary started with `-H HOME -c CONFIG run`, its
//! listeners on `127.0.0.1:0` (so tests run in parallel), and its stdout
//! read for `listening …` lines and `ready`.
//!
//! * [`server`]: [`TestServer`] / [`ServerBuilder`], locating the binary
//!   ([`server::binary`]), running CLI subcommands, signals, teardown.
//! * [`irc`]: a real ngircd on loopback and a raw IRC client, for the
//!   IRC transport's tests.
//! * [`client`]: [`Client`], the scripted client the tests share: logs in
//!   like a client, keeps every stanza until a test consumes it, ordered
//!   and duplicate-detecting expectations, and barriers (a ping round
//!   trip) for every "nothing else arrives" check.
//! * [`dns`]: a tiny name server answering the SRV and A records the
//!   federation tests give it.
//! * [`federation`]: servers federating on loopback: a test CA and its
//!   certificates, s2s addresses, `<connect>` entries.
//! * [`muc`]: group chat users for the MUC tests: parsed stanzas, joins,
//!   barriers through the group chat service.
//! * [`raw`]: [`RawClient`], a byte-level client (TCP, STARTTLS, direct
//!   TLS) for scripted edge cases: send strings, read until a pattern.
//! * [`xmpp`]: glue to drive the third-party `tokio-xmpp` client against an
//!   explicit `127.0.0.1:port`, trusting the server's own certificate.
//!
//! # Finding the binary
//!
//! 1. `SWITCHBOARD_BIN=/path/to/switchboard` is used as is.
//! 2. Otherwise the harness runs `cargo build -p switchboard` once per test
//!    process (same profile and target directory as the test executable,
//!    which it derives from `std::env::current_exe()`), then uses
//!    `<target-dir>/<profile>/switchboard`. `SWITCHBOARD_NO_BUILD=1` skips
//!    the build and uses whatever binary is already there.
//!
//! `SWITCHBOARD_IT_DEBUG=1` starts servers with `-D` (every stanza in and
//! out is logged); a failing test prints the server's stdout, stderr and
//! the tail of its log.
//!
//! Every wait in this crate is bounded (see [`WAIT`]), and none waits a
//! fixed time to conclude that something did not happen: that is what
//! [`Client::barrier`] and [`TestServer::wait_for_log`] are for. Nothing
//! listens anywhere but loopback (127.0.0.1, and other 127.0.0.0/8
//! addresses for federating servers).

pub mod client;
pub mod dns;
pub mod federation;
pub mod irc;
pub mod muc;
pub mod raw;
pub mod server;
pub mod ws;
pub mod xmpp;

use std::time::Duration;

pub use client::Client;
pub use raw::{RawClient, RawError};
pub use server::{CliOutput, ServerBuilder, StartError, TestServer};

/// The upper bound for any single wait in these tests (server start-up, a
/// reply, a disconnect).
pub const WAIT: Duration = Duration::from_secs(20);

/// The host every test config serves.
pub const HOST: &str = "localhost";
