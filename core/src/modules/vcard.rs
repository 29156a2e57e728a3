//! XEP-0054 vcard-temp: an account's vCard, stored by the server, written
//! by its owner and readable by anyone (XEP-0054 §3.3, and §5: vCards
//! are world-readable).
//!
//! # Spool format
//!
//! One container element in the account's record, holding the `<vCard/>`
//! exactly as the owner last set it:
//!
//! ```xml
//! <vcard xmlns="urn:switchboard:spool:1"><vCard xmlns="vcard-temp">…</vCard></vcard>
//! ```
//!
//! There is no container when the account has no vCard (never set, or set
//! to an empty `<vCard/>`).
//!
//! # Answers
//!
//! * get, no vCard stored, asked by the owner: an empty `<vCard/>` result
//!   (§3.1 allows it instead of `item-not-found`; clients then show an
//!   empty profile to edit rather than an error, as with Prosody).
//! * get, no vCard stored, asked by anyone else: `service-unavailable`
//!   (§3.3 requires an error for another user's missing vCard; this is
//!   also the answer for an account that does not exist, so a missing
//!   vCard does not tell a stranger that the account exists).
//! * get for an account that does not exist: `service-unavailable`.
//! * set by anyone but the owner: `forbidden` (§3.2).
//! * set larger than [`MAX_VCARD_BYTES`] serialized: `not-acceptable`,
//!   "vCard too large" (RFC 6120 §8.3.3.9: the request does not meet
//!   criteria defined by the server; type `modify`, so the client may
//!   retry with a smaller photo).

use switchboard_jid::Jid;
use switchboard_spool::{SpoolError, UserRecord};
use switchboard_xml::{ns, Element, Node};

use super::{DataRequest, IqKey, IqType, Registry, Scope};
use crate::stanza::{ErrorType, StanzaError};

/// The vcard-temp namespace (also its disco feature).
pub const NS: &str = "vcard-temp";

/// The largest vCard stored, serialized. XEP-0153 asks for avatars of a
/// few kilobytes; this leaves room for a generous photo.
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

/// The container's local name, in the spool namespace.
pub const CONTAINER: &str = "vcard";

const GET: IqKey = IqKey {
    name: "vCard",
    ns: NS,
    kind: IqType::Get,
};
const SET: IqKey = IqKey {
    name: "vCard",
    ns: NS,
    kind: IqType::Set,
};

pub fn register(r: &mut Registry) {
    r.handle_data(GET, get);
    r.handle_data(SET, set);
    r.feature(Scope::Server, NS);
    r.feature(Scope::Account, NS);
}

fn get(req: &DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let (host, user) = parts(req.account)?;
    let record = match req.store.load_user(host, user) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(StanzaError::service_unavailable()),
        Err(e) => return Err(storage_failure(req.account, &e)),
    };
    match stored(&record) {
        Some(v) => Ok(Some(v.clone())),
        None if req.is_owner => Ok(Some(Element::new("vCard", NS))),
        None => Err(StanzaError::service_unavailable()),
    }
}

fn set(req: &DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner {
        return Err(
            StanzaError::forbidden().with_text("only the account itself may change its vCard")
        );
    }
    let (host, user) = parts(req.account)?;
    if req.payload.to_bytes(None).len() > MAX_VCARD_BYTES {
        return Err(
            StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                "vCard too large (at most {} KiB)",
                MAX_VCARD_BYTES / 1024
            )),
        );
    }
    let container = if is_empty(req.payload) {
        None
    } else {
        Some(Element::new(CONTAINER, ns::SPOOL).with_child(req.payload.clone()))
    };
    req.store
        .update_user(host, user, &mut |rec| {
            replace_container(&mut rec.extra, container.clone())
        })
        .map_err(|e| storage_failure(req.account, &e))?;
    Ok(None)
}

