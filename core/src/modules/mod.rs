//! Built-in modules: one file per XEP, each registering the IQ payloads it
//! answers and the disco features it adds (Prosody's `mod_*.lua` model).
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

use std::collections::HashMap;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use crate::stanza::StanzaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
}

/// Which IQs a handler takes: the payload element's name and namespace,
/// and the IQ type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IqKey {
    pub name: &'static str,
    pub ns: &'static str,
    pub kind: IqType,
}

/// Whom the IQ was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The server itself (`to` is a local domain, or absent for
    /// server-only payloads).
    Server,
    /// An account's bare JID.
    Account,
}

/// Everything a handler may look at.
pub struct IqRequest<'a> {
    pub iq: &'a Element,
    pub payload: &'a Element,
    /// The sender (a full JID for local clients).
    pub from: &'a Jid,
    /// The addressee: a local domain or an account's bare JID.
    pub to: &'a Jid,
    pub registry: &'a Registry,
    pub services: &'a [ServiceInfo],
}

/// A hostname-addressed service as disco#items shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub jid: String,
    pub name: String,
}

/// A handler answers with a result payload (or none), or a stanza error.
pub type IqHandler = fn(&IqRequest<'_>) -> Result<Option<Element>, StanzaError>;

/// What an account-data handler sees. It runs inside the addressed
/// account's actor, one request at a time per account, on the blocking
/// pool: it may read and write the spool directly.
pub struct DataRequest<'a> {
    pub iq: &'a Element,
    pub payload: &'a Element,
    /// The sender (a full JID for local clients).
    pub from: &'a Jid,
    /// The account addressed (bare JID; for an IQ without `to`, the
    /// sender's own account).
    pub account: &'a Jid,
    /// Whether the sender is the account itself (any of its resources).
    pub is_owner: bool,
    /// Whether the account's roster lets the sender see its presence
    /// (subscription `from` or `both`); always true for the owner.
    pub may_see_presence: bool,
    /// Whether the account has at least one available resource.
    pub online: bool,
    pub store: &'a dyn switchboard_spool::Storage,
    /// PBKDF2 iterations for newly stored credentials.
    pub scram_iterations: u32,
}

/// A handler of account data (vCard, private XML, last activity, …).
pub type DataHandler = fn(&DataRequest<'_>) -> Result<Option<Element>, StanzaError>;

/// The set of handlers and features of the running server.
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<(IqKey, Scope), IqHandler>,
    data_handlers: HashMap<IqKey, DataHandler>,
    server_features: Vec<&'static str>,
    account_features: Vec<&'static str>,
}

impl Registry {
    /// The registry with every built-in module.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        disco::register(&mut r);
        ping::register(&mut r);
        version::register(&mut r);
        vcard::register(&mut r);
        private::register(&mut r);
        last::register(&mut r);
        password::register(&mut r);
        // Each host answers XEP-0050 commands (XEP-0133 administration,
        // `crate::admin::commands`); the router hands those IQs to their
        // own task, so only the feature is registered here.
        r.feature(Scope::Server, switchboard_xml::ns::COMMANDS);
        r
    }

    pub fn handle(&mut self, key: IqKey, scope: Scope, handler: IqHandler) {
        self.handlers.insert((key, scope), handler);
    }

    /// Registers a handler of account data, addressed to an account's bare
    /// JID (or sent without `to`).
    pub fn handle_data(&mut self, key: IqKey, handler: DataHandler) {
        self.data_handlers.insert(key, handler);
    }

    pub fn lookup_data(&self, payload: &Element, kind: IqType) -> Option<DataHandler> {
        self.data_handlers
            .iter()
            .find(|(k, _)| k.kind == kind && k.name == payload.name && k.ns == payload.ns)
            .map(|(_, h)| *h)
    }

    /// Adds a disco#info feature of the server (`Scope::Server`) or of
    /// accounts (`Scope::Account`).
    pub fn feature(&mut self, scope: Scope, var: &'static str) {
        let list = match scope {
            Scope::Server => &mut self.server_features,
            Scope::Account => &mut self.account_features,
        };
        if !list.contains(&var) {
            list.push(var);
        }
    }

    pub fn features(&self, scope: Scope) -> &[&'static str] {
        match scope {
            Scope::Server => &self.server_features,
            Scope::Account => &self.account_features,
        }
    }

    pub fn lookup(&self, payload: &Element, kind: IqType, scope: Scope) -> Option<IqHandler> {
        self.handlers
            .iter()
            .find(|((k, s), _)| {
                *s == scope && k.kind == kind && k.name == payload.name && k.ns == payload.ns
            })
            .map(|(_, h)| *h)
    }
}
