//! The IQ handler registry: which module answers which IQ payload.
//!
//! A handler is keyed by a typed [`IqKey`] (payload name, namespace, get
//! or set) and by whom it answers for: the server's own JID, or an
//! account's bare JID (RFC 6120 §10.3.3: the server answers IQs to a bare
//! JID on the account's behalf). Two sorts exist:
//!
//! - **sync handlers** ([`IqHandler`]) answer at once on the router's
//!   thread from what the request carries (ping, disco, version);
//! - **account-data handlers** ([`DataHandler`]) read and write an
//!   account's stored data (vCard, private XML, last activity, password)
//!   and run inside that account's actor, one request at a time, in order
//!   with the account's other work.
//!
//! The registry also collects what disco#info shows (XEP-0030): the
//! features and extra identities each module adds for the server and for
//! accounts, the extended-information forms of each host (XEP-0128), and
//! the nodes that answer like the host itself (an entity-capabilities
//! `node#ver`, XEP-0115 §6.2). The routing table's IQ rows (`iq/host`,
//! `iq/bare`, and the account actor's rows) look handlers up here.

use std::collections::HashMap;

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, AccountStore, BoxFuture};
use switchboard_xml::Element;

pub use super::stanza::IqType;
use crate::stanza::StanzaError;

/// Which IQs a handler takes: the payload element's name and namespace,
/// and the IQ type (`Get` or `Set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IqKey {
    pub name: &'static str,
    pub ns: &'static str,
    pub kind: IqType,
}

/// Whom the IQ was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The server itself (`to` is a local domain).
    Server,
    /// An account's bare JID (or no `to`: the sender's own account).
    Account,
}

/// Everything a sync handler may look at.
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

/// What an async handler gets: the request, owned, and the router.
pub struct IqCall {
    pub iq: Element,
    /// The sender (a full JID for local clients).
    pub from: Jid,
    /// The addressee: a local domain or an account's bare JID.
    pub to: Jid,
    pub router: super::Router,
}

impl IqCall {
    /// The request's payload (its one child element).
    pub fn payload(&self) -> &Element {
        self.iq
            .first_element()
            .expect("checked before the handler runs")
    }

    /// Whether the sender asks about its own account.
    pub fn is_owner(&self) -> bool {
        self.from.to_bare() == self.to.to_bare()
    }
}

/// A handler that waits for something (a store, a service) to answer: the
/// router runs it on a task of its own and replies with what it returns,
/// while the sender's session waits for it before answering anything after
/// (its ticket is held until then). It must answer in bounded time.
pub type AsyncIqHandler = std::sync::Arc<
    dyn Fn(IqCall) -> BoxFuture<'static, Result<Option<Element>, StanzaError>> + Send + Sync,
>;

/// What an account-data handler sees. It runs inside the addressed
/// account's actor, one request at a time per account, with the stores it
/// may read and write.
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
    /// The account's small documents (vCard, private XML, last activity).
    pub data: &'a dyn AccountDataStore,
    /// Accounts and their credentials (a password change).
    pub accounts: &'a dyn AccountStore,
    /// PBKDF2 iterations for newly stored credentials.
    pub scram_iterations: u32,
}

impl DataRequest<'_> {
    /// The account addressed, as the stores name it; `service-unavailable`
    /// for a JID without a local part (no account has one).
    pub fn account_ref(&self) -> Result<AccountRef, StanzaError> {
        match self.account.node() {
            Some(user) => Ok(AccountRef::new(self.account.domain(), user)),
            None => Err(StanzaError::service_unavailable()),
        }
    }
}

/// A handler of account data (vCard, private XML, last activity, …).
pub type DataHandler =
    for<'a> fn(DataRequest<'a>) -> BoxFuture<'a, Result<Option<Element>, StanzaError>>;

/// The IQ handlers and disco features of the running server.
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<(IqKey, Scope), IqHandler>,
    async_handlers: HashMap<(IqKey, Scope), AsyncIqHandler>,
    data_handlers: HashMap<IqKey, DataHandler>,
    server_features: Vec<&'static str>,
    account_features: Vec<&'static str>,
    server_identities: Vec<Identity>,
    account_identities: Vec<Identity>,
    host_forms: Vec<(String, Element)>,
    host_aliases: Vec<(String, String)>,
}

