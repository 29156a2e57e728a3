//! XEP-0133 service administration: the admin seam's actions as XEP-0050
//! ad-hoc commands on each local host, for clients that can run commands
//! ("Execute command" on the server) but cannot address `HOST/announce/…`.
//!
//! The commands are those of the issue: announce to online users, set,
//! edit and delete the message of the day, add a user, delete users,
//! change a user's password, and list the online sessions. Only the host's
//! admins see them in disco and may run them; anyone else gets
//! `forbidden`.
//!
//! The router hands every command IQ for a host (a `<command/>`, and disco
//! queries on the command nodes) to one task through a bounded inbox
//! ([`is_command_iq`], [`run`]), so it never waits. The task owns one
//! [`Commands`] registry per host. Its handlers are pure: they show the
//! forms and check submissions ([`handle`]), and leave what is to be done
//! as a [`Pending`] action. The task then performs it (spool writes on the
//! blocking pool, account removal in the account's actor) and only then
//! sends the reply, so the admin learns of a taken user name or a failed
//! write. Requests are handled one after another, so two admins' changes
//! to the message of the day apply in the order they arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use switchboard_jid::Jid;
use switchboard_service::adhoc::{Action, CommandOutcome, CommandRequest, Commands, NoteType};
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use super::{Admin, Announcement};
use crate::notices::Motd;
use crate::stanza::{error_reply, ErrorType, StanzaError};

/// The `FORM_TYPE` of every XEP-0133 form.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";

pub const ANNOUNCE: &str = "http://jabber.org/protocol/admin#announce";
pub const SET_MOTD: &str = "http://jabber.org/protocol/admin#set-motd";
pub const EDIT_MOTD: &str = "http://jabber.org/protocol/admin#edit-motd";
pub const DELETE_MOTD: &str = "http://jabber.org/protocol/admin#delete-motd";
pub const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
pub const DELETE_USER: &str = "http://jabber.org/protocol/admin#delete-user";
pub const CHANGE_PASSWORD: &str = "http://jabber.org/protocol/admin#change-user-password";
pub const ONLINE_USERS: &str = "http://jabber.org/protocol/admin#get-online-users-list";

/// Every command, with the name clients show, in the order they are listed.
pub const NODES: [(&str, &str); 8] = [
    (ANNOUNCE, "Send Announcement to Online Users"),
    (SET_MOTD, "Set Message of the Day"),
    (EDIT_MOTD, "Edit Message of the Day"),
    (DELETE_MOTD, "Delete Message of the Day"),
    (ADD_USER, "Add User"),
    (DELETE_USER, "Delete User"),
    (CHANGE_PASSWORD, "Change User Password"),
    (ONLINE_USERS, "Get List of Online Users"),
];

/// How many command IQs may wait for the task. Past that, the sender is
/// told to try again; admins send few, so only a flood fills it.
pub(crate) const QUEUED_COMMANDS: usize = 64;

/// The choices of `max_items` in the online-users form (XEP-0133).
const MAX_ITEMS: [&str; 7] = ["25", "50", "75", "100", "150", "200", "all"];

/// What a submitted command asks the server to do, checked and ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Announce(Announcement),
    SetMotd(Announcement),
    UpdateMotd(Announcement),
    DeleteMotd,
    AddUser {
        user: String,
        password: String,
    },
    DeleteUsers(Vec<Jid>),
    ChangePassword {
        user: String,
        password: String,
    },
    /// List the online sessions, at most this many (`None`: all).
    ListOnline(Option<usize>),
}

/// Whether the router should hand this IQ (addressed to a local host) to
/// the commands task: a command request, or a disco query on the command
/// list node or on one of these commands' nodes. Other disco queries on
/// the host stay with the built-in disco module.
pub fn is_command_iq(iq: &Element) -> bool {
    let Some(payload) = iq.first_element() else {
        return false;
    };
    if payload.is("command", ns::COMMANDS) {
        return true;
    }
    (payload.is("query", ns::DISCO_INFO) || payload.is("query", ns::DISCO_ITEMS))
        && payload
            .attr("node")
            .is_some_and(|n| n == ns::COMMANDS || n.starts_with(NS_ADMIN))
}

