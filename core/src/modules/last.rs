//! XEP-0012 Last Activity: how long ago an account's last session ended
//! (and the status it left with), and the server's uptime.
//!
//! # Spool format
//!
//! One element in the account's record, replaced each time the account's
//! last available session ends (see [`record_logout`]):
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

use switchboard_jid::Jid;
use switchboard_spool::record::is_xml_char;
use switchboard_spool::{SpoolError, Storage, UserRecord};
use switchboard_xml::{ns, Element};

use super::{DataRequest, IqKey, IqRequest, IqType, Registry, Scope};
use crate::stanza::StanzaError;

/// The jabber:iq:last namespace (also its disco feature).
pub const NS: &str = "jabber:iq:last";

/// The stored element's local name, in the spool namespace.
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
    r.handle_data(KEY, account_last);
    r.handle(KEY, Scope::Server, uptime);
    r.feature(Scope::Server, NS);
    r.feature(Scope::Account, NS);
}

/// Records that the account's last available session ended at
/// `now_unix_secs`, with the status text of its final presence. Replaces
/// any earlier record. Fails with [`SpoolError::NotFound`] for an account
/// that does not exist.
pub fn record_logout(
    store: &dyn Storage,
    host: &str,
    user: &str,
    now_unix_secs: u64,
    status: Option<&str>,
) -> Result<(), SpoolError> {
    let mut el = Element::new(CONTAINER, ns::SPOOL)
        .with_attr("seconds-since-epoch", now_unix_secs.to_string());
    // Characters XML cannot carry would make the spool refuse the write;
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
    store.update_user(host, user, &mut |rec| match rec
        .extra
        .iter()
        .position(|e| e.is(CONTAINER, ns::SPOOL))
    {
        Some(i) => rec.extra[i] = el.clone(),
        None => rec.extra.push(el.clone()),
    })
}

/// The recorded logout of a record: (Unix seconds, status). `Err` for a
/// malformed record.
pub fn stored(record: &UserRecord) -> Result<Option<(u64, Option<&str>)>, String> {
    let Some(el) = record.extra.iter().find(|e| e.is(CONTAINER, ns::SPOOL)) else {
        return Ok(None);
    };
    let secs = el
        .attr("seconds-since-epoch")
        .ok_or("<last/> without seconds-since-epoch=")?;
    let secs = secs
        .parse::<u64>()
        .map_err(|_| format!("<last/> with a malformed seconds-since-epoch='{secs}'"))?;
    Ok(Some((secs, el.attr("status"))))
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

fn account_last(req: &DataRequest<'_>) -> Result<Option<Element>, StanzaError> {
    last_at(req, unix_now())
}

/// [`account_last`] with the clock passed in.
fn last_at(req: &DataRequest<'_>, now: u64) -> Result<Option<Element>, StanzaError> {
    if !req.is_owner && !req.may_see_presence {
        return Err(StanzaError::forbidden()
            .with_text("last activity is shown only to those who may see the presence"));
    }
    if req.online {
        return Ok(Some(answer(0, None)));
    }
    let Some(user) = req.account.node() else {
        return Err(StanzaError::service_unavailable());
    };
    let record = match req.store.load_user(req.account.domain(), user) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(StanzaError::service_unavailable()),
        Err(e) => return Err(storage_failure(req.account, &e.to_string())),
    };
    match stored(&record) {
        Ok(Some((at, status))) => Ok(Some(answer(now.saturating_sub(at), status))),
        Ok(None) => Err(StanzaError::service_unavailable()),
        Err(e) => Err(storage_failure(req.account, &e)),
    }
}

