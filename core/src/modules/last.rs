//! XEP-0012 Last Activity: how long ago an account's last session ended
//! (and the status it left with), and the server's uptime.
//!
//! # Stored form
//!
//! One account-data document, replaced each time the account's last
//! available session ends (see [`logout_doc`]):
//!
//! ```xml
//! <last xmlns="urn:switchboard:spool:1" seconds-since-epoch="1700000000" status="Heading Home"/>
//! ```
//!
//! `seconds-since-epoch` is the logout time in Unix seconds (UTC);
//! `status` is the `<status/>` text of the final unavailable presence, at
//! most [`MAX_STATUS_CHARS`] characters, left out when there was none.
//!
//! # Answers
//!
//! * query to an account's bare JID (XEP-0012 §3), in this order:
//!   1. the sender is not the owner and may not see the account's
//!      presence: `forbidden` (§3 "Offline User Query": the server "MUST
//!      NOT return last activity information" then, but `<forbidden/>`).
//!      Checked first, so a stranger gets the same answer whether or not
//!      the account exists.
//!   2. the account has an available resource: `seconds='0'`, no text
//!      (§3: "SHOULD contain an empty `<query/>` element whose 'seconds'
//!      attribute is set to a value of '0'").
//!   3. the account does not exist: `service-unavailable` (RFC 6121
//!      §8.5.1).
//!   4. a logout is recorded: the seconds since then (0 if the clock went
//!      back) and the stored status as character data.
//!   5. no logout recorded yet (no session of the account has ended
//!      since logouts are recorded): `service-unavailable`, as ejabberd
//!      answers, and as §4 answers when the information is not divulged.
//! * query to the server's own JID: `seconds` is the time since the
//!   module registry was built, i.e. since the server started (§5).

use std::sync::OnceLock;
use std::time::Instant;

use switchboard_spool::record::is_xml_char;
use switchboard_xml::{ns, Element};

use super::{DataRequest, IqKey, IqRequest, IqType, Registry, Scope};
use crate::stanza::StanzaError;

/// The jabber:iq:last namespace (also its disco feature).
pub const NS: &str = "jabber:iq:last";

/// The stored document's local name, in the spool namespace.
pub const CONTAINER: &str = "last";

/// The longest status text kept (in characters); longer ones are cut.
pub const MAX_STATUS_CHARS: usize = 1024;

const KEY: IqKey = IqKey {
    name: "query",
    ns: NS,
    kind: IqType::Get,
};

/// When the server started (when the built-in registry was first built).
static STARTED: OnceLock<Instant> = OnceLock::new();

pub fn register(r: &mut Registry) {
    STARTED.get_or_init(Instant::now);
    r.handle_data(KEY, |req| Box::pin(account_last(req)));
    r.handle(KEY, Scope::Server, uptime);
    r.feature(Scope::Server, NS);
    r.feature(Scope::Account, NS);
}

/// The document recording that the account's last available session ended
/// at `now_unix_secs`, with the status text of its final presence; it
/// replaces any earlier one.
pub fn logout_doc(now_unix_secs: u64, status: Option<&str>) -> Element {
    let mut el = Element::new(CONTAINER, ns::SPOOL)
        .with_attr("seconds-since-epoch", now_unix_secs.to_string());
    // Characters XML cannot carry would make the store refuse the write;
    // the parser never lets them in, but this is cheap insurance.
    let status: String = status
        .unwrap_or("")
        .chars()
        .filter(|c| is_xml_char(*c))
        .take(MAX_STATUS_CHARS)
        .collect();
    if !status.is_empty() {
        el.set_attr("status", status);
    }
    el
}

/// The recorded logout in a stored document: (Unix seconds, status).
/// `Err` for a malformed one.
pub fn stored(doc: &Element) -> Result<(u64, Option<&str>), String> {
    let secs = doc
        .attr("seconds-since-epoch")
        .ok_or("<last/> without seconds-since-epoch=")?;
    let secs = secs
        .parse::<u64>()
        .map_err(|_| format!("<last/> with a malformed seconds-since-epoch='{secs}'"))?;
    Ok((secs, doc.attr("status")))
}

