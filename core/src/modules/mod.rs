//! Built-in modules: one file per XEP, each registering the IQ payloads it
//! answers and the disco features it adds (Prosody's `mod_*.lua` model)
//! in the IQ registry (`crate::routing::iq`).
//!
//! A handler is keyed by a typed [`IqKey`] (payload name, namespace, get or
//! set) and by whom it answers for: the server's own JID, or an account's
//! bare JID (RFC 6120 §10.3.3: the server answers IQs to a bare JID on the
//! account's behalf).

pub mod disco;
pub mod last;
pub mod password;
pub mod ping;
pub mod private;
pub mod vcard;
pub mod version;

#[cfg(test)]
mod test_support;

pub use crate::routing::iq::{
    DataHandler, DataRequest, IqHandler, IqKey, IqRequest, IqType, Registry, Scope, ServiceInfo,
};

/// Registers every built-in module.
pub fn register(r: &mut Registry) {
    disco::register(r);
    ping::register(r);
    version::register(r);
    vcard::register(r);
    private::register(r);
    last::register(r);
    password::register(r);
}
