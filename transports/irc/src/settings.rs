//! Users' settings for each IRC server: nick, username, real name, server
//! password, SASL PLAIN account and password, NickServ password.
//!
//! Where: at the IRC server's JID (`irc.example.net@irc.example.org`), as
//! biboumi takes its per-server Configure command there, through XEP-0077
//! `jabber:iq:register` (data form and legacy fields, answered by the same
//! code as every other gateway: [`switchboard_service::gateway`]) and
//! through an XEP-0050 ad-hoc command, node [`CONFIGURE_NODE`]. When the
//! transport allows exactly one server, its own JID stands for that server
//! too, so that a client that only knows to register with a gateway (the
//! XEP-0100 way) finds the form where it looks; with several servers the
//! transport's JID cannot know which one is meant, and only the server
//! JIDs take settings.
//!
//! How they are kept: one [`CredentialStore`] per allowed server, in
//! `registrations/<server>/` under the service's data directory, its files
//! sealed with the service's key and bound to the server's JID, so that a
//! file moved to another server's directory fails authentication. The
//! whole registration is sealed, secrets or not.
//!
//! The legacy XEP-0077 fields are `<nick/>`, `<username/>` (the IRC user
//! name), `<name/>` (the real name) and `<password/>`, which is the server
//! password: the password of the connection itself, as bouncers use it.
//! The SASL and NickServ settings have no XEP-0077 name and are in the
//! data form only. A get never returns a password; a password field left
//! empty on an edit keeps the stored one, and `<remove/>` deletes them all.
//!
//! Settings apply from the next connection to that server: a connection
//! that is up keeps the nick and account it signed on with.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchboard_jid::Jid;
use switchboard_service::adhoc::{Action, CommandOutcome, CommandRequest, Commands, NoteType};
use switchboard_service::credentials::{CredentialStore, Registration, SecretKey, StoreError};
use switchboard_service::forms::{Field, FieldKind};
use switchboard_service::gateway::{
    form_registration, registration_query, registration_submission, GatewaySpec, REGISTRATIONS_DIR,
};
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_xml::{ns, Element};

use crate::address::server_jid;
use crate::config::{IrcConfig, ServerEntry};
use crate::signon::{Credentials, Profile};

/// The registration form's field names.
pub const NICK: &str = "nick";
pub const USERNAME: &str = "username";
pub const REALNAME: &str = "name";
pub const SERVER_PASSWORD: &str = "password";
pub const SASL_ACCOUNT: &str = "sasl_account";
pub const SASL_PASSWORD: &str = "sasl_password";
pub const NICKSERV_PASSWORD: &str = "nickserv_password";

/// The ad-hoc command node, as biboumi names it.
pub const CONFIGURE_NODE: &str = "configure";

/// The longest value accepted: every one ends up on a single IRC line.
const MAX_VALUE: usize = 200;

/// The registration spec for one server (only the form matters here: the
/// transport does its own addressing).
fn spec(server: &str, jid: &str) -> GatewaySpec {
    GatewaySpec {
        jid: jid.to_owned(),
        kind: "irc".into(),
        name: format!("IRC settings for {server}"),
        instructions: format!(
            "Your settings for the IRC server {server}. Every field is optional; they apply \
             the next time you connect to {server}. Passwords are stored encrypted and never \
             shown; leave one empty to keep it."
        ),
        fields: vec![
            Field::new(NICK, FieldKind::TextSingle)
                .with_label("Nickname")
                .with_desc("Used instead of the nick in the room address."),
            Field::new(USERNAME, FieldKind::TextSingle).with_label("User name (ident)"),
            Field::new(REALNAME, FieldKind::TextSingle).with_label("Real name"),
            Field::new(SERVER_PASSWORD, FieldKind::TextPrivate)
                .with_label("Server password (PASS)"),
            Field::new(SASL_ACCOUNT, FieldKind::TextSingle)
                .with_label("SASL account")
                .with_desc("Defaults to the nickname."),
            Field::new(SASL_PASSWORD, FieldKind::TextPrivate).with_label("SASL password"),
            Field::new(NICKSERV_PASSWORD, FieldKind::TextPrivate)
                .with_label("NickServ password")
                .with_desc("Sent as IDENTIFY to NickServ after connecting."),
        ],
        prompt_desc: "Enter an IRC nick.".into(),
        prompt_label: "Nick".into(),
        translate: Box::new(|a: &str| Some(a.to_owned())),
    }
}

