//! XEP-0054 vcard-temp: an account's vCard, stored by the server, written
//! by its owner and readable by anyone (XEP-0054 §3.3, and §5: vCards
//! are world-readable).
//!
//! # Stored form
//!
//! One account-data document, holding the `<vCard/>` exactly as the owner
//! last set it:
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

use switchboard_spool::store::StoreError;
use switchboard_xml::{ns, Element, Node};

use super::{DataRequest, IqKey, IqType, Registry, Scope};
use crate::stanza::{ErrorType, StanzaError};

/// The vcard-temp namespace (also its disco feature).
pub const NS: &str = "vcard-temp";

/// The largest vCard stored, serialized. XEP-0153 asks for avatars of a
/// few kilobytes; this leaves room for a generous photo.
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

/// The document's local name, in the spool namespace.
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
    r.handle_data(GET, |req| Box::pin(get(req)));
    r.handle_data(SET, |req| Box::pin(set(req)));
    // (Each closure boxes the handler's future, so that every handler has
    // the same type; see `DataHandler`.)
    r.feature(Scope::Server, NS);
    r.feature(Scope::Account, NS);
}

async fn get(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let account = req.account_ref()?;
    let doc = req
        .data
        .get(&account, CONTAINER)
        .await
        .map_err(|e| storage_failure(&req, &e))?;
    match doc.as_ref().and_then(stored) {
        Some(v) => Ok(Some(v.clone())),
        None if req.is_owner => Ok(Some(Element::new("vCard", NS))),
        // No vCard and no account answer alike (see the module docs).
        None => Err(StanzaError::service_unavailable()),
    }
}

async fn set(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner {
        return Err(
            StanzaError::forbidden().with_text("only the account itself may change its vCard")
        );
    }
    let account = req.account_ref()?;
    if req.payload.to_bytes(None).len() > MAX_VCARD_BYTES {
        return Err(
            StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                "vCard too large (at most {} KiB)",
                MAX_VCARD_BYTES / 1024
            )),
        );
    }
    let r = if is_empty(req.payload) {
        req.data.remove(&account, CONTAINER).await
    } else {
        let doc = Element::new(CONTAINER, ns::SPOOL).with_child(req.payload.clone());
        req.data.put(&account, doc).await
    };
    r.map_err(|e| storage_failure(&req, &e))?;
    Ok(None)
}

/// The `<vCard/>` in a stored document, if any.
pub fn stored(doc: &Element) -> Option<&Element> {
    doc.get_child("vCard", NS)
}

/// A `<vCard/>` with nothing in it but layout: storing it means "no vCard".
fn is_empty(vcard: &Element) -> bool {
    vcard.attrs.is_empty()
        && vcard.children.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            Node::Element(_) => false,
        })
}

