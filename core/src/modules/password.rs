//! XEP-0077 In-Band Registration after login: a user changes the
//! account's password (§3.3), and asks whether it is registered (§3.1).
//! Registration before login is `stream::register`; account removal
//! (`<remove/>`) is not handled here.
//!
//! The handlers assume the account they are given is the sender's own:
//! the router hands them IQs without `to`, to the sender's bare JID, and
//! to the server's domain (with the sender's bare JID as the account).
//!
//! # Stored form
//!
//! None of its own: the new password replaces the account's SCRAM
//! credentials through [`crate::accounts::set_password`]. The password is
//! never logged, nor put in an error text.
//!
//! # Answers
//!
//! * set by anyone but the owner: `forbidden` (as §3.2 for removal: "the
//!   sender does not have sufficient permissions").
//! * set with `<remove/>`: `feature-not-implemented` for now.
//! * set without `<username/>`, or with an empty `<password/>`:
//!   `bad-request` (§3.3 table: "does not contain complete information";
//!   an empty password "MUST NOT" change the password).
//! * set whose `<username/>` is not the account's (its localpart, or its
//!   bare JID as some clients send): `bad-request` (§3.3 lists no other
//!   condition for a malformed change request).
//! * a password OpaqueString refuses: `not-acceptable`, as at
//!   registration.
//! * get by the owner: `<registered/>` and the user name, without the
//!   password, which is never stored (§3.1: "MUST contain an empty
//!   `<registered/>` element … the `<password/>` element MAY be empty").
//!
//! §3.3 says error replies "SHOULD NOT" carry the original XML; building
//! the reply is the router's, which must leave this payload (it holds the
//! new password) out of the error.

use switchboard_jid::{normalize_localpart, Jid};
use switchboard_xml::{ns, Element};

use switchboard_spool::store::BoxFuture;

use super::{DataRequest, IqKey, IqType, Registry, Scope};
use crate::stanza::StanzaError;

const SET: IqKey = IqKey {
    name: "query",
    ns: ns::REGISTER,
    kind: IqType::Set,
};
const GET: IqKey = IqKey {
    name: "query",
    ns: ns::REGISTER,
    kind: IqType::Get,
};

pub fn register(r: &mut Registry) {
    r.handle_data(SET, change_password);
    r.handle_data(GET, registered);
    // Clients offer "change password" when the server advertises it.
    r.feature(Scope::Server, ns::REGISTER);
}

/// Whether `given` names the account: its localpart, or its bare JID.
fn names_account(given: &str, account: &Jid) -> bool {
    let given = given.trim();
    if given.contains('@') {
        return Jid::parse(given).is_ok_and(|j| j.is_bare() && j == *account);
    }
    normalize_localpart(given).is_ok_and(|u| Some(u.as_str()) == account.node())
}

type Answer<'a> = BoxFuture<'a, Result<Option<Element>, StanzaError>>;

