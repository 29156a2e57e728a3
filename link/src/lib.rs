//! The machinery of outgoing links, shared by the transports, the notify
//! client (`switchboard send`), the load generator and the coming
//! server-to-server code: everything a connection *to* somewhere needs
//! that is not the protocol spoken over it.
//!
//! * [`backoff`]: reconnection delays, exponential with jitter drawn from
//!   the operating system's random source;
//! * [`bucket`]: the token bucket that paces outgoing lines;
//! * [`table`]: the per-user connection table (one link per user and
//!   server, a limit per user);
//! * [`tls`]: one set of rustls client verifiers: the system's trust
//!   store, a CA file, a SHA-256 pin, or no check;
//! * [`scram`]: the client side of SCRAM-SHA-1/256 and PLAIN.
//!
//! Nothing here opens a socket or reads the clock (`now` is an argument;
//! only building a TLS config reads its CA file or the system's store), so
//! each part is tested deterministically, and the machines that use them
//! stay testable under a simulated clock.
//!
//! Why each part is written here rather than taken from a crate:
//!
//! * **backoff**: the crates that do it (`backoff`, `backon`,
//!   `exponential-backoff`) are retry loops around futures, draw their
//!   jitter from a userspace generator, and cannot be driven by a
//!   sans-IO machine that only wants "the next delay"; the whole policy
//!   here is forty lines, with an injectable random source for tests.
//! * **bucket**: `governor` implements the same GCRA well, but behind its
//!   own clock abstraction and a keyed, concurrent rate limiter with its
//!   own dependencies; one link pacing one queue needs one `Instant` and
//!   two methods.
//! * **table**: it is this gateway's bookkeeping, not a general structure.
//! * **tls**: rustls itself verifies chains (`WebPkiServerVerifier`), and
//!   `rustls-native-certs` reads the system's store; what is written here
//!   is only what rustls leaves to the application through its
//!   `dangerous()` interface (a pin, no check) and the recording of the
//!   presented certificate's fingerprint for error messages.
//! * **scram**: the one maintained client crate, `sasl` (xmpp-rs, used by
//!   the integration tests as an independent implementation), does not
//!   prepare passwords (SASLprep is a TODO there), does not check that the
//!   server's nonce extends the client's, puts no bound on the iteration
//!   count a server may demand, and has no way to reuse derived keys, which
//!   the load generator needs to measure the server rather than itself.

pub mod backoff;
pub mod bucket;
pub mod scram;
pub mod table;
pub mod tls;