/// Checks what a user submitted beyond the form's own rules: every value
/// must fit on one IRC line, names must be usable as IRC parameters.
pub fn check(reg: &Registration) -> Result<(), StanzaError> {
    let refuse = |var: &str, why: &str| {
        Err(StanzaError::new("not-acceptable", ErrorType::Modify)
            .with_text(format!("{var}: {why}")))
    };
    for (var, value) in reg.pairs() {
        if value.len() > MAX_VALUE {
            return refuse(var, "too long");
        }
        if value.chars().any(|c| matches!(c, '\0' | '\r' | '\n')) {
            return refuse(var, "line breaks and NUL cannot be sent to IRC");
        }
        let one_word = matches!(
            var.as_str(),
            NICK | USERNAME | SASL_ACCOUNT | NICKSERV_PASSWORD
        );
        if one_word && value.contains(' ') {
            return refuse(var, "must be one word");
        }
        if var == NICK {
            crate::address::check_nick(value).or_else(|e| refuse(var, &e.0))?;
        }
        if var == USERNAME && (value.starts_with(':') || value.contains('@')) {
            return refuse(var, "cannot start with ':' or hold '@'");
        }
    }
    Ok(())
}

/// What a connection signs on with, from a registration.
pub fn profile(reg: Option<&Registration>, secure: bool) -> Profile {
    let Some(reg) = reg else {
        return Profile {
            secure,
            ..Profile::default()
        };
    };
    let get = |var: &str| reg.get(var).filter(|v| !v.is_empty()).map(str::to_owned);
    let sasl = get(SASL_PASSWORD).and_then(|pw| {
        // The account defaults to the registered nick; with neither, SASL
        // has no name to log in with and is not tried.
        get(SASL_ACCOUNT).or_else(|| get(NICK)).map(|a| (a, pw))
    });
    Profile {
        nick: get(NICK),
        username: get(USERNAME),
        realname: get(REALNAME),
        credentials: Credentials {
            server_password: get(SERVER_PASSWORD),
            sasl,
            nickserv_password: get(NICKSERV_PASSWORD),
        },
        secure,
    }
}

/// Whether a connection to this server may carry credentials: TLS, or a
/// plain server the admin explicitly allowed in clear.
pub fn secure(entry: &ServerEntry) -> bool {
    entry.tls || entry.allow_plain
}

/// What the Configure command's handler and the service pass each other
/// around a synchronous [`Commands::handle_iq`] call: the stored settings
/// in, the settings to store out.
#[derive(Default)]
struct Slot {
    current: Option<Registration>,
    saved: Option<Registration>,
}

/// One server's registrations and its Configure command.
struct PerServer {
    spec: Arc<GatewaySpec>,
    store: Arc<CredentialStore>,
    /// The command at the server's JID.
    commands: Commands,
    /// The same command at the transport's JID, when this is its server.
    transport_commands: Option<Commands>,
}

/// Every server's settings.
pub struct Settings {
    servers: HashMap<String, PerServer>,
    /// The server the transport's own JID stands for (the only one).
    default: Option<String>,
    slot: Arc<Mutex<Slot>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

impl Settings {
    /// Opens (creating) every server's store under
    /// `data_dir/registrations/<server>/`. Blocks on the file system.
    pub fn open(
        config: &IrcConfig,
        host: &str,
        data_dir: &Path,
        key: Arc<SecretKey>,
    ) -> Result<Settings, StoreError> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        // The admin's default server, or else the only one there is.
        let default = config
            .default_server
            .clone()
            .or_else(|| (config.servers.len() == 1).then(|| config.servers[0].host.clone()));
        let mut servers = HashMap::new();
        for s in &config.servers {
            let jid = server_jid(&s.host, host);
            let dir = data_dir.join(REGISTRATIONS_DIR).join(&s.host);
            let store = Arc::new(CredentialStore::open(dir, key.clone(), &jid)?);
            let spec = Arc::new(spec(&s.host, &jid));
            let commands = configure_commands(&jid, &spec, &slot);
            let transport_commands = (default.as_deref() == Some(s.host.as_str()))
                .then(|| configure_commands(host, &spec, &slot));
            servers.insert(
                s.host.clone(),
                PerServer {
                    spec,
                    store,
                    commands,
                    transport_commands,
                },
            );
        }
        Ok(Settings {
            servers,
            default,
            slot,
        })
    }

