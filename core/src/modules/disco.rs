//! XEP-0030 Service Discovery: disco#info for the server and for accounts,
//! disco#items listing the hostname-addressed services.
//!
//! What disco#info shows is what the modules registered: the entity's own
//! identity (`server/im`, `account/registered`) then the identities,
//! features and (for a host) extended-information forms they added. The
//! same element is what the server's entity-capabilities hash is computed
//! from ([`server_info`]), so the two cannot disagree.

use switchboard_xml::{ns, Element};

use super::{IqKey, IqRequest, IqType, Registry, Scope};
use crate::routing::iq::Identity;
use crate::stanza::StanzaError;

const INFO: IqKey = IqKey {
    name: "query",
    ns: ns::DISCO_INFO,
    kind: IqType::Get,
};
const ITEMS: IqKey = IqKey {
    name: "query",
    ns: ns::DISCO_ITEMS,
    kind: IqType::Get,
};

pub fn register(r: &mut Registry) {
    r.handle(INFO, Scope::Server, server_info_iq);
    r.handle(ITEMS, Scope::Server, server_items);
    r.handle(INFO, Scope::Account, account_info_iq);
    r.handle(ITEMS, Scope::Account, account_items);
    for scope in [Scope::Server, Scope::Account] {
        r.feature(scope, ns::DISCO_INFO);
        r.feature(scope, ns::DISCO_ITEMS);
    }
}

fn info(
    node: Option<&str>,
    own: (&str, &str, Option<&str>),
    identities: &[Identity],
    features: &[&str],
) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    if let Some(n) = node {
        q.set_attr("node", n);
    }
    let (category, kind, name) = own;
    let mut id = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind);
    if let Some(n) = name {
        id.set_attr("name", n);
    }
    q.append_child(id);
    for i in identities {
        q.append_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", i.category)
                .with_attr("type", i.kind),
        );
    }
    for f in features {
        q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

/// The disco#info of a local host (without `node`): `server/im`, the
/// registered identities and features, and the host's forms.
pub fn server_info(registry: &Registry, host: &str) -> Element {
    let mut q = info(
        None,
        ("server", "im", Some("Switchboard")),
        registry.identities(Scope::Server),
        registry.features(Scope::Server),
    );
    for form in registry.host_forms(host) {
        q.append_child(form.clone());
    }
    q
}

/// The disco#info of an account, as its owner (or a contact allowed to
/// see its presence) is shown it.
pub fn account_info(registry: &Registry, node: Option<&str>) -> Element {
    info(
        node,
        ("account", "registered", None),
        registry.identities(Scope::Account),
        registry.features(Scope::Account),
    )
}

fn server_info_iq(req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let host = req.to.domain();
    match req.payload.attr("node") {
        None => Ok(Some(server_info(req.registry, host))),
        // The server's own capabilities node (XEP-0115 §6.2).
        Some(node) if req.registry.is_host_alias(host, node) => {
            let mut q = server_info(req.registry, host);
            q.set_attr("node", node);
            Ok(Some(q))
        }
        Some(node) => Err(
            StanzaError::new("item-not-found", crate::stanza::ErrorType::Cancel)
                .with_text(format!("no disco node '{node}' here")),
        ),
    }
}

fn server_items(req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let mut q = Element::new("query", ns::DISCO_ITEMS);
    for s in req.services {
        q.append_child(
            Element::new("item", ns::DISCO_ITEMS)
                .with_attr("jid", s.jid.clone())
                .with_attr("name", s.name.clone()),
        );
    }
    Ok(Some(q))
}

/// XEP-0030 §3.1 lets the server answer for an account. Only the owner is
/// answered here, so others cannot probe for accounts; a contact's query
/// is answered by PEP (`features/pep`) in the account's actor, which
/// knows the roster.
fn account_info_iq(req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if req.from.to_bare() != *req.to {
        return Err(StanzaError::service_unavailable());
    }
    Ok(Some(account_info(req.registry, req.payload.attr("node"))))
}

/// XEP-0030 §8: disco#items to a bare JID is answered with an empty
/// result set when the account does not exist or the asker may not see
/// its presence, so everyone gets the same empty list (the owner too,
/// while accounts publish no items): nobody can tell from it whether an
/// account exists.
fn account_items(_req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
}
