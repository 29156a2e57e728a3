//! Users' registrations with the transport (XEP-0100 through XEP-0077,
//! and the same form as the ad-hoc command *Configure*, node
//! [`CONFIGURE_NODE`]): what the form asks, what is kept.
//!
//! The form asks for the homeserver (a server name or an address; the
//! admin's only homeserver by default), the Matrix user, and either the
//! password or an access token. What is kept, sealed by the credential
//! store, is what signing on gave ([`crate::login`]): the homeserver's
//! base URL, the user id, the device id and the access token. The
//! password never reaches the store (nor a log); the token is never
//! shown back (the form has no field for it, and `text-private` values
//! are never echoed).
//!
//! A client that knows only the XEP-0077 fields registers with
//! `<username/>` (a full `@alice:example.org`, so the homeserver is
//! known) and `<password/>`.

use std::sync::{Arc, Mutex};

use switchboard_service::adhoc::{Action, CommandOutcome, CommandRequest, Commands, NoteType};
use switchboard_service::credentials::Registration;
use switchboard_service::forms::{Field, FieldKind};
use switchboard_service::gateway::{form_registration, GatewaySpec};
use switchboard_service::stanza::{ErrorType, StanzaError};

use crate::login::Signed;

pub const HOMESERVER: &str = "homeserver";
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const TOKEN: &str = "token";
/// Kept, never in the form.
pub const DEVICE_ID: &str = "device_id";
pub const ACCESS_TOKEN: &str = "access_token";

/// The ad-hoc command node (biboumi's and slidge's name).
pub const CONFIGURE_NODE: &str = "configure";

/// The registration form and the XEP-0100 prompt.
pub fn spec(jid: &str, default_homeserver: Option<&str>) -> GatewaySpec {
    let mut hs = Field::new(HOMESERVER, FieldKind::TextSingle)
        .with_label("Homeserver")
        .with_desc("Its server name (example.org) or address (https://matrix.example.org).");
    if let Some(d) = default_homeserver {
        hs = hs.with_value(d);
    }
    GatewaySpec {
        jid: jid.to_owned(),
        kind: "matrix".into(),
        name: "Matrix gateway".into(),
        instructions: "Sign on with your Matrix account: your user (@alice:example.org) and \
                       your password, or an access token if your homeserver signs on through \
                       a browser. Only the access token the homeserver gives is kept, \
                       encrypted; the password is not stored."
            .into(),
        fields: vec![
            hs,
            Field::new(USERNAME, FieldKind::TextSingle)
                .with_label("Matrix user")
                .with_desc("@alice:example.org, or alice on the homeserver above.")
                .required(),
            Field::new(PASSWORD, FieldKind::TextPrivate).with_label("Password"),
            Field::new(TOKEN, FieldKind::TextPrivate)
                .with_label("Access token")
                .with_desc("Instead of a password."),
        ],
        prompt_desc: "Enter the Matrix id of the person to contact (@alice:example.org).".into(),
        prompt_label: "Matrix id".into(),
        translate: Box::new(|a: &str| {
            let (name, server) = a.trim().strip_prefix('@')?.split_once(':')?;
            // The gateway escapes it by XEP-0106 after this.
            let mut local = String::new();
            for c in name.chars() {
                match c {
                    '^' => local.push_str("^^"),
                    '%' => local.push_str("^%"),
                    c if c.is_ascii_uppercase() => {
                        local.push('^');
                        local.push(c.to_ascii_lowercase());
                    }
                    c => local.push(c),
                }
            }
            Some(format!("{local}%{}", server.to_ascii_lowercase()))
        }),
    }
}