/// Shows a command's form (stage 0 without a submission) or checks a
/// submission against it. `Ok(Err(form))`: show this form; `Ok(Ok(p))`:
/// do `p`; `Err`: refuse with this error (the session stays open, so the
/// admin may correct the form).
pub fn handle(
    host: &str,
    req: &CommandRequest,
    current_motd: Option<&Motd>,
) -> Result<Result<Pending, Form>, StanzaError> {
    let form = form_for(&req.node, current_motd);
    // Deleting the message of the day asks nothing (XEP-0133 §4.26).
    if req.node == DELETE_MOTD {
        return Ok(Ok(Pending::DeleteMotd));
    }
    let Some(form) = form else {
        return Err(StanzaError::new("item-not-found", ErrorType::Cancel));
    };
    let Some(submitted) = &req.form else {
        if req.stage == 0 || req.action == Action::Prev {
            return Ok(Err(form));
        }
        return Err(StanzaError::bad_request().with_text("submit the command's form"));
    };
    let pairs = form.validate_submission(submitted)?;
    let one = |var: &str| {
        pairs
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, value)| value.as_str())
    };
    let all = |var: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(v, _)| v == var)
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let announcement = |body_var: &str| {
        Announcement::new(one("subject"), one(body_var).unwrap_or_default())
            .map_err(|e| StanzaError::bad_request().with_text(e.to_string()))
    };
    Ok(Ok(match req.node.as_str() {
        ANNOUNCE => Pending::Announce(announcement("announcement")?),
        SET_MOTD => Pending::SetMotd(announcement("motd")?),
        EDIT_MOTD => Pending::UpdateMotd(announcement("motd")?),
        ADD_USER => {
            let user = account_of(host, one("accountjid").unwrap_or_default())?;
            let password = one("password").unwrap_or_default();
            if one("password-verify") != Some(password) {
                return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
                    .with_text("the two passwords differ"));
            }
            Pending::AddUser {
                user,
                password: password.to_string(),
            }
        }
        DELETE_USER => {
            let mut jids = Vec::new();
            for j in all("accountjids") {
                let user = account_of(host, j)?;
                jids.push(Jid::from_parts(Some(&user), host, None).map_err(|_| {
                    StanzaError::jid_malformed().with_text(format!("'{j}' is not an account"))
                })?);
            }
            Pending::DeleteUsers(jids)
        }
        CHANGE_PASSWORD => Pending::ChangePassword {
            user: account_of(host, one("accountjid").unwrap_or_default())?,
            password: one("password").unwrap_or_default().to_string(),
        },
        ONLINE_USERS => Pending::ListOnline(match one("max_items") {
            None | Some("all") => None,
            Some(n) => Some(n.parse().map_err(|_| {
                StanzaError::bad_request().with_text(format!("'{n}' is not a number"))
            })?),
        }),
        _ => return Err(StanzaError::new("item-not-found", ErrorType::Cancel)),
    }))
}

/// The user part of an account JID of `host` given in a form (already a
/// valid, normalized JID); `bad-request` for one of another host, or a
/// JID with no user part.
fn account_of(host: &str, jid: &str) -> Result<String, StanzaError> {
    let parsed = Jid::parse(jid).map_err(|_| StanzaError::jid_malformed())?;
    match parsed.node() {
        Some(user) if parsed.domain() == host => Ok(user.to_string()),
        _ => {
            Err(StanzaError::bad_request()
                .with_text(format!("'{jid}' is not an account of {host}")))
        }
    }
}

