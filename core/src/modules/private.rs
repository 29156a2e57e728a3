//! XEP-0049 Private XML Storage: fragments of XML a user's clients keep on
//! the server (bookmarks, client preferences), readable and writable only
//! by that user.
//!
//! # Stored form
//!
//! One account-data document holding the stored fragments, at most one per (element name, namespace), each exactly as
//! last set:
//!
//! ```xml
//! <private xmlns="urn:switchboard:spool:1">
//!   <storage xmlns="storage:bookmarks">…</storage><exodus xmlns="exodus:prefs">…</exodus>
//! </private>
//! ```
//!
//! Fragments are keyed by name *and* namespace (as Prosody does), so two
//! clients using the same namespace with different root elements do not
//! overwrite each other. Setting an empty fragment (no attributes, no
//! content) deletes it: a get answers the same empty element either way.
//! There is no document when nothing is stored.
//!
//! # Answers (XEP-0049 §2.3 and §3)
//!
//! * anyone but the owner, get or set: `forbidden` (§2.3 prefers it to
//!   `service-unavailable`; §3 "sent to a JID other than that of the
//!   sender").
//! * a query without a child element, get or set: `not-acceptable`
//!   (§2.3: "the server MUST respond with a 'Not Acceptable' error"; the
//!   "Bad Format" of §3 is a stream error, not a stanza condition).
//! * a get naming more than one fragment: `bad-request` (§2.3: a client
//!   MUST NOT ask for more than one namespace in a single get).
//! * a fragment in a reserved namespace (`jabber:…`, `http://jabber.org/…`,
//!   `vcard-temp`) or in no namespace, get or set: `not-acceptable`
//!   (§2.3, §3; optional in the XEP, done here so clients cannot shadow
//!   server data).
//! * a set that would grow the stored fragments past
//!   [`MAX_PRIVATE_BYTES`] serialized: `not-acceptable` with text (RFC 6120
//!   §8.3.3.9); a set that shrinks storage is always accepted.
//! * get of a fragment never stored: a result echoing the requested empty
//!   element (§2.3 example).
//!
//! A set stores each child in order, replacing what was stored under the
//! same (name, namespace); a set holding two children with the same key
//! keeps the last.

use switchboard_spool::store::{AccountDataStore, AccountRef, BoxFuture, StoreError};
use switchboard_xml::{ns, Element, Node};

use super::{DataRequest, IqKey, IqType, Registry, Scope};
use crate::stanza::{ErrorType, StanzaError};

/// The jabber:iq:private namespace (also its disco feature).
pub const NS: &str = "jabber:iq:private";

/// The most private XML stored per account, counted as the serialized
/// container.
pub const MAX_PRIVATE_BYTES: usize = 256 * 1024;

/// The document's local name, in the spool namespace.
pub const CONTAINER: &str = "private";

const GET: IqKey = IqKey {
    name: "query",
    ns: NS,
    kind: IqType::Get,
};
const SET: IqKey = IqKey {
    name: "query",
    ns: NS,
    kind: IqType::Set,
};

pub fn register(r: &mut Registry) {
    r.handle_data(GET, get);
    r.handle_data(SET, set);
    r.feature(Scope::Server, NS);
}

fn not_acceptable(text: impl Into<String>) -> StanzaError {
    StanzaError::new("not-acceptable", ErrorType::Modify).with_text(text)
}

/// Refuses fragments in no namespace or in a reserved one (XEP-0049 §2.3).
fn check_namespace(fragment: &Element) -> Result<(), StanzaError> {
    let ns = fragment.ns.as_str();
    if ns.is_empty() {
        return Err(not_acceptable(format!(
            "<{}/> needs a namespace of its own to be stored",
            fragment.name
        )));
    }
    if ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == super::vcard::NS {
        return Err(not_acceptable(format!(
            "the namespace '{ns}' is reserved and cannot hold private data"
        )));
    }
    Ok(())
}

type Answer<'a> = BoxFuture<'a, Result<Option<Element>, StanzaError>>;

