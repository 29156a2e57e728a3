//! Accounts as admins change them: adding a user, changing a user's
//! password, deleting a user. Part of the admin seam: XEP-0133's
//! add-user, change-user-password and delete-user commands and the web
//! admin console call these, so each change is made (and logged, and told
//! to the host's admins) the same way whichever interface asked.
//!
//! The credentials are made by `crate::accounts` (the one place passwords
//! become SCRAM keys, shared with the command line); a removal runs in the
//! account's actor, as the user's own would, so it is ordered with the
//! account's other work and its contacts are told.
//!
//! Failures are stanza errors, since one of the callers answers a client
//! with them; their text says what happened in a sentence.

use switchboard_jid::Jid;
use switchboard_spool::store::StoreError;
use tokio::sync::oneshot;

use super::Admin;
use crate::accounts::AccountError;
use crate::stanza::{ErrorType, StanzaError};

fn check_host(admin: &Admin, host: &str) -> Result<(), StanzaError> {
    if admin.router.is_local(host) {
        Ok(())
    } else {
        Err(StanzaError::new("item-not-found", ErrorType::Cancel)
            .with_text(format!("{host} is not a host of this server")))
    }
}

/// Creates `user@host` with `password` (`user` already a normalized
/// localpart); `by` is the admin who asked, for the log and the notice
/// the host's admins get. A taken name is `conflict`.
pub async fn add_user(
    admin: &Admin,
    host: &str,
    user: &str,
    password: String,
    by: Option<&Jid>,
) -> Result<(), StanzaError> {
    check_host(admin, host)?;
    crate::accounts::create_in_band(
        admin.account_store.as_ref(),
        host,
        user,
        password,
        admin.settings.get().scram_iterations,
    )
    .await?;
    tracing::info!(admin = ?by.map(Jid::to_string), "account {user}@{host} created by an admin");
    crate::notices::admins::registration(
        &admin.router,
        &admin.settings.get(),
        host,
        user,
        None,
        by,
    );
    Ok(())
}

/// Replaces the password of `user@host`; `item-not-found` without the
/// account.
pub async fn set_password(
    admin: &Admin,
    host: &str,
    user: &str,
    password: String,
    by: Option<&Jid>,
) -> Result<(), StanzaError> {
    check_host(admin, host)?;
    let r = crate::accounts::set_password(
        admin.account_store.as_ref(),
        host,
        user,
        password,
        admin.settings.get().scram_iterations,
    )
    .await;
    match r {
        Ok(()) => {}
        Err(AccountError::Store(StoreError::NotFound)) => {
            return Err(StanzaError::new("item-not-found", ErrorType::Cancel)
                .with_text(format!("there is no account {user}@{host}")))
        }
        Err(e) => return Err(e.to_stanza_error(&format!("changing the password of {user}@{host}"))),
    }
    tracing::info!(admin = ?by.map(Jid::to_string), "password of {user}@{host} changed by an admin");
    Ok(())
}

/// Removes the account `jid` (bare) in its actor: its sessions end, its
/// contacts are told, its data is deleted.
pub async fn delete_user(admin: &Admin, jid: &Jid, by: Option<&Jid>) -> Result<(), StanzaError> {
    check_host(admin, jid.domain())?;
    if jid.node().is_none() || jid.resource().is_some() {
        return Err(StanzaError::bad_request().with_text(format!("'{jid}' is not an account")));
    }
    let (tx, rx) = oneshot::channel();
    admin
        .accounts
        .send(&admin.router, jid, crate::im::Work::Remove(tx));
    match rx.await {
        Ok(Ok(())) => {
            tracing::info!(admin = ?by.map(Jid::to_string), account = %jid, "account deleted by an admin");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StanzaError::internal_server_error()),
    }
}