/// The form a command shows (XEP-0133's fields); `None` for a node that
/// has none.
pub fn form_for(node: &str, current_motd: Option<&Motd>) -> Option<Form> {
    let base = |title: &str| {
        Form::new(FormKind::Form)
            .with_title(title)
            .with_field(Field::form_type(NS_ADMIN))
    };
    let subject = Field::new("subject", FieldKind::TextSingle).with_label("Subject");
    let password = || {
        Field::new("password", FieldKind::TextPrivate)
            .with_label("Password")
            .required()
    };
    let account = || {
        Field::new("accountjid", FieldKind::JidSingle)
            .with_label("The Jabber ID for the account")
            .required()
    };
    Some(match node {
        ANNOUNCE => base("Send Announcement to Online Users")
            .with_field(subject)
            .with_field(
                Field::new("announcement", FieldKind::TextMulti)
                    .with_label("Announcement")
                    .required(),
            ),
        SET_MOTD | EDIT_MOTD => {
            let mut subject = subject;
            let mut motd = Field::new("motd", FieldKind::TextMulti)
                .with_label("Message of the Day")
                .required();
            // Editing starts from the current text.
            if let (EDIT_MOTD, Some(current)) = (node, current_motd) {
                if let Some(s) = current.announcement.subject() {
                    subject = subject.with_value(s);
                }
                for line in current.announcement.body().lines() {
                    motd = motd.with_value(line);
                }
            }
            let title = if node == SET_MOTD {
                "Set Message of the Day"
            } else {
                "Edit Message of the Day"
            };
            base(title).with_field(subject).with_field(motd)
        }
        ADD_USER => base("Add User")
            .with_field(account())
            .with_field(password())
            .with_field(
                Field::new("password-verify", FieldKind::TextPrivate)
                    .with_label("Retype password")
                    .required(),
            ),
        DELETE_USER => base("Delete User").with_field(
            Field::new("accountjids", FieldKind::JidMulti)
                .with_label("The Jabber ID(s) to delete")
                .required(),
        ),
        CHANGE_PASSWORD => base("Change User Password")
            .with_field(account())
            .with_field(password()),
        ONLINE_USERS => {
            let mut max = Field::new("max_items", FieldKind::ListSingle)
                .with_label("Maximum number of items to show")
                .with_value("all");
            for m in MAX_ITEMS {
                max = max.with_option(m, m);
            }
            base("Get List of Online Users").with_field(max)
        }
        _ => return None,
    })
}

/// The result form of the online-users command: each session's full JID.
pub fn online_users_form(jids: &[Jid]) -> Form {
    let mut field = Field::new("onlineuserjids", FieldKind::JidMulti)
        .with_label("The list of all online users");
    for j in jids {
        field = field.with_value(j.to_string());
    }
    Form::new(FormKind::Result)
        .with_field(Field::form_type(NS_ADMIN))
        .with_field(field)
}

/// Where a handler leaves its [`Pending`] action for the task.
type Slot = Arc<Mutex<Option<Pending>>>;

/// The registry of one host's commands; `admin` decides who sees them.
fn registry(
    host: &str,
    admin: impl Fn(&Jid) -> bool + Clone + Send + Sync + 'static,
    motd: impl Fn() -> Option<Motd> + Clone + Send + Sync + 'static,
    slot: &Slot,
) -> Commands {
    let mut commands = Commands::new(host);
    for (node, name) in NODES {
        let (host, slot, motd) = (host.to_string(), slot.clone(), motd.clone());
        commands.add_restricted(node, name, admin.clone(), move |req| {
            if req.action == Action::Cancel {
                return CommandOutcome::Completed {
                    note: None,
                    form: None,
                };
            }
            let current = if req.node == EDIT_MOTD { motd() } else { None };
            match handle(&host, req, current.as_ref()) {
                Ok(Err(form)) => CommandOutcome::Form(form),
                Ok(Ok(pending)) => {
                    *slot.lock().expect("slot lock") = Some(pending);
                    // The task adds the note (or turns this into an error)
                    // once the work is done.
                    CommandOutcome::Completed {
                        note: None,
                        form: None,
                    }
                }
                Err(e) => CommandOutcome::Error(e),
            }
        });
    }
    commands
}