fn get(req: DataRequest<'_>) -> Answer<'_> {
    Box::pin(fetch(req))
}

fn set(req: DataRequest<'_>) -> Answer<'_> {
    Box::pin(store(req))
}

async fn fetch(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner {
        return Err(forbidden());
    }
    let mut wanted = req.payload.elements();
    let (Some(w), None) = (wanted.next(), wanted.next()) else {
        return Err(if req.payload.first_element().is_none() {
            not_acceptable(
                "name the element to retrieve, e.g. <storage xmlns='storage:bookmarks'/>",
            )
        } else {
            StanzaError::bad_request().with_text("retrieve one element per request")
        });
    };
    check_namespace(w)?;
    let old = stored(&req).await?;
    let found = old
        .as_ref()
        .and_then(|c| c.elements().find(|e| e.is(&w.name, &w.ns)))
        .cloned()
        .unwrap_or_else(|| Element::new(w.name.clone(), w.ns.clone()));
    Ok(Some(Element::new("query", NS).with_child(found)))
}

async fn store(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner {
        return Err(forbidden());
    }
    let fragments: Vec<&Element> = req.payload.elements().collect();
    if fragments.is_empty() {
        return Err(not_acceptable(
            "nothing to store: the query holds no element",
        ));
    }
    for f in &fragments {
        check_namespace(f)?;
    }
    let account = req.account_ref()?;
    // The account's actor runs one request at a time and only this module
    // writes the document, so the one read here is what the write replaces.
    let old = stored(&req).await?;
    let old_size = old.as_ref().map_or(0, |c| c.to_bytes(None).len());
    let new = merged(old.as_ref(), &fragments);
    let new_size = new.as_ref().map_or(0, |c| c.to_bytes(None).len());
    if new_size > MAX_PRIVATE_BYTES && new_size > old_size {
        return Err(not_acceptable(format!(
            "private storage is full (at most {} KiB per account)",
            MAX_PRIVATE_BYTES / 1024
        )));
    }
    let r = match new {
        Some(doc) => req.data.put(&account, doc).await,
        None => req.data.remove(&account, CONTAINER).await,
    };
    r.map_err(|e| storage_failure(&req, &e))?;
    Ok(None)
}

/// The stored fragment with this name and namespace, for a feature that
/// keeps another view of the same data (XEP-0411 bookmarks).
pub async fn fragment(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    name: &str,
    ns: &str,
) -> Result<Option<Element>, StoreError> {
    Ok(data
        .get(account, CONTAINER)
        .await?
        .and_then(|c| c.elements().find(|e| e.is(name, ns)).cloned()))
}

/// Stores one fragment as a set from the owner would (an empty one
/// deletes it), for a feature that keeps another view of the same data.
/// The size bound is the caller's to keep.
pub async fn put_fragment(
    data: &dyn AccountDataStore,
    account: &AccountRef,
    fragment: &Element,
) -> Result<(), StoreError> {
    let old = data.get(account, CONTAINER).await?;
    match merged(old.as_ref(), &[fragment]) {
        Some(doc) => data.put(account, doc).await,
        None => data.remove(account, CONTAINER).await,
    }
}

/// The stored document; `service-unavailable` when there is neither a
/// document nor an account.
async fn stored(req: &DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let account = req.account_ref()?;
    let doc = req
        .data
        .get(&account, CONTAINER)
        .await
        .map_err(|e| storage_failure(req, &e))?;
    if doc.is_none()
        && !req
            .accounts
            .exists(&account)
            .await
            .map_err(|e| storage_failure(req, &e))?
    {
        return Err(StanzaError::service_unavailable());
    }
    Ok(doc)
}

/// The container after storing `fragments`, or `None` when nothing is left
/// to store.
fn merged(old: Option<&Element>, fragments: &[&Element]) -> Option<Element> {
    let mut c = old
        .cloned()
        .unwrap_or_else(|| Element::new(CONTAINER, ns::SPOOL));
    for f in fragments {
        let at = c
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(&f.name, &f.ns)));
        let keep = !(f.attrs.is_empty() && f.children.is_empty());
        match (at, keep) {
            (Some(i), true) => c.children[i] = Node::Element((*f).clone()),
            (Some(i), false) => {
                c.children.remove(i);
            }
            (None, true) => c.children.push(Node::Element((*f).clone())),
            (None, false) => {}
        }
    }
    c.first_element().is_some().then_some(c)
}

fn forbidden() -> StanzaError {
    StanzaError::forbidden().with_text("private storage belongs to its account alone")
}

