//! The Switchboard server core: stream negotiation, SASL, the router,
//! sessions and the built-in modules. The binary (`src/main.rs` at the
//! workspace root) composes it with the config and the spool.
//!
//! Map: [`stream`] holds the sans-IO stream machines, [`net`] the sockets
//! that drive them, [`router`] decides where a stanza goes, [`sessions`]
//! tracks bound resources, [`modules`] answers IQs (one file per XEP),
//! [`admin`] holds announcements, the message of the day and the admin
//! socket, and [`server`] ties them together for start-up, reload and
//! shutdown.

pub mod accounts;
pub mod admin;
pub mod debug_log;
pub mod im;
pub mod metrics;
pub mod modules;
pub mod net;
pub mod queue;
pub mod router;
pub mod sasl;
pub mod server;
pub mod services;
pub mod sessions;
pub use switchboard_service::stanza;
pub mod stream;
pub mod throttle;
pub mod time;
pub mod tls;

pub use server::{ReloadReport, Server};
