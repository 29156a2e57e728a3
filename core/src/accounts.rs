//! Account operations shared by the server and the command line: creating
//! accounts, changing passwords, verifying a password. Passwords are
//! prepared with the PRECIS OpaqueString profile (RFC 8265) and stored only
//! as SCRAM-SHA-1 and SCRAM-SHA-256 keys.

use std::sync::Arc;

use switchboard_spool::{SpoolError, Storage, UserRecord};

use crate::sasl::{derive_credentials, plain, ScramHash};
use crate::stanza::{ErrorType, StanzaError};

#[derive(Debug)]
pub enum AccountError {
    /// The password is empty or not valid under OpaqueString.
    BadPassword,
    Spool(SpoolError),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::BadPassword => {
                f.write_str("the password is empty or contains characters a password may not hold")
            }
            AccountError::Spool(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for AccountError {}

impl AccountError {
    /// The stanza error a client gets for this failure (XEP-0077 §3): a
    /// taken name is `conflict`, an unusable password `not-acceptable`, a
    /// missing account `service-unavailable`. Anything else is a server
    /// fault: logged here with `what` (never the password), and reported
    /// as `internal-server-error`.
    pub fn to_stanza_error(&self, what: &str) -> StanzaError {
        match self {
            AccountError::Spool(SpoolError::AlreadyExists) => {
                StanzaError::new("conflict", ErrorType::Cancel).with_text("that user name is taken")
            }
            AccountError::BadPassword => StanzaError::new("not-acceptable", ErrorType::Modify)
                .with_text("the password is empty or contains characters a password may not hold"),
            AccountError::Spool(SpoolError::NotFound) => StanzaError::service_unavailable(),
            AccountError::Spool(e) => {
                tracing::error!("{what} failed: {e}");
                StanzaError::internal_server_error()
            }
        }
    }
}

/// Creates an account for a client's request (in-band registration, or an
/// admin creating one), on the blocking pool: PBKDF2 and the fsynced spool
/// write must not hold up a runtime thread.
pub async fn create_in_band(
    store: Arc<dyn Storage>,
    host: &str,
    user: &str,
    password: String,
    iterations: u32,
) -> Result<(), StanzaError> {
    let (h, u) = (host.to_string(), user.to_string());
    match tokio::task::spawn_blocking(move || create(store.as_ref(), &h, &u, &password, iterations))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_stanza_error(&format!("creating {user}@{host}"))),
        Err(_) => Err(StanzaError::internal_server_error()),
    }
}

impl From<SpoolError> for AccountError {
    fn from(e: SpoolError) -> Self {
        AccountError::Spool(e)
    }
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

fn credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<switchboard_spool::ScramCredential>, AccountError> {
    let p = prepare_password(password)?;
    Ok(vec![
        derive_credentials(ScramHash::Sha256, &p, iterations),
        derive_credentials(ScramHash::Sha1, &p, iterations),
    ])
}

pub fn create(
    store: &dyn Storage,
    host: &str,
    user: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let record = UserRecord {
        credentials: credentials(password, iterations)?,
        extra: Vec::new(),
    };
    store.create_user(host, user, &record)?;
    Ok(())
}

pub fn set_password(
    store: &dyn Storage,
    host: &str,
    user: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = credentials(password, iterations)?;
    store.update_user(host, user, &mut |rec| rec.credentials = creds.clone())?;
    Ok(())
}

/// Checks a password against the stored SHA-256 (else SHA-1) credential.
/// An unknown user and a wrong password both give `false`.
pub fn verify(
    store: &dyn Storage,
    host: &str,
    user: &str,
    password: &str,
) -> Result<bool, SpoolError> {
    let Ok(p) = prepare_password(password) else {
        return Ok(false);
    };
    let Some(rec) = store.load_user(host, user)? else {
        // Spend the same PBKDF2 work as for a real account, so response
        // time does not tell whether the account exists.
        let _ = crate::sasl::scram::derive_with_salt(
            ScramHash::Sha256,
            &p,
            b"switchboard-no-such-user",
            4096,
        );
        return Ok(false);
    };
    let cred = rec
        .credential("SHA-256")
        .or_else(|| rec.credential("SHA-1"));
    Ok(cred.is_some_and(|c| plain::verify(c, &p)))
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