    /// The server the transport's JID stands for, if any.
    pub fn default_server(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// `user`'s registration with `server` (`None` when not registered),
    /// as a future that owns what it needs, so that it can also run in a
    /// connection's task (see [`Settings::profile`]).
    pub fn load(
        &self,
        user: &Jid,
        server: &str,
    ) -> impl std::future::Future<Output = Result<Option<Registration>, StanzaError>> + Send + 'static
    {
        let store = self.servers.get(server).map(|s| s.store.clone());
        let user = user.to_bare();
        async move {
            let Some(store) = store else {
                return Ok(None);
            };
            blocking(move || store.load(&user)).await.map_err(|e| {
                tracing::error!(error = %e, "cannot read an IRC registration");
                StanzaError::internal_server_error()
                    .with_text("your IRC settings cannot be read; the administrator has been told")
            })
        }
    }

    /// What a new connection of `user` to `entry` signs on with. The
    /// connection task awaits it, so that reading the file never holds up
    /// the service loop (a burst of joins after a restart would otherwise
    /// fill the service's inbox).
    pub fn profile(
        &self,
        user: &Jid,
        entry: &ServerEntry,
    ) -> impl std::future::Future<Output = Result<Profile, StanzaError>> + Send + 'static {
        let reg = self.load(user, &entry.host);
        let secure = secure(entry);
        async move { Ok(profile(reg.await?.as_ref(), secure)) }
    }

    /// Whether an IQ is a command request or a disco query on the command
    /// nodes, which [`Settings::command`] answers.
    pub fn is_command_iq(&self, iq: &Element) -> bool {
        self.servers
            .values()
            .next()
            .is_some_and(|s| s.commands.is_command_iq(iq))
    }

    /// A `jabber:iq:register` get or set for `server` (an allowed one).
    pub async fn register(&self, iq: &Element, server: &str) -> Option<Element> {
        let Some(s) = self.servers.get(server) else {
            return error_reply(iq, &StanzaError::new("item-not-found", ErrorType::Cancel));
        };
        let user = iq.attr("from").and_then(|f| Jid::parse(f).ok())?.to_bare();
        let query = iq.first_element()?;
        let current = match self.load(&user, server).await {
            Ok(c) => c,
            Err(e) => return error_reply(iq, &e),
        };
        if iq.attr("type") == Some("get") {
            return Some(iq_result(
                iq,
                Some(registration_query(&s.spec, current.as_ref())),
            ));
        }
        if query.get_child("remove", ns::REGISTER).is_some() {
            if query.elements().count() > 1 {
                return error_reply(
                    iq,
                    &StanzaError::bad_request()
                        .with_text("<remove/> must be the only element of the request"),
                );
            }
            if current.is_none() {
                return error_reply(
                    iq,
                    &StanzaError::new("registration-required", ErrorType::Auth)
                        .with_text(format!("you have no settings for {server}")),
                );
            }
            let store = s.store.clone();
            return match blocking(move || store.remove(&user)).await {
                Ok(_) => Some(iq_result(iq, None)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot remove an IRC registration");
                    error_reply(
                        iq,
                        &StanzaError::internal_server_error()
                            .with_text("your IRC settings could not be removed"),
                    )
                }
            };
        }
        let reg = match registration_submission(&s.spec, query, current.as_ref())
            .and_then(|r| check(&r).map(|()| r))
        {
            Ok(r) => r,
            Err(e) => return error_reply(iq, &e),
        };
        // No presence subscription follows, unlike XEP-0100 §4.1.1: the
        // transport signs on when a room is joined, not on presence to its
        // host, so a roster item would only be noise.
        match self.save(s, &user, reg).await {
            Ok(()) => Some(iq_result(iq, None)),
            Err(e) => error_reply(iq, &e),
        }
    }

    /// An ad-hoc command IQ (or disco on its nodes) at `server`'s JID, or
    /// at the transport's when `at_transport`.
    pub async fn command(
        &mut self,
        iq: &Element,
        server: &str,
        at_transport: bool,
    ) -> Option<Element> {
        let user = iq.attr("from").and_then(|f| Jid::parse(f).ok())?.to_bare();
        let current = match self.load(&user, server).await {
            Ok(c) => c,
            Err(e) => return error_reply(iq, &e),
        };
        *self.slot.lock().expect("not poisoned") = Slot {
            current,
            saved: None,
        };
        let s = self.servers.get_mut(server)?;
        let commands = if at_transport {
            s.transport_commands.as_mut()?
        } else {
            &mut s.commands
        };
        let reply = commands.handle_iq(iq, Instant::now());
        let saved = std::mem::take(&mut *self.slot.lock().expect("not poisoned")).saved;
        match saved {
            None => reply,
            Some(reg) => {
                let s = self.servers.get(server)?;
                match self.save(s, &user, reg).await {
                    Ok(()) => reply,
                    Err(e) => error_reply(iq, &e),
                }
            }
        }
    }

