//! What every backend refuses, and refuses the same way: the checks on a
//! request that come before any backend-specific work, so that the
//! in-memory backend answers exactly like the file spool (and a database
//! later) at the edges. Each returns [`StoreError::Invalid`] naming what is
//! wrong.

use std::collections::HashSet;

use switchboard_xml::{ns, Element};

use super::{StoreError, StoreResult, StoredRoster};
use crate::record::{is_representable, is_xml_char};

/// The account-record keys other kinds own: the credentials
/// ([`super::AccountStore`]), the roster ([`super::RosterStore`]) and the
/// offline queue older releases kept in the record (moved into the
/// offline log). [`super::AccountDataStore`] refuses them.
pub const RESERVED_ACCOUNT_KEYS: &[&str] = &[crate::record::SCRAM, "roster", "offline"];

/// The largest service value, and the largest stored stanza (serialized):
/// far above any real one, low enough that a runaway caller cannot fill a
/// disk with one record; the most one record of a log can hold.
pub const MAX_VALUE_BYTES: usize = crate::log::MAX_PAYLOAD;

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

/// A key of an account or host document.
pub fn document_key(key: &str, reserved: &[&str]) -> StoreResult<()> {
    if key.is_empty() {
        return Err(invalid("an empty document key"));
    }
    if reserved.contains(&key) {
        return Err(invalid(format!(
            "<{key}/> is not account data: another kind of store keeps it"
        )));
    }
    Ok(())
}

/// A document for [`super::AccountDataStore`] or [`super::HostDataStore`].
pub fn document(doc: &Element, reserved: &[&str]) -> StoreResult<()> {
    document_key(&doc.name, reserved)?;
    if doc.ns != ns::SPOOL {
        return Err(invalid(format!(
            "<{}/> is in namespace '{}', not the spool's '{}'",
            doc.name,
            doc.ns,
            ns::SPOOL
        )));
    }
    representable(doc)
}

/// An element about to be stored holds only what XML can carry.
pub fn representable(el: &Element) -> StoreResult<()> {
    if is_representable(el) {
        Ok(())
    } else {
        Err(invalid(format!(
            "<{}/> holds characters XML cannot carry",
            el.name
        )))
    }
}

/// A stanza for the offline log or the archive, `size` bytes serialized.
pub fn stanza(el: &Element, size: usize) -> StoreResult<()> {
    representable(el)?;
    if size > MAX_VALUE_BYTES {
        return Err(invalid(format!(
            "a stanza of {size} bytes (at most {MAX_VALUE_BYTES})"
        )));
    }
    Ok(())
}

/// The subscription values a roster item may have (RFC 6121 §2.1.2.5).
pub const SUBSCRIPTIONS: &[&str] = &["none", "to", "from", "both"];

/// A roster about to be saved: known subscription values, one item and one
/// pending request per contact, nothing XML cannot carry.
pub fn roster(r: &StoredRoster) -> StoreResult<()> {
    let text_ok = |s: &str| s.chars().all(is_xml_char);
    let mut seen = HashSet::new();
    for item in &r.items {
        if item.jid.is_empty() || !text_ok(&item.jid) {
            return Err(invalid(format!("a roster item's jid '{}'", item.jid)));
        }
        if !seen.insert(item.jid.as_str()) {
            return Err(invalid(format!("two roster items for {}", item.jid)));
        }
        if !SUBSCRIPTIONS.contains(&item.subscription.as_str()) {
            return Err(invalid(format!(
                "subscription '{}' for {}",
                item.subscription, item.jid
            )));
        }
        let texts = item.name.iter().chain(&item.groups);
        if texts.into_iter().any(|t| !text_ok(t)) {
            return Err(invalid(format!(
                "the name or a group of {} holds characters XML cannot carry",
                item.jid
            )));
        }
    }
    let mut seen = HashSet::new();
    for (jid, stanza) in &r.pending {
        if jid.is_empty() || !text_ok(jid) || !seen.insert(jid.as_str()) {
            return Err(invalid(format!("a pending request from '{jid}'")));
        }
        representable(stanza)?;
    }
    Ok(())
}

/// A service data collection: `/`-separated non-empty segments.
pub fn collection(collection: &str) -> StoreResult<()> {
    if collection.split('/').any(str::is_empty) {
        return Err(invalid(format!(
            "collection '{collection}' has an empty segment"
        )));
    }
    Ok(())
}

/// A service data key, and the collection it is in.
pub fn service_key(collection_name: &str, key: &str) -> StoreResult<()> {
    collection(collection_name)?;
    if key.is_empty() {
        return Err(invalid("an empty key"));
    }
    Ok(())
}

/// A service data value.
pub fn value(value: &[u8]) -> StoreResult<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(format!(
            "a value of {} bytes (at most {MAX_VALUE_BYTES})",
            value.len()
        )));
    }
    Ok(())
}

/// A blob id: 1 to 64 ASCII letters, digits, `-` or `_` (a name every
/// backend can use as is), and metadata XML can carry.
pub fn blob(scope: &str, id: &str, meta: &super::BlobMeta) -> StoreResult<()> {
    if scope.is_empty() {
        return Err(StoreError::Invalid("a blob needs a scope".into()));
    }
    blob_id(id)?;
    for (what, text) in [
        ("owner", &meta.owner),
        ("name", &meta.name),
        ("content type", &meta.content_type),
    ] {
        if text.chars().any(|c| c.is_control()) {
            return Err(StoreError::Invalid(format!(
                "a blob's {what} has control characters"
            )));
        }
    }
    Ok(())
}

/// See [`blob`].
pub fn blob_id(id: &str) -> StoreResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("\"{id}\" is not a blob id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredItem;

    #[test]
    fn documents_outside_the_spool_or_under_reserved_keys_are_refused() {
        assert!(document(&Element::new("vcard", ns::SPOOL), RESERVED_ACCOUNT_KEYS).is_ok());
        for bad in [
            Element::new("vcard", "vcard-temp"),
            Element::new("scram", ns::SPOOL),
            Element::new("roster", ns::SPOOL),
            Element::new("offline", ns::SPOOL),
            Element::new("vcard", ns::SPOOL).with_text("a\0b"),
        ] {
            assert!(
                matches!(
                    document(&bad, RESERVED_ACCOUNT_KEYS),
                    Err(StoreError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert!(document(&Element::new("roster", ns::SPOOL), &[]).is_ok());
    }

    #[test]
    fn rosters_with_duplicates_or_unknown_states_are_refused() {
        let item = |jid: &str, sub: &str| StoredItem {
            jid: jid.into(),
            name: None,
            subscription: sub.into(),
            ask: false,
            approved: false,
            added: true,
            groups: vec![],
        };
        let ok = StoredRoster {
            ver: 1,
            items: vec![item("a@x", "both"), item("b@x", "none")],
            pending: vec![],
        };
        assert!(roster(&ok).is_ok());
        for items in [
            vec![item("a@x", "both"), item("a@x", "to")],
            vec![item("a@x", "maybe")],
            vec![item("", "none")],
        ] {
            let r = StoredRoster {
                items,
                ..ok.clone()
            };
            assert!(roster(&r).is_err());
        }
    }

    #[test]
    fn collections_are_non_empty_segments() {
        assert!(collection("registrations").is_ok());
        assert!(collection("registrations/irc.example.net").is_ok());
        for bad in ["", "/", "a/", "/a", "a//b"] {
            assert!(collection(bad).is_err(), "{bad}");
        }
        assert!(service_key("c", "").is_err());
    }
}
