//! XML stream machines. Each is sans-IO: bytes and `now` in; bytes,
//! actions and timeouts out. The drivers in `net` do the I/O.

pub mod c2s;
pub mod component;
pub mod error;
pub mod framing;
mod negotiation;
pub mod register;
pub mod s2s;
pub mod sasl2;
mod sasl_exchange;
pub mod sm;
pub mod websocket;

pub use crate::ids::random_id;
pub use c2s::{Action, C2s, C2sSettings, StreamExtensions};
pub use component::{ComponentAction, ComponentStream};
pub use error::StreamError;
pub use framing::{Deframer, Framing};

#[cfg(test)]
mod tests;