    async fn save(&self, s: &PerServer, user: &Jid, reg: Registration) -> Result<(), StanzaError> {
        let store = s.store.clone();
        let user = user.clone();
        blocking(move || store.save(&user, &reg))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot store an IRC registration");
                StanzaError::internal_server_error()
                    .with_text("your IRC settings could not be stored")
            })
    }
}

/// The Configure command: the registration form with the current values
/// (never the passwords), then the submission checked and handed to the
/// service through the slot, which stores it before the reply goes out.
fn configure_commands(jid: &str, spec: &Arc<GatewaySpec>, slot: &Arc<Mutex<Slot>>) -> Commands {
    let mut commands = Commands::new(jid);
    let (spec, slot) = (spec.clone(), slot.clone());
    commands.add(
        CONFIGURE_NODE,
        "Configure",
        move |req: &mut CommandRequest| {
            let mut slot = slot.lock().expect("not poisoned");
            if req.action == Action::Cancel {
                return CommandOutcome::Completed {
                    note: None,
                    form: None,
                };
            }
            let Some(form) = req.form.as_ref() else {
                if req.stage == 0 || req.action == Action::Prev {
                    return CommandOutcome::Form(spec.registration_form(slot.current.as_ref()));
                }
                return CommandOutcome::Error(
                    StanzaError::bad_request().with_text("submit the settings form"),
                );
            };
            match form_registration(&spec, form, slot.current.as_ref())
                .and_then(|r| check(&r).map(|()| r))
            {
                Ok(reg) => {
                    slot.saved = Some(reg);
                    CommandOutcome::Completed {
                        note: Some((
                            NoteType::Info,
                            "Saved. The settings apply the next time you connect to this server."
                                .into(),
                        )),
                        form: None,
                    }
                }
                Err(e) => CommandOutcome::Error(e),
            }
        },
    );
    commands
}