/// A disco#info identity a module adds beside the entity's own (the
/// server's `server/im`, an account's `account/registered`), such as
/// XEP-0163's `pubsub/pep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub category: &'static str,
    pub kind: &'static str,
}

impl Registry {
    pub fn handle(&mut self, key: IqKey, scope: Scope, handler: IqHandler) {
        self.handlers.insert((key, scope), handler);
    }

    /// Registers a handler that waits (see [`AsyncIqHandler`]).
    pub fn handle_async(
        &mut self,
        key: IqKey,
        scope: Scope,
        handler: impl Fn(IqCall) -> BoxFuture<'static, Result<Option<Element>, StanzaError>>
            + Send
            + Sync
            + 'static,
    ) {
        self.async_handlers
            .insert((key, scope), std::sync::Arc::new(handler));
    }

    /// The async handler for a request's payload.
    pub fn lookup_async(
        &self,
        payload: &Element,
        kind: IqType,
        scope: Scope,
    ) -> Option<AsyncIqHandler> {
        self.async_handlers
            .iter()
            .find(|((k, s), _)| {
                *s == scope && k.kind == kind && k.name == payload.name && k.ns == payload.ns
            })
            .map(|(_, h)| h.clone())
    }

    /// Whether some handler of this scope takes the request, sync or
    /// async.
    pub fn answers(&self, payload: &Element, kind: IqType, scope: Scope) -> bool {
        self.lookup(payload, kind, scope).is_some()
            || self.lookup_async(payload, kind, scope).is_some()
    }

    /// Registers a handler of account data, addressed to an account's bare
    /// JID (or sent without `to`).
    pub fn handle_data(&mut self, key: IqKey, handler: DataHandler) {
        self.data_handlers.insert(key, handler);
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

    /// Adds a disco#info identity of the server or of accounts.
    pub fn identity(&mut self, scope: Scope, identity: Identity) {
        let list = match scope {
            Scope::Server => &mut self.server_identities,
            Scope::Account => &mut self.account_identities,
        };
        if !list.contains(&identity) {
            list.push(identity);
        }
    }

    /// The identities modules added (after the entity's own).
    pub fn identities(&self, scope: Scope) -> &[Identity] {
        match scope {
            Scope::Server => &self.server_identities,
            Scope::Account => &self.account_identities,
        }
    }

    /// Adds an extended-information form (XEP-0128) to the disco#info of
    /// one local host, such as XEP-0157's contact addresses.
    pub fn host_form(&mut self, host: &str, form: Element) {
        self.host_forms.push((host.to_owned(), form));
    }

    /// The extended-information forms of a host, in the order added.
    pub fn host_forms<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.host_forms
            .iter()
            .filter(move |(h, _)| h == host)
            .map(|(_, f)| f)
    }

    /// Makes disco#info of `node` at `host` answer with the host's own
    /// information (the node echoed), as XEP-0115 §6.2 asks for the
    /// `node#ver` of the server's capabilities.
    pub fn host_alias(&mut self, host: &str, node: String) {
        self.host_aliases.push((host.to_owned(), node));
    }

    /// Whether `node` at `host` answers like the host itself.
    pub fn is_host_alias(&self, host: &str, node: &str) -> bool {
        self.host_aliases
            .iter()
            .any(|(h, n)| h == host && n == node)
    }

    /// The sync handler for a request's payload.
    pub fn lookup(&self, payload: &Element, kind: IqType, scope: Scope) -> Option<IqHandler> {
        self.handlers
            .iter()
            .find(|((k, s), _)| {
                *s == scope && k.kind == kind && k.name == payload.name && k.ns == payload.ns
            })
            .map(|(_, h)| *h)
    }

    /// The account-data handler for a request's payload.
    pub fn lookup_data(&self, payload: &Element, kind: IqType) -> Option<DataHandler> {
        self.data_handlers
            .iter()
            .find(|(k, _)| k.kind == kind && k.name == payload.name && k.ns == payload.ns)
            .map(|(_, h)| *h)
    }
}
