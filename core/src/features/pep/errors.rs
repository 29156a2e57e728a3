//! The errors of XEP-0060 as it names them: a defined condition and,
//! where the XEP gives one, a pubsub-specific condition in
//! `http://jabber.org/protocol/pubsub#errors`.

use switchboard_xml::Element;

use crate::stanza::{ErrorType, StanzaError};

pub const NS: &str = "http://jabber.org/protocol/pubsub#errors";

/// A pubsub-specific condition element.
pub fn condition(name: &str) -> Element {
    Element::new(name, NS)
}

fn with(defined: &'static str, kind: ErrorType, app: &str, text: impl Into<String>) -> StanzaError {
    StanzaError::new(defined, kind)
        .with_text(text)
        .with_app(condition(app))
}

/// §7.1.5: a publish-options precondition the node does not meet.
pub fn precondition(text: impl Into<String>) -> StanzaError {
    with("conflict", ErrorType::Cancel, "precondition-not-met", text)
}

/// A request that must name a node and does not.
pub fn nodeid_required() -> StanzaError {
    with(
        "bad-request",
        ErrorType::Modify,
        "nodeid-required",
        "name the node",
    )
}

/// §7.1.3.6 / §7.2.3.4: a publish without an item, a retraction without
/// an item id.
pub fn item_required(text: &str) -> StanzaError {
    with("bad-request", ErrorType::Modify, "item-required", text)
}

/// §7.1.3.6: an item without a payload.
pub fn payload_required() -> StanzaError {
    with(
        "bad-request",
        ErrorType::Modify,
        "payload-required",
        "the item has no payload",
    )
}

/// §7.1.3.5: not exactly one payload element, or one the node does not
/// take.
pub fn invalid_payload(text: impl Into<String>) -> StanzaError {
    with("bad-request", ErrorType::Modify, "invalid-payload", text)
}

/// §7.1.3.4: a payload over the service's limit.
pub fn payload_too_big(text: impl Into<String>) -> StanzaError {
    with("not-acceptable", ErrorType::Modify, "payload-too-big", text)
}

/// A use case this service does not support (`feature` as XEP-0060 names
/// it: `subscribe`, `modify-affiliations`, …).
pub fn unsupported(feature: &str) -> StanzaError {
    StanzaError::feature_not_implemented()
        .with_text(format!("this service does not support {feature}"))
        .with_app(condition("unsupported").with_attr("feature", feature))
}

/// The node (or item) does not exist.
pub fn item_not_found(text: impl Into<String>) -> StanzaError {
    StanzaError::new("item-not-found", ErrorType::Cancel).with_text(text)
}

/// §6.5.9.6: the `presence` access model, and no presence subscription.
pub fn presence_subscription_required() -> StanzaError {
    with(
        "not-authorized",
        ErrorType::Auth,
        "presence-subscription-required",
        "only contacts who see the owner's presence may see this node",
    )
}

/// §6.5.9.7: the `roster` access model, and not in an allowed group.
pub fn not_in_roster_group() -> StanzaError {
    with(
        "not-authorized",
        ErrorType::Auth,
        "not-in-roster-group",
        "only some of the owner's contacts may see this node",
    )
}

/// §6.5.9.8: the `whitelist` access model, and not on it.
pub fn closed_node() -> StanzaError {
    with(
        "not-allowed",
        ErrorType::Cancel,
        "closed-node",
        "only the owner may see this node",
    )
}

/// §7.1.3.1 and the owner use cases: only the account may do this.
pub fn forbidden(text: &str) -> StanzaError {
    StanzaError::forbidden().with_text(text)
}

/// A bound of this service (nodes per account): RFC 6120 §8.3.3.12.
pub fn policy(text: impl Into<String>) -> StanzaError {
    StanzaError::new("policy-violation", ErrorType::Modify).with_text(text)
}