/// Runs blocking store I/O off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
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

    fn xml(s: &str) -> Element {
        switchboard_xml::parse_document(s.as_bytes(), Default::default()).unwrap()
    }

    fn iq(ty: &str, to: &str, body: &str) -> Element {
        xml(&format!(
            "<iq xmlns='jabber:client' type='{ty}' id='i1' from='romeo@montague.lit/o' \
             to='{to}'>{body}</iq>"
        ))
    }

    const SERVER: &str = "irc.example.net@irc.example.org";

    async fn open(servers: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let config =
            IrcConfig::from_element(&xml(&format!("<service>{servers}</service>"))).unwrap();
        let s = Settings::open(
            &config,
            "irc.example.org",
            dir.path(),
            Arc::new(SecretKey::generate()),
        )
        .unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn register_show_configure_and_remove() {
        let (dir, mut s) = open(r#"<server host="irc.example.net"/>"#).await;
        assert_eq!(s.default_server(), Some("irc.example.net"));
        let romeo = Jid::parse("romeo@montague.lit").unwrap();
        let entry = ServerEntry {
            host: "irc.example.net".into(),
            port: 6697,
            tls: true,
            allow_plain: false,
            trust: switchboard_link::tls::Trust::System,
            flood: crate::config::Flood::default(),
        };

        let r = s
            .register(
                &iq(
                    "set",
                    SERVER,
                    "<query xmlns='jabber:iq:register'><nick>romeo</nick>\
                     <password>srv-secret</password></query>",
                ),
                "irc.example.net",
            )
            .await
            .unwrap();
        assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
        let p = s.profile(&romeo, &entry).await.unwrap();
        assert_eq!(p.nick.as_deref(), Some("romeo"));
        assert_eq!(p.credentials.server_password.as_deref(), Some("srv-secret"));
        assert!(p.secure);
        let file = dir
            .path()
            .join("registrations/irc.example.net")
            .read_dir()
            .unwrap()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "xml"))
            .unwrap()
            .path();
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("srv-secret") && !text.contains("romeo<"),
            "{text}"
        );

        let got = s
            .register(
                &iq("get", SERVER, "<query xmlns='jabber:iq:register'/>"),
                "irc.example.net",
            )
            .await
            .unwrap()
            .to_xml_string();
        assert!(
            got.contains("<registered/>") && got.contains("<nick>romeo</nick>"),
            "{got}"
        );
        assert!(!got.contains("srv-secret"), "{got}");

        // Configure at the transport's JID (its only server): the form,
        // then a submission that changes the nick and keeps the password.
        let cmd = "<command xmlns='http://jabber.org/protocol/commands' node='configure'/>";
        assert!(s.is_command_iq(&iq("set", "irc.example.org", cmd)));
        let form = s
            .command(&iq("set", "irc.example.org", cmd), "irc.example.net", true)
            .await
            .unwrap()
            .to_xml_string();
        assert!(
            form.contains("executing") && form.contains("<value>romeo</value>"),
            "{form}"
        );
        assert!(!form.contains("srv-secret"), "{form}");
        let sid = form
            .split("sessionid=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let done = s
            .command(
                &iq(
                    "set",
                    "irc.example.org",
                    &format!(
                        "<command xmlns='http://jabber.org/protocol/commands' node='configure' \
                         sessionid='{sid}' action='complete'><x xmlns='jabber:x:data' type='submit'>\
                         <field var='nick'><value>romeo2</value></field>\
                         <field var='nickserv_password'><value>ns-secret</value></field></x></command>"
                    ),
                ),
                "irc.example.net",
                true,
            )
            .await
            .unwrap()
            .to_xml_string();
        assert!(done.contains("completed"), "{done}");
        let p = s.profile(&romeo, &entry).await.unwrap();
        assert_eq!(p.nick.as_deref(), Some("romeo2"));
        assert_eq!(p.credentials.server_password.as_deref(), Some("srv-secret"));
        assert_eq!(
            p.credentials.nickserv_password.as_deref(),
            Some("ns-secret")
        );

        // A bad value stores nothing.
        let bad = s
            .register(
                &iq(
                    "set",
                    SERVER,
                    "<query xmlns='jabber:iq:register'><nick>two words</nick></query>",
                ),
                "irc.example.net",
            )
            .await
            .unwrap()
            .to_xml_string();
        assert!(bad.contains("not-acceptable"), "{bad}");
        assert_eq!(
            s.profile(&romeo, &entry).await.unwrap().nick.as_deref(),
            Some("romeo2")
        );

        let r = s
            .register(
                &iq(
                    "set",
                    SERVER,
                    "<query xmlns='jabber:iq:register'><remove/></query>",
                ),
                "irc.example.net",
            )
            .await
            .unwrap();
        assert_eq!(r.attr("type"), Some("result"));
        assert_eq!(s.load(&romeo, "irc.example.net").await.unwrap(), None);
        assert_eq!(
            s.profile(&romeo, &entry).await.unwrap(),
            profile(None, true)
        );
    }

    #[tokio::test]
    async fn with_several_servers_the_transport_jid_takes_no_settings() {
        let (_dir, s) = open(r#"<server host="a.example"/><server host="b.example"/>"#).await;
        assert_eq!(s.default_server(), None);
    }

    #[test]
    fn values_that_would_break_an_irc_line_are_refused() {
        assert!(check(&reg(&[
            (NICK, "romeo"),
            (REALNAME, "Romeo M"),
            (SERVER_PASSWORD, "a b")
        ]))
        .is_ok());
        for bad in [
            reg(&[(NICK, "ro meo")]),
            reg(&[(NICK, ":romeo")]),
            reg(&[(USERNAME, "r@h")]),
            reg(&[(REALNAME, "a\r\nQUIT")]),
            reg(&[(SERVER_PASSWORD, "x\nJOIN 0")]),
            reg(&[(NICKSERV_PASSWORD, "two words")]),
            reg(&[(SASL_PASSWORD, &"x".repeat(300))]),
        ] {
            let e = check(&bad).unwrap_err();
            assert_eq!(e.condition, "not-acceptable", "{bad:?}");
        }
    }

    #[test]
    fn a_profile_from_a_registration() {
        let p = profile(
            Some(&reg(&[
                (NICK, "romeo"),
                (SASL_PASSWORD, "pw"),
                (NICKSERV_PASSWORD, "ns"),
                (USERNAME, ""),
            ])),
            true,
        );
        assert_eq!(p.nick.as_deref(), Some("romeo"));
        assert_eq!(p.username, None);
        assert_eq!(p.credentials.sasl, Some(("romeo".into(), "pw".into())));
        assert_eq!(p.credentials.nickserv_password.as_deref(), Some("ns"));
        let p = profile(
            Some(&reg(&[(SASL_ACCOUNT, "acct"), (SASL_PASSWORD, "pw")])),
            true,
        );
        assert_eq!(p.credentials.sasl, Some(("acct".into(), "pw".into())));
        let p = profile(Some(&reg(&[(SASL_PASSWORD, "pw")])), true);
        assert_eq!(p.credentials.sasl, None, "no account name to log in with");
        assert_eq!(profile(None, false), Profile::default());
    }
}
