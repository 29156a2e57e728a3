//! XEP-0030 Service Discovery: disco#info for the server and for accounts,
//! disco#items listing the hostname-addressed services.

use switchboard_xml::{ns, Element};

use super::{IqKey, IqRequest, IqType, Registry, Scope};
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
    r.handle(INFO, Scope::Server, server_info);
    r.handle(ITEMS, Scope::Server, server_items);
    r.handle(INFO, Scope::Account, account_info);
    r.handle(ITEMS, Scope::Account, account_items);
    for scope in [Scope::Server, Scope::Account] {
        r.feature(scope, ns::DISCO_INFO);
        r.feature(scope, ns::DISCO_ITEMS);
    }
}

fn info(
    node: Option<&str>,
    category: &str,
    kind: &str,
    name: Option<&str>,
    features: &[&str],
) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    if let Some(n) = node {
        q.set_attr("node", n);
    }
    let mut id = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind);
    if let Some(n) = name {
        id.set_attr("name", n);
    }
    q.append_child(id);
    for f in features {
        q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

fn server_info(req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if let Some(node) = req.payload.attr("node") {
        return Err(
            StanzaError::new("item-not-found", crate::stanza::ErrorType::Cancel)
                .with_text(format!("no disco node '{node}' here")),
        );
    }
    Ok(Some(info(
        None,
        "server",
        "im",
        Some("Switchboard"),
        req.registry.features(Scope::Server),
    )))
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

/// XEP-0030 §3.1 lets the server answer for an account; only the owner is
/// answered until rosters exist, so others cannot probe for accounts.
fn account_info(req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if req.from.to_bare() != *req.to {
        return Err(StanzaError::service_unavailable());
    }
    Ok(Some(info(
        req.payload.attr("node"),
        "account",
        "registered",
        None,
        req.registry.features(Scope::Account),
    )))
}

/// XEP-0030 §8: disco#items to a bare JID is answered with an empty
/// result set when the account does not exist or the asker may not see
/// its presence, so everyone gets the same empty list (the owner too,
/// while accounts publish no items): nobody can tell from it whether an
/// account exists.
fn account_items(_req: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
}
