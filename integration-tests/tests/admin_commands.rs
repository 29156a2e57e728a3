//! XEP-0133 service administration against the real binary, with raw XML
//! the way a client's "Execute command" on the server sends it:
//!
//! * a non-admin sees no commands and is refused with `forbidden`; the
//!   admin lists them all (disco#items on the commands node) and the host
//!   advertises the commands feature;
//! * announce reaches another online user; set-motd reaches online users
//!   now and is kept for a later login;
//! * add-user, change-user-password and delete-user, each checked by
//!   logging in (or failing to);
//! * get-online-users-list lists the online sessions.

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, RawError, ServerBuilder, TestServer, HOST};

const ADMIN_HOST: &str = "<host name=\"localhost\"><admin>admin@localhost</admin></host>";

const COMMANDS: &str = "http://jabber.org/protocol/commands";
const ADMIN: &str = "http://jabber.org/protocol/admin";

fn node(name: &str) -> String {
    format!("{ADMIN}#{name}")
}

fn password(user: &str) -> String {
    format!("{user}-pw")
}

/// A server whose admin is admin@localhost, with `users` (and admin).
fn start(users: &[&str]) -> TestServer {
    users
        .iter()
        .chain(&["admin"])
        .fold(ServerBuilder::new().config(ADMIN_HOST), |b, u| {
            b.user(&format!("{u}@{HOST}"), &password(u))
        })
        .start()
}

async fn login(server: &TestServer, user: &str, pw: &str) -> Result<Client, RawError> {
    Client::try_login(server, user, pw, "check").await
}

/// Logs in as `user`, available, with the login's actor work (a message of
/// the day) done.
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = Client::online(server, user, &password(user), resource, 0).await;
    c.sync_account().await;
    c
}

/// Starts a command on the host; the reply.
async fn execute(c: &mut Client, name: &str) -> String {
    let payload = format!(
        "<command xmlns='{COMMANDS}' node='{}' action='execute'/>",
        node(name)
    );
    c.iq("set", Some(HOST), &payload).await
}

/// Runs a command the way a client does: execute, then submit the form it
/// shows with `fields` (var, value; a var given twice has two values).
/// Returns the final reply.
async fn run(c: &mut Client, name: &str, fields: &[(&str, &str)]) -> String {
    let first = execute(c, name).await;
    assert_eq!(attr(&first, "type").as_deref(), Some("result"), "{first}");
    assert!(first.contains("status=\"executing\""), "{first}");
    assert!(first.contains("jabber:x:data"), "a form: {first}");
    let session = sessionid(&first);
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{ADMIN}</value></field>"
    );
    let mut vars: Vec<&str> = fields.iter().map(|(v, _)| *v).collect();
    vars.dedup();
    for var in vars {
        x.push_str(&format!("<field var='{var}'>"));
        for (_, value) in fields.iter().filter(|(v, _)| *v == var) {
            x.push_str(&format!("<value>{value}</value>"));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    let payload = format!(
        "<command xmlns='{COMMANDS}' node='{}' sessionid='{session}' action='complete'>{x}</command>",
        node(name)
    );
    c.iq("set", Some(HOST), &payload).await
}

fn sessionid(reply: &str) -> String {
    let at = reply.find("sessionid=\"").expect("a session id") + "sessionid=\"".len();
    reply[at..at + reply[at..].find('"').unwrap()].to_string()
}

fn assert_completed(reply: &str) {
    assert_eq!(attr(reply, "type").as_deref(), Some("result"), "{reply}");
    assert!(reply.contains("status=\"completed\""), "{reply}");
}

fn assert_error(reply: &str, condition: &str) {
    assert_eq!(attr(reply, "type").as_deref(), Some("error"), "{reply}");
    assert!(
        reply.contains(&format!("<{condition} ")),
        "{condition}: {reply}"
    );
}

fn from_host_with_body(body: &str) -> impl Fn(&str) -> bool + '_ {
    move |e: &str| {
        local_name(e) == "message"
            && attr(e, "from").as_deref() == Some(HOST)
            && e.contains(&format!("<body>{body}</body>"))
    }
}

#[tokio::test]
async fn a_non_admin_sees_no_commands_and_is_refused() {
    let server = start(&["alice"]);
    let mut alice = online(&server, "alice", "a").await;
    let items = alice
        .iq(
            "get",
            Some(HOST),
            &format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>"),
        )
        .await;
    assert_eq!(attr(&items, "type").as_deref(), Some("result"), "{items}");
    assert!(!items.contains("<item "), "no commands for alice: {items}");
    for name in [
        "announce",
        "add-user",
        "delete-motd",
        "get-online-users-list",
    ] {
        let reply = execute(&mut alice, name).await;
        assert_error(&reply, "forbidden");
    }
    let info = alice
        .iq(
            "get",
            Some(HOST),
            &format!(
                "<query xmlns='http://jabber.org/protocol/disco#info' node='{}'/>",
                node("add-user")
            ),
        )
        .await;
    assert_error(&info, "forbidden");
}