/// A vanished account is `service-unavailable`, like one that never
/// existed; anything else as any storage failure.
fn storage_failure(req: &DataRequest<'_>, e: &StoreError) -> StanzaError {
    match e {
        StoreError::NotFound => StanzaError::service_unavailable(),
        _ => crate::accounts::store_error(e, &format!("the vCard of {}", req.account)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{env, Env};
    use super::*;
    use crate::accounts;
    use switchboard_spool::store::AccountRef;

    use super::super::test_support::HOST;

    /// Runs `handler` for `payload` sent by `from` to `account`.
    async fn call(
        env: &Env,
        handler: super::super::DataHandler,
        from: &str,
        account: &str,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        super::super::test_support::call_as(env, handler, from, account, payload, false, false)
            .await
    }

    fn handler(env: &Env, key: IqKey) -> super::super::DataHandler {
        let _ = env;
        let mut r = Registry::default();
        register(&mut r);
        let payload = Element::new(key.name, key.ns);
        r.lookup_data(&payload, key.kind).unwrap()
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

    #[tokio::test]
    async fn set_then_get_round_trips_through_the_store() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        let v = card("Alice");
        assert_eq!(
            call(&env, set, ALICE, "alice@example.org", &v).await,
            Ok(None)
        );
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()).await,
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
            )
            .await,
            Ok(Some(v.clone()))
        );
        // Stored in its document.
        let doc = env.doc("alice", CONTAINER).await.unwrap();
        assert!(doc.is(CONTAINER, ns::SPOOL));
        assert_eq!(stored(&doc), Some(&v));
    }

    #[tokio::test]
    async fn a_set_replaces_the_whole_vcard() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        call(&env, set, ALICE, "alice@example.org", &card("Alice"))
            .await
            .unwrap();
        let newer =
            Element::new("vCard", NS).with_child(Element::new("NICKNAME", NS).with_text("al"));
        call(&env, set, ALICE, "alice@example.org", &newer)
            .await
            .unwrap();
        assert_eq!(
            call(
                &env,
                get,
                "bob@example.org/pc",
                "alice@example.org",
                &empty()
            )
            .await,
            Ok(Some(newer))
        );
    }

    #[tokio::test]
    async fn no_vcard_is_empty_for_the_owner_and_unavailable_for_others() {
        let env = env().await;
        let get = handler(&env, GET);
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()).await,
            Ok(Some(empty()))
        );
        assert_eq!(
            condition(
                call(
                    &env,
                    get,
                    "bob@example.org/pc",
                    "alice@example.org",
                    &empty()
                )
                .await
            ),
            "service-unavailable"
        );
    }

    #[tokio::test]
    async fn setting_an_empty_vcard_removes_it() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        call(&env, set, ALICE, "alice@example.org", &card("Alice"))
            .await
            .unwrap();
        let blank = Element::new("vCard", NS).with_text("\n  ");
        assert_eq!(
            call(&env, set, ALICE, "alice@example.org", &blank).await,
            Ok(None)
        );
        assert_eq!(env.doc("alice", CONTAINER).await, None);
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()).await,
            Ok(Some(empty()))
        );
    }

    #[tokio::test]
    async fn an_unknown_account_is_service_unavailable() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        assert_eq!(
            condition(call(&env, get, ALICE, "nobody@example.org", &empty()).await),
            "service-unavailable"
        );
        // Its own (vanished) account: a set cannot create it.
        assert_eq!(
            condition(
                call(
                    &env,
                    set,
                    "ghost@example.org/x",
                    "ghost@example.org",
                    &card("Ghost")
                )
                .await
            ),
            "service-unavailable"
        );
        let ghost = AccountRef::new(HOST, "ghost");
        assert!(!env.stores.accounts.exists(&ghost).await.unwrap());
    }

    #[tokio::test]
    async fn only_the_owner_may_set() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        call(&env, set, ALICE, "alice@example.org", &card("Alice"))
            .await
            .unwrap();
        let e = call(
            &env,
            set,
            "bob@example.org/pc",
            "alice@example.org",
            &card("Bob"),
        )
        .await
        .unwrap_err();
        assert_eq!((e.condition, e.kind), ("forbidden", ErrorType::Auth));
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()).await,
            Ok(Some(card("Alice")))
        );
    }

    #[tokio::test]
    async fn an_oversized_vcard_is_refused_and_the_old_one_kept() {
        let env = env().await;
        let (get, set) = (handler(&env, GET), handler(&env, SET));
        call(&env, set, ALICE, "alice@example.org", &card("Alice"))
            .await
            .unwrap();
        let photo = Element::new("PHOTO", NS)
            .with_child(Element::new("TYPE", NS).with_text("image/png"))
            .with_child(Element::new("BINVAL", NS).with_text("A".repeat(MAX_VCARD_BYTES)));
        let big = card("Alice").with_child(photo);
        let e = call(&env, set, ALICE, "alice@example.org", &big)
            .await
            .unwrap_err();
        assert_eq!((e.condition, e.kind), ("not-acceptable", ErrorType::Modify));
        assert!(e.text.unwrap().contains("vCard too large"));
        assert_eq!(
            call(&env, get, ALICE, "alice@example.org", &empty()).await,
            Ok(Some(card("Alice")))
        );
        // Just under the bound is fine.
        let mut fits = card("Alice");
        let room = MAX_VCARD_BYTES - fits.to_bytes(None).len() - "<DESC></DESC>".len();
        fits.append_child(Element::new("DESC", NS).with_text("x".repeat(room)));
        assert_eq!(fits.to_bytes(None).len(), MAX_VCARD_BYTES);
        assert_eq!(
            call(&env, set, ALICE, "alice@example.org", &fits).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn other_data_of_the_account_is_left_alone() {
        let env = env().await;
        let set = handler(&env, SET);
        let alice = AccountRef::new(HOST, "alice");
        let other = Element::new("private", ns::SPOOL).with_child(Element::new("x", "urn:x"));
        env.stores
            .account_data
            .put(&alice, other.clone())
            .await
            .unwrap();
        call(&env, set, ALICE, "alice@example.org", &card("Alice"))
            .await
            .unwrap();
        call(&env, set, ALICE, "alice@example.org", &card("Alicia"))
            .await
            .unwrap();
        assert_eq!(env.doc("alice", "private").await, Some(other));
        assert!(
            accounts::verify(env.stores.accounts.as_ref(), HOST, "alice", "pw".into())
                .await
                .unwrap()
        );
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
