//! Message processing hints (XEP-0334) as the archive and carbons honour
//! them: `<no-copy/>` (no carbon copies), `<no-store/>` and
//! `<no-permanent-store/>` (not archived), `<store/>` (archived even
//! without a body).

use switchboard_xml::Element;

/// `urn:xmpp:hints`.
pub const NS: &str = "urn:xmpp:hints";

/// Whether `message` carries the hint `name` (`no-copy`, `store`, …).
pub fn has(message: &Element, name: &str) -> bool {
    message.get_child(name, NS).is_some()
}

/// Whether the sender asked that `message` not be kept for good.
pub fn forbids_storage(message: &Element) -> bool {
    has(message, "no-store") || has(message, "no-permanent-store")
}