#[tokio::test]
async fn the_admin_lists_the_commands_and_the_host_advertises_them() {
    let server = start(&[]);
    let mut admin = online(&server, "admin", "console").await;
    let info = admin
        .iq(
            "get",
            Some(HOST),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(info.contains(&format!("var=\"{COMMANDS}\"")), "{info}");
    let items = admin
        .iq(
            "get",
            Some(HOST),
            &format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>"),
        )
        .await;
    for name in [
        "announce",
        "set-motd",
        "edit-motd",
        "delete-motd",
        "add-user",
        "delete-user",
        "change-user-password",
        "get-online-users-list",
    ] {
        assert!(
            items.contains(&format!("node=\"{}\"", node(name))),
            "{name}: {items}"
        );
    }
    assert!(items.contains(&format!("jid=\"{HOST}\"")), "{items}");
    let unknown = execute(&mut admin, "no-such-command").await;
    assert_error(&unknown, "item-not-found");
}

#[tokio::test]
async fn announce_reaches_another_online_user() {
    let server = start(&["alice"]);
    let mut alice = online(&server, "alice", "a").await;
    let mut admin = online(&server, "admin", "console").await;
    let done = run(
        &mut admin,
        "announce",
        &[("subject", "Maintenance"), ("announcement", "Down at ten.")],
    )
    .await;
    assert_completed(&done);
    for c in [&mut alice, &mut admin] {
        let m = c
            .expect("the announcement", from_host_with_body("Down at ten."))
            .await;
        assert!(m.contains("<subject>Maintenance</subject>"), "{m}");
        c.barrier().await;
    }
}

#[tokio::test]
async fn set_motd_reaches_online_users_and_is_kept_for_later_logins() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "a").await;
    let mut admin = online(&server, "admin", "console").await;
    let done = run(
        &mut admin,
        "set-motd",
        &[("subject", "Hello"), ("motd", "Lunch at noon.")],
    )
    .await;
    assert_completed(&done);
    for c in [&mut alice, &mut admin] {
        c.expect("the MOTD, now", from_host_with_body("Lunch at noon."))
            .await;
        c.account_barrier().await;
    }
    // bob was offline: it is stored, and he gets it at login, once.
    let mut bob = online(&server, "bob", "b").await;
    bob.expect("the stored MOTD", from_host_with_body("Lunch at noon."))
        .await;
    bob.barrier().await;
    // The edit form starts from the current text.
    let edit = execute(&mut admin, "edit-motd").await;
    assert!(edit.contains("Lunch at noon."), "{edit}");
    let deleted = execute(&mut admin, "delete-motd").await;
    assert_completed(&deleted);
}

#[tokio::test]
async fn add_user_then_that_user_logs_in() {
    let server = start(&[]);
    let mut admin = online(&server, "admin", "console").await;
    let mismatch = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", "newbie@localhost"),
            ("password", "one"),
            ("password-verify", "two"),
        ],
    )
    .await;
    assert_error(&mismatch, "not-acceptable");
    let done = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", "newbie@localhost"),
            ("password", "fresh-pw"),
            ("password-verify", "fresh-pw"),
        ],
    )
    .await;
    assert_completed(&done);
    login(&server, "newbie", "fresh-pw")
        .await
        .expect("the new user logs in");
    let again = run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", "newbie@localhost"),
            ("password", "x"),
            ("password-verify", "x"),
        ],
    )
    .await;
    assert_error(&again, "conflict");
}

#[tokio::test]
async fn change_password_then_only_the_new_one_works() {
    let server = start(&["alice"]);
    let mut admin = online(&server, "admin", "console").await;
    let done = run(
        &mut admin,
        "change-user-password",
        &[
            ("accountjid", "alice@localhost"),
            ("password", "changed-pw"),
        ],
    )
    .await;
    assert_completed(&done);
    assert!(
        login(&server, "alice", &password("alice")).await.is_err(),
        "the old password still works"
    );
    login(&server, "alice", "changed-pw")
        .await
        .expect("the new password works");
    let nobody = run(
        &mut admin,
        "change-user-password",
        &[("accountjid", "nobody@localhost"), ("password", "x")],
    )
    .await;
    assert_error(&nobody, "item-not-found");
}

#[tokio::test]
async fn delete_user_then_login_fails_and_the_session_is_closed() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "a").await;
    let mut admin = online(&server, "admin", "console").await;
    let done = run(
        &mut admin,
        "delete-user",
        &[
            ("accountjids", "alice@localhost"),
            ("accountjids", "bob@localhost"),
        ],
    )
    .await;
    assert_completed(&done);
    // alice's session is closed for her.
    let ended = alice.expect_closed().await;
    assert!(
        ended.contains("this account has been removed"),
        "alice's stream: {ended}"
    );
    for user in ["alice", "bob"] {
        assert!(
            login(&server, user, &password(user)).await.is_err(),
            "{user} still logs in"
        );
    }
    let gone = run(
        &mut admin,
        "delete-user",
        &[("accountjids", "alice@localhost")],
    )
    .await;
    assert_error(&gone, "item-not-found");
}

#[tokio::test]
async fn get_online_users_list_lists_the_sessions() {
    let server = start(&["alice", "bob"]);
    let alice = online(&server, "alice", "desk").await;
    let bob = online(&server, "bob", "phone").await;
    let mut admin = online(&server, "admin", "console").await;
    let done = run(&mut admin, "get-online-users-list", &[("max_items", "all")]).await;
    assert_completed(&done);
    assert!(done.contains("var=\"onlineuserjids\""), "{done}");
    for jid in [alice.jid(), bob.jid(), admin.jid()] {
        assert!(
            done.contains(&format!("<value>{jid}</value>")),
            "{jid}: {done}"
        );
    }
}