/// Runs the commands of every local host: takes the IQs the router hands
/// over, answers them, and performs what they ask before replying. Holds
/// the server state weakly, so it never keeps it alive.
pub(crate) async fn run(admin: Weak<Admin>, mut rx: mpsc::Receiver<Element>) {
    let mut hosts: HashMap<String, (Commands, Slot)> = HashMap::new();
    while let Some(iq) = rx.recv().await {
        let Some(strong) = admin.upgrade() else {
            return;
        };
        let Some(host) = iq
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .map(|t| t.domain().to_string())
        else {
            continue;
        };
        let (commands, slot) = hosts.entry(host.clone()).or_insert_with(|| {
            let slot = Slot::default();
            let (settings, motds) = (strong.settings.clone(), strong.motds.clone());
            let (h1, h2) = (host.clone(), host.clone());
            let is_admin = move |jid: &Jid| settings.get().is_admin(&h1, jid);
            let motd = move || motds.current(&h2);
            (registry(&host, is_admin, motd, &slot), slot)
        });
        let reply = commands.handle_iq(&iq, Instant::now());
        let pending = slot.lock().expect("slot lock").take();
        let reply = match (reply, pending) {
            (Some(reply), Some(pending)) => {
                let from = iq.attr("from").and_then(|f| Jid::parse(f).ok());
                match perform(&strong, &host, from.as_ref(), pending).await {
                    Ok((note, form)) => Some(finish(reply, &note, form)),
                    Err(e) => error_reply(&iq, &e),
                }
            }
            (reply, _) => reply,
        };
        if let Some(reply) = reply {
            strong.router.reply(reply);
        }
    }
}

/// Adds the outcome's note (and result form) to a `completed` reply.
fn finish(mut reply: Element, note: &str, form: Option<Form>) -> Element {
    if let Some(c) = reply.get_child_mut("command", ns::COMMANDS) {
        c.append_child(
            Element::new("note", ns::COMMANDS)
                .with_attr("type", NoteType::Info.as_str())
                .with_text(note),
        );
        if let Some(f) = form {
            c.append_child(f.to_element());
        }
    }
    reply
}

/// Does what a command asked, through the admin seam and the account
/// helpers; what to tell the admin, or the error.
async fn perform(
    admin_seam: &Admin,
    host: &str,
    admin: Option<&Jid>,
    pending: Pending,
) -> Result<(String, Option<Form>), StanzaError> {
    let seam = |e: super::AdminError| e.to_stanza_error();
    Ok(match pending {
        Pending::Announce(a) => {
            let n = super::announce_online(&admin_seam.router, host, &a).map_err(seam)?;
            (format!("The announcement was sent to {n} sessions."), None)
        }
        Pending::SetMotd(a) => {
            let n = super::set_motd(admin_seam, host, a).await.map_err(seam)?;
            (
                format!("The message of the day is set; {n} online users were shown it."),
                None,
            )
        }
        Pending::UpdateMotd(a) => {
            super::update_motd(admin_seam, host, a)
                .await
                .map_err(seam)?;
            ("The message of the day is changed.".to_string(), None)
        }
        Pending::DeleteMotd => {
            let existed = super::delete_motd(admin_seam, host).await.map_err(seam)?;
            let note = if existed {
                "The message of the day is deleted."
            } else {
                "There was no message of the day."
            };
            (note.to_string(), None)
        }
        Pending::AddUser { user, password } => {
            super::add_user(admin_seam, host, &user, password, admin).await?;
            (format!("{user}@{host} is created."), None)
        }
        Pending::ChangePassword { user, password } => {
            super::set_password(admin_seam, host, &user, password, admin).await?;
            (format!("The password of {user}@{host} is changed."), None)
        }
        Pending::DeleteUsers(jids) => {
            // One after the other, stopping at the first failure so the
            // admin knows which accounts are gone.
            let mut done = Vec::new();
            for jid in &jids {
                if let Err(mut e) = super::delete_user(admin_seam, jid, admin).await {
                    let before = if done.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} deleted before)", done.join(", "))
                    };
                    e.text = Some(format!(
                        "{jid}: {}{before}",
                        e.text.clone().unwrap_or_else(|| e.condition.to_string())
                    ));
                    return Err(e);
                }
                done.push(jid.to_string());
            }
            (format!("Deleted: {}.", done.join(", ")), None)
        }
        Pending::ListOnline(max) => {
            let mut all = super::online_users(&admin_seam.router, Some(host)).map_err(seam)?;
            let total = all.len();
            if let Some(m) = max {
                all.truncate(m);
            }
            (
                format!("{total} sessions online, {} listed.", all.len()),
                Some(online_users_form(&all)),
            )
        }
    })
}