fn storage_failure(account: &Jid, e: &str) -> StanzaError {
    tracing::error!(account = %account, "reading last activity failed: {e}");
    StanzaError::internal_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts;
    use crate::stanza::ErrorType;
    use switchboard_spool::FileSpool;

    const HOST: &str = "example.org";
    const ALICE: &str = "alice@example.org";
    const NOW: u64 = 1_700_000_000;

    struct Env {
        _dir: tempfile::TempDir,
        spool: FileSpool,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let spool = FileSpool::open(dir.path().join("spool")).unwrap();
        for user in ["alice", "bob"] {
            accounts::create(&spool, HOST, user, "pw", 16).unwrap();
        }
        Env { _dir: dir, spool }
    }

    /// Asks for `account`'s last activity as `from`, at `NOW`.
    fn ask(
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
                store: &env.spool,
                scram_iterations: 16,
            },
            NOW,
        )
    }

    fn err(r: Result<Option<Element>, StanzaError>) -> (&'static str, ErrorType) {
        let e = r.unwrap_err();
        (e.condition, e.kind)
    }

    #[test]
    fn offline_gives_seconds_since_logout_and_the_status() {
        let env = env();
        record_logout(&env.spool, HOST, "alice", NOW - 903, Some("Heading Home")).unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .unwrap()
            .unwrap();
        assert!(q.is("query", NS));
        assert_eq!(q.attr("seconds"), Some("903"));
        assert_eq!(q.text(), "Heading Home");
        // The owner may always ask.
        let q = ask(&env, "alice@example.org/phone", ALICE, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("903"));
    }

    #[test]
    fn no_status_means_no_text_and_a_later_logout_replaces_the_record() {
        let env = env();
        record_logout(&env.spool, HOST, "alice", NOW - 5000, Some("old")).unwrap();
        record_logout(&env.spool, HOST, "alice", NOW - 10, None).unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .unwrap()
            .unwrap();
        assert_eq!(q, answer(10, None));
        assert!(q.children.is_empty());
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert_eq!(rec.extra.len(), 1);
        assert_eq!(stored(&rec), Ok(Some((NOW - 10, None))));
    }

    #[test]
    fn online_is_zero_seconds_without_text() {
        let env = env();
        record_logout(&env.spool, HOST, "alice", NOW - 903, Some("Heading Home")).unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, true)
            .unwrap()
            .unwrap();
        assert_eq!(q, answer(0, None));
    }

    #[test]
    fn without_presence_authorization_it_is_forbidden() {
        let env = env();
        record_logout(&env.spool, HOST, "alice", NOW - 903, None).unwrap();
        for online in [false, true] {
            assert_eq!(
                err(ask(&env, "bob@example.org/pc", ALICE, false, online)),
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
            )),
            ("forbidden", ErrorType::Auth)
        );
    }

    #[test]
    fn nothing_recorded_or_no_account_is_service_unavailable() {
        let env = env();
        assert_eq!(
            err(ask(&env, "bob@example.org/pc", ALICE, true, false)).0,
            "service-unavailable"
        );
        assert_eq!(
            err(ask(
                &env,
                "nobody@example.org/x",
                "nobody@example.org",
                false,
                false
            ))
            .0,
            "service-unavailable"
        );
        assert!(matches!(
            record_logout(&env.spool, HOST, "nobody", NOW, None),
            Err(SpoolError::NotFound)
        ));
    }

    #[test]
    fn a_clock_that_went_back_gives_zero() {
        let env = env();
        record_logout(&env.spool, HOST, "alice", NOW + 60, None).unwrap();
        let q = ask(&env, "bob@example.org/pc", ALICE, true, false)
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("0"));
    }

    #[test]
    fn a_malformed_record_is_an_internal_error() {
        let env = env();
        let bad = Element::new(CONTAINER, ns::SPOOL).with_attr("seconds-since-epoch", "soon");
        env.spool
            .update_user(HOST, "alice", &mut |r| r.extra.push(bad.clone()))
            .unwrap();
        assert_eq!(
            err(ask(&env, "bob@example.org/pc", ALICE, true, false)).0,
            "internal-server-error"
        );
        // The next logout repairs it.
        record_logout(&env.spool, HOST, "alice", NOW - 1, None).unwrap();
        assert!(ask(&env, "bob@example.org/pc", ALICE, true, false).is_ok());
    }

    #[test]
    fn long_or_unrepresentable_status_text_is_trimmed() {
        let env = env();
        let long = format!("a\u{1}b{}", "x".repeat(MAX_STATUS_CHARS * 2));
        record_logout(&env.spool, HOST, "alice", NOW, Some(&long)).unwrap();
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        let (_, status) = stored(&rec).unwrap().unwrap();
        let status = status.unwrap();
        assert_eq!(status.chars().count(), MAX_STATUS_CHARS);
        assert!(status.starts_with("abx"));
        // A status with newlines and quotes survives the attribute.
        let text = "line one\nline 'two' & \"three\"\t<end>";
        record_logout(&env.spool, HOST, "alice", NOW, Some(text)).unwrap();
        let rec = env.spool.load_user(HOST, "alice").unwrap().unwrap();
        assert_eq!(stored(&rec), Ok(Some((NOW, Some(text)))));
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
