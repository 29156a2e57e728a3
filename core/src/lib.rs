//! The Switchboard server core.

pub mod sasl;