#[cfg(test)]
mod adhoc_tests {
    use super::*;
    use std::collections::BTreeMap;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn req(node: &str, stage: u32, form: Option<Form>) -> CommandRequest {
        CommandRequest {
            from: jid("boss@example.org/desk"),
            node: node.to_string(),
            action: if stage == 0 {
                Action::Execute
            } else {
                Action::Complete
            },
            form,
            stage,
            state: BTreeMap::new(),
        }
    }

    fn submit(node: &str, pairs: &[(&str, &str)]) -> Form {
        form_for(node, None)
            .unwrap()
            .submission(pairs.iter().copied())
    }

    fn run(node: &str, pairs: &[(&str, &str)]) -> Result<Pending, StanzaError> {
        let r = req(node, 1, Some(submit(node, pairs)));
        handle("example.org", &r, None).map(|r| r.expect("a pending action"))
    }

    #[test]
    fn every_command_but_delete_motd_first_shows_its_form() {
        for (node, _) in NODES {
            let out = handle("example.org", &req(node, 0, None), None).unwrap();
            if node == DELETE_MOTD {
                assert_eq!(out, Ok(Pending::DeleteMotd));
            } else {
                let form = out.expect_err("a form");
                assert_eq!(form.form_type(), Some(NS_ADMIN), "{node}");
            }
        }
    }

    #[test]
    fn announce_takes_subject_and_body() {
        let p = run(
            ANNOUNCE,
            &[("subject", "Hi"), ("announcement", "down at 5")],
        )
        .unwrap();
        assert_eq!(
            p,
            Pending::Announce(Announcement::new(Some("Hi"), "down at 5").unwrap())
        );
        let e = run(ANNOUNCE, &[("subject", "Hi")]).unwrap_err();
        assert_eq!(e.condition, "not-acceptable");
    }

    #[test]
    fn motd_body_lines_are_joined() {
        let p = run(SET_MOTD, &[("motd", "one"), ("motd", "two")]).unwrap();
        assert_eq!(
            p,
            Pending::SetMotd(Announcement::new(None, "one\ntwo").unwrap())
        );
        assert!(matches!(
            run(EDIT_MOTD, &[("motd", "x")]),
            Ok(Pending::UpdateMotd(_))
        ));
    }

    #[test]
    fn edit_motd_form_starts_from_the_current_text() {
        let motd = Motd {
            series: 1,
            set: 0,
            updated: 0,
            announcement: Announcement::new(Some("S"), "a\nb").unwrap(),
        };
        let form = form_for(EDIT_MOTD, Some(&motd)).unwrap();
        assert_eq!(form.values("motd"), ["a", "b"]);
        assert_eq!(form.value("subject"), Some("S"));
        assert!(form_for(SET_MOTD, Some(&motd))
            .unwrap()
            .values("motd")
            .is_empty());
    }

