//! The Switchboard server core: stream negotiation, SASL, the router,
//! sessions and the built-in modules. The binary (`src/main.rs` at the
//! workspace root) composes it with the config and the spool.
//!
//! Map (each layer imports only the ones above it; see ARCHITECTURE.md):
//!
//! - leaves: [`time`], [`ids`], [`queue`], [`stanza`], [`metrics`],
//!   [`throttle`], [`auth_delay`], [`memory`], [`debug_log`], [`tls`],
//!   [`sasl`], [`lifecycle`], [`metered`] (the stores with their writes
//!   timed);
//! - [`stream`]: the sans-IO stream machines; [`settings`]: the reloadable
//!   snapshot;
//! - [`sessions`]: bound resources; [`routing`]: the router, its table of
//!   hooks, the IQ registry and the service slots;
//! - [`notices`]: announcements, the message of the day, notices to
//!   admins; [`accounts`]: creating and verifying accounts;
//! - [`modules`]: IQ handlers, one file per XEP;
//! - [`im`]: RFC 6121 account actors and their routing rows;
//! - [`features`]: XMPP extensions on the core's seams, one file each;
//!   [`admin`]: the admin seam and its interfaces; [`services`]: the
//!   supervisor of in-process services;
//! - [`net`]: listeners and connection drivers;
//! - [`server`]: the composition, reload and shutdown.

pub mod accounts;
pub mod admin;
pub mod auth_delay;
pub mod debug_log;
pub mod fast;
pub mod features;
pub mod ids;
pub mod im;
pub mod lifecycle;
pub mod memory;
pub mod metered;
pub mod metrics;
pub mod modules;
pub mod net;
pub mod notices;
pub mod queue;
pub mod routing;
pub mod sasl;
pub mod server;
pub mod services;
pub mod sessions;
pub mod settings;
pub use switchboard_service::stanza;
pub mod stream;
pub mod throttle;
pub mod time;
pub mod tls;

pub use server::{ReloadReport, Server};