/// The stored `<vCard/>` of a record, if any.
pub fn stored(record: &UserRecord) -> Option<&Element> {
    record
        .extra
        .iter()
        .find(|e| e.is(CONTAINER, ns::SPOOL))
        .and_then(|c| c.get_child("vCard", NS))
}

/// A `<vCard/>` with nothing in it but layout: storing it means "no vCard".
fn is_empty(vcard: &Element) -> bool {
    vcard.attrs.is_empty()
        && vcard.children.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            Node::Element(_) => false,
        })
}

/// Replaces the container in place (keeping the record's order stable),
/// appends it, or removes it when `new` is `None`.
fn replace_container(extra: &mut Vec<Element>, new: Option<Element>) {
    let at = extra.iter().position(|e| e.is(CONTAINER, ns::SPOOL));
    match (at, new) {
        (Some(i), Some(c)) => extra[i] = c,
        (Some(i), None) => {
            extra.remove(i);
        }
        (None, Some(c)) => extra.push(c),
        (None, None) => {}
    }
}

fn parts(account: &Jid) -> Result<(&str, &str), StanzaError> {
    match account.node() {
        Some(user) => Ok((account.domain(), user)),
        None => Err(StanzaError::service_unavailable()),
    }
}

/// A vanished account is `service-unavailable`, like one that never
/// existed; anything else is the server's fault, logged here.
fn storage_failure(account: &Jid, e: &SpoolError) -> StanzaError {
    match e {
        SpoolError::NotFound => StanzaError::service_unavailable(),
        _ => {
            tracing::error!(account = %account, "vCard storage failed: {e}");
            StanzaError::internal_server_error()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{env, Env};
    use super::*;
    use crate::accounts;
    use switchboard_spool::Storage;

    use super::super::test_support::HOST;

    /// Runs `handler` for `payload` sent by `from` to `account`.
    fn call(
        env: &Env,
        handler: super::super::DataHandler,
        from: &str,
        account: &str,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        super::super::test_support::call_as(env, handler, from, account, payload, false, false)
    }

    fn card(name: &str) -> Element {
        Element::new("vCard", NS)
            .with_child(Element::new("FN", NS).with_text(name))
            .with_child(Element::new("N", NS).with_child(Element::new("GIVEN", NS).with_text(name)))
    }

    fn empty() -> Element {
        Element::new("vCard", NS)
    }

    fn condition(r: Result<Option<Element>, StanzaError>) -> &'static str {
        r.unwrap_err().condition
    }

    const ALICE: &str = "alice@example.org/phone";

    #[test]
    fn set_then_get_round_trips_through_the_spool() {
        let env = env();
        let v = card("Alice");
        assert_eq!(call(&env, set, ALICE, "alice@example.org", &v), Ok(None));
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()),
            Ok(Some(v.clone()))
        );
        // Anyone may read it, contact or not, local or remote.
        assert_eq!(
            call(
                &env,
                get,
                "mallory@elsewhere.net/x",
                "alice@example.org",
                &empty()
            ),
            Ok(Some(v.clone()))
        );
        // Stored in its container, nowhere else.
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert_eq!(rec.extra.len(), 1);
        assert!(rec.extra[0].is(CONTAINER, ns::SPOOL));
        assert_eq!(stored(&rec), Some(&v));
    }

    #[test]
    fn a_set_replaces_the_whole_vcard() {
        let env = env();
        call(&env, set, ALICE, "alice@example.org", &card("Alice")).unwrap();
        let newer =
            Element::new("vCard", NS).with_child(Element::new("NICKNAME", NS).with_text("al"));
        call(&env, set, ALICE, "alice@example.org", &newer).unwrap();
        assert_eq!(
            call(
                &env,
                get,
                "bob@example.org/pc",
                "alice@example.org",
                &empty()
            ),
            Ok(Some(newer))
        );
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert_eq!(rec.extra.len(), 1);
    }

    #[test]
    fn no_vcard_is_empty_for_the_owner_and_unavailable_for_others() {
        let env = env();
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()),
            Ok(Some(empty()))
        );
        assert_eq!(
            condition(call(
                &env,
                get,
                "bob@example.org/pc",
                "alice@example.org",
                &empty()
            )),
            "service-unavailable"
        );
    }

    #[test]
    fn setting_an_empty_vcard_removes_it() {
        let env = env();
        call(&env, set, ALICE, "alice@example.org", &card("Alice")).unwrap();
        let blank = Element::new("vCard", NS).with_text("\n  ");
        assert_eq!(
            call(&env, set, ALICE, "alice@example.org", &blank),
            Ok(None)
        );
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert!(rec.extra.is_empty());
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()),
            Ok(Some(empty()))
        );
    }

    #[test]
    fn an_unknown_account_is_service_unavailable() {
        let env = env();
        assert_eq!(
            condition(call(&env, get, ALICE, "nobody@example.org", &empty())),
            "service-unavailable"
        );
        // Its own (vanished) account: a set cannot create it.
        assert_eq!(
            condition(call(
                &env,
                set,
                "ghost@example.org/x",
                "ghost@example.org",
                &card("Ghost")
            )),
            "service-unavailable"
        );
        assert!(!env.spool.user_exists(HOST, "ghost").unwrap());
    }

    #[test]
    fn only_the_owner_may_set() {
        let env = env();
        call(&env, set, ALICE, "alice@example.org", &card("Alice")).unwrap();
        let e = call(
            &env,
            set,
            "bob@example.org/pc",
            "alice@example.org",
            &card("Bob"),
        )
        .unwrap_err();
        assert_eq!((e.condition, e.kind), ("forbidden", ErrorType::Auth));
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()),
            Ok(Some(card("Alice")))
        );
    }

    #[test]
    fn an_oversized_vcard_is_refused_and_the_old_one_kept() {
        let env = env();
        call(&env, set, ALICE, "alice@example.org", &card("Alice")).unwrap();
        let photo = Element::new("PHOTO", NS)
            .with_child(Element::new("TYPE", NS).with_text("image/png"))
            .with_child(Element::new("BINVAL", NS).with_text("A".repeat(MAX_VCARD_BYTES)));
        let big = card("Alice").with_child(photo);
        let e = call(&env, set, ALICE, "alice@example.org", &big).unwrap_err();
        assert_eq!((e.condition, e.kind), ("not-acceptable", ErrorType::Modify));
        assert!(e.text.unwrap().contains("vCard too large"));
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()),
            Ok(Some(card("Alice")))
        );
        // Just under the bound is fine.
        let mut fits = card("Alice");
        let room = MAX_VCARD_BYTES - fits.to_bytes(None).len() - "<DESC></DESC>".len();
        fits.append_child(Element::new("DESC", NS).with_text("x".repeat(room)));
        assert_eq!(fits.to_bytes(None).len(), MAX_VCARD_BYTES);
        assert_eq!(call(&env, set, ALICE, "alice@example.org", &fits), Ok(None));
    }

    #[test]
    fn other_data_in_the_record_is_left_alone() {
        let env = env();
        let roster = Element::new("query", "jabber:iq:roster");
        env.spool
            .update_user(HOST, "alice", &mut |r| r.extra.push(roster.clone()))
            .unwrap();
        call(&env, set, ALICE, "alice@example.org", &card("Alice")).unwrap();
        call(&env, set, ALICE, "alice@example.org", &card("Alicia")).unwrap();
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert_eq!(rec.extra.len(), 2);
        assert_eq!(rec.extra[0], roster);
        assert!(accounts::verify(&env.spool, HOST, "alice", "pw").unwrap());
    }

    #[test]
    fn registers_handlers_and_the_feature() {
        let mut r = Registry::default();
        register(&mut r);
        assert!(r.lookup_data(&empty(), IqType::Get).is_some());
        assert!(r.lookup_data(&empty(), IqType::Set).is_some());
        assert!(r.features(Scope::Server).contains(&NS));
    }
}
