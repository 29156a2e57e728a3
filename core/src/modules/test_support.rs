//! Test fixture shared by the account-data modules: the file storage
//! backend in a temporary directory with accounts `alice` and `bob` at
//! `example.org`, and a way to call a handler as a given sender.

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountRef, Stores};
use switchboard_xml::{ns, Element};

use super::{DataHandler, DataRequest};
use crate::stanza::StanzaError;

pub(crate) const HOST: &str = "example.org";

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) stores: Stores,
}

impl Env {
    /// A stored account-data document of `user`.
    pub(crate) async fn doc(&self, user: &str, key: &str) -> Option<Element> {
        self.stores
            .account_data
            .get(&AccountRef::new(HOST, user), key)
            .await
            .unwrap()
    }
}

/// A fresh store with `alice` and `bob` (password `pw`; few PBKDF2
/// iterations, since these tests are not about hashing).
pub(crate) async fn env() -> Env {
    env_with_password("pw").await
}

/// The same, with another password for both accounts.
pub(crate) async fn env_with_password(password: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let stores =
        switchboard_spool::store::file::FileStores::open(dir.path().join("spool")).unwrap();
    for user in ["alice", "bob"] {
        crate::accounts::create(stores.accounts.as_ref(), HOST, user, password.into(), 16)
            .await
            .unwrap();
    }
    Env { _dir: dir, stores }
}

/// Runs `handler` for `payload` sent by `from` to `account`. The owner may
/// always see presence; others only when `may_see_presence`.
pub(crate) async fn call_as(
    env: &Env,
    handler: DataHandler,
    from: &str,
    account: &str,
    payload: &Element,
    may_see_presence: bool,
    online: bool,
) -> Result<Option<Element>, StanzaError> {
    let from = Jid::parse(from).unwrap();
    let account = Jid::parse(account).unwrap();
    let iq = Element::new("iq", ns::CLIENT).with_child(payload.clone());
    let is_owner = from.to_bare() == account;
    handler(DataRequest {
        iq: &iq,
        payload,
        from: &from,
        account: &account,
        is_owner,
        may_see_presence: may_see_presence || is_owner,
        online,
        data: env.stores.account_data.as_ref(),
        accounts: env.stores.accounts.as_ref(),
        // Differs from the accounts' 16 so tests can tell which count new
        // credentials were made with.
        scram_iterations: 32,
    })
    .await
}