fn change_password(req: DataRequest<'_>) -> Answer<'_> {
    Box::pin(change(req))
}

fn registered(req: DataRequest<'_>) -> Answer<'_> {
    Box::pin(async move { is_registered(&req) })
}

async fn change(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner {
        return Err(
            StanzaError::forbidden().with_text("only the account itself may change its password")
        );
    }
    if req.payload.get_child("remove", ns::REGISTER).is_some() {
        return Err(StanzaError::feature_not_implemented()
            .with_text("account removal is not available in band yet"));
    }
    let Some(user) = req.account.node() else {
        return Err(StanzaError::service_unavailable());
    };
    let host = req.account.domain();
    let Some(given) = req.payload.child_text("username", ns::REGISTER) else {
        return Err(StanzaError::bad_request()
            .with_text("a password change needs both <username/> and <password/>"));
    };
    if !names_account(&given, req.account) {
        return Err(
            StanzaError::bad_request().with_text("<username/> must be this account's user name")
        );
    }
    let password = req
        .payload
        .child_text("password", ns::REGISTER)
        .unwrap_or_default();
    if password.is_empty() {
        return Err(StanzaError::bad_request()
            .with_text("the new password is empty; the old one is unchanged"));
    }
    let set =
        crate::accounts::set_password(req.accounts, host, user, password, req.scram_iterations);
    match set.await {
        Ok(()) => {
            tracing::info!(account = %req.account, "password changed in band");
            Ok(None)
        }
        Err(e) => Err(e.to_stanza_error(&format!("changing the password of {}", req.account))),
    }
}

fn is_registered(req: &DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let (true, Some(user)) = (req.is_owner, req.account.node()) else {
        return Err(StanzaError::forbidden());
    };
    Ok(Some(
        Element::new("query", ns::REGISTER)
            .with_child(Element::new("registered", ns::REGISTER))
            .with_child(Element::new("username", ns::REGISTER).with_text(user))
            .with_child(Element::new("password", ns::REGISTER)),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{env_with_password, Env, HOST};
    use super::*;
    use crate::accounts;
    use crate::stanza::ErrorType;
    use switchboard_spool::store::AccountRef;

    /// Both accounts start with the password "old".
    async fn env() -> Env {
        env_with_password("old").await
    }
    const ALICE: &str = "alice@example.org/phone";
    const ALICE_BARE: &str = "alice@example.org";

    async fn call(
        env: &Env,
        handler: super::super::DataHandler,
        from: &str,
        account: &str,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        super::super::test_support::call_as(env, handler, from, account, payload, false, true).await
    }

    fn form(fields: &[(&str, &str)]) -> Element {
        let mut q = Element::new("query", ns::REGISTER);
        for (n, v) in fields {
            q.append_child(Element::new(*n, ns::REGISTER).with_text(*v));
        }
        q
    }

    async fn change(
        env: &Env,
        from: &str,
        account: &str,
        fields: &[(&str, &str)],
    ) -> Result<Option<Element>, StanzaError> {
        call(env, change_password, from, account, &form(fields)).await
    }

    async fn verify(env: &Env, user: &str, pw: &str) -> bool {
        accounts::verify(env.stores.accounts.as_ref(), HOST, user, pw.into())
            .await
            .unwrap()
    }

    fn err(r: Result<Option<Element>, StanzaError>) -> (&'static str, ErrorType) {
        let e = r.unwrap_err();
        (e.condition, e.kind)
    }

    #[tokio::test]
    async fn the_owner_changes_the_password() {
        let env = env().await;
        assert_eq!(
            change(
                &env,
                ALICE,
                ALICE_BARE,
                &[("username", "alice"), ("password", "new secret")]
            )
            .await,
            Ok(None)
        );
        assert!(verify(&env, "alice", "new secret").await);
        assert!(!verify(&env, "alice", "old").await);
        // Stored with the configured iteration count.
        let creds = env
            .stores
            .accounts
            .credentials(&AccountRef::new(HOST, "alice"))
            .await
            .unwrap()
            .unwrap();
        assert!(creds.iter().all(|c| c.iterations == 32));
        // Bob is untouched.
        assert!(verify(&env, "bob", "old").await);
    }

    #[tokio::test]
    async fn the_user_name_may_be_given_unnormalized_or_as_the_bare_jid() {
        let env = env().await;
        change(
            &env,
            ALICE,
            ALICE_BARE,
            &[("username", "Alice"), ("password", "one")],
        )
        .await
        .unwrap();
        assert!(verify(&env, "alice", "one").await);
        change(
            &env,
            ALICE,
            ALICE_BARE,
            &[("username", "alice@example.org"), ("password", "two")],
        )
        .await
        .unwrap();
        assert!(verify(&env, "alice", "two").await);
    }

    #[tokio::test]
    async fn another_user_name_is_a_bad_request() {
        let env = env().await;
        for name in [
            "bob",
            "bob@example.org",
            "alice@elsewhere.net",
            "alice@example.org/phone",
            "@@",
        ] {
            assert_eq!(
                err(change(
                    &env,
                    ALICE,
                    ALICE_BARE,
                    &[("username", name), ("password", "new")]
                )
                .await),
                ("bad-request", ErrorType::Modify),
                "{name}"
            );
        }
        assert!(verify(&env, "alice", "old").await);
        assert!(verify(&env, "bob", "old").await);
    }

    #[tokio::test]
    async fn missing_fields_or_an_empty_password_change_nothing() {
        let env = env().await;
        for fields in [
            &[("password", "new")][..],
            &[("username", "alice")][..],
            &[("username", "alice"), ("password", "")][..],
            &[][..],
        ] {
            assert_eq!(
                err(change(&env, ALICE, ALICE_BARE, fields).await),
                ("bad-request", ErrorType::Modify),
                "{fields:?}"
            );
        }
        assert!(verify(&env, "alice", "old").await);
    }

    #[tokio::test]
    async fn a_password_opaquestring_refuses_is_not_acceptable() {
        let env = env().await;
        assert_eq!(
            err(change(
                &env,
                ALICE,
                ALICE_BARE,
                &[("username", "alice"), ("password", "bad\u{7}")]
            )
            .await),
            ("not-acceptable", ErrorType::Modify)
        );
        assert!(verify(&env, "alice", "old").await);
    }

    #[tokio::test]
    async fn errors_never_carry_the_password() {
        let env = env().await;
        let secret = "hunter2\u{7}";
        let e = change(
            &env,
            ALICE,
            ALICE_BARE,
            &[("username", "alice"), ("password", secret)],
        )
        .await
        .unwrap_err();
        assert!(!e.text.unwrap_or_default().contains("hunter2"));
    }

    #[tokio::test]
    async fn someone_else_is_forbidden() {
        let env = env().await;
        assert_eq!(
            err(change(
                &env,
                "bob@example.org/pc",
                ALICE_BARE,
                &[("username", "alice"), ("password", "pwned")]
            )
            .await),
            ("forbidden", ErrorType::Auth)
        );
        assert!(verify(&env, "alice", "old").await);
        assert_eq!(
            err(call(
                &env,
                registered,
                "bob@example.org/pc",
                ALICE_BARE,
                &form(&[])
            )
            .await),
            ("forbidden", ErrorType::Auth)
        );
    }

    #[tokio::test]
    async fn remove_is_not_implemented_here() {
        let env = env().await;
        let q =
            Element::new("query", ns::REGISTER).with_child(Element::new("remove", ns::REGISTER));
        assert_eq!(
            err(call(&env, change_password, ALICE, ALICE_BARE, &q).await),
            ("feature-not-implemented", ErrorType::Cancel)
        );
        assert!(verify(&env, "alice", "old").await);
    }

    #[tokio::test]
    async fn a_vanished_account_is_service_unavailable() {
        let env = env().await;
        assert_eq!(
            err(change(
                &env,
                "ghost@example.org/x",
                "ghost@example.org",
                &[("username", "ghost"), ("password", "boo")]
            )
            .await)
            .0,
            "service-unavailable"
        );
        assert!(!env
            .stores
            .accounts
            .exists(&AccountRef::new(HOST, "ghost"))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn get_says_registered_without_a_password() {
        let env = env().await;
        let q = call(&env, registered, ALICE, ALICE_BARE, &form(&[]))
            .await
            .unwrap()
            .unwrap();
        assert!(q.get_child("registered", ns::REGISTER).is_some());
        assert_eq!(
            q.child_text("username", ns::REGISTER).as_deref(),
            Some("alice")
        );
        assert_eq!(q.child_text("password", ns::REGISTER).as_deref(), Some(""));
    }

    #[tokio::test]
    async fn registers_handlers_and_the_feature() {
        let mut r = Registry::default();
        register(&mut r);
        assert!(r.lookup_data(&form(&[]), IqType::Set).is_some());
        assert!(r.lookup_data(&form(&[]), IqType::Get).is_some());
        assert!(r.features(Scope::Server).contains(&ns::REGISTER));
    }
}
