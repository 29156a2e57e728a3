//! Unique and stable stanza ids (XEP-0359): the `<stanza-id by id/>` an
//! archive adds to a message it stores, naming the archive (`by`, the
//! account's bare JID) and the id it keeps the message under, and the
//! sender's own `<origin-id/>`.
//!
//! A stanza-id a sender put in with `by` set to the recipient's archive is
//! a forgery (XEP-0359 §5) and is removed before the archive adds its own.
//! Ids are 96 random bits (XEP-0313 wants them unpredictable), taken from
//! a per-thread buffer of OS randomness so that a message costs no system
//! call.

use std::cell::RefCell;

use base64::Engine as _;
use switchboard_jid::Jid;
use switchboard_xml::{Element, Node};

/// `urn:xmpp:sid:0`.
pub const NS: &str = "urn:xmpp:sid:0";

/// Random bytes are fetched from the OS this many at a time.
const POOL: usize = 4096;
/// Bytes in an id: 96 bits, 16 characters of URL-safe base64.
const ID_BYTES: usize = 12;

thread_local! {
    static RANDOM: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
}

/// A fresh archive id: 96 random bits, URL-safe base64.
pub fn new_id() -> String {
    let mut id = [0u8; ID_BYTES];
    RANDOM.with(|r| {
        let (pool, used) = &mut *r.borrow_mut();
        if *used + ID_BYTES > POOL {
            getrandom::fill(pool).expect("the OS random source is available");
            *used = 0;
        }
        id.copy_from_slice(&pool[*used..*used + ID_BYTES]);
        // Bytes handed out are not kept around.
        pool[*used..*used + ID_BYTES].fill(0);
        *used += ID_BYTES;
    });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Whether `text` is the bare form of `jid` (compared without building
/// it).
pub fn is_bare_of(text: &str, jid: &Jid) -> bool {
    match jid.node() {
        Some(node) => text
            .strip_prefix(node)
            .and_then(|rest| rest.strip_prefix('@'))
            .is_some_and(|d| d == jid.domain()),
        None => text == jid.domain(),
    }
}

/// Removes every `<stanza-id/>` whose `by` is the bare form of `by`.
pub fn strip(message: &mut Element, by: &Jid) {
    let named =
        |e: &Element| e.is("stanza-id", NS) && e.attr("by").is_some_and(|b| is_bare_of(b, by));
    if !message.elements().any(named) {
        return;
    }
    message.children.retain(|n| match n {
        Node::Element(e) => !named(e),
        Node::Text(_) => true,
    });
}

/// Adds `<stanza-id by id/>`.
pub fn stamp(message: &mut Element, by: &str, id: &str) {
    message.append_child(
        Element::new("stanza-id", NS)
            .with_attr("by", by)
            .with_attr("id", id),
    );
}

/// The id a stanza-id `by` gives, if any.
pub fn by<'a>(message: &'a Element, by: &str) -> Option<&'a str> {
    message
        .elements()
        .find(|e| e.is("stanza-id", NS) && e.attr("by") == Some(by))
        .and_then(|e| e.attr("id"))
}

/// The sender's `<origin-id/>`, if any.
pub fn origin_id(message: &Element) -> Option<&str> {
    message
        .get_child("origin-id", NS)
        .and_then(|e| e.attr("id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::ns;

    #[test]
    fn bare_forms_compare_without_building_them() {
        let j = Jid::parse("bob@example.org/phone").unwrap();
        assert!(is_bare_of("bob@example.org", &j));
        assert!(!is_bare_of("bob@example.org/phone", &j));
        assert!(!is_bare_of("bo@example.org", &j));
        assert!(!is_bare_of("bob@example.or", &j));
        let host = Jid::parse("example.org").unwrap();
        assert!(is_bare_of("example.org", &host));
        assert!(!is_bare_of("x@example.org", &host));
    }

    #[test]
    fn ids_are_unique_and_url_safe() {
        let ids: std::collections::HashSet<String> = (0..2000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 2000);
        assert!(ids.iter().all(|i| i.len() == 16
            && i.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
    }

    #[test]
    fn forged_ids_for_the_archive_go_and_others_stay() {
        let mut m = Element::new("message", ns::CLIENT)
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attr("by", "bob@example.org")
                    .with_attr("id", "forged"),
            )
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attr("by", "room@conference.example.org")
                    .with_attr("id", "room-1"),
            )
            .with_child(Element::new("origin-id", NS).with_attr("id", "o-1"));
        strip(&mut m, &Jid::parse("bob@example.org/phone").unwrap());
        stamp(&mut m, "bob@example.org", "real");
        assert_eq!(by(&m, "bob@example.org"), Some("real"));
        assert_eq!(by(&m, "room@conference.example.org"), Some("room-1"));
        assert_eq!(origin_id(&m), Some("o-1"));
        assert_eq!(
            m.elements().filter(|e| e.is("stanza-id", NS)).count(),
            2,
            "the forged one is gone"
        );
    }
}
