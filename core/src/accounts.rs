//! Account operations shared by the server and the command line: creating
//! accounts, changing passwords, verifying a password. Passwords are
//! prepared with the PRECIS OpaqueString profile (RFC 8265) and stored only
//! as SCRAM-SHA-1 and SCRAM-SHA-256 keys.

use switchboard_spool::store::{AccountRef, AccountStore, ScramCredential, StoreError};

use crate::sasl::{derive_credentials, plain, ScramHash};
use crate::stanza::{ErrorType, StanzaError};

#[derive(Debug)]
pub enum AccountError {
    /// The password is empty or not valid under OpaqueString.
    BadPassword,
    Store(StoreError),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::BadPassword => {
                f.write_str("the password is empty or contains characters a password may not hold")
            }
            AccountError::Store(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for AccountError {}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e)
    }
}

impl AccountError {
    /// The stanza error a client gets for this failure (XEP-0077 §3): a
    /// taken name is `conflict`, an unusable password `not-acceptable`, a
    /// missing account `service-unavailable`; the rest as any storage
    /// failure (see [`store_error`]), logged with `what` (never the
    /// password).
    pub fn to_stanza_error(&self, what: &str) -> StanzaError {
        match self {
            AccountError::Store(StoreError::AlreadyExists) => {
                StanzaError::new("conflict", ErrorType::Cancel).with_text("that user name is taken")
            }
            AccountError::BadPassword => StanzaError::new("not-acceptable", ErrorType::Modify)
                .with_text("the password is empty or contains characters a password may not hold"),
            AccountError::Store(StoreError::NotFound) => StanzaError::service_unavailable(),
            AccountError::Store(e) => store_error(e, what),
        }
    }
}

/// What a client is told when storage fails: a full disk (or a backend's
/// size limit) is `resource-constraint` of type `wait`, so clients retry
/// later (RFC 6120 §8.3.3.18); anything else is the server's fault,
/// `internal-server-error`. The detail goes to the log with `what`, never
/// to the client.
pub fn store_error(e: &StoreError, what: &str) -> StanzaError {
    match e {
        StoreError::Full(_) => {
            tracing::warn!("{what} failed: {e}");
            StanzaError::new("resource-constraint", ErrorType::Wait)
                .with_text("the server is out of storage space; try again later")
        }
        StoreError::Invalid(d) => {
            StanzaError::new("not-acceptable", ErrorType::Modify).with_text(d.clone())
        }
        _ => {
            tracing::error!("{what} failed: {e}");
            StanzaError::internal_server_error()
        }
    }
}

/// Creates an account for a client's request (in-band registration, or an
/// admin creating one), as a stanza error on failure.
pub async fn create_in_band(
    store: &dyn AccountStore,
    host: &str,
    user: &str,
    password: String,
    iterations: u32,
) -> Result<(), StanzaError> {
    create(store, host, user, password, iterations)
        .await
        .map_err(|e| e.to_stanza_error(&format!("creating {user}@{host}")))
}

/// Enforces the OpaqueString profile on a password (RFC 8265 §4.2), as
/// SCRAM clients do (RFC 7677): non-ASCII spaces become ASCII spaces and
/// the text is normalized to NFC. `prepare` alone would only check the
/// characters, so a password typed with a no-break space would never
/// match what a client derives from it.
pub fn prepare_password(password: &str) -> Result<String, AccountError> {
    use precis_core::profile::Profile;
    precis_profiles::OpaqueString::new()
        .enforce(password)
        .map(|p| p.into_owned())
        .map_err(|_| AccountError::BadPassword)
}

/// The SCRAM-SHA-256 and SCRAM-SHA-1 keys for a password, derived on the
/// blocking pool: PBKDF2 at thousands of iterations must not hold up a
/// runtime thread.
async fn credentials(
    password: String,
    iterations: u32,
) -> Result<Vec<ScramCredential>, AccountError> {
    let p = prepare_password(&password)?;
    tokio::task::spawn_blocking(move || {
        vec![
            derive_credentials(ScramHash::Sha256, &p, iterations),
            derive_credentials(ScramHash::Sha1, &p, iterations),
        ]
    })
    .await
    .map_err(|e| AccountError::Store(StoreError::Unavailable(e.to_string())))
}

/// Creates an account; `AlreadyExists` if it exists.
pub async fn create(
    store: &dyn AccountStore,
    host: &str,
    user: &str,
    password: String,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = credentials(password, iterations).await?;
    store.create(&AccountRef::new(host, user), creds).await?;
    Ok(())
}

/// Replaces an account's password; `NotFound` without the account.
pub async fn set_password(
    store: &dyn AccountStore,
    host: &str,
    user: &str,
    password: String,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = credentials(password, iterations).await?;
    store
        .set_credentials(&AccountRef::new(host, user), creds)
        .await?;
    Ok(())
}

/// Checks a password against the stored SHA-256 (else SHA-1) credential.
/// An unknown user and a wrong password both give `false`, after the same
/// PBKDF2 work, so response time does not tell whether the account
/// exists.
pub async fn verify(
    store: &dyn AccountStore,
    host: &str,
    user: &str,
    password: String,
) -> Result<bool, StoreError> {
    let Ok(p) = prepare_password(&password) else {
        return Ok(false);
    };
    let creds = store.credentials(&AccountRef::new(host, user)).await?;
    let checked = tokio::task::spawn_blocking(move || match creds {
        None => {
            let _ = crate::sasl::scram::derive_with_salt(
                ScramHash::Sha256,
                &p,
                b"switchboard-no-such-user",
                4096,
            );
            false
        }
        Some(creds) => {
            let cred = creds
                .iter()
                .find(|c| c.hash == "SHA-256")
                .or_else(|| creds.iter().find(|c| c.hash == "SHA-1"));
            cred.is_some_and(|c| plain::verify(c, &p))
        }
    })
    .await;
    checked.map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The stored SCRAM credential of one hash (`SHA-1`, `SHA-256`), for a
/// SCRAM login; `None` for an unknown account (the exchange then goes on
/// with made-up values, so the failure looks the same).
pub async fn scram_credential(
    store: &dyn AccountStore,
    host: &str,
    user: &str,
    hash: ScramHash,
) -> Result<Option<ScramCredential>, StoreError> {
    let creds = store.credentials(&AccountRef::new(host, user)).await?;
    Ok(creds.and_then(|c| c.into_iter().find(|c| c.hash == hash.name())))
}

#[cfg(test)]
mod tests {
    use super::prepare_password;

    #[test]
    fn passwords_are_enforced_not_just_checked() {
        // A no-break space maps to an ASCII space (RFC 8265 §4.2.1).
        assert_eq!(prepare_password("pass\u{a0}word").unwrap(), "pass word");
        // NFC: "e" + combining acute becomes "é".
        assert_eq!(prepare_password("caf\u{65}\u{301}").unwrap(), "caf\u{e9}");
        assert_eq!(prepare_password("plain-ascii").unwrap(), "plain-ascii");
        // Control characters are refused outright.
        assert!(prepare_password("bad\u{7}bell").is_err());
        assert!(prepare_password("").is_err());
    }
}