/// What a user submitted, to sign on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub homeserver: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl Submitted {
    pub fn of(reg: &Registration) -> Result<Submitted, StanzaError> {
        let get = |k: &str| {
            reg.get(k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let refuse = |why: &str| {
            Err(StanzaError::new("not-acceptable", ErrorType::Modify).with_text(why.to_owned()))
        };
        for (k, v) in reg.pairs() {
            if v.len() > 4096 || v.contains(['\0', '\r', '\n']) {
                return refuse(&format!("{k}: too long, or more than one line"));
            }
        }
        let Some(user) = get(USERNAME) else {
            return refuse("say which Matrix user to sign on as");
        };
        if user.contains(char::is_whitespace) {
            return refuse("a Matrix user name has no spaces");
        }
        let (password, token) = (get(PASSWORD), get(TOKEN));
        if password.is_none() && token.is_none() {
            return refuse("give your Matrix password, or an access token");
        }
        Ok(Submitted {
            homeserver: get(HOMESERVER),
            user,
            password,
            token,
        })
    }
}

/// The registration kept after signing on.
pub fn stored(s: &Signed) -> Registration {
    Registration::from_pairs(vec![
        (HOMESERVER.into(), s.homeserver.clone()),
        (USERNAME.into(), s.user_id.clone()),
        (DEVICE_ID.into(), s.device_id.clone()),
        (ACCESS_TOKEN.into(), s.access_token.clone()),
    ])
}

/// A kept registration, read back.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub homeserver: String,
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Account {
    pub fn of(reg: &Registration) -> Option<Account> {
        let get = |k: &str| reg.get(k).map(str::to_owned);
        Some(Account {
            homeserver: get(HOMESERVER)?,
            user_id: get(USERNAME)?,
            device_id: get(DEVICE_ID).unwrap_or_default(),
            access_token: get(ACCESS_TOKEN).filter(|t| !t.is_empty())?,
        })
    }
}

/// What the Configure command hands the service around a synchronous
/// [`Commands::handle_iq`] call: the submission to sign on with.
pub type Slot = Arc<Mutex<Option<Registration>>>;

/// The Configure command: the registration form, then the submission,
/// checked, left in `slot` for the service, which signs on before the
/// command's answer goes out.
pub fn configure_commands(jid: &str, spec: Arc<GatewaySpec>, slot: Slot) -> Commands {
    let mut commands = Commands::new(jid);
    commands.add(
        CONFIGURE_NODE,
        "Configure",
        move |req: &mut CommandRequest| {
            if req.action == Action::Cancel {
                return CommandOutcome::Completed {
                    note: None,
                    form: None,
                };
            }
            let Some(form) = req.form.as_ref() else {
                return CommandOutcome::Form(spec.registration_form(None));
            };
            let reg = match form_registration(&spec, form, None)
                .and_then(|r| Submitted::of(&r).map(|_| r))
            {
                Ok(r) => r,
                Err(e) => return CommandOutcome::Error(e),
            };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(reg);
            CommandOutcome::Completed {
                note: Some((NoteType::Info, "Signed on to Matrix.".into())),
                form: None,
            }
        },
    );
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(pairs: &[(&str, &str)]) -> Registration {
        Registration::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_submission_needs_a_user_and_a_secret() {
        let s = Submitted::of(&reg(&[("username", "@a:x"), ("password", "pw")])).unwrap();
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert!(Submitted::of(&reg(&[("username", "@a:x")])).is_err());
        assert!(Submitted::of(&reg(&[("password", "pw")])).is_err());
        assert!(Submitted::of(&reg(&[("username", "a\nb"), ("password", "pw")])).is_err());
    }

    #[test]
    fn only_what_signing_on_gave_is_kept() {
        let r = stored(&Signed {
            homeserver: "https://m.x".into(),
            user_id: "@a:x".into(),
            device_id: "D".into(),
            access_token: "secret".into(),
        });
        assert!(r.get(PASSWORD).is_none());
        let a = Account::of(&r).unwrap();
        assert_eq!(a.access_token, "secret");
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn the_gateway_prompt_writes_matrix_ids_as_local_parts() {
        let s = spec("matrix.l", None);
        assert_eq!(
            (s.translate)("@Alice:Example.org").as_deref(),
            Some("^alice%example.org")
        );
        assert_eq!((s.translate)("alice"), None);
    }
}
