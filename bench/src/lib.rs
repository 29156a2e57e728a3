//! Benchmark tooling for Switchboard.
//!
//! The load generator (`switchboard-load`) logs real XMPP clients into a
//! running server over loopback and measures the server from outside:
//! resident memory from `/proc/PID/status`, CPU time from `/proc/PID/stat`,
//! and login latency as a client sees it. Each scenario is a subcommand
//! ([`scenario`]); a new one is a new module there plus a variant of the
//! command line's enum.
//!
//! The client side is independent of the server's code: its own XML stream
//! reader ([`xml`]), the link kit's client SCRAM (`switchboard_link::scram`,
//! which shares no code with the server's) with a cache of derived keys,
//! and the kit's pinning verifier for the server's certificate ([`tls`]);
//! with `--websocket` the same clients speak XMPP over WebSocket
//! ([`websocket`]).
//! Only `switchboard-mkusers`, which creates the test accounts, links the
//! server's crates, so that accounts are written through the spool crate
//! exactly as `switchboard user add` writes them.

pub mod client;
pub mod failures;
pub mod procfs;
pub mod scenario;
pub mod stats;
pub mod tls;
pub mod websocket;
pub mod xml;