use crate::time::unix_now;

fn answer(seconds: u64, text: Option<&str>) -> Element {
    let mut q = Element::new("query", NS).with_attr("seconds", seconds.to_string());
    if let Some(t) = text {
        q.append_text(t);
    }
    q
}

fn uptime(_: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let secs = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    Ok(Some(answer(secs, None)))
}

async fn account_last(req: DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    last_at(&req, unix_now()).await
}

/// [`account_last`] with the clock passed in.
async fn last_at(req: &DataRequest<'_>, now: u64) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner && !req.may_see_presence {
        return Err(StanzaError::forbidden()
            .with_text("last activity is shown only to those who may see the presence"));
    }
    if req.online {
        return Ok(Some(answer(0, None)));
    }
    let account = req.account_ref()?;
    let doc = req.data.get(&account, CONTAINER).await.map_err(|e| {
        crate::accounts::store_error(&e, &format!("the last activity of {account}"))
    })?;
    // No account and no logout recorded answer alike (see the module docs).
    let Some(doc) = doc else {
        return Err(StanzaError::service_unavailable());
    };
    match stored(&doc) {
        Ok((at, status)) => Ok(Some(answer(now.saturating_sub(at), status))),
        Err(e) => {
            tracing::error!(account = %req.account, "reading last activity failed: {e}");
            Err(StanzaError::internal_server_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{env, Env, HOST};
    use super::*;
    use crate::stanza::ErrorType;
    use switchboard_jid::Jid;
    use switchboard_spool::store::{AccountRef, StoreError};

    const ALICE: &str = "alice@example.org";
    const NOW: u64 = 1_700_000_000;

    async fn record(
        env: &Env,
        user: &str,
        at: u64,
        status: Option<&str>,
    ) -> Result<(), StoreError> {
        env.stores
            .account_data
            .put(&AccountRef::new(HOST, user), logout_doc(at, status))
            .await
    }

    /// Asks for `account`'s last activity as `from`, at `NOW`.
    async fn ask(
        env: &Env,
        from: &str,
        account: &str,
        may_see_presence: bool,
        online: bool,
    ) -> Result<Option<Element>, StanzaError> {
        let from = Jid::parse(from).unwrap();
        let account = Jid::parse(account).unwrap();
        let payload = Element::new("query", NS);
        let iq = Element::new("iq", ns::CLIENT).with_child(payload.clone());
        let is_owner = from.to_bare() == account;
        last_at(
            &DataRequest {
                iq: &iq,
                payload: &payload,
                from: &from,
                account: &account,
                is_owner,
                may_see_presence: may_see_presence || is_owner,
                online,
                data: env.stores.account_data.as_ref(),
                accounts: env.stores.accounts.as_ref(),
                scram_iterations: 16,
            },
            NOW,
        )
        .await
    }

    fn err(r: Result<Option<Element>, StanzaError>) -> (&'static str, ErrorType) {
        let e = r.unwrap_err();
        (e.condition, e.kind)
    }

    #[tokio::test]
    async fn offline_gives_seconds_since_logout_and_the_status() {
        let env = env().await;
        record(&env, "alice", NOW - 903, Some("Heading Home"))
            .await
            .unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .await
            .unwrap()
            .unwrap();
        assert!(q.is("query", NS));
        assert_eq!(q.attr("seconds"), Some("903"));
        assert_eq!(q.text(), "Heading Home");
        // The owner may always ask.
        let q = ask(&env, "alice@example.org/phone", ALICE, false, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("903"));
    }

    #[tokio::test]
    async fn no_status_means_no_text_and_a_later_logout_replaces_the_record() {
        let env = env().await;
        record(&env, "alice", NOW - 5000, Some("old"))
            .await
            .unwrap();
        record(&env, "alice", NOW - 10, None).await.unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q, answer(10, None));
        assert!(q.children.is_empty());
        let doc = env.doc("alice", CONTAINER).await.unwrap();
        assert_eq!(stored(&doc), Ok((NOW - 10, None)));
    }

    #[tokio::test]
    async fn online_is_zero_seconds_without_text() {
        let env = env().await;
        record(&env, "alice", NOW - 903, Some("Heading Home"))
            .await
            .unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q, answer(0, None));
    }

    #[tokio::test]
    async fn without_presence_authorization_it_is_forbidden() {
        let env = env().await;
        record(&env, "alice", NOW - 903, None).await.unwrap();
        for online in [false, true] {
            assert_eq!(
                err(ask(&env, "bob@example.org/pc", ALICE, false, online).await),
                ("forbidden", ErrorType::Auth)
            );
        }
        // Same answer for an account that does not exist.
        assert_eq!(
            err(ask(
                &env,
                "bob@example.org/pc",
                "nobody@example.org",
                false,
                false
            )
            .await),
            ("forbidden", ErrorType::Auth)
        );
    }

    #[tokio::test]
    async fn nothing_recorded_or_no_account_is_service_unavailable() {
        let env = env().await;
        assert_eq!(
            err(ask(&env, "bob@example.org/pc", ALICE, true, false).await).0,
            "service-unavailable"
        );
        assert_eq!(
            err(ask(
                &env,
                "nobody@example.org/x",
                "nobody@example.org",
                false,
                false
            )
            .await)
            .0,
            "service-unavailable"
        );
        assert_eq!(
            record(&env, "nobody", NOW, None).await,
            Err(StoreError::NotFound)
        );
    }

    #[tokio::test]
    async fn a_clock_that_went_back_gives_zero() {
        let env = env().await;
        record(&env, "alice", NOW + 60, None).await.unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("0"));
    }

    #[tokio::test]
    async fn a_malformed_record_is_an_internal_error() {
        let env = env().await;
        let bad = Element::new(CONTAINER, ns::SPOOL).with_attr("seconds-since-epoch", "soon");
        env.stores
            .account_data
            .put(&AccountRef::new(HOST, "alice"), bad)
            .await
            .unwrap();
        assert_eq!(
            err(ask(&env, "bob@example.org/pc", ALICE, true, false).await).0,
            "internal-server-error"
        );
        // The next logout repairs it.
        record(&env, "alice", NOW - 1, None).await.unwrap();
        assert!(ask(&env, "bob@example.org/pc", ALICE, true, false)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn long_or_unrepresentable_status_text_is_trimmed() {
        let env = env().await;
        let long = format!("a\u{1}b{}", "x".repeat(MAX_STATUS_CHARS * 2));
        record(&env, "alice", NOW, Some(&long)).await.unwrap();
        let doc = env.doc("alice", CONTAINER).await.unwrap();
        let (_, status) = stored(&doc).unwrap();
        let status = status.unwrap();
        assert_eq!(status.chars().count(), MAX_STATUS_CHARS);
        assert!(status.starts_with("abx"));
        // A status with newlines and quotes survives the attribute.
        let text = "line one\nline 'two' & \"three\"\t<end>";
        record(&env, "alice", NOW, Some(text)).await.unwrap();
        let doc = env.doc("alice", CONTAINER).await.unwrap();
        assert_eq!(stored(&doc), Ok((NOW, Some(text))));
    }

    #[test]
    fn the_server_answers_its_uptime_and_the_features_are_registered() {
        let mut r = Registry::default();
        register(&mut r);
        let payload = Element::new("query", NS);
        let handler = r.lookup(&payload, IqType::Get, Scope::Server).unwrap();
        let iq = Element::new("iq", ns::CLIENT);
        let from = Jid::parse("alice@example.org/phone").unwrap();
        let to = Jid::parse("example.org").unwrap();
        let q = handler(&IqRequest {
            iq: &iq,
            payload: &payload,
            from: &from,
            to: &to,
            registry: &r,
            services: &[],
        })
        .unwrap()
        .unwrap();
        assert!(q.attr("seconds").unwrap().parse::<u64>().is_ok());
        assert!(q.children.is_empty());
        assert!(r.lookup_data(&payload, IqType::Get).is_some());
        assert!(r.features(Scope::Server).contains(&NS));
    }
}
