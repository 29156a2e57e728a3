//! Network I/O: listeners and the per-connection driver around the sans-IO
//! stream machines.

mod auth_wait;
pub mod component;
pub mod connection;
pub mod listener;
pub mod metrics;
pub mod resume;
pub(crate) mod session;
pub(crate) mod wire;