/// A vanished account is `service-unavailable`, like one that never
/// existed; anything else as any storage failure.
fn storage_failure(req: &DataRequest<'_>, e: &StoreError) -> StanzaError {
    match e {
        StoreError::NotFound => StanzaError::service_unavailable(),
        _ => crate::accounts::store_error(e, &format!("the private XML of {}", req.account)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{env, Env};
    use super::*;
    use switchboard_spool::store::AccountRef;

    use super::super::test_support::HOST;
    const ALICE: &str = "alice@example.org/phone";
    const ALICE_BARE: &str = "alice@example.org";

    async fn call(
        env: &Env,
        handler: super::super::DataHandler,
        from: &str,
        account: &str,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        super::super::test_support::call_as(env, handler, from, account, payload, true, true).await
    }

    fn query(children: impl IntoIterator<Item = Element>) -> Element {
        let mut q = Element::new("query", NS);
        for c in children {
            q.append_child(c);
        }
        q
    }

    fn bookmarks(room: &str) -> Element {
        Element::new("storage", "storage:bookmarks").with_child(
            Element::new("conference", "storage:bookmarks")
                .with_attr("jid", room)
                .with_attr("autojoin", "true"),
        )
    }

    fn prefs(nick: &str) -> Element {
        Element::new("exodus", "exodus:prefs")
            .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
    }

    fn ask(el: &Element) -> Element {
        query([Element::new(el.name.clone(), el.ns.clone())])
    }

    fn err(r: Result<Option<Element>, StanzaError>) -> (&'static str, ErrorType) {
        let e = r.unwrap_err();
        (e.condition, e.kind)
    }

    #[tokio::test]
    async fn set_then_get_round_trips_each_fragment() {
        let env = env().await;
        let (b, p) = (bookmarks("room@muc.example.org"), prefs("Hamlet"));
        assert_eq!(
            call(&env, set, ALICE, ALICE_BARE, &query([b.clone(), p.clone()])).await,
            Ok(None)
        );
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&b)).await,
            Ok(Some(query([b])))
        );
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(query([p])))
        );
        let doc = env.doc("alice", CONTAINER).await.unwrap();
        assert!(doc.is(CONTAINER, ns::SPOOL));
        assert_eq!(doc.elements().count(), 2);
    }

    #[tokio::test]
    async fn a_set_replaces_only_the_same_name_and_namespace() {
        let env = env().await;
        let p = prefs("Hamlet");
        call(
            &env,
            set,
            ALICE,
            ALICE_BARE,
            &query([bookmarks("a@muc.example.org"), p.clone()]),
        )
        .await
        .unwrap();
        let b2 = bookmarks("b@muc.example.org");
        call(&env, set, ALICE, ALICE_BARE, &query([b2.clone()]))
            .await
            .unwrap();
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&b2)).await,
            Ok(Some(query([b2])))
        );
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(query([p.clone()])))
        );
        // Same namespace, other element name: stored separately.
        let other = Element::new("other", "exodus:prefs").with_text("x");
        call(&env, set, ALICE, ALICE_BARE, &query([other.clone()]))
            .await
            .unwrap();
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(query([p])))
        );
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&other)).await,
            Ok(Some(query([other])))
        );
    }

    #[tokio::test]
    async fn the_last_of_two_fragments_with_one_key_wins() {
        let env = env().await;
        let (first, last) = (prefs("one"), prefs("two"));
        call(&env, set, ALICE, ALICE_BARE, &query([first, last.clone()]))
            .await
            .unwrap();
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&last)).await,
            Ok(Some(query([last])))
        );
    }

    #[tokio::test]
    async fn an_unknown_fragment_is_echoed_empty() {
        let env = env().await;
        let asked = query([Element::new("storage", "storage:rosternotes")]);
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &asked).await,
            Ok(Some(asked.clone()))
        );
    }

    #[tokio::test]
    async fn an_empty_fragment_deletes_and_the_last_deletion_drops_the_container() {
        let env = env().await;
        let p = prefs("Hamlet");
        call(&env, set, ALICE, ALICE_BARE, &query([p.clone()]))
            .await
            .unwrap();
        call(&env, set, ALICE, ALICE_BARE, &ask(&p)).await.unwrap();
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(ask(&p)))
        );
        assert_eq!(env.doc("alice", CONTAINER).await, None);
    }

    #[tokio::test]
    async fn other_users_are_forbidden() {
        let env = env().await;
        let p = prefs("Hamlet");
        call(&env, set, ALICE, ALICE_BARE, &query([p.clone()]))
            .await
            .unwrap();
        let bob = "bob@example.org/pc";
        assert_eq!(
            err(call(&env, get, bob, ALICE_BARE, &ask(&p)).await),
            ("forbidden", ErrorType::Auth)
        );
        assert_eq!(
            err(call(&env, set, bob, ALICE_BARE, &query([prefs("Macbeth")])).await),
            ("forbidden", ErrorType::Auth)
        );
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(query([p])))
        );
    }

    #[tokio::test]
    async fn an_empty_query_is_not_acceptable() {
        let env = env().await;
        for handler in [get as super::super::DataHandler, set] {
            assert_eq!(
                err(call(&env, handler, ALICE, ALICE_BARE, &query([])).await),
                ("not-acceptable", ErrorType::Modify)
            );
        }
    }

    #[tokio::test]
    async fn a_get_for_two_fragments_is_a_bad_request() {
        let env = env().await;
        let q = query([
            Element::new("storage", "storage:bookmarks"),
            Element::new("exodus", "exodus:prefs"),
        ]);
        assert_eq!(
            err(call(&env, get, ALICE, ALICE_BARE, &q).await),
            ("bad-request", ErrorType::Modify)
        );
    }

    #[tokio::test]
    async fn reserved_namespaces_are_not_acceptable() {
        let env = env().await;
        let reserved = [
            Element::new("vCard", "vcard-temp")
                .with_child(Element::new("FN", "vcard-temp").with_text("H")),
            Element::new("query", "jabber:iq:roster").with_text("x"),
            Element::new("query", NS).with_text("x"),
            Element::new("x", "http://jabber.org/protocol/muc").with_text("x"),
            Element::new("bare", "").with_text("x"),
        ];
        for r in &reserved {
            assert_eq!(
                err(call(&env, set, ALICE, ALICE_BARE, &query([r.clone()])).await),
                ("not-acceptable", ErrorType::Modify),
                "set {}",
                r.ns
            );
            assert_eq!(
                err(call(&env, get, ALICE, ALICE_BARE, &ask(r)).await),
                ("not-acceptable", ErrorType::Modify),
                "get {}",
                r.ns
            );
        }
        // A good fragment next to a reserved one is not stored either.
        let p = prefs("Hamlet");
        assert!(call(
            &env,
            set,
            ALICE,
            ALICE_BARE,
            &query([p.clone(), reserved[0].clone()])
        )
        .await
        .is_err());
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&p)).await,
            Ok(Some(ask(&p)))
        );
    }

    #[tokio::test]
    async fn storage_is_bounded_but_may_always_shrink() {
        let env = env().await;
        let chunk =
            |name: &str, n: usize| Element::new(name, "urn:example:big").with_text("x".repeat(n));
        let a = chunk("a", MAX_PRIVATE_BYTES / 2);
        call(&env, set, ALICE, ALICE_BARE, &query([a.clone()]))
            .await
            .unwrap();
        let e = call(
            &env,
            set,
            ALICE,
            ALICE_BARE,
            &query([chunk("b", MAX_PRIVATE_BYTES / 2)]),
        )
        .await
        .unwrap_err();
        assert_eq!((e.condition, e.kind), ("not-acceptable", ErrorType::Modify));
        assert!(e.text.unwrap().contains("full"));
        assert_eq!(
            call(&env, get, ALICE, ALICE_BARE, &ask(&a)).await,
            Ok(Some(query([a])))
        );
        // Replacing with something smaller works; so does a small addition
        // that still fits.
        call(&env, set, ALICE, ALICE_BARE, &query([chunk("a", 10)]))
            .await
            .unwrap();
        call(
            &env,
            set,
            ALICE,
            ALICE_BARE,
            &query([chunk("b", MAX_PRIVATE_BYTES / 2)]),
        )
        .await
        .unwrap();

        // Over the bound already (say, the bound was lowered): shrinking is
        // still accepted.
        let huge = Element::new(CONTAINER, ns::SPOOL).with_child(chunk("c", MAX_PRIVATE_BYTES * 2));
        env.stores
            .account_data
            .put(&AccountRef::new(HOST, "bob"), huge)
            .await
            .unwrap();
        let bob = "bob@example.org/pc";
        assert!(
            call(&env, set, bob, "bob@example.org", &query([chunk("d", 10)]))
                .await
                .is_err()
        );
        call(&env, set, bob, "bob@example.org", &query([chunk("c", 10)]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_account_is_service_unavailable() {
        let env = env().await;
        let ghost = "ghost@example.org/x";
        let p = prefs("Hamlet");
        assert_eq!(
            err(call(&env, get, ghost, "ghost@example.org", &ask(&p)).await).0,
            "service-unavailable"
        );
        assert_eq!(
            err(call(&env, set, ghost, "ghost@example.org", &query([p])).await).0,
            "service-unavailable"
        );
    }

    #[tokio::test]
    async fn registers_handlers_and_the_feature() {
        let mut r = Registry::default();
        register(&mut r);
        assert!(r.lookup_data(&query([]), IqType::Get).is_some());
        assert!(r.lookup_data(&query([]), IqType::Set).is_some());
        assert!(r.features(Scope::Server).contains(&NS));
    }
}