    #[test]
    fn add_user_checks_host_and_passwords() {
        let ok = run(
            ADD_USER,
            &[
                ("accountjid", "New@Example.org"),
                ("password", "pw"),
                ("password-verify", "pw"),
            ],
        );
        assert_eq!(
            ok,
            Ok(Pending::AddUser {
                user: "new".into(),
                password: "pw".into()
            })
        );
        let mismatch = run(
            ADD_USER,
            &[
                ("accountjid", "new@example.org"),
                ("password", "pw"),
                ("password-verify", "pv"),
            ],
        )
        .unwrap_err();
        assert_eq!(mismatch.condition, "not-acceptable");
        let elsewhere = run(
            ADD_USER,
            &[
                ("accountjid", "new@other.org"),
                ("password", "pw"),
                ("password-verify", "pw"),
            ],
        )
        .unwrap_err();
        assert_eq!(elsewhere.condition, "bad-request");
        let no_user = run(
            CHANGE_PASSWORD,
            &[("accountjid", "example.org"), ("password", "pw")],
        )
        .unwrap_err();
        assert_eq!(no_user.condition, "bad-request");
    }

    #[test]
    fn delete_user_takes_several_bare_accounts() {
        let p = run(
            DELETE_USER,
            &[
                ("accountjids", "a@example.org"),
                ("accountjids", "b@example.org/phone"),
            ],
        )
        .unwrap();
        assert_eq!(
            p,
            Pending::DeleteUsers(vec![jid("a@example.org"), jid("b@example.org")])
        );
    }

    #[test]
    fn change_password_and_online_list() {
        assert_eq!(
            run(
                CHANGE_PASSWORD,
                &[("accountjid", "a@example.org"), ("password", "new")]
            ),
            Ok(Pending::ChangePassword {
                user: "a".into(),
                password: "new".into()
            })
        );
        assert_eq!(run(ONLINE_USERS, &[]), Ok(Pending::ListOnline(None)));
        assert_eq!(
            run(ONLINE_USERS, &[("max_items", "25")]),
            Ok(Pending::ListOnline(Some(25)))
        );
        assert_eq!(
            run(ONLINE_USERS, &[("max_items", "7")])
                .unwrap_err()
                .condition,
            "not-acceptable"
        );
    }

    #[test]
    fn a_later_stage_without_a_form_is_bad_request() {
        let e = handle("example.org", &req(ADD_USER, 1, None), None).unwrap_err();
        assert_eq!(e.condition, "bad-request");
    }

    #[test]
    fn router_hands_over_only_command_iqs() {
        let iq = |payload: Element| Element::new("iq", ns::CLIENT).with_child(payload);
        assert!(is_command_iq(&iq(Element::new("command", ns::COMMANDS))));
        assert!(is_command_iq(&iq(
            Element::new("query", ns::DISCO_ITEMS).with_attr("node", ns::COMMANDS)
        )));
        assert!(is_command_iq(&iq(
            Element::new("query", ns::DISCO_INFO).with_attr("node", ADD_USER)
        )));
        assert!(!is_command_iq(&iq(Element::new("query", ns::DISCO_INFO))));
        assert!(!is_command_iq(&iq(Element::new("ping", ns::PING))));
    }

    #[test]
    fn registry_lists_commands_to_admins_only() {
        let slot = Slot::default();
        let boss = jid("boss@example.org");
        let b2 = boss.clone();
        let mut c = registry("example.org", move |j| j.to_bare() == b2, || None, &slot);
        let items = c.disco_items(&jid("boss@example.org/desk"));
        assert_eq!(items.elements().count(), NODES.len());
        assert_eq!(
            c.disco_items(&jid("eve@example.org/x")).elements().count(),
            0
        );
        let exec = |from: &str| {
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", "1")
                .with_attr("from", from)
                .with_attr("to", "example.org")
                .with_child(
                    Element::new("command", ns::COMMANDS)
                        .with_attr("node", DELETE_MOTD)
                        .with_attr("action", "execute"),
                )
        };
        let refused = c
            .handle_iq(&exec("eve@example.org/x"), Instant::now())
            .unwrap();
        let xml = refused.to_xml_string();
        assert!(xml.contains("forbidden"), "{xml}");
        assert!(slot.lock().unwrap().is_none());
        let done = c
            .handle_iq(&exec("boss@example.org/desk"), Instant::now())
            .unwrap();
        assert_eq!(done.attr("type"), Some("result"));
        assert_eq!(slot.lock().unwrap().take(), Some(Pending::DeleteMotd));
        drop(boss);
    }
}
